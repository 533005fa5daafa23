"""One call that makes a notebook's numbers repeatable."""

from __future__ import annotations

import random
import sys

import numpy as np

#: The seed every chapter uses unless it says otherwise.
DEFAULT_SEED = 1

# The seed that TensorFlow and Keras get when they are imported after `set_seeds` (see below).
_pending_seed: int | None = None


def set_seeds(seed: int = DEFAULT_SEED) -> int:
    """Seed Python, NumPy, TensorFlow and Keras and switch on TensorFlow's deterministic ops; return the seed.

    With op determinism on, two executions of the same notebook on the same machine print the same
    losses and accuracies (ops without a deterministic implementation raise instead of drifting).

    TensorFlow takes seconds to import, so this never imports it: if TensorFlow or Keras is already
    imported it is seeded now, otherwise the moment it is imported. A NumPy-only notebook stays
    NumPy-only.
    """
    global _pending_seed
    random.seed(seed)
    np.random.seed(seed)
    first_call = _pending_seed is None
    _pending_seed = seed
    if first_call:
        from wrapt import register_post_import_hook

        # Called at once for a module that is already imported, else right after its import.
        register_post_import_hook(_seed_tensorflow, "tensorflow")
        register_post_import_hook(_seed_keras, "keras")
    else:
        for name, seed_it in (("tensorflow", _seed_tensorflow), ("keras", _seed_keras)):
            if name in sys.modules:
                seed_it(sys.modules[name])
    return seed


def _seed_tensorflow(tf) -> None:
    tf.random.set_seed(_pending_seed)
    tf.config.experimental.enable_op_determinism()


def _seed_keras(keras) -> None:
    # keras.utils.set_random_seed also reseeds Python and NumPy; a late import of Keras must not
    # rewind the random numbers a notebook has drawn since set_seeds().
    python_state, numpy_state = random.getstate(), np.random.get_state()
    keras.utils.set_random_seed(_pending_seed)  # also Keras's global SeedGenerator
    random.setstate(python_state)
    np.random.set_state(numpy_state)

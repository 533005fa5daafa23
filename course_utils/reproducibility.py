"""One call that makes a notebook's numbers repeatable."""

from __future__ import annotations

import random

import numpy as np

#: The seed every chapter uses unless it says otherwise.
DEFAULT_SEED = 1


def set_seeds(seed: int = DEFAULT_SEED) -> int:
    """Seed Python, NumPy and Keras and switch on TensorFlow's deterministic ops; return the seed.

    With op determinism on, two executions of the same notebook on the same machine print the same
    losses and accuracies (ops without a deterministic implementation raise instead of drifting).
    """
    random.seed(seed)
    np.random.seed(seed)
    import course_utils  # noqa: F401  (quietens TensorFlow before it loads)
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return seed

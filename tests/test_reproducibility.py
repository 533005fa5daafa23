"""course_utils.reproducibility: the same numbers every time, without importing TensorFlow needlessly.

Each check runs in a fresh interpreter, because what matters is the order of imports in a new notebook.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest


def _run(code: str) -> dict:
    """Run ``code`` in a new Python process; it prints one JSON object as its last line."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_set_seeds_does_not_import_tensorflow():
    found = _run(
        """
        import json, sys
        from course_utils.reproducibility import set_seeds
        set_seeds()
        import numpy as np
        print(json.dumps({"tf": "tensorflow" in sys.modules, "keras": "keras" in sys.modules}))
        """
    )
    assert found == {"tf": False, "keras": False}


KERAS_DRAW = """
    import json, random
    import numpy as np
    {before}
    from course_utils.reproducibility import set_seeds
    set_seeds(3)
    numpy_first = float(np.random.rand())
    {after}
    import keras, tensorflow as tf
    from tensorflow.python.framework.config import is_op_determinism_enabled  # no public getter
    layer = keras.layers.Dense(4)
    layer.build((None, 3))
    print(json.dumps({{
        "kernel": layer.kernel.numpy().round(6).tolist(),
        "tf": float(tf.random.uniform(())),
        "numpy_first": numpy_first,
        "numpy_next": float(np.random.rand()),
        "python_next": random.random(),
        "deterministic": is_op_determinism_enabled(),
    }}))
"""


@pytest.fixture(scope="module")
def seeded_runs():
    # Keras imported before set_seeds (seeded at once) and after it (seeded on import), twice each,
    # and once with another seed.
    early = KERAS_DRAW.format(before="import keras", after="")
    late = KERAS_DRAW.format(before="", after="")
    return {
        "early": _run(early), "early again": _run(early), "late": _run(late), "late again": _run(late),
        "other seed": _run(late.replace("set_seeds(3)", "set_seeds(4)")),
    }


@pytest.mark.parametrize("order", ["early", "late"])
def test_keras_is_seeded_whether_imported_before_or_after_set_seeds(seeded_runs, order):
    run = seeded_runs[order]
    assert run == seeded_runs[f"{order} again"]  # the same numbers in every execution
    assert run["kernel"] != seeded_runs["other seed"]["kernel"]  # ... and they come from the seed
    assert run["tf"] != seeded_runs["other seed"]["tf"]
    assert run["deterministic"]


def test_a_late_keras_import_does_not_rewind_numpy(seeded_runs):
    import numpy as np

    rng = np.random.RandomState(3)
    first, second = rng.rand(), rng.rand()
    run = seeded_runs["late"]
    assert run["numpy_first"] == first and run["numpy_next"] == second  # not `first` again


def test_a_new_seed_reaches_an_already_imported_keras():
    drawn = _run(
        """
        import json
        from course_utils.reproducibility import set_seeds
        import keras
        set_seeds(1)
        a = float(keras.random.uniform(()))
        set_seeds(2)
        b = float(keras.random.uniform(()))
        set_seeds(1)
        c = float(keras.random.uniform(()))
        print(json.dumps({"a": a, "b": b, "c": c}))
        """
    )
    assert drawn["a"] == drawn["c"] != drawn["b"]

"""What the trusted step measures itself: a student's model, run outside the kernel on the judge's data.

A number that comes from running a student's model (its accuracy, its outputs) is never taken from the
kernel, where the submission could have rebound ``Model.predict`` or zeroed the weights after training.
The hidden test records the model itself as plain data (`course_utils.backprop.dense_layers`: each
layer's kernel, bias and activation); here the judge checks its size and shape, then computes what it
needs with the course's NumPy forward pass (`course_utils.backprop.dense_forward`), on inputs it makes
or loads itself. Which inputs is named by the solution's record (`DATASETS`), never by the submission.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np

from course_utils.backprop import DENSE_ACTIVATIONS, dense_forward

#: The most weights and biases a recorded model may hold, and the most layers.
MAX_PARAMETERS = 2_000_000
MAX_LAYERS = 32


class UnreadableModel(ValueError):
    """A record that does not describe a stack of Dense layers the judge can run."""


def read_model(value: Any) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """The layers of a recorded model, as float32 arrays; raises `UnreadableModel`."""
    if not isinstance(value, list) or not 0 < len(value) <= MAX_LAYERS:
        raise UnreadableModel("not a list of layers")
    layers, parameters, width = [], 0, None
    for layer in value:
        if not (isinstance(layer, list) and len(layer) == 3):
            raise UnreadableModel("a layer is not (kernel, bias, activation)")
        kernel, bias, activation = layer
        if not (isinstance(kernel, np.ndarray) and isinstance(bias, np.ndarray) and kernel.ndim == 2
                and bias.ndim == 1 and kernel.dtype.kind == "f" and bias.dtype.kind == "f"):
            raise UnreadableModel("a layer's kernel or bias is not a float matrix or vector")
        if bias.shape[0] != kernel.shape[1] or (width is not None and kernel.shape[0] != width):
            raise UnreadableModel("the layers' shapes do not chain")
        if activation not in DENSE_ACTIVATIONS:
            raise UnreadableModel(f"unknown activation {str(activation)[:40]!r}")
        parameters += kernel.size + bias.size
        if parameters > MAX_PARAMETERS:
            raise UnreadableModel("more parameters than any model of these exercises")
        if not (np.all(np.isfinite(kernel)) and np.all(np.isfinite(bias))):
            raise UnreadableModel("weights that are not finite")
        width = kernel.shape[1]
        layers.append((kernel.astype(np.float32), bias.astype(np.float32), activation))
    return layers


def architecture(layers) -> list[tuple[tuple[int, ...], str]]:
    """Each layer's kernel shape and activation: what two models must share to be the same network."""
    return [(kernel.shape, activation) for kernel, _, activation in layers]


def outputs(layers, X: np.ndarray) -> np.ndarray:
    """The model's outputs for the rows of ``X`` (float32, as Keras computes them)."""
    if X.shape[1] != layers[0][0].shape[0]:
        raise UnreadableModel(f"the model takes {layers[0][0].shape[0]} inputs, not {X.shape[1]}")
    with np.errstate(all="ignore"):
        return dense_forward(X.astype(np.float32), layers)


def random_inputs(seed: int, n: int, n_features: int) -> np.ndarray:
    """Inputs only the judge knows in advance: ``n`` rows of standard normal numbers."""
    return np.random.default_rng(seed).normal(size=(n, n_features)).astype(np.float32)


# --- the judge's own copies of the exercises' data -----------------------------------------------------


@functools.lru_cache(maxsize=4)
def _mnist_test_centred(n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    from course_utils.data import EmbeddedDataWarning, load_dataset
    from course_utils.preprocessing import center_with_train_stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmbeddedDataWarning)  # the kernels read the same data and say so
        data = load_dataset()
    _, X_test = center_with_train_stats(data.X_train[:n_train], data.X_test[:n_test])
    X_test.setflags(write=False)
    return X_test, np.array(data.y_test[:n_test], dtype=np.int64)


#: Data sets a solution's record can name: the first ``n_test`` MNIST test images, centred with the
#: statistics of the first ``n_train`` training images (chapter 6), and their labels.
DATASETS = {"mnist_test_centred": _mnist_test_centred}


def dataset(params: dict) -> tuple[np.ndarray, np.ndarray]:
    """The inputs and labels a solution's record names (``images``, ``n_train``, ``n_test``)."""
    return DATASETS[params["images"]](int(params["n_train"]), int(params["n_test"]))

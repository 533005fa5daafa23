"""What ``model.fit`` computes, in NumPy: the loss, backpropagation, a numerical gradient and SGD with momentum.

The network is chapter 1's: ``weights[l]`` is the weight matrix W of layer l+1, of shape
``(units of this layer, units of the layer before)`` (row k holds the weights *into* unit k), and
``biases[l]`` its bias vector. A Keras ``Dense`` layer's ``kernel`` is ``W.T``. Examples are rows, so a
layer computes ``Z = A_prev @ W.T + b``; the hidden layers are tanh and the output layer softmax, as in
the tutorial's 784-50-50-10 network. Every function takes and returns plain NumPy arrays and works in
the arrays' own floating-point type (float64 for the gradient checks, float32 to mimic Keras).

Chapter 1 (``01_mlp_notation``) derives :func:`forward`; chapter "what fit does" (``05_fit_by_hand``)
derives the rest and checks it against finite differences, ``tf.GradientTape`` and ``model.fit``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "DENSE_ACTIVATIONS",
    "backward",
    "cross_entropy",
    "decayed_learning_rate",
    "dense_forward",
    "dense_layers",
    "forward",
    "keras_weights",
    "log_softmax",
    "net_inputs",
    "numerical_gradient",
    "relative_error",
    "sgd_momentum_step",
    "softmax",
    "tanh_derivative",
    "to_keras_weights",
]


def softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise softmax: each row of net inputs becomes class probabilities that sum to 1.

    The row's largest value is subtracted first: the result is the same, and ``exp`` cannot overflow.
    """
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def log_softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise ``log(softmax(Z))`` computed stably: ``z_i - logsumexp(z)``.

    ``logsumexp(z) = max(z) + log(sum(exp(z - max(z))))`` never overflows, and the result stays finite
    where ``softmax`` itself underflows to 0 (and its logarithm would be ``-inf``).
    """
    shifted = Z - Z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def tanh_derivative(A: np.ndarray) -> np.ndarray:
    """``tanh'(z) = 1 - tanh(z)**2``, written with the activation ``A = tanh(z)`` the forward pass kept."""
    return 1 - A**2


def net_inputs(A_in: np.ndarray, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The net input ``Z`` of every layer, first layer first (the output layer's are the logits)."""
    Zs = []
    A = A_in
    for l, (W, b) in enumerate(zip(weights, biases, strict=True)):
        Z = A @ W.T + b  # Z^(l) = A^(l-1) W^(l)T + b^(l)
        Zs.append(Z)
        A = Z if l == len(weights) - 1 else np.tanh(Z)
    return Zs


def forward(A_in: np.ndarray, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Chapter 1's forward pass, keeping every layer's activations: ``[A_in, A_h1, ..., A_out]``.

    Hidden layers are tanh, the output layer softmax, so ``forward(...)[-1]`` holds the class
    probabilities (one row per example). Backpropagation needs the activations in between, which is
    why all of them are returned.
    """
    activations = [A_in]
    for l, (W, b) in enumerate(zip(weights, biases, strict=True)):
        Z = activations[-1] @ W.T + b
        activations.append(softmax(Z) if l == len(weights) - 1 else np.tanh(Z))
    return activations


def cross_entropy(Y: np.ndarray, Z_out: np.ndarray) -> float:
    """Mean categorical cross-entropy of one-hot labels ``Y`` given the output layer's net inputs.

    ``L = -(1/n) sum_i sum_c y_ic log p_ic`` with ``p = softmax(Z_out)``, computed from the logits
    through :func:`log_softmax` (what Keras's ``from_logits=True`` does), so it stays finite for any
    net input. This is Keras's ``categorical_crossentropy`` averaged over the batch.
    """
    return float(-(Y * log_softmax(Z_out)).sum(axis=1).mean())


def backward(
    activations: Sequence[np.ndarray], weights: Sequence[np.ndarray], Y: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Gradients of the mean cross-entropy with respect to every weight matrix and bias vector.

    ``activations`` is what :func:`forward` returned for a batch, ``weights`` the matrices it used and
    ``Y`` the batch's one-hot labels. Returns ``(grads_W, grads_b)`` shaped like the weights and
    biases. Backpropagation, from the output layer back:

    * output error ``Delta = (P - Y) / n`` (softmax with cross-entropy; ``n`` examples, mean loss);
    * ``dL/dW = Delta.T @ A_prev`` and ``dL/db = Delta.sum(axis=0)`` for each layer;
    * the error one layer down: ``Delta_prev = (Delta @ W) * tanh'(Z_prev)``.
    """
    n = len(Y)
    Delta = (activations[-1] - Y) / n  # dL/dZ^(out)
    grads_W: list[np.ndarray] = [np.empty(0)] * len(weights)
    grads_b: list[np.ndarray] = [np.empty(0)] * len(weights)
    for l in range(len(weights) - 1, -1, -1):
        grads_W[l] = Delta.T @ activations[l]  # dL/dW^(l) = Delta^(l)T A^(l-1)
        grads_b[l] = Delta.sum(axis=0)  # dL/db^(l) = 1^T Delta^(l)
        if l > 0:
            Delta = (Delta @ weights[l]) * tanh_derivative(activations[l])  # Delta^(l-1)
    return grads_W, grads_b


def numerical_gradient(f: Callable[[], float], arrays: Sequence[np.ndarray], eps: float = 1e-6) -> list[np.ndarray]:
    """Central finite differences of ``f()`` with respect to every entry of every array in ``arrays``.

    ``f`` takes no arguments and reads the arrays, which are changed in place one entry at a time
    (``(f(x + eps) - f(x - eps)) / (2 eps)``) and restored. The error is of order ``eps**2`` plus
    rounding of order ``1e-16 / eps``: use float64 arrays. Two evaluations of ``f`` per entry: for
    small networks only.
    """
    gradients = []
    for array in arrays:
        gradient = np.zeros_like(array, dtype=np.float64)
        for index in np.ndindex(array.shape):
            original = array[index]
            array[index] = original + eps
            f_plus = f()
            array[index] = original - eps
            f_minus = f()
            array[index] = original
            gradient[index] = (f_plus - f_minus) / (2 * eps)
        gradients.append(gradient)
    return gradients


def relative_error(a: Sequence[np.ndarray] | np.ndarray, b: Sequence[np.ndarray] | np.ndarray) -> float:
    """``||a - b|| / max(||a||, ||b||)`` over all entries (lists of arrays are taken as one vector).

    About 1e-16 to 1e-7 means the same numbers up to float64 or finite-difference error, about 1e-7 to
    1e-6 the same up to float32 rounding; a mistake in a gradient gives anything from about 1e-3 to 1.
    Pooled over several arrays, a mistake in a small one (a bias vector) is diluted by the large ones:
    compare the arrays one at a time too.
    """
    def flat(x):
        if isinstance(x, np.ndarray):
            return x.astype(np.float64).ravel()
        return np.concatenate([np.asarray(part, dtype=np.float64).ravel() for part in x])

    a, b = flat(a), flat(b)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare {a.size} numbers with {b.size}")
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


def decayed_learning_rate(learning_rate: float, decay: float, step: int) -> float:
    """The ``decay=`` rule of Keras 2's legacy ``SGD``: ``learning_rate / (1 + decay * step)``, ``step`` from 0.

    The same as :func:`course_utils.models.tutorial_learning_rate`'s schedule at ``step``.
    """
    return learning_rate / (1 + decay * step)


def sgd_momentum_step(
    params: Sequence[np.ndarray], grads: Sequence[np.ndarray], velocities: Sequence[np.ndarray],
    learning_rate: float, momentum: float,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One update of Keras's ``SGD`` with momentum: ``v <- momentum * v - learning_rate * g``, ``w <- w + v``.

    Returns the new ``(params, velocities)``; the arrays passed in are not changed. Velocities start at
    zero (``[np.zeros_like(w) for w in params]``). With ``momentum=0`` this is plain gradient descent,
    ``w <- w - learning_rate * g``. Results keep the parameters' dtype, as Keras's float32 variables do.
    """
    new_params, new_velocities = [], []
    for w, g, v in zip(params, grads, velocities, strict=True):
        v = (momentum * v - learning_rate * g).astype(w.dtype, copy=False)
        new_velocities.append(v)
        new_params.append(w + v)
    return new_params, new_velocities


def keras_weights(model) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A Keras MLP's weights in the course's notation: ``(weights, biases)`` with ``W = kernel.T``.

    ``model`` is a stack of ``Dense`` layers such as :func:`course_utils.models.build_tutorial_mlp`'s.
    """
    dense = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]
    return ([layer.get_weights()[0].T for layer in dense], [layer.get_weights()[1] for layer in dense])


def to_keras_weights(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The list ``model.set_weights`` takes for the same network: ``[W1.T, b1, W2.T, b2, ...]``."""
    return [array for W, b in zip(weights, biases, strict=True) for array in (W.T, b)]


# The activations a Keras ``Dense`` layer of the course can have, by Keras's name, in NumPy. Private:
# the exercises ask students to write some of them (chapter 1's sigmoid) themselves.
_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda Z: Z,
    "relu": lambda Z: np.maximum(Z, 0),
    "tanh": np.tanh,
    "sigmoid": lambda Z: 0.5 * (1 + np.tanh(Z / 2)),  # the logistic function, without exp's overflow
    "softmax": softmax,
}
#: The activations :func:`dense_forward` computes, by Keras's name.
DENSE_ACTIVATIONS = tuple(_ACTIVATIONS)
#: Layers that compute nothing at inference (``model.predict``): dropout, the input, random shifts.
_IDENTITY_AT_INFERENCE = ("InputLayer", "Dropout", "RandomShift")


def dense_layers(model) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """A Keras stack of ``Dense`` layers as plain data: ``(kernel, bias, activation name)`` per layer.

    Keras's layout: ``kernel`` has one row per input and one column per unit (the course's ``W.T``).
    Layers that do nothing at inference are left out; any other layer raises ``ValueError``, since
    :func:`dense_forward` could not compute it.
    """
    layers = []
    for layer in model.layers:
        name = type(layer).__name__
        if name in _IDENTITY_AT_INFERENCE:
            continue
        if name != "Dense":
            raise ValueError(f"layer {layer.name!r} is a {name}, not a Dense layer")
        kernel, bias = layer.get_weights()
        layers.append((kernel, bias, layer.activation.__name__))
    return layers


def dense_forward(X: np.ndarray, layers: Sequence[tuple[np.ndarray, np.ndarray, str]]) -> np.ndarray:
    """What a stack of ``Dense`` layers (:func:`dense_layers`) computes for the rows of ``X``.

    Each layer is ``activation(A @ kernel + bias)``; in float32 arrays this is ``model.predict`` up to
    float32 rounding (the order of the sums differs).
    """
    A = X
    for kernel, bias, activation in layers:
        A = _ACTIVATIONS[activation](A @ kernel + bias)
    return A

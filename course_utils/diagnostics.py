"""Checks to run on a network before and during training, and the measurements behind them.

Chapter "The practice of training" (``11_practice``) uses them on the tutorial's MLP:

* the loss of a freshly initialised network against chance, ``ln K`` for ``K`` classes
  (:func:`chance_loss`, :func:`mean_cross_entropy`, :func:`output_logits`);
* overfitting one small batch on purpose (:func:`overfit_batch`);
* how much each update changes the weights, relative to their size (:func:`kernel_snapshot`,
  :func:`update_to_weight_ratios`, :class:`UpdateRatioLogger`);
* each layer's activations and weight gradients during training (:func:`layer_outputs`,
  :func:`kernel_gradients`, :class:`TrainingSnapshots`);
* ReLU units that output 0 for every image (:func:`dead_unit_fractions`);
* gradient clipping as Keras's optimizers do it, in NumPy (:func:`global_norm`,
  :func:`clip_by_global_norm`, :func:`clip_each_by_norm`, :func:`loss_gradients`).

Models are Keras ``Sequential`` stacks of ``Dense`` layers (other layers, such as ``Rescaling``, are
passed through), with a softmax output and one-hot labels, as everywhere in the course. Everything
returns NumPy arrays or floats, keyed by layer name where it is per layer, input side first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

import course_utils  # noqa: F401  (quietens TensorFlow before Keras loads it)
import keras
from course_utils.backprop import log_softmax

__all__ = [
    "OverfitResult",
    "TrainingSnapshots",
    "UpdateRatioLogger",
    "chance_loss",
    "clip_by_global_norm",
    "clip_each_by_norm",
    "cosine_similarity",
    "dead_unit_fractions",
    "global_norm",
    "kernel_gradients",
    "kernel_snapshot",
    "layer_outputs",
    "loss_gradients",
    "mean_cross_entropy",
    "output_logits",
    "overfit_batch",
    "update_to_weight_ratios",
]


# --- the loss at the start -------------------------------------------------------------------------


def chance_loss(n_classes: int) -> float:
    """``ln K``: the cross-entropy of a model that gives each of ``K`` classes probability ``1/K``.

    Every example then costs ``-ln(1/K) = ln K``, whatever its label, so this is the loss to expect
    from a freshly initialised network whose outputs are all about equal (2.303 for 10 classes).
    """
    if n_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
    return math.log(n_classes)


def _dense_layers(model: keras.Model) -> list[keras.layers.Layer]:
    layers = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]
    if not layers:
        raise ValueError(f"model {model.name!r} has no layer with a kernel")
    return layers


def layer_outputs(model: keras.Model, X: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every ``Dense`` layer's net input and activation on ``X``: ``{name: (Z, A)}``, input side first.

    ``Z = A_prev @ kernel + bias`` and ``A = activation(Z)``, computed layer by layer in inference mode
    (layers without a kernel are called as they are). The output layer's ``Z`` are its logits.
    """
    outputs = {}
    A = keras.ops.convert_to_tensor(np.asarray(X, dtype="float32"))
    for layer in model.layers:
        if getattr(layer, "kernel", None) is None:
            A = layer(A, training=False)
            continue
        Z = keras.ops.matmul(A, layer.kernel) + layer.bias
        A = layer.activation(Z)
        outputs[layer.name] = (keras.ops.convert_to_numpy(Z), keras.ops.convert_to_numpy(A))
    if not outputs:
        raise ValueError(f"model {model.name!r} has no layer with a kernel")
    return outputs


def output_logits(model: keras.Model, X: np.ndarray) -> np.ndarray:
    """The output layer's net inputs (logits) for ``X``: what its softmax turns into probabilities."""
    Z, _ = list(layer_outputs(model, X).values())[-1]
    return Z


def mean_cross_entropy(model: keras.Model, X: np.ndarray, labels: np.ndarray) -> float:
    """The mean categorical cross-entropy of ``model`` on ``X`` with integer ``labels``, in float64.

    Computed from the logits with a stable log-softmax, so it stays finite (and exact) even for a badly
    scaled network whose softmax rounds some probabilities to 0.
    """
    labels = np.asarray(labels)
    Z = output_logits(model, X).astype(np.float64)
    if labels.shape != (len(Z),):
        raise ValueError(f"need one integer label per row of X: {labels.shape} labels for {len(Z)} rows")
    return float(-np.mean(log_softmax(Z)[np.arange(len(Z)), labels]))


# --- overfitting one batch -------------------------------------------------------------------------


@dataclass(frozen=True)
class OverfitResult:
    """What :func:`overfit_batch` measured."""

    losses: np.ndarray  # the training loss Keras reported at each update (measured before the update)
    final_loss: float  # after the last update, on the batch with the labels passed in
    final_accuracy: float


def overfit_batch(
    model: keras.Model,
    X: np.ndarray,
    y_onehot: np.ndarray,
    steps: int,
    *,
    relabel_every_step: bool = False,
    seed: int = 0,
) -> OverfitResult:
    """Train ``model`` on the one batch ``(X, y_onehot)`` for ``steps`` updates: it should fit it.

    A network with tens of thousands of weights can learn a few dozen images by heart, so the training
    loss must fall to near 0 and the accuracy reach 100 %; if it cannot, the model, the loss or the
    training loop is broken. ``relabel_every_step=True`` simulates a common bug: the labels are
    shuffled separately from the images at every update (seeded by ``seed``), so no fixed mapping from
    image to label exists to be learned.

    Each update is one ``model.train_on_batch``; ``losses[i]`` is the loss it reported (computed in
    the forward pass before update ``i``). ``final_loss`` and ``final_accuracy`` are measured after the
    last update, in float64 from the logits, against ``y_onehot``.
    """
    X, y_onehot = np.asarray(X, dtype="float32"), np.asarray(y_onehot, dtype="float32")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    rng = np.random.default_rng(seed)
    X_batch = keras.ops.convert_to_tensor(X)
    Y_batch = keras.ops.convert_to_tensor(y_onehot)
    losses = []
    for _ in range(steps):
        if relabel_every_step:
            Y_batch = keras.ops.convert_to_tensor(y_onehot[rng.permutation(len(X))])
        losses.append(float(model.train_on_batch(X_batch, Y_batch, return_dict=True)["loss"]))
    labels = y_onehot.argmax(axis=1)
    Z = output_logits(model, X).astype(np.float64)
    return OverfitResult(
        losses=np.asarray(losses),
        final_loss=float(-np.mean(log_softmax(Z)[np.arange(len(X)), labels])),
        final_accuracy=float(np.mean(Z.argmax(axis=1) == labels)),
    )


# --- update-to-weight ratios -----------------------------------------------------------------------


def kernel_snapshot(model: keras.Model) -> dict[str, np.ndarray]:
    """A copy of every layer's kernel (weight matrix), ``{layer name: array}``, input side first."""
    return {layer.name: np.array(layer.kernel.numpy()) for layer in _dense_layers(model)}


def update_to_weight_ratios(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> dict[str, float]:
    """``||after - before|| / ||before||`` for each layer's kernel (Frobenius norms), in float64.

    ``before`` and ``after`` are two :func:`kernel_snapshot` s around one update. A rule of thumb from
    practice (Karpathy's CS231n notes) says a healthy update changes the weights by about 1e-3 of their
    size: far less and the layer learns slowly, far more and it may jump about.
    """
    if before.keys() != after.keys():
        raise ValueError(f"the snapshots hold different layers: {list(before)} and {list(after)}")
    ratios = {}
    for name in before:
        w, w_new = np.asarray(before[name], np.float64), np.asarray(after[name], np.float64)
        if w.shape != w_new.shape:
            raise ValueError(f"layer {name!r} changed shape: {w.shape} -> {w_new.shape}")
        norm = np.linalg.norm(w)
        if norm == 0:
            raise ValueError(f"layer {name!r} has all-zero weights: the ratio is undefined")
        ratios[name] = float(np.linalg.norm(w_new - w) / norm)
    return ratios


class UpdateRatioLogger(keras.callbacks.Callback):
    """Record :func:`update_to_weight_ratios` after every update during ``fit``.

    After training, ``ratios[name]`` is the list of ratios of layer ``name``, one per update. Keras
    calls batch callbacks once per ``steps_per_execution`` updates, so the model must be compiled with
    ``steps_per_execution=1`` (``build_tutorial_mlp(steps_per_execution=1)``); otherwise this raises.
    Copying the kernels at every update slows training a little: use it on short runs.
    """

    def __init__(self):
        super().__init__()
        self.ratios: dict[str, list[float]] = {}
        self._before: dict[str, np.ndarray] | None = None

    def on_train_begin(self, logs=None):
        if getattr(self.model, "steps_per_execution", 1) != 1:
            raise ValueError("UpdateRatioLogger measures every update: compile the model with "
                             f"steps_per_execution=1, not {self.model.steps_per_execution}")
        self.ratios = {layer.name: [] for layer in _dense_layers(self.model)}

    def on_train_batch_begin(self, batch, logs=None):
        self._before = kernel_snapshot(self.model)

    def on_train_batch_end(self, batch, logs=None):
        for name, ratio in update_to_weight_ratios(self._before, kernel_snapshot(self.model)).items():
            self.ratios[name].append(ratio)


# --- activations and gradients during training -----------------------------------------------------


def _mean_loss(model: keras.Model, X, y_onehot):
    probabilities = model(X, training=False)
    return keras.ops.mean(keras.losses.categorical_crossentropy(y_onehot, probabilities))


def loss_gradients(model: keras.Model, X: np.ndarray, y_onehot: np.ndarray) -> list[np.ndarray]:
    """The gradient of the batch's mean cross-entropy for every trainable variable, in the order of
    ``model.trainable_variables`` (kernel, bias, kernel, bias, ...), from ``tf.GradientTape``."""
    import tensorflow as tf  # the course's Keras runs on TensorFlow; GradientTape is its autodiff

    X, y_onehot = tf.constant(X, tf.float32), tf.constant(y_onehot, tf.float32)
    with tf.GradientTape() as tape:
        loss = _mean_loss(model, X, y_onehot)
    return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


def kernel_gradients(model: keras.Model, X: np.ndarray, y_onehot: np.ndarray) -> dict[str, np.ndarray]:
    """d loss / d kernel for every layer on one batch, ``{layer name: array of the kernel's shape}``."""
    import tensorflow as tf

    layers = _dense_layers(model)
    X, y_onehot = tf.constant(X, tf.float32), tf.constant(y_onehot, tf.float32)
    with tf.GradientTape() as tape:
        loss = _mean_loss(model, X, y_onehot)
    gradients = tape.gradient(loss, [layer.kernel for layer in layers])
    return {layer.name: g.numpy() for layer, g in zip(layers, gradients)}


class TrainingSnapshots(keras.callbacks.Callback):
    """Keep every layer's activations and kernel gradients on a fixed batch at chosen epochs.

    ``at`` lists epochs counted from 1, with 0 meaning before the first update. After ``fit``,
    ``snapshots[epoch][name]`` is ``(A, G)``: layer ``name``'s activations on ``X`` (one row per image)
    and the gradient of the batch's mean loss for its kernel. The batch is the same at every snapshot,
    so the differences come from training alone.
    """

    def __init__(self, X: np.ndarray, y_onehot: np.ndarray, at: Iterable[int]):
        super().__init__()
        self.X, self.y_onehot = np.asarray(X, "float32"), np.asarray(y_onehot, "float32")
        self.at = sorted(set(at))
        if not self.at or self.at[0] < 0:
            raise ValueError(f"at must list epochs 0 (before training), 1, 2, ...; got {self.at}")
        self.snapshots: dict[int, dict[str, tuple[np.ndarray, np.ndarray]]] = {}

    def _take(self, epoch: int) -> None:
        activations = layer_outputs(self.model, self.X)
        gradients = kernel_gradients(self.model, self.X, self.y_onehot)
        self.snapshots[epoch] = {name: (activations[name][1], gradients[name]) for name in gradients}

    def on_train_begin(self, logs=None):
        self.snapshots = {}
        if 0 in self.at:
            self._take(0)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 in self.at:
            self._take(epoch + 1)


# --- dead ReLUs ------------------------------------------------------------------------------------


def dead_unit_fractions(model: keras.Model, X: np.ndarray) -> dict[str, float]:
    """For each hidden layer, the fraction of its units whose activation is 0 for every row of ``X``.

    A ReLU unit whose net input is negative for every image outputs 0 for all of them and, since
    ReLU's derivative is 0 there, gets no gradient either: it is **dead**, and training cannot bring it
    back. Pass the images the network trains on. The output layer is not counted.
    """
    outputs = list(layer_outputs(model, X).items())[:-1]
    if not outputs:
        raise ValueError(f"model {model.name!r} has no hidden layer")
    return {name: float(np.mean(np.all(A == 0, axis=0))) for name, (_, A) in outputs}


# --- gradient clipping -----------------------------------------------------------------------------


def global_norm(arrays: Sequence[np.ndarray]) -> float:
    """The Euclidean norm of all the arrays' entries taken together, ``sqrt(sum of every square)``."""
    return float(math.sqrt(math.fsum(float(np.sum(np.square(np.asarray(a, np.float64)))) for a in arrays)))


def clip_by_global_norm(arrays: Sequence[np.ndarray], clip_norm: float) -> list[np.ndarray]:
    """Scale all arrays by one factor ``min(1, clip_norm / global_norm)``: Keras's ``global_clipnorm``.

    The gradient as a whole keeps its direction and gets at most length ``clip_norm``; gradients that
    are already short enough are unchanged. Returns float64 arrays.
    """
    if clip_norm <= 0:
        raise ValueError(f"clip_norm must be positive, got {clip_norm}")
    scale = min(1.0, clip_norm / global_norm(arrays)) if global_norm(arrays) > 0 else 1.0
    return [np.asarray(a, np.float64) * scale for a in arrays]


def clip_each_by_norm(arrays: Sequence[np.ndarray], clip_norm: float) -> list[np.ndarray]:
    """Scale each array on its own to norm at most ``clip_norm``: Keras's ``clipnorm`` (per variable).

    Each variable's gradient keeps its direction, but variables with large gradients are shrunk more
    than others, so the gradient as a whole turns. Returns float64 arrays.
    """
    if clip_norm <= 0:
        raise ValueError(f"clip_norm must be positive, got {clip_norm}")
    clipped = []
    for a in arrays:
        a = np.asarray(a, np.float64)
        norm = float(np.linalg.norm(a))
        clipped.append(a * (clip_norm / norm) if norm > clip_norm else a.copy())
    return clipped


def cosine_similarity(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """The cosine of the angle between two lists of arrays, each flattened into one vector: 1 for the
    same direction."""
    u = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in a])
    v = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in b])
    if u.shape != v.shape:
        raise ValueError(f"the lists hold different numbers of entries: {u.size} and {v.size}")
    norms = np.linalg.norm(u) * np.linalg.norm(v)
    if norms == 0:
        raise ValueError("the angle to an all-zero vector is undefined")
    return float(u @ v / norms)

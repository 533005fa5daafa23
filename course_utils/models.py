"""The tutorial's Keras model and optimizer, written for Keras 3, plus what training needs around them.

The original tutorial used TensorFlow 1's ``tensorflow.contrib.keras``. Three things changed since:

* ``SGD(lr=..., decay=...)``: the argument is ``learning_rate`` now, and Keras 3 silently ignores
  ``decay`` (a warning, and the learning rate stays constant). ``decay`` belonged to Keras 2's
  optimizers up to 2.10, which later Keras 2 releases kept as ``keras.optimizers.legacy``; their rule
  was ``lr_t = lr / (1 + decay * iterations)``, ``iterations`` counting batches. (Keras 3's
  ``weight_decay=`` is something else: it shrinks the weights, not the learning rate.) An
  :class:`~keras.optimizers.schedules.InverseTimeDecay` with ``decay_steps=1`` is exactly that rule
  (:func:`tutorial_learning_rate`).
* ``Dense(input_dim=784, ...)`` became a ``keras.Input(shape=(784,))`` in front of the layers.
* ``model.predict_classes(X)`` is gone: :func:`predict_classes` does what it did.

Chapter 4 builds the model step by step; later chapters call :func:`build_tutorial_mlp`.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Callable, Sequence, TextIO

import numpy as np

import course_utils  # noqa: F401  (quietens TensorFlow before Keras loads it)
import keras

__all__ = [
    "DEFAULT_STEPS_PER_EXECUTION",
    "BestEpoch",
    "EpochLogger",
    "accuracy",
    "accuracy_standard_error",
    "McNemar",
    "RandomShift",
    "SeedComparison",
    "SeededRun",
    "build_better_mlp",
    "build_deep_mlp",
    "build_tutorial_mlp",
    "compare_over_seeds",
    "confusion_matrix",
    "difference_standard_error",
    "error_norms_per_layer",
    "fit_seeded_runs",
    "gradient_norms_per_layer",
    "layer_errors",
    "mcnemar_test",
    "predict_classes",
    "summary_text",
    "tutorial_learning_rate",
    "tutorial_optimizer",
]

#: Batches run per call into TensorFlow's compiled training step. Larger values only save Python
#: overhead between batches: the batches, their order and the weight updates are the same as with 1.
DEFAULT_STEPS_PER_EXECUTION = 32


def tutorial_learning_rate(
    learning_rate: float = 0.001, decay: float = 1e-7
) -> keras.optimizers.schedules.InverseTimeDecay:
    """Keras 2's (legacy optimizers') ``decay`` as a Keras 3 schedule: ``learning_rate / (1 + decay * step)``.

    ``step`` counts batches (optimizer updates), as Keras 2's ``iterations`` did, so the learning rate
    after ``k`` updates is ``learning_rate / (1 + decay * k)``. With the tutorial's ``decay=1e-7`` and
    about 42,000 updates (50 epochs of 844 batches) the learning rate drops by only 0.4 %.
    """
    return keras.optimizers.schedules.InverseTimeDecay(
        initial_learning_rate=learning_rate, decay_steps=1, decay_rate=decay
    )


def tutorial_optimizer(
    learning_rate: float = 0.001, decay: float = 1e-7, momentum: float = 0.9
) -> keras.optimizers.SGD:
    """The tutorial's ``SGD(lr=0.001, decay=1e-7, momentum=0.9)`` in Keras 3.

    The decay is the schedule from :func:`tutorial_learning_rate`; passing ``decay=`` to Keras 3's
    ``SGD`` would be ignored.
    """
    return keras.optimizers.SGD(
        learning_rate=tutorial_learning_rate(learning_rate, decay), momentum=momentum
    )


def _glorot_uniform(seed: int | None, layer_index: int) -> keras.initializers.Initializer:
    # One seed per layer: a fixed seed shared by every layer would repeat the same random stream.
    if seed is None:
        return keras.initializers.GlorotUniform()
    return keras.initializers.GlorotUniform(seed=seed + layer_index)


def build_tutorial_mlp(
    n_features: int = 784,
    n_hidden: int = 50,
    n_classes: int = 10,
    *,
    hidden_activation: str = "tanh",
    n_hidden_layers: int = 2,
    optimizer: keras.optimizers.Optimizer | None = None,
    seed: int | None = None,
    steps_per_execution: int = DEFAULT_STEPS_PER_EXECUTION,
) -> keras.Sequential:
    """Build and compile the tutorial's multilayer perceptron.

    With the defaults: 784 inputs, two ``tanh`` hidden layers of 50 units, a 10-unit softmax output,
    Glorot-uniform kernels and zero biases, trained with :func:`tutorial_optimizer` on categorical
    cross-entropy (labels must be one-hot) and reporting accuracy. That is
    784*50+50 + 50*50+50 + 50*10+10 = 42,310 trainable parameters.

    ``seed`` fixes the initial weights (layer ``i`` uses ``seed + i``); with ``seed=None`` they come from
    Keras's global generator, which :func:`course_utils.reproducibility.set_seeds` seeds.
    ``steps_per_execution`` changes speed only, never the numbers (see
    :data:`DEFAULT_STEPS_PER_EXECUTION`).
    """
    if n_hidden_layers < 1:
        raise ValueError(f"n_hidden_layers must be at least 1, got {n_hidden_layers}")
    layers: list[keras.layers.Layer] = [keras.Input(shape=(n_features,), name="pixels")]
    for i in range(n_hidden_layers):
        layers.append(
            keras.layers.Dense(
                n_hidden,
                activation=hidden_activation,
                kernel_initializer=_glorot_uniform(seed, i),
                bias_initializer="zeros",
                name=f"hidden_{i + 1}",
            )
        )
    layers.append(
        keras.layers.Dense(
            n_classes,
            activation="softmax",
            kernel_initializer=_glorot_uniform(seed, n_hidden_layers),
            bias_initializer="zeros",
            name="output",
        )
    )
    model = keras.Sequential(layers, name="tutorial_mlp")
    model.compile(
        optimizer=tutorial_optimizer() if optimizer is None else optimizer,
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model


def predict_classes(model: keras.Model, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The most probable class for each row of ``X``: what TensorFlow 1's ``predict_classes`` returned.

    Returns an integer array of shape ``(len(X),)``. The batch size only affects speed.
    """
    return np.argmax(model.predict(X, batch_size=batch_size, verbose=0), axis=1)


def summary_text(model: keras.Model, line_length: int = 72) -> str:
    """``model.summary()`` as plain text: the same table, without colours, as a string to print.

    In a notebook, ``model.summary()`` shows coloured text (pale cyan and green, hard to read on a white
    page), and ``model.summary(print_fn=print)`` leaves an empty output box behind it. This returns the
    table instead; ``print(summary_text(model))`` shows it. ``line_length`` is the table's width.
    """
    lines: list[str] = []
    try:  # in a notebook, swallow the empty display that Keras's table renderer publishes
        from IPython.utils.capture import capture_output
    except ImportError:  # pragma: no cover (IPython comes with Jupyter)
        from contextlib import nullcontext as capture_output
    with capture_output():
        model.summary(line_length=line_length, print_fn=lines.append)
    return "\n".join(line.rstrip("\n") for line in lines)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of predictions equal to the true labels (both integer class labels of equal length)."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {y_true.shape} vs {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("accuracy of zero predictions is undefined")
    return float(np.mean(y_true == y_pred))


def accuracy_standard_error(accuracy: float, n: int) -> float:
    """The binomial standard error ``sqrt(p (1 - p) / n)`` of an accuracy ``p`` measured on ``n`` images.

    Each image is right or wrong, so the number right is binomial: had the ``n`` images been another
    draw from the same digits, the accuracy would typically differ by about this much. At 98 % it is
    0.14 percentage points on 10,000 images, and 0.44 on 1,000.
    """
    if not 0 <= accuracy <= 1:
        raise ValueError(f"an accuracy lies in [0, 1], got {accuracy}")
    if n < 1:
        raise ValueError(f"the accuracy must be measured on at least one image, got n={n}")
    return float(np.sqrt(accuracy * (1 - accuracy) / n))


@dataclass(frozen=True)
class McNemar:
    """McNemar's test of two classifiers scored on the same images (:func:`mcnemar_test`)."""

    only_a: int  # images that model a gets right and model b wrong
    only_b: int  # images that model b gets right and model a wrong
    p_value: float  # two-sided, exact: how often chance alone splits the disagreements this unevenly

    def significant(self, level: float = 0.05) -> bool:
        return self.p_value < level


def mcnemar_test(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> McNemar:
    """Do two classifiers differ in accuracy on the *same* images? McNemar's exact test.

    Only the images where exactly one of the two is right carry information: if both were equally
    accurate, each of those would be equally likely to go either way, so the count ``only_a`` would be
    binomial with ``n = only_a + only_b`` and probability 1/2. The p-value is the two-sided binomial
    tail. This is the paired comparison for one test set: the standard error of one accuracy
    (:func:`accuracy_standard_error`) overstates the noise of a *difference* on the same images, since
    most images are right (or wrong) for both models. For accuracies on independent image sets, use
    :func:`difference_standard_error`.
    """
    y_true, pred_a, pred_b = (np.asarray(v) for v in (y_true, pred_a, pred_b))
    if not y_true.shape == pred_a.shape == pred_b.shape:
        raise ValueError(f"labels and predictions differ in shape: {y_true.shape}, {pred_a.shape}, {pred_b.shape}")
    right_a, right_b = pred_a == y_true, pred_b == y_true
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(right_b & ~right_a))
    n, k = only_a + only_b, min(only_a, only_b)
    # P(X <= k) for X ~ Binomial(n, 1/2), summed in log space (n can be thousands)
    log_terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
                 for i in range(k + 1)]
    tail = math.fsum(math.exp(t) for t in log_terms)
    return McNemar(only_a, only_b, min(1.0, 2 * tail))


@dataclass(frozen=True)
class SeedComparison:
    """Two settings, each trained once per seed and scored on the same images (:func:`compare_over_seeds`).

    Two things move an accuracy besides the setting: the seed (initial weights, order of the
    mini-batches) and the images it is scored on. ``paired`` holds McNemar's test of every seed's pair of
    runs on the same images (the images' share); the spread of the per-seed ``differences`` measures the
    seeds' share.
    """

    accuracies_a: tuple[float, ...]  # one per seed
    accuracies_b: tuple[float, ...]
    paired: tuple[McNemar, ...]  # seed by seed, a against b on the same images

    @property
    def differences(self) -> tuple[float, ...]:
        """Accuracy of a minus accuracy of b, seed by seed."""
        return tuple(a - b for a, b in zip(self.accuracies_a, self.accuracies_b))

    @property
    def mean_difference(self) -> float:
        return float(np.mean(self.differences))

    @property
    def difference_sd(self) -> float:
        """The seed-to-seed standard deviation of the differences (``ddof=1``); NaN for one seed."""
        return float(np.std(self.differences, ddof=1)) if len(self.differences) > 1 else math.nan

    @property
    def difference_se(self) -> float:
        """The standard error of :attr:`mean_difference` over the seeds: ``difference_sd / sqrt(seeds)``."""
        return self.difference_sd / math.sqrt(len(self.differences))

    def clear(self, level: float = 0.05) -> bool:
        """Whether a and b differ beyond both kinds of luck.

        True when, with at least two seeds, (1) the mean difference is more than twice its standard
        error over the seeds, and (2) for every seed McNemar's test on the same images finds the
        difference (``p < level``) in the direction of the mean.
        """
        if len(self.differences) < 2 or self.mean_difference == 0:
            return False
        if not abs(self.mean_difference) > 2 * self.difference_se:
            return False
        sign = np.sign(self.mean_difference)
        return all(test.significant(level) and np.sign(test.only_a - test.only_b) == sign for test in self.paired)

    def phrase(self, level: float = 0.05) -> str:
        """``"clearly above"``, ``"clearly below"`` or ``"not clearly different from"``: a compared with b."""
        if not self.clear(level):
            return "not clearly different from"
        return "clearly above" if self.mean_difference > 0 else "clearly below"


def compare_over_seeds(
    y_true: np.ndarray, predictions_a: Sequence[np.ndarray], predictions_b: Sequence[np.ndarray]
) -> SeedComparison:
    """Compare two settings trained with the same seeds, from their predicted classes on the same images.

    ``predictions_a[i]`` and ``predictions_b[i]`` come from the runs with the ``i``-th seed. Returns each
    run's accuracy and McNemar's test (:func:`mcnemar_test`) of every seed's pair; see
    :class:`SeedComparison` for when the two count as clearly different.
    """
    if len(predictions_a) != len(predictions_b) or not predictions_a:
        raise ValueError(f"need one run of each setting per seed, got {len(predictions_a)} and {len(predictions_b)}")
    return SeedComparison(
        accuracies_a=tuple(accuracy(y_true, p) for p in predictions_a),
        accuracies_b=tuple(accuracy(y_true, p) for p in predictions_b),
        paired=tuple(mcnemar_test(y_true, a, b) for a, b in zip(predictions_a, predictions_b)),
    )


def difference_standard_error(a: float, n_a: int, b: float, n_b: int) -> float:
    """Standard error of the difference of two accuracies measured on *independent* image sets:
    ``sqrt(SE_a**2 + SE_b**2)``. For two models scored on the same images, use :func:`mcnemar_test`."""
    return math.hypot(accuracy_standard_error(a, n_a), accuracy_standard_error(b, n_b))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """Counts of shape ``(n_classes, n_classes)``: ``[i, j]`` samples of class ``i`` were predicted ``j``.

    Row sums are the class sizes; the diagonal holds the correct predictions.
    """
    y_true = np.asarray(y_true).astype(np.int64)
    y_pred = np.asarray(y_pred).astype(np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D of equal length, got {y_true.shape} and {y_pred.shape}"
        )
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f"{name} must lie in 0..{n_classes - 1}, found {labels.min()}..{labels.max()}")
    counts = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


class EpochLogger(keras.callbacks.Callback):
    """Print one line per epoch (or every ``every``-th epoch) with the epoch's metrics.

    Use with ``fit(..., verbose=0)``. The lines hold no timings, so two executions print the same text::

        epoch  1/50  loss 0.7123  acc 0.8134  val_loss 0.3456  val_acc 0.9012

    With ``every=k`` the first epoch, every ``k``-th epoch and the last epoch are printed.
    ``accuracy`` is shortened to ``acc``; training metrics come before validation ones, the loss first
    in each group.
    """

    def __init__(self, every: int = 1, digits: int = 4, stream: TextIO | None = None):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.every = every
        self.digits = digits
        self.stream = stream

    def _should_print(self, epoch: int, epochs: int | None) -> bool:
        number = epoch + 1
        return number == 1 or number % self.every == 0 or number == epochs

    def format_line(self, epoch: int, epochs: int | None, logs: dict) -> str:
        """The text printed for ``epoch`` (counted from 0, as Keras passes it)."""
        if epochs:
            width = len(str(epochs))
            head = f"epoch {epoch + 1:>{width}}/{epochs}"
        else:
            head = f"epoch {epoch + 1}"
        order = list(logs)
        # Training metrics before validation ones, the loss first in each group.
        names = sorted(
            order,
            key=lambda name: (name.startswith("val_"), name.removeprefix("val_") != "loss",
                              order.index(name)),
        )
        parts = [head]
        for name in names:
            short = name.replace("accuracy", "acc")
            parts.append(f"{short} {float(logs[name]):.{self.digits}f}")
        return "  ".join(parts)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        epochs = (self.params or {}).get("epochs")
        if self._should_print(epoch, epochs):
            print(self.format_line(epoch, epochs, logs or {}), file=self.stream or sys.stdout)


class BestEpoch(keras.callbacks.Callback):
    """Remember the epoch at which a monitored metric was best, and the model's weights after it.

    ``BestEpoch("val_loss")`` lets the validation set choose the epoch: after ``fit``, ``epoch`` is the
    epoch (counted from 1) with the lowest validation loss, ``value`` that loss and ``weights`` the
    model's weights at its end (``model.set_weights(best.weights)`` brings them back). Unlike
    ``keras.callbacks.EarlyStopping(restore_best_weights=True)``, it neither stops training nor
    changes the model, so the last epoch's model stays available for comparison. ``mode`` is
    ``"min"`` for losses and ``"max"`` for accuracies; ties keep the earlier epoch.
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "min"):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.mode = mode
        self.epoch: int | None = None
        self.value: float | None = None
        self.weights: list[np.ndarray] | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.epoch, self.value, self.weights = None, None, None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(f"BestEpoch monitors {self.monitor!r}, but the epoch's logs hold {sorted(logs)}")
        value = float(logs[self.monitor])
        better = self.value is None or (value < self.value if self.mode == "min" else value > self.value)
        if better:
            self.epoch, self.value, self.weights = epoch + 1, value, self.model.get_weights()


@dataclass(frozen=True)
class SeededRun:
    """One run of :func:`fit_seeded_runs`."""

    seed: int
    initial_weights: list[np.ndarray]  # ``model.get_weights()`` before training
    final_weights: list[np.ndarray]  # and after it
    predictions: np.ndarray  # shape (epochs, len(X_val)): the predicted classes after every epoch


class _EpochPredictions(keras.callbacks.Callback):
    # The classes predicted for X after every epoch, from an eager call: model.predict on many models
    # makes TensorFlow warn about retracing, with addresses that change between runs.
    def __init__(self, X: np.ndarray):
        super().__init__()
        self.X = X
        self.predictions: list[np.ndarray] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.predictions.append(np.argmax(self.model(self.X, training=False), axis=1))


def fit_seeded_runs(
    build: Callable[[], keras.Model],
    seeds: Sequence[int],
    X: np.ndarray,
    y_onehot: np.ndarray,
    X_val: np.ndarray,
    **fit_kwargs,
) -> list[SeededRun]:
    """Train a freshly built model once per seed; record its predicted classes on ``X_val`` after every epoch.

    Each run is what ``set_seeds(seed)``, ``model = build()``, ``model.fit(X, y_onehot, verbose=0,
    **fit_kwargs)`` gives (``build`` returns a compiled model, the same one every call). Only the first
    seed's model is trained, though: for the later seeds the freshly built model only hands over its
    variables (initial weights, and the state of random layers such as dropout), and the first model,
    with its optimizer put back to its state before any update, trains again. The numbers are those of
    a fresh model (a test checks), but TensorFlow traces the training step, which takes seconds, once
    instead of once per seed.
    """
    from course_utils.reproducibility import set_seeds

    if not seeds:
        raise ValueError("need at least one seed")
    runs: list[SeededRun] = []
    model, optimizer_start = None, None
    for seed in seeds:
        set_seeds(seed)
        fresh = build()
        initial_weights = fresh.get_weights()
        if model is None:
            model = fresh
            model.optimizer.build(model.trainable_variables)  # its state before any update, to restore
            optimizer_start = [variable.numpy() for variable in model.optimizer.variables]
        else:
            if [v.shape for v in fresh.variables] != [v.shape for v in model.variables]:
                raise ValueError("build() returned a model of another shape than before: it must build the same one")
            for variable, value in zip(model.variables, fresh.variables):
                variable.assign(value)
            for variable, value in zip(model.optimizer.variables, optimizer_start):
                variable.assign(value)
        recorder = _EpochPredictions(X_val)
        options = {"verbose": 0, **fit_kwargs, "callbacks": [*fit_kwargs.get("callbacks", []), recorder]}
        model.fit(X, y_onehot, **options)
        runs.append(SeededRun(seed, initial_weights, model.get_weights(), np.stack(recorder.predictions)))
    return runs


# --------------------------------------------------------------------------------------------------
# Going further (chapter 7): deep networks' gradients and a better MLP
# --------------------------------------------------------------------------------------------------


def build_deep_mlp(
    n_hidden_layers: int = 10,
    n_hidden: int = 50,
    *,
    activation: str = "sigmoid",
    kernel_initializer: str | None = None,
    n_features: int = 784,
    n_classes: int = 10,
    seed: int | None = None,
) -> keras.Sequential:
    """An uncompiled MLP of ``n_hidden_layers`` equal hidden layers, for looking at its gradients.

    ``kernel_initializer=None`` picks the initialisation that suits the activation: He-normal for
    ``"relu"`` (it keeps the signal's variance through ReLU layers), Glorot-uniform (the tutorial's)
    otherwise. Layer ``i`` uses ``seed + i``. Layers are named ``hidden_1`` … and ``output``.
    """
    if n_hidden_layers < 1:
        raise ValueError(f"n_hidden_layers must be at least 1, got {n_hidden_layers}")
    if kernel_initializer is None:
        kernel_initializer = "he_normal" if activation == "relu" else "glorot_uniform"

    def kernel(i: int) -> keras.initializers.Initializer:
        config = {"class_name": kernel_initializer, "config": {"seed": None if seed is None else seed + i}}
        return keras.initializers.get(config)

    layers: list[keras.layers.Layer] = [keras.Input(shape=(n_features,), name="pixels")]
    for i in range(n_hidden_layers):
        layers.append(keras.layers.Dense(n_hidden, activation=activation, kernel_initializer=kernel(i),
                                         name=f"hidden_{i + 1}"))
    layers.append(keras.layers.Dense(n_classes, activation="softmax", kernel_initializer=kernel(n_hidden_layers),
                                     name="output"))
    return keras.Sequential(layers, name=f"deep_{activation}_mlp")


def gradient_norms_per_layer(model: keras.Model, X: np.ndarray, y_onehot: np.ndarray) -> dict[str, float]:
    """The size of the loss gradient for each layer's weights, on one batch: ``{layer name: norm}``.

    For every layer with a kernel (input side first) this is the Euclidean (Frobenius) norm of
    d loss / d kernel, the loss being the batch's mean categorical cross-entropy of ``model(X)``
    against ``y_onehot``. Backpropagation multiplies the gradient by every layer's activation
    derivative on its way back to the input, so in a deep sigmoid network the first layers' norms are
    orders of magnitude smaller than the last ones': the vanishing gradient. Nothing is trained.
    """
    import tensorflow as tf  # the course's Keras runs on TensorFlow; GradientTape is its autodiff

    layers = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]
    if not layers:
        raise ValueError(f"model {model.name!r} has no layer with a kernel")
    X = tf.convert_to_tensor(X, dtype=tf.float32)
    y_onehot = tf.convert_to_tensor(y_onehot, dtype=tf.float32)
    with tf.GradientTape() as tape:
        probabilities = model(X, training=False)
        loss = tf.reduce_mean(keras.losses.categorical_crossentropy(y_onehot, probabilities))
    gradients = tape.gradient(loss, [layer.kernel for layer in layers])
    return {layer.name: float(tf.norm(gradient)) for layer, gradient in zip(layers, gradients)}


def layer_errors(model: keras.Model, X: np.ndarray, y_onehot: np.ndarray) -> dict[str, np.ndarray]:
    """The backpropagated error of every layer on one batch, ``{layer name: Delta}``, input side first.

    ``Delta = dL/dZ`` is the loss's derivative with respect to the layer's net input ``Z = A @ kernel +
    bias``, one row per example (chapter 5's notation), the loss being the batch's mean categorical
    cross-entropy. A layer's bias gradient is the column sums of its ``Delta``, and its kernel gradient
    ``A.T @ Delta`` also carries the layer's inputs ``A``. Computed with ``tf.GradientTape``.
    """
    import tensorflow as tf

    X = tf.convert_to_tensor(X, dtype=tf.float32)
    y_onehot = tf.convert_to_tensor(y_onehot, dtype=tf.float32)
    names, net_inputs = [], []
    with tf.GradientTape() as tape:
        A = X
        for layer in model.layers:
            if getattr(layer, "kernel", None) is None:
                A = layer(A, training=False)
                continue
            Z = tf.matmul(A, layer.kernel) + layer.bias
            tape.watch(Z)
            names.append(layer.name)
            net_inputs.append(Z)
            A = layer.activation(Z)
        loss = tf.reduce_mean(keras.losses.categorical_crossentropy(y_onehot, A))
    if not names:
        raise ValueError(f"model {model.name!r} has no layer with a kernel")
    return {name: error.numpy() for name, error in zip(names, tape.gradient(loss, net_inputs))}


def error_norms_per_layer(model: keras.Model, X: np.ndarray, y_onehot: np.ndarray) -> dict[str, float]:
    """The size (Frobenius norm) of every layer's backpropagated error :func:`layer_errors` on one batch.

    This is what the vanishing-gradient argument is about: on its way back, the error is multiplied by
    each layer's weights and activation derivative. :func:`gradient_norms_per_layer` measures the
    weights' gradients instead, which also grow with each layer's inputs.
    """
    return {name: float(np.linalg.norm(error)) for name, error in layer_errors(model, X, y_onehot).items()}


class RandomShift(keras.layers.Layer):
    """Move each image by a random whole number of pixels, up to ``max_shift`` each way; training only.

    Inputs are flat rows of ``image_shape`` pixels (MNIST: 784 = 28 x 28). During training
    (``training=True``, as ``fit`` calls it) every image gets its own vertical and horizontal shift,
    drawn uniformly from ``-max_shift..max_shift``; the strip uncovered at the border is filled with
    ``fill_value`` (the background's value). At prediction and evaluation the layer passes its input
    through unchanged. The shifts come from a seeded Keras generator (``seed``, or Keras's global seed
    when ``None``), so with :func:`course_utils.reproducibility.set_seeds` two runs see the same shifts.
    It uses only padding and gathering, operations that TensorFlow runs deterministically.
    """

    def __init__(self, max_shift: int = 2, image_shape: tuple[int, int] = (28, 28), fill_value: float = 0.0,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if max_shift < 0:
            raise ValueError(f"max_shift must be 0 or more, got {max_shift}")
        self.max_shift = int(max_shift)
        self.image_shape = tuple(int(size) for size in image_shape)
        self.fill_value = float(fill_value)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training or self.max_shift == 0:
            return inputs
        ops = keras.ops
        (height, width), m = self.image_shape, self.max_shift
        padded_width = width + 2 * m
        padded = ops.pad(ops.reshape(inputs, (-1, height, width)), [[0, 0], [m, m], [m, m]],
                         constant_values=self.fill_value)
        padded = ops.reshape(padded, (-1, (height + 2 * m) * padded_width))
        # Each image's window into its padded copy starts at (row, column) offsets in 0..2m; offset m
        # is no shift.
        offsets = keras.random.randint((ops.shape(inputs)[0], 2), 0, 2 * m + 1, seed=self.seed_generator)
        start = offsets[:, 0] * padded_width + offsets[:, 1]
        window = ops.reshape(ops.arange(height)[:, None] * padded_width + ops.arange(width)[None, :], (1, -1))
        indices = ops.cast(start[:, None], "int32") + ops.cast(window, "int32")
        return ops.take_along_axis(padded, indices, axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "max_shift": self.max_shift, "image_shape": self.image_shape,
                "fill_value": self.fill_value, "seed": self.seed}


def build_better_mlp(
    steps: int,
    *,
    n_hidden: int = 512,
    n_hidden_layers: int = 2,
    dropout: float = 0.3,
    max_shift: int = 2,
    learning_rate: float = 0.001,
    n_features: int = 784,
    n_classes: int = 10,
    steps_per_execution: int = DEFAULT_STEPS_PER_EXECUTION,
) -> keras.Sequential:
    """Build and compile chapter 7's MLP, which takes **raw pixel values** 0..255 (no preprocessing).

    Layers: ``Rescaling(1/255)`` (pixels to 0..1, so the background is 0), :class:`RandomShift` by up
    to ``max_shift`` pixels filling with 0 (training only), then ``n_hidden_layers`` ReLU layers of
    ``n_hidden`` units with He-normal kernels, each followed by ``Dropout(dropout)`` (training only),
    and a softmax output. Adam's learning rate follows a cosine from ``learning_rate`` down to 0 over
    ``steps`` updates: pass ``epochs * ceil(n_train / batch_size)``. Loss: categorical cross-entropy on
    one-hot labels, as the tutorial's model. Random draws come from Keras's global seed
    (:func:`course_utils.reproducibility.set_seeds`).
    """
    if steps < 1:
        raise ValueError(f"steps (the weight updates the learning rate decays over) must be at least 1, got {steps}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    side = int(round(n_features ** 0.5))
    if side * side != n_features and max_shift:
        raise ValueError(f"random shifts need square images, and {n_features} features are not a square")
    layers: list[keras.layers.Layer] = [
        keras.Input(shape=(n_features,), name="pixels"),
        keras.layers.Rescaling(1 / 255, name="to_0_1"),
        RandomShift(max_shift, image_shape=(side, side), fill_value=0.0, name="random_shift"),
    ]
    for i in range(n_hidden_layers):
        layers.append(keras.layers.Dense(n_hidden, activation="relu", kernel_initializer="he_normal",
                                         name=f"hidden_{i + 1}"))
        layers.append(keras.layers.Dropout(dropout, name=f"dropout_{i + 1}"))
    layers.append(keras.layers.Dense(n_classes, activation="softmax", name="output"))
    model = keras.Sequential(layers, name="better_mlp")
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=schedule),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model

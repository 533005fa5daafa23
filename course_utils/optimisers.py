"""Optimisers and learning-rate schedules in NumPy, computed exactly as Keras 3 computes them.

Each optimiser is a class with the name, arguments and defaults of its Keras counterpart
(``keras.optimizers.SGD``, ``RMSprop``, ``Adam``, ``AdamW``) and one method,
``step(weights, grads)``: given a list of weight arrays and their gradients it returns the new
weights, as new arrays (the ones passed in are not changed), and updates the optimiser's
``state``: a dict from slot name to one array per weight array, the NumPy twin of the Keras
optimizer's own variables. ``iterations`` counts the steps taken, as Keras's ``iterations`` does.
The first ``step`` fixes the weights' shapes; state starts at zero.

Arithmetic follows Keras's ``update_step`` (``keras/src/optimizers/*.py``) operation by operation, in
the weights' own dtype: with float32 weights and the same gradients, ``step`` reproduces the Keras
optimizer's weights up to float32 rounding (1 ulp here and there, where TensorFlow's ``pow`` or
``cos`` rounds differently from NumPy's). What every optimiser shares with Keras's base optimizer:

* ``learning_rate`` is a number or a function of the step ``k = 0, 1, 2, ...`` (such as
  ``lambda k: cosine_decay(k, ...)``), evaluated at ``iterations`` *before* the step, as Keras
  evaluates a ``LearningRateSchedule`` at ``optimizer.iterations``;
* ``weight_decay`` (any optimiser; ``AdamW`` defaults to 0.004) is *decoupled*: before the update,
  every weight array is shrunk, ``w <- w - w * weight_decay * learning_rate``, with the learning rate of
  that step; the gradient is not changed.

:func:`cosine_decay` is Keras's ``CosineDecay`` schedule (with its linear warm-up); :func:`fit_mlp`
trains chapter 1's network in NumPy with any of the optimisers; :func:`step_beside_keras` and
:func:`keras_slots_per_weight` compare an optimiser with its Keras twin.

Chapter "Optimisers and learning-rate schedules" (``09_optimisers``) derives each rule and checks it
against Keras. Chapter 5's :func:`course_utils.backprop.sgd_momentum_step` is the momentum step
:class:`SGD` uses; the tutorial's learning-rate decay is :func:`course_utils.backprop.decayed_learning_rate`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from course_utils.backprop import backward, cross_entropy, forward, net_inputs, sgd_momentum_step

__all__ = [
    "Adam",
    "AdamW",
    "MLPRun",
    "Optimiser",
    "RMSprop",
    "SGD",
    "cosine_decay",
    "epoch_order",
    "fit_mlp",
    "keras_slots_per_weight",
    "step_beside_keras",
]

LearningRate = float | Callable[[int], float]


class Optimiser:
    """What every optimiser here shares: the learning rate (or schedule), decoupled weight decay,
    the step counter and the state arrays. Subclasses name their slots and write ``_update``."""

    #: The names of the state arrays kept per weight array (Keras's optimizer variables).
    slots: tuple[str, ...] = ()

    def __init__(self, learning_rate: LearningRate, weight_decay: float | None = None):
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.iterations = 0
        self.state: dict[str, list[np.ndarray]] = {}

    def learning_rate_at(self, step: int) -> float:
        """The learning rate of update number ``step`` (from 0): the number, or the schedule's value."""
        rate = self.learning_rate
        return rate(step) if callable(rate) else rate

    def slots_per_weight(self) -> float:
        """Numbers of state kept per weight: the state arrays' sizes over the weights' (after a step)."""
        if self.iterations == 0:
            raise ValueError("no state yet: the first step creates it")
        n_state = sum(a.size for arrays in self.state.values() for a in arrays)
        return n_state / self._n_weights

    def step(self, weights: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One update of every weight array with its gradient; returns the new weights."""
        weights = [np.asarray(w) for w in weights]
        if len(weights) != len(grads):
            raise ValueError(f"{len(weights)} weight arrays but {len(grads)} gradients")
        if not self.state and self.slots:
            self.state = {name: [np.zeros_like(w) for w in weights] for name in self.slots}
        self._n_weights = sum(w.size for w in weights)
        lr = self.learning_rate_at(self.iterations)
        if self.weight_decay is not None:  # Keras: before the update, with this step's learning rate
            weights = [w - w * _cast(self.weight_decay, w) * _cast(lr, w) for w in weights]
        grads = [np.asarray(g, dtype=w.dtype) for w, g in zip(weights, grads, strict=True)]
        new_weights = self._update(weights, grads, lr)
        self.iterations += 1
        return new_weights

    def _update(self, weights: list[np.ndarray], grads: list[np.ndarray], lr: float) -> list[np.ndarray]:
        raise NotImplementedError


def _cast(x, like: np.ndarray):
    """A number in the dtype of ``like``: what Keras's ``ops.cast(x, variable.dtype)`` does."""
    return np.asarray(x, dtype=like.dtype)


class SGD(Optimiser):
    """Keras's ``SGD``: plain, with momentum, or with Nesterov momentum.

    * ``momentum=0``: ``w <- w - learning_rate * g``; no state.
    * momentum ``beta``: ``v <- beta * v - learning_rate * g``, ``w <- w + v`` (chapter 5's
      :func:`~course_utils.backprop.sgd_momentum_step`); one slot, ``"momentum"`` (Keras's name for the
      velocity ``v``).
    * ``nesterov=True``: the same ``v``, then ``w <- w + beta * v - learning_rate * g``: the look-ahead
      step, with the gradient taken at the weights as stored.
    """

    def __init__(self, learning_rate: LearningRate = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float | None = None):
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be between 0 and 1, got {momentum}")
        super().__init__(learning_rate, weight_decay)
        self.momentum = momentum
        self.nesterov = nesterov
        self.slots = ("momentum",) if momentum != 0 else ()

    def _update(self, weights, grads, lr):
        if self.momentum == 0:
            return [w - g * _cast(lr, w) for w, g in zip(weights, grads)]
        if not self.nesterov:
            new_weights, self.state["momentum"] = sgd_momentum_step(
                weights, grads, self.state["momentum"], lr, self.momentum)
            return new_weights
        new_weights, velocities = [], []
        for w, g, v in zip(weights, grads, self.state["momentum"]):
            beta, eta = _cast(self.momentum, w), _cast(lr, w)
            v = v * beta - g * eta
            velocities.append(v)
            new_weights.append(w + (v * beta - g * eta))
        self.state["momentum"] = velocities
        return new_weights


class RMSprop(Optimiser):
    """Keras's ``RMSprop`` (no momentum, not centred): a running mean of squared gradients scales each step.

    ``s <- rho * s + (1 - rho) * g**2``, ``w <- w - learning_rate * g / sqrt(s + epsilon)``: Keras puts
    ``epsilon`` *inside* the square root (PyTorch adds it outside). ``s`` starts at 0 and is not
    bias-corrected, so the first step is about ``learning_rate / sqrt(1 - rho)`` per weight. One slot,
    ``"velocity"`` (Keras's name for ``s``).
    """

    slots = ("velocity",)

    def __init__(self, learning_rate: LearningRate = 0.001, rho: float = 0.9, epsilon: float = 1e-7,
                 weight_decay: float | None = None):
        super().__init__(learning_rate, weight_decay)
        self.rho = rho
        self.epsilon = epsilon

    def _update(self, weights, grads, lr):
        new_weights, mean_squares = [], []
        for w, g, s in zip(weights, grads, self.state["velocity"]):
            s = _cast(self.rho, w) * s + _cast(1 - self.rho, w) * np.square(g)
            mean_squares.append(s)
            new_weights.append(w - (_cast(lr, w) * g) / np.sqrt(s + _cast(self.epsilon, w)))
        self.state["velocity"] = mean_squares
        return new_weights


class Adam(Optimiser):
    """Keras's ``Adam``: running means of the gradient (``m``) and of its square (``s``), bias-corrected.

    With ``t = iterations + 1``::

        m <- m + (g - m) * (1 - beta_1)          # = beta_1 m + (1 - beta_1) g
        s <- s + (g**2 - s) * (1 - beta_2)
        alpha_t = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        w <- w - alpha_t * m / (sqrt(s) + epsilon)

    This is the form given just before section 2.1 of Kingma & Ba (2015), whose epsilon is "epsilon
    hat": it is Algorithm 1 of the paper, ``w <- w - lr * m_hat / (sqrt(s_hat) + eps)`` with
    ``m_hat = m / (1 - beta_1**t)`` and ``s_hat = s / (1 - beta_2**t)``, run with the step-dependent
    ``eps = epsilon / sqrt(1 - beta_2**t)``. ``paper_epsilon=True`` computes Algorithm 1 itself, with a
    constant ``epsilon``. Two slots, ``"momentum"`` (``m``) and ``"velocity"`` (``s``), Keras's names;
    the paper writes ``v`` for ``s``.
    """

    slots = ("momentum", "velocity")

    def __init__(self, learning_rate: LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, weight_decay: float | None = None, *, paper_epsilon: bool = False):
        super().__init__(learning_rate, weight_decay)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.paper_epsilon = paper_epsilon

    def _update(self, weights, grads, lr):
        new_weights, firsts, seconds = [], [], []
        for w, g, m, s in zip(weights, grads, self.state["momentum"], self.state["velocity"]):
            t = _cast(self.iterations + 1, w)
            beta_1_power = np.power(_cast(self.beta_1, w), t)
            beta_2_power = np.power(_cast(self.beta_2, w), t)
            m = m + (g - m) * _cast(1 - self.beta_1, w)
            s = s + (np.square(g) - s) * _cast(1 - self.beta_2, w)
            firsts.append(m)
            seconds.append(s)
            one = _cast(1, w)
            if self.paper_epsilon:  # Algorithm 1: bias-corrected moments, epsilon added to sqrt(s_hat)
                m_hat, s_hat = m / (one - beta_1_power), s / (one - beta_2_power)
                new_weights.append(w - _cast(lr, w) * m_hat / (np.sqrt(s_hat) + _cast(self.epsilon, w)))
            else:
                alpha = _cast(lr, w) * np.sqrt(one - beta_2_power) / (one - beta_1_power)
                new_weights.append(w - (m * alpha) / (np.sqrt(s) + _cast(self.epsilon, w)))
        self.state["momentum"], self.state["velocity"] = firsts, seconds
        return new_weights


class AdamW(Adam):
    """Keras's ``AdamW``: :class:`Adam` with decoupled weight decay, ``weight_decay=0.004`` by default.

    Each step first shrinks every weight array, ``w <- w - w * weight_decay * learning_rate``, biases
    included (Keras's ``exclude_from_weight_decay`` can spare some), and then takes the Adam step with
    the gradient as given. Loshchilov & Hutter's decay ``lambda`` is not multiplied by Adam's base
    learning rate: Keras's ``weight_decay`` is theirs divided by ``learning_rate``.
    """

    def __init__(self, learning_rate: LearningRate = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay=weight_decay)


def cosine_decay(step, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 warmup_target: float | None = None, warmup_steps: int = 0) -> np.ndarray:
    """Keras's ``CosineDecay`` schedule at ``step`` (a number or an array of steps), in float32 as Keras.

    Without ``warmup_target``: ``lr(k) = initial * ((1 - alpha) * (1 + cos(pi * k' / decay_steps)) / 2 + alpha)``
    with ``k' = min(k, decay_steps)``: from ``initial`` down to ``alpha * initial``, then flat.

    With ``warmup_target``: first a linear warm-up, ``lr(k) = initial + (target - initial) * k / warmup_steps``
    for ``k < warmup_steps``, then the cosine decay from ``target`` over the next ``decay_steps``
    steps (``k' = min(k, warmup_steps + decay_steps) - warmup_steps``). The warm-up starts at
    ``initial_learning_rate``, as Keras's code does (the formula in its docstring leaves out that
    ``+ initial``); an optimizer's first update uses ``lr(0) = initial``.
    """
    f32 = np.float32
    k = np.asarray(step, dtype=f32)
    initial, decay = f32(initial_learning_rate), f32(decay_steps)

    def decayed(k, start):
        cosine = f32(0.5) * (f32(1) + np.cos(f32(math.pi) * (k / decay)))
        return start * (f32(1 - alpha) * cosine + f32(alpha))

    if warmup_target is None:
        return decayed(np.minimum(k, decay), initial)
    target, warmup = f32(warmup_target), f32(warmup_steps)
    k = np.minimum(k, decay + warmup)
    with np.errstate(divide="ignore", invalid="ignore"):  # warmup_steps=0: that branch is never taken
        warming = (target - initial) * (k / warmup) + initial
    return np.where(k < warmup, warming, decayed(k - warmup, target))


def step_beside_keras(optimiser: Optimiser, keras_optimizer, variables, gradients: Callable[[int], Sequence],
                      n_steps: int) -> list[np.ndarray]:
    """Take ``n_steps`` updates with a NumPy optimiser and a Keras optimizer on the same gradients.

    ``variables`` are the Keras variables to train (``model.trainable_variables``); the NumPy
    optimiser starts from their values. ``gradients(k)`` returns the gradients for update ``k``: it
    is called before either optimiser steps, so a function that reads the variables (say with
    ``tf.GradientTape``) gets the gradient at Keras's current weights, and both optimisers apply
    exactly the same numbers. Returns the NumPy optimiser's weights; Keras's are in ``variables``.
    """
    weights = [np.array(v.numpy()) for v in variables]
    for k in range(n_steps):
        grads = [np.asarray(g, dtype=w.dtype) for g, w in zip(gradients(k), weights, strict=True)]
        keras_optimizer.apply_gradients(zip(grads, variables))
        weights = optimiser.step(weights, grads)
    return weights


def keras_slots_per_weight(keras_optimizer, variables) -> dict[str, float]:
    """How many numbers a built Keras optimizer keeps per trainable weight, by slot name.

    Counted from ``keras_optimizer.variables``: Keras names the state it keeps for a trainable
    variable ``<variable path with _ for />_<slot>`` (``tutorial_mlp_hidden_1_kernel_momentum``); the
    scalars (the step counter, the learning rate) belong to no weight and are left out. Returns
    ``{slot: numbers kept / trainable weights}``, e.g. ``{"momentum": 1.0, "velocity": 1.0}`` for
    Adam; the values add up to the optimizer's memory per weight, in units of one weight.
    """
    n_weights = sum(math.prod(v.shape) for v in variables)
    prefixes = [v.path.replace("/", "_") + "_" for v in variables]
    counts: dict[str, float] = {}
    for v in keras_optimizer.variables:
        owner = max((p for p in prefixes if v.name.startswith(p)), key=len, default=None)
        if owner is None:
            if len(v.shape) == 0:
                continue  # the step counter, the learning rate
            raise ValueError(f"optimizer variable {v.name!r} belongs to none of the variables given")
        slot = v.name[len(owner):]
        counts[slot] = counts.get(slot, 0) + math.prod(v.shape) / n_weights
    return counts


def epoch_order(n: int, epoch: int, seed: int) -> np.ndarray:
    """The order in which :func:`fit_mlp` visits ``n`` training examples in ``epoch`` (from 0) of run ``seed``.

    A permutation drawn from ``np.random.default_rng([seed, epoch])``: the same for every optimiser
    trained with the same seed, so that runs differ only in the optimiser.
    """
    return np.random.default_rng([seed, epoch]).permutation(n)


@dataclass
class MLPRun:
    """What :func:`fit_mlp` returns: the final weights and biases and, per epoch, the validation scores."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    val_loss: list[float]
    val_accuracy: list[float]


def fit_mlp(optimiser: Optimiser, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray],
            X: np.ndarray, Y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, *, epochs: int,
            batch_size: int = 64, seed: int = 0) -> MLPRun:
    """Train chapter 1's tanh MLP in NumPy, as ``model.fit`` would with ``optimiser``'s Keras twin.

    ``weights`` and ``biases`` are the starting point in the course's notation (``W = kernel.T``;
    :func:`course_utils.backprop.keras_weights` reads them from a Keras model), ``X`` and ``Y`` the
    training images and one-hot labels. Every epoch visits the images in mini-batches of
    ``batch_size`` in the order :func:`epoch_order` gives, takes one optimiser step per batch with
    the gradient of the batch's mean cross-entropy (:func:`course_utils.backprop.backward`), and ends
    by scoring the validation images ``X_val`` (digit labels ``y_val``): mean cross-entropy and
    accuracy, as Keras's ``val_loss`` and ``val_accuracy``.
    """
    params, n_layers = [*weights, *biases], len(weights)
    Y_val = np.eye(Y.shape[1], dtype=Y.dtype)[y_val]
    val_loss, val_accuracy = [], []
    with _one_blas_thread():
        for epoch in range(epochs):
            _train_epoch(optimiser, params, n_layers, X, Y, epoch_order(len(X), epoch, seed), batch_size)
            logits = net_inputs(X_val, params[:n_layers], params[n_layers:])[-1]
            val_loss.append(cross_entropy(Y_val, logits))
            val_accuracy.append(float(np.mean(logits.argmax(axis=1) == y_val)))
    return MLPRun(params[:n_layers], params[n_layers:], val_loss, val_accuracy)


def _train_epoch(optimiser, params, n_layers, X, Y, order, batch_size):
    # One pass over the images in the given order; params is updated in place (the list, not the arrays)
    for start in range(0, len(X), batch_size):
        batch = order[start:start + batch_size]
        activations = forward(X[batch], params[:n_layers], params[n_layers:])
        grads_W, grads_b = backward(activations, params[:n_layers], Y[batch])
        params[:] = optimiser.step(params, grads_W + grads_b)


def _one_blas_thread():
    """Matrix products of one mini-batch are too small to share between cores: with several BLAS
    threads they cost several times the CPU time (threads spinning), for the same numbers."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - only slower
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


"""Regularisation and normalisation in NumPy: what Keras's penalties, weight decay, dropout, early
stopping and batch normalisation compute.

Each function is the equation that chapter "Regularisation and normalisation"
(``10_regularisation``) writes beside it, and each is checked there (and in
``tests/test_regularisation.py``) against Keras on identical numbers:

* an **L2 penalty** as Keras adds it, ``keras.regularizers.L2(l2)``: ``l2 * sum(w**2)``, gradient
  ``2 * l2 * w``. The textbook writes ``(lambda / 2) * ||w||**2`` with gradient ``lambda * w``, so
  ``lambda = 2 * l2``;
* one update of Keras's **SGD** (no momentum) and **Adam**, each with optional **decoupled weight
  decay** (Keras's ``weight_decay=``; ``AdamW`` is Adam with it), applied as Keras 3 applies it: first
  ``w <- w - learning_rate * weight_decay * w``, then the optimizer's step with the gradient that was
  computed at the old weights;
* **inverted dropout** with a given mask (``keras.layers.Dropout``'s training mode);
* Keras's **early stopping** rule on a recorded history (``keras.callbacks.EarlyStopping``);
* **batch normalisation** in training mode (batch statistics) and inference mode (moving statistics),
  the moving statistics' update, its backward pass in closed form and as a graph of
  :mod:`course_utils.autodiff` operations.

Arrays are plain NumPy arrays, examples are rows. Functions compute in the arrays' own floating-point
type (float32 to compare with Keras's float32 layers, float64 for gradient checks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EarlyStoppingResult",
    "adam_step",
    "batch_norm_backward",
    "batch_norm_graph",
    "batch_norm_inference",
    "batch_norm_train",
    "early_stopping",
    "inverted_dropout",
    "l2_penalty",
    "l2_penalty_gradient",
    "repeated_passes",
    "sgd_step",
    "update_moving_statistics",
]


# --- L2 penalty and weight decay ---------------------------------------------------------------------


def l2_penalty(kernels: Sequence[np.ndarray], l2: float) -> float:
    """What ``keras.regularizers.L2(l2)`` adds to the loss for these kernels: ``l2 * sum(w**2)``.

    Keras adds the penalty of every regularised kernel, summed, to the batch's mean loss (it is not
    divided by the batch size). The textbook's ``(lambda / 2) * ||w||**2`` is the same penalty for
    ``lambda = 2 * l2``.
    """
    return float(l2 * sum(np.sum(np.square(np.asarray(W, dtype=np.float64))) for W in kernels))


def l2_penalty_gradient(W: np.ndarray, l2: float) -> np.ndarray:
    """The gradient of ``l2 * sum(W**2)`` with respect to ``W``: ``2 * l2 * W`` (``lambda * W``)."""
    return W * W.dtype.type(2 * l2)


def sgd_step(w: np.ndarray, g: np.ndarray, learning_rate: float, weight_decay: float = 0.0) -> np.ndarray:
    """One update of Keras's ``SGD(learning_rate, weight_decay=...)`` without momentum.

    Decoupled weight decay first shrinks the weights, then the gradient ``g`` (computed at the old
    weights) takes its step:

        w <- w - learning_rate * weight_decay * w
        w <- w - learning_rate * g

    Together: ``w - learning_rate * (g + weight_decay * w)``, exactly the step that an L2 penalty
    ``(weight_decay / 2) * ||w||**2`` in the loss would give. Returns the new array.
    """
    lr = w.dtype.type(learning_rate)
    if weight_decay:
        w = w - w * w.dtype.type(weight_decay) * lr
    return w - g.astype(w.dtype) * lr


def adam_step(
    w: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    t: int,
    learning_rate: float = 0.001,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    weight_decay: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Update ``t`` (counted from 1) of Keras's ``Adam``, or of ``AdamW`` when ``weight_decay`` is set.

    Returns ``(w, m, v)``: the weights and the two moving averages after the update. Keras 3 computes

        w <- w - learning_rate * weight_decay * w                    (AdamW only, first)
        m <- m + (1 - beta_1) * (g - m)                              (mean of the gradients)
        v <- v + (1 - beta_2) * (g**2 - v)                           (mean of their squares)
        alpha = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        w <- w - alpha * m / (sqrt(v) + epsilon)

    which is Kingma and Ba's ``m_hat / (sqrt(v_hat) + eps_hat)`` with the bias corrections
    ``m_hat = m / (1 - beta_1**t)``, ``v_hat = v / (1 - beta_2**t)`` folded into ``alpha``; Keras's
    ``epsilon`` is their "epsilon hat". An L2 penalty enters only through ``g`` and is therefore divided
    by ``sqrt(v)`` like the rest of the gradient; decoupled weight decay is not.
    """
    dtype = w.dtype.type
    lr = dtype(learning_rate)
    if weight_decay:
        w = w - w * dtype(weight_decay) * lr
    g = g.astype(w.dtype)
    m = m + (g - m) * dtype(1 - beta_1)
    v = v + (np.square(g) - v) * dtype(1 - beta_2)
    alpha = lr * np.sqrt(dtype(1) - dtype(beta_2) ** dtype(t)) / (dtype(1) - dtype(beta_1) ** dtype(t))
    return w - m * alpha / (np.sqrt(v) + dtype(epsilon)), m, v


# --- dropout -------------------------------------------------------------------------------------------


def inverted_dropout(A: np.ndarray, keep: np.ndarray, rate: float) -> np.ndarray:
    """Dropout in training mode with a given mask: ``A * keep / (1 - rate)``.

    ``keep`` is a boolean array of ``A``'s shape, True for the units that stay. Each unit is dropped
    independently with probability ``rate`` (Keras's argument; Srivastava et al.'s ``p`` is the
    probability of *keeping* a unit), and the survivors are divided by ``1 - rate`` so that the
    expected activation is ``A`` itself: ``E[keep] / (1 - rate) = 1``. At inference nothing is dropped
    and nothing rescaled. Computed as TensorFlow does (``A`` times the float ``1 / (1 - rate)`` where
    kept, 0 elsewhere), so it equals ``keras.layers.Dropout(rate)`` given the same mask exactly.
    """
    if not 0 <= rate < 1:
        raise ValueError(f"rate must lie in [0, 1), got {rate}")
    A = np.asarray(A)
    keep = np.asarray(keep)
    if keep.shape != A.shape or keep.dtype != bool:
        raise ValueError(f"keep must be a boolean array of A's shape {A.shape}, got {keep.dtype} {keep.shape}")
    return np.where(keep, A * A.dtype.type(1 / (1 - rate)), A.dtype.type(0))


# --- early stopping ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EarlyStoppingResult:
    """Epochs counted from 1: the best one, and the one after which training stopped (None: it never did)."""

    best_epoch: int
    stopped_epoch: int | None


def early_stopping(values: Sequence[float], patience: int, min_delta: float = 0.0,
                   mode: str = "min") -> EarlyStoppingResult:
    """Keras's ``EarlyStopping(patience=..., min_delta=...)`` rule applied to a recorded history.

    ``values`` holds the monitored metric after each epoch (say ``history.history["val_loss"]``). An
    epoch *improves* when its value beats the best so far by more than ``min_delta`` (strictly: a tie
    is no improvement). Training stops after the first epoch (never the first one) that ends
    ``patience`` epochs without an improvement, so ``stopped_epoch = best_epoch + patience``;
    ``restore_best_weights=True`` then puts back the weights of ``best_epoch``. With ``mode="max"``
    larger is better (accuracies).
    """
    if patience < 0:
        raise ValueError(f"patience must be 0 or more, got {patience}")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if len(values) == 0:
        raise ValueError("values is empty: there is no epoch to choose")
    sign = 1.0 if mode == "min" else -1.0
    best, best_epoch, wait = None, 0, 0
    for epoch, value in enumerate(values):
        wait += 1
        if best is None or sign * (float(value) - best) < -abs(min_delta):
            best, best_epoch, wait = float(value), epoch, 0
            continue
        if wait >= patience and epoch > 0:
            return EarlyStoppingResult(best_epoch=best_epoch + 1, stopped_epoch=epoch + 1)
    return EarlyStoppingResult(best_epoch=best_epoch + 1, stopped_epoch=None)


def repeated_passes(n: int, n_updates: int, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices for ``n_updates`` mini-batches of ``batch_size`` drawn from ``n`` training examples.

    Passes over the examples, each in a fresh random order (``rng.permutation(n)``), are joined end to
    end and cut after ``n_updates * batch_size`` rows: ``fit(X[rows], Y[rows], batch_size=batch_size,
    epochs=1, shuffle=False)`` then makes exactly ``n_updates`` updates however small ``n`` is, like
    many epochs of ``fit`` but with one epoch's overhead (a mini-batch may span two passes).
    """
    if n < 1 or n_updates < 1 or batch_size < 1:
        raise ValueError(f"n, n_updates and batch_size must be at least 1, got {n}, {n_updates}, {batch_size}")
    rows = n_updates * batch_size
    passes = -(-rows // n)  # ceil
    return np.concatenate([rng.permutation(n) for _ in range(passes)])[:rows]


# --- batch normalisation -------------------------------------------------------------------------------


def batch_norm_train(X: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                     epsilon: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch normalisation in training mode: ``(Y, mean, variance)`` of a batch ``X`` (rows = examples).

    Every feature (column) is normalised with its own mean and **biased** variance over the batch,

        mu = mean_i x_i,   var = mean_i (x_i - mu)**2,   x_hat = (x - mu) / sqrt(var + epsilon),
        y = gamma * x_hat + beta,

    ``gamma`` and ``beta`` being trainable, one per feature. Keras's default ``epsilon`` is 1e-3
    (PyTorch's 1e-5). ``mean`` and ``variance`` are returned for :func:`update_moving_statistics`.
    """
    mean = X.mean(axis=0)
    variance = np.square(X - mean).mean(axis=0)
    X_hat = (X - mean) / np.sqrt(variance + X.dtype.type(epsilon))
    return gamma * X_hat + beta, mean, variance


def batch_norm_inference(X: np.ndarray, gamma: np.ndarray, beta: np.ndarray, moving_mean: np.ndarray,
                         moving_variance: np.ndarray, epsilon: float = 1e-3) -> np.ndarray:
    """Batch normalisation in inference mode: the moving statistics replace the batch's.

    ``y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta``, the same function of
    every example whatever else is in the batch: a fixed affine map per feature.
    """
    return gamma * (X - moving_mean) / np.sqrt(moving_variance + X.dtype.type(epsilon)) + beta


def update_moving_statistics(moving_mean: np.ndarray, moving_variance: np.ndarray, mean: np.ndarray,
                             variance: np.ndarray, momentum: float = 0.99) -> tuple[np.ndarray, np.ndarray]:
    """One training step's update of the moving statistics, as Keras makes it:

        moving_mean     <- momentum * moving_mean     + (1 - momentum) * mean
        moving_variance <- momentum * moving_variance + (1 - momentum) * variance

    with the batch's ``mean`` and biased ``variance``. Keras's ``momentum=0.99`` is the weight of the
    *old* value (PyTorch's ``momentum=0.1`` is the weight of the new one). Keras starts from mean 0 and
    variance 1, so after ``k`` steps the starting values still weigh ``momentum**k``.
    """
    m = moving_mean.dtype.type(momentum)
    return (moving_mean * m + mean * (1 - m), moving_variance * m + variance * (1 - m))


def batch_norm_backward(dY: np.ndarray, X: np.ndarray, gamma: np.ndarray,
                        epsilon: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gradients ``(dX, dgamma, dbeta)`` of training-mode batch normalisation, given ``dY = dL/dY``.

    With ``x_hat`` and ``var`` as in :func:`batch_norm_train` and ``n`` rows:

        dbeta  = sum_i dy_i
        dgamma = sum_i dy_i * x_hat_i
        dx     = gamma / sqrt(var + epsilon) * (dy - mean_i dy_i - x_hat * mean_i (dy_i * x_hat_i))

    ``dx`` is not ``gamma / sqrt(var + epsilon) * dy``: every example moves the batch's mean and
    variance, and through them every other example's output. The two subtracted terms remove exactly
    those paths; so each column of ``dX`` sums to 0 and is orthogonal to ``x_hat``'s column.
    """
    n = X.shape[0]
    mean = X.mean(axis=0)
    variance = np.square(X - mean).mean(axis=0)
    inv_std = 1 / np.sqrt(variance + X.dtype.type(epsilon))
    X_hat = (X - mean) * inv_std
    dbeta = dY.sum(axis=0)
    dgamma = (dY * X_hat).sum(axis=0)
    dX = gamma * inv_std * (dY - dbeta / n - X_hat * dgamma / n)
    return dX, dgamma, dbeta


def batch_norm_graph(X, gamma, beta, epsilon: float = 1e-3):
    """Training-mode batch normalisation built from :mod:`course_utils.autodiff` operations.

    ``X``, ``gamma`` and ``beta`` are :class:`course_utils.autodiff.Tensor` s (or arrays, taken as
    constants); the result is a tensor whose ``backward()`` sends gradients to all three through the
    batch mean and variance: the same equations as :func:`batch_norm_train`, differentiated by the
    chain rule instead of by hand.
    """
    from course_utils import autodiff as ad

    mu = ad.mean(X, axis=0, keepdims=True)
    centred = X - mu
    variance = ad.mean(centred ** 2, axis=0, keepdims=True)  # biased: divided by n
    X_hat = centred / ad.sqrt(variance + epsilon)
    return gamma * X_hat + beta

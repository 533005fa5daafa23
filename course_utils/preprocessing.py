"""The tutorial's preprocessing: scale pixels, centre and normalise with training statistics, one-hot labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TrainStatistics", "center_with_train_stats", "one_hot", "scale_to_symmetric_range"]

_ROWS_PER_BLOCK = 4096


def scale_to_symmetric_range(images: np.ndarray) -> np.ndarray:
    """Map pixel values 0..255 to -1..1 as float32: the tutorial's ``((images / 255.) - .5) * 2``."""
    return (np.asarray(images, dtype=np.float32) / 255.0 - 0.5) * 2.0


@dataclass(frozen=True)
class TrainStatistics:
    """Per-pixel mean and one overall standard deviation, measured on the training set only.

    The same statistics are applied to validation and test data: the model must see test inputs
    transformed exactly as its training inputs were, and the test set must not influence training.
    """

    mean: np.ndarray
    std: float

    @classmethod
    def fit(cls, X_train: np.ndarray) -> TrainStatistics:
        X = np.asarray(X_train)
        if X.ndim < 2 or len(X) == 0:
            raise ValueError(f"X_train must be a non-empty batch of samples, got shape {X.shape}")
        # Accumulate in float64 (a float32 sum over 47 million pixels loses digits), a block of rows
        # at a time so that no float64 copy of the whole training set is made.
        mean = X.mean(axis=0, dtype=np.float64)
        overall_mean = mean.mean()
        squares = sum(
            np.square(X[i : i + _ROWS_PER_BLOCK] - overall_mean).sum()
            for i in range(0, len(X), _ROWS_PER_BLOCK)
        )
        std = float(np.sqrt(squares / X.size))
        if std == 0:
            raise ValueError("X_train is constant (standard deviation 0): it cannot be normalised")
        return cls(mean=mean.astype(np.float32), std=std)

    def apply(self, X: np.ndarray) -> np.ndarray:
        """Centre ``X`` with the training mean and divide by the training standard deviation."""
        X = np.asarray(X, dtype=np.float32)
        if X.shape[1:] != self.mean.shape:
            raise ValueError(f"samples of shape {X.shape[1:]} do not match the training samples' {self.mean.shape}")
        return (X - self.mean) / np.float32(self.std)


def center_with_train_stats(X_train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Centre and normalise ``X_train`` and every array in ``others`` with ``X_train``'s statistics.

    Returns float32 arrays in the order given: ``X_train_c, X_test_c = center_with_train_stats(X_train,
    X_test)``. This is the tutorial's ``(X - mean_vals) / std_val`` with ``mean_vals`` per pixel and
    ``std_val`` over all training pixels.
    """
    stats = TrainStatistics.fit(X_train)
    return tuple(stats.apply(X) for X in (X_train, *others))


def one_hot(labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """Return float32 one-hot rows for integer ``labels`` (what ``keras.utils.to_categorical`` gives)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D array of integers, got {labels.dtype} of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, found {labels.min()}..{labels.max()}")
    return np.eye(num_classes, dtype=np.float32)[labels]

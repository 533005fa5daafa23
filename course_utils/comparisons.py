"""Comparing models soundly, in NumPy: folds for cross-validation, the spread over seeds, selection bias
and the large-sample form of McNemar's test.

Chapter "Comparing models soundly" (``12_comparisons``) uses these with the comparisons that
:mod:`course_utils.models` already has: :func:`~course_utils.models.accuracy_standard_error` (the noise
of one accuracy), :func:`~course_utils.models.mcnemar_test` (two models on the *same* images, exact) and
:func:`~course_utils.models.difference_standard_error` (two accuracies on *independent* image sets).

Fold indices follow scikit-learn's ``KFold`` and ``StratifiedKFold`` without shuffling exactly (the
chapter checks it); with a NumPy generator they shuffle as those do, though not with the same random
numbers. Every index array is sorted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Spread",
    "kfold_indices",
    "mcnemar_chi_square",
    "paired_difference_standard_error",
    "simulate_selection",
    "spread",
    "stratified_kfold_indices",
    "two_sided_p_value",
]


def _check_folds(n_samples: int, n_folds: int) -> None:
    if n_folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got n_folds={n_folds}")
    if n_folds > n_samples:
        raise ValueError(f"n_folds={n_folds} folds need at least as many samples, got {n_samples}")


def _splits(fold_numbers: np.ndarray, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    # Fold i tests on the samples numbered i and trains on all the others.
    return [(np.flatnonzero(fold_numbers != i), np.flatnonzero(fold_numbers == i)) for i in range(n_folds)]


def kfold_indices(
    n_samples: int, n_folds: int, *, rng: np.random.Generator | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split ``range(n_samples)`` into ``n_folds`` folds: a list of ``(train, test)`` index arrays.

    Every sample is in exactly one test fold, and trains in the ``n_folds - 1`` others. Without ``rng``
    fold ``i`` tests on a contiguous block of samples; the first ``n_samples % n_folds`` folds hold one
    sample more than the rest (scikit-learn's ``KFold(n_folds)``). With a NumPy generator ``rng`` the
    samples are put in a random order first (``KFold(n_folds, shuffle=True)``, with other random numbers).
    """
    _check_folds(n_samples, n_folds)
    order = np.arange(n_samples) if rng is None else rng.permutation(n_samples)
    sizes = np.full(n_folds, n_samples // n_folds)
    sizes[: n_samples % n_folds] += 1
    fold_numbers = np.empty(n_samples, dtype=np.int64)
    fold_numbers[order] = np.repeat(np.arange(n_folds), sizes)
    return _splits(fold_numbers, n_folds)


def stratified_kfold_indices(
    y: np.ndarray, n_folds: int, *, rng: np.random.Generator | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds in which every class keeps its share of the samples: a list of ``(train, test)`` index arrays.

    How many samples of each class a fold tests on: sort the labels by class (classes in the order they
    first appear in ``y``) and deal them to the folds in turn, like cards. So the folds' sizes differ by
    at most one, and so do the counts of any one class in two folds. Which samples: each class's samples,
    in their order in ``y``, fill fold 0's share first, then fold 1's, and so on; with a NumPy generator
    ``rng`` they are shuffled first. Without ``rng`` this is scikit-learn's ``StratifiedKFold(n_folds)``
    exactly; with it, ``StratifiedKFold(n_folds, shuffle=True)`` up to the random numbers (the counts
    per fold and class are the same). A class with fewer than ``n_folds`` samples is missing from some
    test folds.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be one label per sample (1-D), got shape {y.shape}")
    _check_folds(len(y), n_folds)
    classes, first_seen, codes = np.unique(y, return_index=True, return_inverse=True)
    appearance = np.argsort(np.argsort(first_seen))  # class -> its rank by first appearance
    codes = appearance[codes]
    dealt = np.sort(codes)
    counts = np.stack([np.bincount(dealt[i::n_folds], minlength=len(classes)) for i in range(n_folds)])
    fold_numbers = np.empty(len(y), dtype=np.int64)
    for c in range(len(classes)):
        members = np.flatnonzero(codes == c)
        if rng is not None:
            members = rng.permutation(members)
        fold_numbers[members] = np.repeat(np.arange(n_folds), counts[:, c])
    return _splits(fold_numbers, n_folds)


@dataclass(frozen=True)
class Spread:
    """Mean, standard deviation and standard error of the mean of ``n`` repeated measurements."""

    mean: float
    sd: float  # sample standard deviation (ddof=1): how much one measurement varies
    sem: float  # sd / sqrt(n): how much the mean of n such measurements varies
    n: int


def spread(values) -> Spread:
    """The :class:`Spread` of repeated measurements, such as one model's accuracy over several seeds.

    ``sd`` is the sample standard deviation (divided by ``n - 1``): a new run would typically land about
    this far from the mean. ``sem = sd / sqrt(n)`` is how far the mean of ``n`` runs would typically move
    if all ``n`` were repeated; it assumes the runs are independent, which folds of one cross-validation
    are not (they share training images).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if len(values) < 2:
        raise ValueError(f"a spread needs at least 2 values, got {len(values)}")
    sd = float(values.std(ddof=1))
    return Spread(mean=float(values.mean()), sd=sd, sem=sd / math.sqrt(len(values)), n=len(values))


def simulate_selection(
    n_models: int, accuracy: float, n_select: int, n_fresh: int, n_trials: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The winner's curse, simulated: ``n_models`` equally good models, the best chosen on one image set.

    Every model has the same true ``accuracy`` and makes its mistakes independently of the others. In
    each of ``n_trials`` trials each model is scored on ``n_select`` selection images (a binomial draw),
    the model with the highest selection score wins (the first one on a tie), and the winner is scored
    again on ``n_fresh`` images it was not chosen on. Returns two arrays of length ``n_trials``: the
    winner's selection score and its fresh score. The fresh scores average ``accuracy``; the selection
    scores average more, the more models compete.
    """
    if n_models < 1 or n_trials < 1 or n_select < 1 or n_fresh < 1:
        raise ValueError("n_models, n_select, n_fresh and n_trials must all be at least 1, got "
                         f"{n_models}, {n_select}, {n_fresh}, {n_trials}")
    if not 0 <= accuracy <= 1:
        raise ValueError(f"an accuracy lies in [0, 1], got {accuracy}")
    selection = rng.binomial(n_select, accuracy, size=(n_trials, n_models)) / n_select
    winners = selection.argmax(axis=1)
    fresh = rng.binomial(n_fresh, accuracy, size=n_trials) / n_fresh
    return selection[np.arange(n_trials), winners], fresh


def two_sided_p_value(z: float) -> float:
    """``P(|Z| >= |z|)`` for a standard normal ``Z``: the p-value of a z statistic, ``erfc(|z| / sqrt 2)``."""
    return math.erfc(abs(z) / math.sqrt(2))


def mcnemar_chi_square(only_a: int, only_b: int, *, correction: bool = True) -> tuple[float, float]:
    """McNemar's test in its large-sample form: ``(statistic, p_value)``.

    ``only_a`` and ``only_b`` count the images that only model a, or only model b, gets right (the
    off-diagonal cells b and c of McNemar's 2 x 2 table). With ``n = only_a + only_b`` the statistic is
    ``(|only_a - only_b| - 1)**2 / n`` (Edwards's continuity correction; ``correction=False`` drops the
    ``- 1``), and the p-value is its upper tail under a chi-square distribution with one degree of
    freedom, ``erfc(sqrt(statistic / 2))``. It approximates the exact binomial test of
    :func:`course_utils.models.mcnemar_test`, and the approximation improves as ``n`` grows. The
    corrected difference is never below 0 (``only_a == only_b`` gives 0 and p = 1); mlxtend's
    ``mcnemar`` squares ``|only_a - only_b| - 1`` as it is and gives ``1 / n`` there.
    """
    if only_a < 0 or only_b < 0:
        raise ValueError(f"counts of images cannot be negative, got {only_a} and {only_b}")
    n = only_a + only_b
    if n == 0:
        return 0.0, 1.0  # the models never disagree: nothing tells them apart
    difference = abs(only_a - only_b)
    if correction:
        difference = max(difference - 1, 0)
    statistic = difference**2 / n
    return float(statistic), math.erfc(math.sqrt(statistic / 2))


def paired_difference_standard_error(only_a: int, only_b: int, n: int) -> float:
    """Standard error of ``accuracy_a - accuracy_b`` for two models scored on the *same* ``n`` images.

    Per image the difference ``d`` is +1 (only a right, ``only_a`` images), -1 (only b right) or 0
    (both right or both wrong); the accuracies differ by the mean of ``d``, whose standard error is
    ``sqrt(var(d) / n)`` with ``var(d) = (only_a + only_b) / n - ((only_a - only_b) / n)**2``. Images
    both models get right (or wrong) add no noise, so this is far smaller than
    :func:`course_utils.models.difference_standard_error`, which is for independent image sets.
    """
    if n < 1 or only_a < 0 or only_b < 0 or only_a + only_b > n:
        raise ValueError(f"need 0 <= only_a, only_b and only_a + only_b <= n >= 1, got {only_a}, {only_b}, {n}")
    variance = (only_a + only_b) / n - ((only_a - only_b) / n) ** 2
    return math.sqrt(max(variance, 0.0) / n)

"""Tests for course_utils.comparisons: folds, the spread over seeds, selection bias, McNemar's chi-square.

Folds are checked for what makes them folds (every sample tested once, trained on otherwise) and
against scikit-learn's ``KFold`` and ``StratifiedKFold``; the tests are checked against SciPy's
distributions and mlxtend's ``mcnemar``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.comparisons import (
    Spread, kfold_indices, mcnemar_chi_square, paired_difference_standard_error, simulate_selection, spread,
    stratified_kfold_indices, two_sided_p_value,
)
from course_utils.models import difference_standard_error, mcnemar_test


def _assert_are_folds(splits, n_samples, n_folds):
    assert len(splits) == n_folds
    tested = np.concatenate([test for _, test in splits])
    assert np.array_equal(np.sort(tested), np.arange(n_samples)), "every sample is tested exactly once"
    for train, test in splits:
        assert np.array_equal(np.union1d(train, test), np.arange(n_samples))
        assert len(np.intersect1d(train, test)) == 0
        assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0), "index arrays are sorted"
    sizes = [len(test) for _, test in splits]
    assert max(sizes) - min(sizes) <= 1


# --- k-fold --------------------------------------------------------------------------------------------


@given(n_samples=st.integers(2, 200), n_folds=st.integers(2, 12), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_kfold_indices_are_folds_with_and_without_shuffling(n_samples, n_folds, seed):
    n_folds = min(n_folds, n_samples)
    _assert_are_folds(kfold_indices(n_samples, n_folds), n_samples, n_folds)
    _assert_are_folds(kfold_indices(n_samples, n_folds, rng=np.random.default_rng(seed)), n_samples, n_folds)


def test_kfold_without_shuffling_tests_on_contiguous_blocks_larger_first():
    splits = kfold_indices(11, 3)
    assert [test.tolist() for _, test in splits] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert splits[1][0].tolist() == [0, 1, 2, 3, 8, 9, 10]


def test_kfold_with_a_generator_is_repeatable_and_shuffled():
    a, b = (kfold_indices(50, 5, rng=np.random.default_rng(3)) for _ in range(2))
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert not np.array_equal(a[0][1], np.arange(10))


@pytest.mark.parametrize("n_folds", [0, 1])
def test_fewer_than_two_folds_is_an_error(n_folds):
    with pytest.raises(ValueError, match="at least 2 folds"):
        kfold_indices(10, n_folds)
    with pytest.raises(ValueError, match="at least 2 folds"):
        stratified_kfold_indices(np.zeros(10), n_folds)


def test_more_folds_than_samples_is_an_error():
    with pytest.raises(ValueError, match="n_folds=5"):
        kfold_indices(4, 5)
    with pytest.raises(ValueError, match="n_folds=5"):
        stratified_kfold_indices([0, 1, 0, 1], 5)


# --- stratified k-fold --------------------------------------------------------------------------------


@given(labels=st.lists(st.integers(0, 4), min_size=2, max_size=150), n_folds=st.integers(2, 8),
       seed=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_stratified_folds_are_folds_that_keep_every_class_share(labels, n_folds, seed):
    y = np.array(labels)
    n_folds = min(n_folds, len(y))
    for rng in (None, np.random.default_rng(seed)):
        splits = stratified_kfold_indices(y, n_folds, rng=rng)
        _assert_are_folds(splits, len(y), n_folds)
        for c in np.unique(y):
            counts = [int(np.sum(y[test] == c)) for _, test in splits]
            assert max(counts) - min(counts) <= 1, f"class {c} per fold: {counts}"


def test_stratified_folds_take_each_class_in_order_without_a_generator():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    splits = stratified_kfold_indices(y, 2)
    assert [test.tolist() for _, test in splits] == [[0, 1, 4, 5, 6], [2, 3, 7, 8, 9]]


def test_stratified_labels_must_be_one_dimensional():
    with pytest.raises(ValueError, match="1-D"):
        stratified_kfold_indices(np.zeros((6, 2)), 2)


@pytest.mark.parametrize("n_samples, n_folds", [(10, 2), (11, 3), (103, 5), (7, 7)])
def test_kfold_equals_scikit_learns_kfold(n_samples, n_folds):
    KFold = pytest.importorskip("sklearn.model_selection").KFold

    ours = kfold_indices(n_samples, n_folds)
    theirs = list(KFold(n_folds).split(np.zeros(n_samples)))
    for (train, test), (train_sk, test_sk) in zip(ours, theirs, strict=True):
        assert np.array_equal(train, train_sk) and np.array_equal(test, test_sk)


@given(labels=st.lists(st.sampled_from([3, 7, 1, 0, 9]), min_size=10, max_size=200),
       n_folds=st.integers(2, 6), seed=st.integers(0, 2**31 - 1))
@settings(max_examples=40, deadline=None)
def test_stratified_folds_equal_scikit_learns_and_shuffled_ones_have_its_counts(labels, n_folds, seed):
    import warnings

    StratifiedKFold = pytest.importorskip("sklearn.model_selection").StratifiedKFold

    y = np.array(labels)
    if n_folds > np.bincount(y).max():
        return  # scikit-learn refuses folds that no class can fill; ours allows them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a class smaller than n_folds: allowed, and warned
        theirs = list(StratifiedKFold(n_folds).split(np.zeros(len(y)), y))
        shuffled = list(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    for (train, test), (train_sk, test_sk) in zip(stratified_kfold_indices(y, n_folds), theirs, strict=True):
        assert np.array_equal(train, train_sk) and np.array_equal(test, test_sk)
    ours = stratified_kfold_indices(y, n_folds, rng=np.random.default_rng(seed))
    for (_, test), (_, test_sk) in zip(ours, shuffled, strict=True):
        assert np.array_equal(np.bincount(y[test], minlength=10), np.bincount(y[test_sk], minlength=10))


# --- spread -------------------------------------------------------------------------------------------


def test_spread_is_mean_sample_sd_and_standard_error_of_the_mean():
    result = spread([0.91, 0.93, 0.92, 0.95])
    assert isinstance(result, Spread) and result.n == 4
    assert result.mean == pytest.approx(0.9275)
    assert result.sd == pytest.approx(np.std([0.91, 0.93, 0.92, 0.95], ddof=1))
    assert result.sem == pytest.approx(result.sd / 2)
    with pytest.raises(ValueError, match="at least 2"):
        spread([0.9])


# --- selection bias ----------------------------------------------------------------------------------


def test_one_model_has_no_winners_curse_and_many_have_one():
    rng = np.random.default_rng(0)
    chosen, fresh = simulate_selection(1, 0.9, 1000, 1000, 4000, rng)
    se = math.sqrt(0.9 * 0.1 / 1000)
    assert abs(chosen.mean() - 0.9) < 4 * se / math.sqrt(4000)
    chosen, fresh = simulate_selection(20, 0.9, 1000, 1000, 4000, rng)
    # The best of 20 normal draws is about 1.87 standard deviations above their mean
    assert chosen.mean() - 0.9 == pytest.approx(1.87 * se, rel=0.1)
    assert abs(fresh.mean() - 0.9) < 4 * se / math.sqrt(4000)


def test_simulate_selection_checks_its_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="at least 1"):
        simulate_selection(0, 0.9, 10, 10, 10, rng)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        simulate_selection(3, 1.2, 10, 10, 10, rng)


# --- tests of two models -------------------------------------------------------------------------------


def test_two_sided_p_value_is_the_normal_tails():
    from scipy.stats import norm

    for z in (0.0, 0.5, -1.96, 3.0, 8.0):
        assert two_sided_p_value(z) == pytest.approx(2 * norm.sf(abs(z)), rel=1e-12)


@pytest.mark.parametrize("only_a, only_b", [(0, 1), (3, 9), (20, 31), (150, 120), (40, 40), (1000, 1100)])
def test_mcnemar_chi_square_is_the_chi_square_tail_and_matches_mlxtend(only_a, only_b):
    from mlxtend.evaluate import mcnemar
    from scipy.stats import chi2

    statistic, p = mcnemar_chi_square(only_a, only_b)
    assert statistic == pytest.approx(max(abs(only_a - only_b) - 1, 0) ** 2 / (only_a + only_b))
    assert p == pytest.approx(chi2.sf(statistic, 1), rel=1e-12)
    table = np.array([[0, only_a], [only_b, 0]])
    for corrected in (True, False):
        if only_a == only_b and corrected:
            continue  # mlxtend squares |b - c| - 1 = -1 there
        theirs = mcnemar(table, corrected=corrected)
        ours = mcnemar_chi_square(only_a, only_b, correction=corrected)
        assert ours == pytest.approx(theirs, rel=1e-12)
    assert mcnemar_chi_square(only_a, only_b, correction=False)[0] == pytest.approx(
        (only_a - only_b) ** 2 / (only_a + only_b))


def test_mcnemar_chi_square_of_models_that_never_disagree_or_disagree_evenly():
    assert mcnemar_chi_square(0, 0) == (0.0, 1.0)
    assert mcnemar_chi_square(25, 25) == (0.0, 1.0)
    with pytest.raises(ValueError, match="negative"):
        mcnemar_chi_square(-1, 3)


def test_mcnemar_chi_square_approaches_the_exact_test_as_disagreements_grow():
    # Disagreements split two standard deviations from even (p near 0.05) at every n
    errors = []
    for n in (16, 100, 400, 1600, 10_000):
        only_a = round(n / 2 - math.sqrt(n))
        y = np.zeros(n, dtype=int)
        pred_a = np.r_[np.zeros(only_a, dtype=int), np.ones(n - only_a, dtype=int)]
        exact = mcnemar_test(y, pred_a, 1 - pred_a).p_value
        errors.append(abs(mcnemar_chi_square(only_a, n - only_a)[1] - exact) / exact)
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-3


@given(only_a=st.integers(0, 300), only_b=st.integers(0, 300), both=st.integers(0, 2000))
@settings(max_examples=60, deadline=None)
def test_paired_standard_error_is_that_of_the_mean_per_image_difference(only_a, only_b, both):
    n = only_a + only_b + both
    if n == 0:
        return
    d = np.r_[np.ones(only_a), -np.ones(only_b), np.zeros(both)]
    assert paired_difference_standard_error(only_a, only_b, n) == pytest.approx(d.std() / math.sqrt(n), abs=1e-12)


def test_paired_standard_error_is_far_below_the_unpaired_one_when_models_mostly_agree():
    # 10,000 images, 9,300 right for both, 60 only for a, 40 only for b: 93.6 % and 93.4 %
    paired = paired_difference_standard_error(60, 40, 10_000)
    unpaired = difference_standard_error(0.936, 10_000, 0.934, 10_000)
    assert paired < unpaired / 3
    with pytest.raises(ValueError):
        paired_difference_standard_error(60, 50, 100)

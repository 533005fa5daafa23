"""What chapter 12 ("Comparing models soundly") tells its reader, checked on the numbers it glued.

Every sentence the chapter chooses by code (which seed won and what became of its lead, how the seeds'
spread compares with the test set's noise, what each test of the two models found) is checked here
against the glued numbers it was chosen from, and the p-values against SciPy's.
"""

from __future__ import annotations

import functools
import math

import pytest
from test_book_results import chapter, full_mnist, glued_value  # noqa: F401

STEM = "12_comparisons"


@pytest.fixture(scope="module")
def value(chapter):
    return functools.partial(glued_value, chapter[STEM])


def test_ch12_says_which_data_it_was_built_on(chapter, full_mnist, value):
    from course_utils.book import glued_outputs

    note = glued_outputs(chapter[STEM])["ch12_data_note"]["data"]["text/markdown"]
    note = "".join(note) if isinstance(note, list) else note
    assert "data-source" in note
    assert ("Built on full MNIST" in note) == full_mnist == value("ch12_full_mnist")
    assert ("60,000" in value("ch12_data_source")) == full_mnist
    # the subsets the page names: 10,000 training and 5,000 validation images of full MNIST
    assert (value("ch12_n_train"), value("ch12_n_val"), value("ch12_n_test")) == (
        (10_000, 5_000, 10_000) if full_mnist else (2_666, 1_334, 1_000))


def test_ch12_simulated_winners_curse_grows_with_the_number_of_models(value):
    se_pp = value("ch12_sim_se_pp")
    assert se_pp == pytest.approx(100 * math.sqrt(0.92 * 0.08 / value("ch12_n_val")))
    assert value("ch12_sim_accuracy") == 0.92
    assert abs(value("ch12_sim_bias_1_pp")) < 0.1 * se_pp  # "with one model ... no bias"
    assert 0 < value("ch12_sim_bias_10_pp") < value("ch12_sim_bias_100_pp")
    # the expected best of 10 and of 100 standard normal draws: 1.54 and 2.51
    assert value("ch12_sim_bias_10_se") == pytest.approx(1.54, abs=0.1)
    assert value("ch12_sim_bias_100_se") == pytest.approx(2.51, abs=0.15)
    assert value("ch12_sim_bias_10_se") == pytest.approx(value("ch12_sim_bias_10_pp") / se_pp)
    assert value("ch12_sim_fresh_bias_max_pp") < 0.1 * se_pp


def test_ch12_winner_sentence_follows_its_leads(value):
    n_seeds = value("ch12_n_seeds")
    assert 1 <= value("ch12_winner_seed") <= n_seeds
    lead_val, lead_test = value("ch12_winner_lead_val_pp"), value("ch12_winner_lead_test_pp")
    assert lead_val >= 0  # the winner on the validation images is at least as good as their mean there
    sentence = value("ch12_winner_outcome")
    assert f"({lead_test:+.2f} points)" in sentence or f"to {lead_test:+.2f} points" in sentence
    if lead_test <= 0:
        assert "no better than the average seed" in sentence
    elif lead_test < lead_val:
        assert "shrinks" in sentence
    else:
        assert "its lead holds" in sentence
    # the best test score is at least the chosen model's, and leads the average at least as much
    assert value("ch12_best_test") >= value("ch12_winner_test")
    assert value("ch12_best_test_lead_pp") >= lead_test - 1e-9


def test_ch12_cross_validation_numbers_hang_together(value):
    k = value("ch12_n_folds")
    assert value("ch12_fold_size") * k == value("ch12_n_cv")
    assert value("ch12_cv_shared") == pytest.approx((k - 2) / (k - 1), abs=0.01)
    assert value("ch12_cv_naive_sem") == pytest.approx(value("ch12_cv_sd") / math.sqrt(k))
    assert value("ch12_cv_min") <= value("ch12_cv_mean") <= value("ch12_cv_max")
    # stratified: off only by the rounding to whole images; never worse than plain folds
    stratified = value("ch12_stratified_share_error_pp")
    assert stratified <= 100 / value("ch12_fold_size") + 1e-9
    assert stratified <= value("ch12_plain_share_error_pp")


def test_ch12_seed_sentence_compares_the_spread_with_the_test_sets_noise(value):
    from course_utils.models import accuracy_standard_error

    n_seeds, n_test = value("ch12_n_seeds"), value("ch12_n_test")
    mean, sd, sem = value("ch12_seed_mean"), value("ch12_seed_sd"), value("ch12_seed_sem")
    assert sem == pytest.approx(sd / math.sqrt(n_seeds))
    test_se = value("ch12_seed_test_se")
    assert test_se == pytest.approx(accuracy_standard_error(mean, n_test))
    assert value("ch12_seed_sd_to_se") == pytest.approx(sd / test_se)
    assert value("ch12_seed_total_se") == pytest.approx(math.hypot(sem, test_se))
    assert value("ch12_sd_uncertainty") == pytest.approx(1 / math.sqrt(2 * (n_seeds - 1)))
    assert value("ch12_seed_min") <= mean <= value("ch12_seed_max")
    sentence = value("ch12_seed_sentence")
    ratio = sd / test_se
    expected = "more than" if ratio > 1.25 else "about as much as" if ratio >= 0.8 else "less than"
    assert f"by {expected} the {test_se:.2%} standard error" in sentence
    assert f"{mean:.2%} ± {sd:.2%}" in sentence


def test_ch12_mcnemar_p_values_are_scipys(value):
    from scipy.stats import binomtest, chi2

    only_relu, only_tanh, n_test = value("ch12_only_relu"), value("ch12_only_tanh"), value("ch12_n_test")
    n = only_relu + only_tanh
    assert value("ch12_n_disagree") == n
    assert value("ch12_difference_pp") == pytest.approx(100 * (only_relu - only_tanh) / n_test)
    assert value("ch12_difference_pp") == pytest.approx(100 * (value("ch12_acc_relu") - value("ch12_acc_tanh")))
    assert value("ch12_mcnemar_p") == pytest.approx(binomtest(only_relu, n, 0.5).pvalue if n else 1.0, rel=1e-9)
    assert value("ch12_binomtest_max_diff") < 1e-12
    assert value("ch12_n_pairs") == value("ch12_n_seeds") * (value("ch12_n_seeds") - 1) // 2 + 1
    statistic = max(abs(only_relu - only_tanh) - 1, 0) ** 2 / n
    assert value("ch12_chi_square") == pytest.approx(statistic)
    assert value("ch12_chi_square_p") == pytest.approx(chi2.sf(statistic, 1), rel=1e-9)
    # "the chi-square p-value is ... off the exact one at n = 16 and ... at n = 10,000"
    assert value("ch12_chi_square_first_rel") > value("ch12_chi_square_last_rel")


def _verdict(p: float, difference: float, what: str) -> str:
    if p < 0.05:
        return f"{what} finds the difference clear (p = {p:.2g}): the {'ReLU' if difference > 0 else 'tanh'} network"
    return f"{what} finds no clear difference (p = {p:.2g})"


def test_ch12_sentences_about_the_two_models_match_their_p_values_and_intervals(value):
    from course_utils.comparisons import paired_difference_standard_error, two_sided_p_value
    from course_utils.models import difference_standard_error

    only_relu, only_tanh, n_test = value("ch12_only_relu"), value("ch12_only_tanh"), value("ch12_n_test")
    acc_relu, acc_tanh = value("ch12_acc_relu"), value("ch12_acc_tanh")
    difference = acc_relu - acc_tanh
    assert value("ch12_paired_sentence").startswith(_verdict(value("ch12_mcnemar_p"), difference, "McNemar's test"))

    se_unpaired = difference_standard_error(acc_relu, n_test, acc_tanh, n_test)
    p_unpaired = two_sided_p_value(difference / se_unpaired)
    assert value("ch12_unpaired_p") == pytest.approx(p_unpaired)
    assert value("ch12_unpaired_sentence").startswith(_verdict(p_unpaired, difference, "The unpaired z-test"))

    se_paired = paired_difference_standard_error(only_relu, only_tanh, n_test)
    assert value("ch12_se_paired_pp") == pytest.approx(100 * se_paired)
    assert value("ch12_se_unpaired_pp") == pytest.approx(100 * se_unpaired)
    assert value("ch12_se_ratio") == pytest.approx(se_unpaired / se_paired) and se_unpaired > se_paired

    z95 = value("ch12_z95")
    assert z95 == pytest.approx(1.959964, abs=1e-6)
    center, se = value("ch12_halves_difference_pp"), value("ch12_se_halves_pp")
    low, high = value("ch12_halves_low_pp"), value("ch12_halves_high_pp")
    assert (low, high) == (pytest.approx(center - z95 * se), pytest.approx(center + z95 * se))
    assert se > value("ch12_se_unpaired_pp")  # half the images each: wider than on all of them
    excludes_zero = low > 0 or high < 0
    assert value("ch12_halves_sentence").startswith("its 95 % interval excludes 0" if excludes_zero
                                                    else "its 95 % interval includes 0")


def test_ch12_file_order_sentence_follows_the_halves_gap(value, full_mnist):
    first, second, se = value("ch12_order_first"), value("ch12_order_second"), value("ch12_order_se")
    sentence = value("ch12_order_sentence")
    apart = abs(second - first) > 2 * se
    assert sentence.startswith("Halves in file order would not do" if apart else "Halves in file order would have done")
    assert f"{first:.2%}" in sentence and f"{second:.2%}" in sentence

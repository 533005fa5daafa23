"""What chapter 9 (optimisers and learning-rate schedules) tells its reader, checked on its glued values."""

from __future__ import annotations

import functools
import math

import pytest
from test_book_results import chapter, full_mnist, glued_value  # noqa: F401

STEM = "09_optimisers"
RULES = ["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"]
NAMES = {"SGD": "sgd", "momentum": "momentum", "Nesterov": "nesterov", "RMSProp": "rmsprop", "Adam": "adam",
         "AdamW": "adamw"}


@pytest.fixture(scope="module")
def value(chapter):
    return functools.partial(glued_value, chapter[STEM])


def test_ch9_states_its_data_and_keeps_to_a_subset_of_the_training_images(value, full_mnist):
    assert ("60,000" in value("ch9_data_source")) == full_mnist == value("ch9_full_mnist")
    assert value("ch9_n_train") == (6_000 if full_mnist else 4_000 * 2 // 3)
    assert value("ch9_n_val") == (4_000 if full_mnist else 4_000 - 4_000 * 2 // 3)


def test_ch9_every_numpy_rule_takes_kerass_steps(value):
    for rule in RULES:
        assert value(f"ch9_difference_{rule}") < 1e-6, rule  # float32 rounding at most
        assert value(f"ch9_change_{rule}") > 1e-3, rule  # the weights did move
    largest = max(value(f"ch9_difference_{rule}") for rule in RULES)
    assert value("ch9_largest_difference") == largest
    assert value("ch9_agreement") == ("bit for bit" if largest == 0 else f"to within {largest:.0e}")
    # "the check does tell rules apart": Adam against AdamW's steps, far above rounding
    assert value("ch9_mismatch_difference") > 100 * max(largest, 1e-8)


def test_ch9_momentum_forms_agree_only_while_the_learning_rate_is_constant(value):
    assert value("ch9_forms_max_difference_constant") < 1e-12
    # right after the tenfold drop Keras's form keeps most of its step, the other form drops at once
    assert value("ch9_after_drop_keras") > 0.8 * value("ch9_before_drop")
    # the other form: eta v' with v' = 0.9 v' + 1, v' = before / 0.1, and eta = 0.01 now
    assert value("ch9_after_drop_other") == pytest.approx(0.01 * (0.9 * value("ch9_before_drop") / 0.1 + 1))
    for form in ("keras", "other"):  # both approach eta / (1 - beta) = 0.1
        assert value(f"ch9_last_step_{form}") == pytest.approx(0.1, rel=0.05)


def test_ch9_nesterov_and_adam_equivalences_hold(value):
    assert value("ch9_nesterov_lookahead_difference") < 1e-12
    assert value("ch9_eps_rescaled_difference") < 1e-15
    assert value("ch9_eps_factor_first") == pytest.approx(1 / math.sqrt(1 - 0.999))
    t = value("ch9_eps_within_1pct_step")  # the first step at which 1 / sqrt(1 - 0.999**t) < 1.01
    assert 1 / math.sqrt(1 - 0.999**t) < 1.01 <= 1 / math.sqrt(1 - 0.999 ** (t - 1))
    # "that weight's gradients were tiny ... Keras's larger early epsilon held it back"
    assert value("ch9_eps_constant_difference_gradient") < value("ch9_median_largest_gradient") / 100
    assert value("ch9_eps_moved_keras") < value("ch9_eps_moved_paper")
    assert value("ch9_eps_constant_difference") == pytest.approx(
        value("ch9_eps_moved_paper") - value("ch9_eps_moved_keras"), rel=1e-6)


def test_ch9_first_steps_are_what_the_formulas_say(value):
    assert value("ch9_rmsprop_first_factor") == pytest.approx(1 / math.sqrt(0.1), rel=1e-3)
    assert 1 - 1e-3 < value("ch9_adam_first_min") <= value("ch9_adam_first_max") < 1 + 1e-3
    assert value("ch9_adam_uncorrected_factor") == pytest.approx(0.1 / math.sqrt(0.001))
    assert value("ch9_n_not_tiny") > 0


def test_ch9_adamw_decays_in_proportion_and_the_penalty_in_adam_does_not(value):
    assert value("ch9_adamw_large") == pytest.approx(1 - 0.1 * 0.5)
    assert value("ch9_adamw_small") == pytest.approx(0.01 * (1 - 0.1 * 0.5))
    assert value("ch9_l2_large") == pytest.approx(1 - 0.1, abs=1e-4)  # moved by the learning rate
    assert value("ch9_l2_small") < 0  # "0.01 overshoots"
    assert value("ch9_adamw_paper_lambda") == pytest.approx(0.001 * 0.004)


def test_ch9_schedules_equal_kerass_and_the_docstrings_warmup_leaves_out_the_start(value):
    assert value("ch9_schedule_difference") < 1e-9
    assert value("ch9_warmup_code") == pytest.approx(value("ch9_warmup_from") + value("ch9_warmup_docstring"))
    assert value("ch9_warmup_docstring") == pytest.approx(0.5 * (value("ch9_peak_lr") - value("ch9_warmup_from")))
    total = value("ch9_total_steps")
    assert total == value("ch9_epochs") * math.ceil(value("ch9_n_train") / 64)
    assert value("ch9_warmup_steps") == math.ceil(value("ch9_n_train") / 64)
    assert value("ch9_tutorial_decay_factor") == pytest.approx(1 / (1 + 1e-7 * total))


def test_ch9_comparison_runs_are_kerass_and_the_table_is_consistent(value):
    assert value("ch9_fit_difference") < 1e-4
    assert value("ch9_n_runs") == value("ch9_n_seeds") * len(RULES)
    for rule in RULES:
        losses = value(f"ch9_loss_per_seed_{rule}")
        assert len(losses) == value("ch9_n_seeds")
        assert value(f"ch9_loss_mean_{rule}") == pytest.approx(sum(losses) / len(losses))
        assert 0 < value(f"ch9_loss_sd_{rule}") < value(f"ch9_loss_mean_{rule}")
        assert 0.5 < value(f"ch9_accuracy_mean_{rule}") < 1
    assert value("ch9_lr_sgd") == pytest.approx(value("ch9_lr_momentum") / (1 - 0.9))  # the same longest step


def _mean_sd(value, rule):
    return value(f"ch9_loss_mean_{rule}"), value(f"ch9_loss_sd_{rule}")


def test_ch9_comparison_sentence_says_what_the_numbers_show(value):
    means = {rule: value(f"ch9_loss_mean_{rule}") for rule in RULES}
    ranked = sorted(RULES, key=means.get)
    best, runner_up, worst = (NAMES[value(f"ch9_{role}_rule")] for role in ("best", "runner_up", "worst"))
    assert (best, runner_up, worst) == (ranked[0], ranked[1], ranked[-1])
    sentence = value("ch9_comparison_sentence")
    assert sentence.startswith(f"{value('ch9_best_rule')} ends with the lowest mean validation loss")
    for other, phrase in ((worst, "Their difference"), (runner_up, "The runner-up")):
        (m_best, sd_best), (m_other, sd_other) = _mean_sd(value, best), _mean_sd(value, other)
        clear = m_other - m_best > sd_best + sd_other
        part = sentence[sentence.index(phrase):]
        assert f"{m_other - m_best:.4f}" in part[:80]
        larger = "larger than the seed-to-seed spread" in part[:120] or "more than the spread" in part[:120]
        assert larger == clear, (phrase, m_best, sd_best, m_other, sd_other)
    n = value("ch9_n_seeds")
    wins = sum(a < b for a, b in zip(value(f"ch9_loss_per_seed_{best}"), value(f"ch9_loss_per_seed_{worst}")))
    assert f"lower in {wins} of the {n} seeds" in sentence
    # "ahead of every other rule" only when every other rule's gap exceeds the two rules' spread
    m_best, sd_best = _mean_sd(value, best)
    ahead = all(_mean_sd(value, o)[0] - m_best > sd_best + _mean_sd(value, o)[1] for o in ranked[1:])
    assert ("ahead of every other rule" in sentence) == ahead


def test_ch9_family_sentence_and_adamw_claims_hold(value):
    sentence = value("ch9_family_sentence")
    for a, b, part in (("sgd", "momentum", sentence.split("; ")[0]), ("momentum", "nesterov", sentence.split("; ")[1])):
        (m_a, sd_a), (m_b, sd_b) = _mean_sd(value, a), _mean_sd(value, b)
        assert f"{abs(m_b - m_a):.4f} apart" in part
        assert ("more than the spread" in part) == (abs(m_b - m_a) > sd_a + sd_b)
    # "AdamW ends where Adam does": within a tenth of Adam's spread in every seed
    assert value("ch9_adamw_vs_adam") == pytest.approx(
        max(abs(a - b) for a, b in zip(value("ch9_loss_per_seed_adamw"), value("ch9_loss_per_seed_adam"))))
    assert value("ch9_adamw_vs_adam") < value("ch9_loss_sd_adam") / 10
    assert value("ch9_adamw_total_shrink") == pytest.approx((1 - 0.001 * 0.004) ** value("ch9_total_steps"))


def test_ch9_memory_is_counted_from_kerass_slots(value):
    expected = {"sgd": 0, "momentum": 1, "nesterov": 1, "rmsprop": 1, "adam": 2, "adamw": 2}
    n_params = value("ch9_n_params")
    assert n_params == 784 * 50 + 50 + 50 * 50 + 50 + 50 * 10 + 10
    assert value("ch9_weights_kb") == pytest.approx(n_params * 4 / 1000)
    for rule, slots in expected.items():
        assert value(f"ch9_slots_{rule}") == slots
        assert value(f"ch9_state_kb_{rule}") == pytest.approx(slots * n_params * 4 / 1000)
    assert value("ch9_slot_names_sgd") == "none"
    assert value("ch9_slot_names_adam") == value("ch9_slot_names_adamw") == "momentum, velocity"
    assert value("ch9_slot_names_rmsprop") == "velocity"

"""What chapter 10 (regularisation and normalisation) tells its reader, checked on its glued numbers."""

from __future__ import annotations

import functools
import math

import pytest

from test_book_results import chapter, full_mnist, glued_value  # noqa: F401

STEM = "10_regularisation"
OPTIMIZER_RUNS = ("sgd_l2", "sgd_decay", "adam_l2", "adamw")


@pytest.fixture(scope="module")
def value(chapter):  # noqa: F811
    return functools.partial(glued_value, chapter[STEM])


def test_ch10_says_which_data_it_was_built_on(chapter, full_mnist):  # noqa: F811
    from course_utils.book import glued_outputs

    note = glued_outputs(chapter[STEM])["ch10_data_note"]["data"]["text/markdown"]
    note = "".join(note) if isinstance(note, list) else note
    assert "data-source" in note
    assert ("Built on full MNIST" in note) == full_mnist
    assert glued_value(chapter[STEM], "ch10_full_mnist") == full_mnist


# --- an L2 penalty and weight decay --------------------------------------------------------------------


def test_ch10_numpy_updates_equal_keras_up_to_float32_rounding(value):
    for run in OPTIMIZER_RUNS:
        assert value(f"ch10_{run}_rel_error") < 1e-4, run
        assert value(f"ch10_{run}_max_diff") < 1e-3 * value(f"ch10_{run}_change"), run
    assert value("ch10_max_rel_error") == max(value(f"ch10_{run}_rel_error") for run in OPTIMIZER_RUNS)


def test_ch10_l2_is_weight_decay_for_sgd_but_not_for_adam(value):
    # "with plain SGD, L2(l2) is weight_decay=2 * l2"; "not the same algorithm"
    assert value("ch10_lambda") == 2 * value("ch10_l2")
    assert value("ch10_sgd_gap") < 1e-6
    largest_rounding = max(value(f"ch10_{run}_max_diff") for run in OPTIMIZER_RUNS)
    assert value("ch10_adam_gap") > 100 * largest_rounding
    assert value("ch10_adam_gap") > 0.1 * value("ch10_adamw_change")


def test_ch10_idle_weights_move_by_eta_under_adam_with_a_penalty_and_decay_geometrically_otherwise(value):
    eta, lam, k = value("ch10_adam_lr"), value("ch10_lambda"), value("ch10_n_updates")
    assert value("ch10_n_idle") > 0
    # "exactly the decay by the factor 1 - eta lambda per update"
    decayed = value("ch10_idle_mean_size") * (1 - (1 - eta * lam) ** k)
    assert value("ch10_adamw_idle_moved") == pytest.approx(decayed, rel=1e-2)
    # "close to eta per update"
    assert 0.5 < value("ch10_adam_l2_idle_moved") / (k * eta) <= 1.0001
    # the SGD runs agree with each other, and decay by (1 - eta_sgd lambda) per update
    assert value("ch10_sgd_l2_idle_moved") == pytest.approx(value("ch10_sgd_decay_idle_moved"), rel=1e-3)
    sgd_decayed = value("ch10_idle_mean_size") * (1 - (1 - value("ch10_sgd_lr") * lam) ** k)
    assert value("ch10_sgd_decay_idle_moved") == pytest.approx(sgd_decayed, rel=1e-2)


def test_ch10_idle_weight_paths_after_300_updates(value):
    eta, lam, sgd_lr = value("ch10_adam_lr"), value("ch10_lambda"), value("ch10_sgd_lr")
    # "both reach zero ... then hover there", for coefficients ten times apart
    assert value("ch10_idle_final_adam_l2") < 0.05 and value("ch10_idle_final_adam_small_l2") < 0.05
    assert value("ch10_idle_final_adamw") == pytest.approx((1 - eta * lam) ** 300, rel=1e-4)
    assert value("ch10_idle_final_sgd") == pytest.approx((1 - sgd_lr * lam) ** 300, rel=1e-4)
    assert value("ch10_idle_steps_to_zero") < value("ch10_idle_steps_to_zero_max") < 300


# --- dropout -----------------------------------------------------------------------------------------------


def test_ch10_dropout_equals_keras_exactly_and_drops_units_at_the_rate(value):
    assert value("ch10_dropout_max_diff") == 0
    rate, n = value("ch10_dropout_rate"), value("ch10_dropout_n_units")
    assert value("ch10_dropped_share_se") == pytest.approx(math.sqrt(rate * (1 - rate) / n))
    assert abs(value("ch10_dropped_share") - rate) < 4 * value("ch10_dropped_share_se")
    assert value("ch10_dropped_per_image_sd") == pytest.approx(value("ch10_dropped_binomial_sd"), rel=0.25)
    # "the average over the draws lies within ... standard errors of the activation"
    assert value("ch10_dropout_active") > 0 and value("ch10_dropout_max_z") < 5


# --- early stopping ----------------------------------------------------------------------------------------


def test_ch10_early_stopping_sentence_matches_the_epochs(value):
    best, stopped, n_epochs = value("ch10_es_best_epoch"), value("ch10_es_stopped_epoch"), value("ch10_es_n_epochs")
    patience, max_epochs = value("ch10_es_patience"), value("ch10_es_max_epochs")
    sentence = value("ch10_es_sentence")
    if stopped:
        assert stopped == best + patience == n_epochs < max_epochs
        assert f"lowest after epoch {best}," in sentence and f"stopped after epoch {stopped} of at most {max_epochs}" in sentence
    else:
        assert n_epochs == max_epochs and f"run all {max_epochs} epochs" in sentence
    assert value("ch10_es_best_val_loss") <= value("ch10_es_last_val_loss")


# --- batch normalisation -----------------------------------------------------------------------------------


def test_ch10_batch_norm_equals_keras_in_both_modes_and_its_gradient_the_tape(value):
    for name in ("train", "moving", "inference"):
        assert value(f"ch10_bn_{name}_max_diff") < 1e-5, name
    assert value("ch10_bn_grad_max_diff") < 1e-10
    assert value("ch10_bn_column_sums") < 1e-10 < value("ch10_bn_input_grad_size")


def test_ch10_moving_statistics_remember_their_start(value):
    momentum, steps = value("ch10_bn_momentum"), value("ch10_bn_steps")
    assert momentum == 0.99
    assert value("ch10_bn_start_weight") == pytest.approx(momentum ** steps)
    k = value("ch10_bn_steps_to_forget")  # "weigh less than 1 % only after k steps"
    assert momentum ** k < 0.01 <= momentum ** (k - 1)


# --- underfitting and overfitting --------------------------------------------------------------------------


def _best_width(widths, val):
    return max(zip(widths, val), key=lambda pair: (pair[1], -pair[0]))[0]


def test_ch10_width_sentences_match_the_accuracies(value, full_mnist):  # noqa: F811
    widths, train, val = value("ch10_widths"), value("ch10_width_train"), value("ch10_width_val")
    best = _best_width(widths, val)
    assert value("ch10_best_width") == best
    underfits = train[0] < val[widths.index(best)]
    assert value("ch10_width_underfits") == underfits
    small = value("ch10_width_small_sentence")
    assert small.startswith(f"With {widths[0]} hidden unit") and ("underfits:" in small) == underfits
    gaps = [100 * (t - v) for t, v in zip(train, val)]
    assert (" opens, from " in value("ch10_width_gap_sentence")) == (gaps[-1] > gaps[0])
    wide = value("ch10_width_wide_sentence")
    assert f"a gap of {gaps[-1]:.1f} percentage points" in wide
    if best == widths[-1]:
        assert "also the best network" in wide
    elif value("ch10_wide_vs_best_significant"):
        assert "clearly below the best network" in wide
    else:
        assert "not clearly different from the best network" in wide
    if full_mnist:  # the picture the page describes: the smallest network underfits, the widest has a wide gap
        assert underfits and gaps[-1] > 5


def test_ch10_size_sentences_match_the_accuracies(value):
    sizes, train, val = value("ch10_sizes"), value("ch10_size_train"), value("ch10_size_val")
    rising = all(a < b for a, b in zip(val, val[1:]))
    assert value("ch10_size_val_rising") == rising
    sentence = value("ch10_size_val_sentence")
    assert ("with every increase" in sentence) == rising
    assert f"{val[0]:.1%} with {sizes[0]:,} images" in sentence
    assert ("stays at 99% or more" in value("ch10_size_train_sentence")) == (min(train) >= 0.99)
    gaps = [100 * (t - v) for t, v in zip(train, val)]
    gap_sentence = value("ch10_size_gap_sentence")
    assert gap_sentence.startswith("the gap narrows" if gaps[-1] < gaps[0] else "the gap does not narrow")
    assert f"{gaps[0]:.1f} percentage points" in gap_sentence
    # "More training data ... shrinks the gap from the side that matters, by raising the validation curve"
    assert val[-1] > val[0] and gaps[-1] < gaps[0]

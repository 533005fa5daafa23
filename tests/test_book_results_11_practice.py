"""What chapter "The practice of training" (11_practice) tells its reader, checked on its glued numbers.

Every sentence the chapter chooses by code is checked against the numbers it was chosen from, and
every NumPy-against-Keras comparison against a tolerance. Each check holds on full MNIST and on the
embedded sample.
"""

from __future__ import annotations

import math

import pytest

from test_book_results import chapter, full_mnist, glued_value  # noqa: F401

STEM = "11_practice"


@pytest.fixture(scope="module")
def value(chapter):
    return lambda name: glued_value(chapter[STEM], name)


def test_ch11_glues_a_note_on_its_data(chapter, value):
    from course_utils.book import glued_outputs

    note = glued_outputs(chapter[STEM])["ch11_data_note"]["data"]["text/markdown"]
    note = "".join(note) if isinstance(note, list) else note
    full = bool(value("ch11_full_mnist"))
    assert "data-source" in note and ("Built on full MNIST" in note) == full
    if full:
        assert (value("ch11_n_fit"), value("ch11_n_val")) == (10_000, 5_000)


def test_ch11_chapter_and_chapter_6_were_built_on_the_same_data(value, full_mnist):
    assert bool(value("ch11_full_mnist")) == full_mnist


# --- the loss at the start ---------------------------------------------------------------------------


def test_ch11_initial_loss_verdicts_follow_the_tolerance(value):
    chance, tolerance = value("ch11_chance_loss"), value("ch11_loss_tolerance")
    assert chance == pytest.approx(math.log(10))
    for name in ("initial", "bad_initial"):
        loss, verdict = value(f"ch11_{name}_loss"), value(f"ch11_{name}_verdict")
        ok = abs(loss - chance) <= tolerance
        assert value(f"ch11_{name}_ok") == ok
        assert verdict.startswith(f"{loss:.3f}, ")
        assert ("a sound start" in verdict) == ok and ("badly scaled" in verdict) == (not ok)
        assert value(f"ch11_{name}_true_class_p") == pytest.approx(math.exp(-loss))
    # what the chapter shows: the tutorial's start is sound, N(0, 1) kernels are not, and far above
    assert value("ch11_initial_ok") and not value("ch11_bad_initial_ok")
    assert value("ch11_bad_initial_ratio") == pytest.approx(value("ch11_bad_initial_loss") / chance)
    assert value("ch11_bad_initial_ratio") > 2
    assert value("ch11_initial_loss") > chance  # "not exactly ln 10 because its logits are not equal"


def test_ch11_glorot_scale_is_far_below_one(value):
    # Glorot's standard deviation sqrt(2 / (n_in + n_out)) for 784-50, 50-50 and 50-10
    assert value("ch11_glorot_std_min") == pytest.approx(math.sqrt(2 / 834))
    assert value("ch11_glorot_std_max") == pytest.approx(math.sqrt(2 / 60))


def test_ch11_numpy_loss_is_kerass(value):
    assert value("ch11_initial_loss_keras_diff") < 1e-5


def test_ch11_bad_initialisation_saturates_most_tanh_units(value):
    assert value("ch11_bad_saturated") > 0.5  # "... of its tanh activations are beyond ±0.99"


# --- overfitting a tiny batch ------------------------------------------------------------------------


def test_ch11_tiny_batch_sentence_says_what_the_runs_did(value):
    near_zero = value("ch11_near_zero")
    sound_fits = value("ch11_tiny_loss") < near_zero and value("ch11_tiny_accuracy") == 1
    buggy_fits = value("ch11_buggy_loss") < near_zero and value("ch11_buggy_accuracy") == 1
    assert (value("ch11_sound_fits"), value("ch11_buggy_fits")) == (sound_fits, buggy_fits)
    assert value("ch11_tiny_sentence") == ("The sound setup passes the check and the buggy one fails it"
                                           if sound_fits and not buggy_fits else
                                           "This time the check does not tell the sound setup from the buggy one")
    assert sound_fits and not buggy_fits


def test_ch11_reshuffled_labels_stay_near_their_entropy_and_fixed_wrong_labels_are_memorised(value):
    entropy = value("ch11_tiny_entropy")
    assert entropy <= math.log(10) + 1e-9
    assert abs(value("ch11_buggy_loss") - entropy) < 0.2  # "close to the labels' entropy"
    assert value("ch11_wrong_fixed_share") > 0.5
    assert value("ch11_wrong_fixed_accuracy") == 1  # the figure: the dotted line falls towards zero too
    assert value("ch11_wrong_fixed_loss") < value("ch11_near_zero")


# --- update-to-weight ratios ---------------------------------------------------------------------------


def test_ch11_ratio_from_the_gradient_is_the_change_keras_made(value):
    assert value("ch11_ratio_check_diff") < 1e-7
    assert 0 < value("ch11_first_ratio_hidden_1") < 1


def test_ch11_ratios_grow_with_the_learning_rate_and_the_side_of_the_rule_is_right(value):
    assert value("ch11_ratio_grows")  # the alt text: "the lines lie higher the larger the learning rate"
    for name in ("hidden_1", "hidden_2", "output"):
        ratios = [value(f"ch11_ratio_median_{eta}_{name}") for eta in ("0.001", "0.01", "0.1")]
        assert ratios == sorted(ratios)
    median = value("ch11_ratio_tutorial_median")
    assert value("ch11_ratio_tutorial_side") == ("below" if median < 1e-3 else "above")
    assert value("ch11_ratio_median_0.1_hidden_1") > 1e-3


# --- activations and gradients during training --------------------------------------------------------


def test_ch11_tape_gradients_are_numpy_backpropagation(value):
    assert value("ch11_snapshot_grad_diff") < 1e-6


def test_ch11_histogram_sentences_follow_the_snapshots(value):
    last = value("ch11_epochs")
    hidden = ("hidden_1", "hidden_2")
    shrink = all(value(f"ch11_grad_std_{n}_epoch{last}") < value(f"ch11_grad_std_{n}_epoch0") for n in hidden)
    grows = all(value(f"ch11_saturated_{n}_epoch{last}") > value(f"ch11_saturated_{n}_epoch0") for n in hidden)
    assert value("ch11_gradients_shrink") == shrink and value("ch11_saturation_grows") == grows
    assert value("ch11_gradient_sentence").startswith("became smaller" if shrink else "did not")
    assert value("ch11_saturation_sentence").startswith("grew" if grows else "did not")
    assert shrink  # the alt text: "the gradient outlines move to the left"


# --- dead ReLUs ----------------------------------------------------------------------------------------


def test_ch11_dead_units_grow_with_the_learning_rate_and_the_first_layer_is_hardest_to_kill(value):
    assert value("ch11_dead_grows")
    for eta in ("0.01", "0.1", "0.3"):
        assert value(f"ch11_dead_{eta}_hidden_1") <= value(f"ch11_dead_{eta}_hidden_2")
    assert value("ch11_healthy_dead_max") < value("ch11_dead_0.1_hidden_2")  # 0.01 "healthy", 0.1 "too large"
    assert value("ch11_healthy_dead_max") == max(value(f"ch11_dead_0.01_{n}") for n in ("hidden_1", "hidden_2"))


def test_ch11_dead_units_get_no_gradient(value):
    assert value("ch11_dead_units_checked") > 0
    assert value("ch11_dead_unit_gradient") == 0.0  # "they will stay dead"


def test_ch11_all_dead_sentence_follows_the_fractions(value):
    sentence = value("ch11_all_dead_sentence")
    fractions = {n: value(f"ch11_dead_0.3_{n}") for n in ("hidden_1", "hidden_2")}
    all_dead = any(f == 1 for f in fractions.values())
    assert value("ch11_layer_all_dead") == all_dead
    loss = value("ch11_relu_loss_0.3")
    assert f"{loss:.3f}" in sentence
    if all_dead:
        name = next(n for n, f in fractions.items() if f == 1)
        assert sentence.startswith(f"With learning rate 0.3 every unit of {name} is dead")
        assert value("ch11_dead_output_spread") < 1e-3
        assert abs(loss - math.log(10)) < 0.05  # "that of a constant prediction, near ln 10"
    else:
        name = max(fractions, key=fractions.get)
        assert sentence.startswith(f"With learning rate 0.3, {fractions[name]:.0%} of the units of {name}")
        assert ("close to ln 10" in sentence) == (abs(loss - math.log(10)) <= value("ch11_loss_tolerance"))


# --- exploding gradients and clipping ------------------------------------------------------------------


def test_ch11_gradients_explode_by_two_to_the_depth_and_a_little_more(value):
    two_to_the_L = value("ch11_two_to_the_L")
    assert two_to_the_L == 2 ** value("ch11_deep_layers")
    # "2^L ..., times a little more because the doubled network's output errors are larger"
    assert two_to_the_L < value("ch11_explosion_factor") < two_to_the_L * 4
    assert value("ch11_output_error_ratio") > 1
    assert value("ch11_exploding_update_ratio") > 100 * 1e-3  # "where the rule of thumb asks for a thousandth"


def test_ch11_numpy_clipping_is_kerass_and_only_the_global_rule_keeps_the_direction(value):
    assert value("ch11_global_clipnorm_diff") < 1e-6
    assert value("ch11_clipnorm_diff") < 1e-6
    assert value("ch11_global_clipnorm_cosine") == pytest.approx(1.0, abs=1e-9)
    assert value("ch11_clipnorm_cosine") < 0.99


# --- the baseline --------------------------------------------------------------------------------------


def test_ch11_baseline_choice_follows_mcnemar(value):
    only_mlp, only_baseline, p = value("ch11_only_mlp"), value("ch11_only_baseline"), value("ch11_baseline_p")
    wins = p < 0.05 and only_mlp > only_baseline
    assert value("ch11_mlp_wins") == wins
    choice = value("ch11_baseline_choice")
    if wins:
        gain = 100 * (value("ch11_mlp_accuracy") - value("ch11_baseline_accuracy"))
        assert choice.startswith("The MLP is clearly better") and f"{gain:.1f} percentage points" in choice
    elif p < 0.05:
        assert choice.startswith("Softmax regression is clearly better")
    else:
        assert choice.startswith("The difference is within what chance alone makes likely")
    assert f"p = {p:.2g}" in choice


def test_ch11_models_have_the_parameters_the_chapter_counts(value):
    assert value("ch11_baseline_params") == 784 * 10 + 10
    assert value("ch11_mlp_params") == 784 * 50 + 50 + 50 * 50 + 50 + 50 * 10 + 10


def test_ch11_mlp_beats_the_baseline_on_full_mnist(value):
    if not value("ch11_full_mnist"):
        pytest.skip("on the embedded sample the validation set is too small to promise a clear difference")
    assert value("ch11_mlp_wins")

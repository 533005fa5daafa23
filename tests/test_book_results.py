"""What a reader of the built book is told, checked on the numbers the chapters glued into it.

The book build executes every chapter (`make book`) and keeps the executed copies in
`book/_build/jupyter_execute/`. Every number in the prose comes from a `glue(...)` call, which emits an
output of the type `application/papermill.record/<mime type>`; myst-nb moves those outputs out of the
executed copy into `<chapter>.glue.json` beside it, and renders the prose from there. These tests read
the same values back, so a claim like "the test accuracy is close to the tutorial's" is checked on
exactly the number the reader sees.

Adding a check is one function: `glued_value(chapter["06_training"], "ch6_test_accuracy")`.
"""

from __future__ import annotations

import functools
import math
import statistics
from functools import cache
from pathlib import Path

import pytest

from course_utils.book import glued_values

# Each executed notebook is parsed once per test session.
_glued_values = cache(glued_values)

#: What the tutorial (TensorFlow 1) reported after 50 epochs; chapter 6 quotes the same figures.
TUTORIAL_TRAIN_ACCURACY = 0.9881
TUTORIAL_TEST_ACCURACY = 0.9627


def glued_value(notebook: Path, name: str) -> object:
    """The value glued as ``name`` in an executed notebook; fails naming what was glued instead."""
    values = _glued_values(Path(notebook))
    if name not in values:
        pytest.fail(f"{notebook.name} glues no {name!r}; it glues {sorted(values)}")
    return values[name]


class _Chapters(dict):
    def __missing__(self, stem: str) -> Path:
        pytest.fail(f"book/_build/jupyter_execute has no executed {stem}.ipynb: run `make book` first")


@pytest.fixture(scope="module")
def chapter(executed_notebooks) -> dict[str, Path]:
    """The executed chapters by file stem: ``chapter["06_training"]``."""
    return _Chapters((path.stem, path) for path in executed_notebooks)


@pytest.fixture(scope="module")
def full_mnist(chapter) -> bool:
    """Whether chapter 6 trained on full MNIST (not the embedded 5,000-digit fallback)."""
    return bool(glued_value(chapter["06_training"], "ch6_full_mnist"))


# --- every chapter that uses data says which data it was built on ----------------------------------

DATA_CHAPTERS = {"02_mnist_idx": "ch2", "03_preprocessing": "ch3", "05_fit_by_hand": "fit", "06_training": "ch6",
                 "07_going_further": "ch7"}


@pytest.mark.parametrize("stem", DATA_CHAPTERS)
def test_data_chapters_glue_a_note_on_the_data_they_were_built_on(chapter, full_mnist, stem):
    from course_utils.book import glued_outputs

    prefix = DATA_CHAPTERS[stem]
    note = glued_outputs(chapter[stem])[f"{prefix}_data_note"]["data"]["text/markdown"]
    note = "".join(note) if isinstance(note, list) else note
    assert "data-source" in note
    assert ("Built on full MNIST" in note) == full_mnist
    assert ("not on full MNIST" in note) == (not full_mnist)


# --- chapter 2: the files -----------------------------------------------------------------------------


def test_ch2_counts_are_those_of_the_files_read(chapter, full_mnist):
    notebook = chapter["02_mnist_idx"]
    n_train, n_test = glued_value(notebook, "ch2_n_train"), glued_value(notebook, "ch2_n_test")
    assert (glued_value(notebook, "ch2_mnist_n_train"), glued_value(notebook, "ch2_mnist_n_test")) == (60_000, 10_000)
    assert ((n_train, n_test) == (60_000, 10_000)) == full_mnist
    assert glued_value(notebook, "ch2_train_images_bytes") == 16 + n_train * 784


def test_ch2_native_struct_format_pads_and_a_prefixed_one_does_not(chapter):
    notebook = chapter["02_mnist_idx"]
    # "with no prefix "BI" takes ... bytes, with > it takes ...: the native format pads the integer"
    assert glued_value(notebook, "ch2_struct_standard_size") == 5
    assert glued_value(notebook, "ch2_struct_native_size") == 8


# --- chapter 3: the pixels --------------------------------------------------------------------------


def test_ch3_digit_balance_sentence_matches_the_shares(chapter, full_mnist):
    notebook = chapter["03_preprocessing"]
    most, least = (glued_value(notebook, f"ch3_{w}_common_share") for w in ("most", "least"))
    sentence = glued_value(notebook, "ch3_digit_balance")
    if most == least:
        assert sentence.startswith("every digit makes up") and not full_mnist
    else:
        digit = glued_value(notebook, "ch3_most_common_digit")
        assert sentence.startswith(f"{digit} is the most common digit ({most:.1%}")
        assert f"{glued_value(notebook, 'ch3_least_common_digit')} the least common ({least:.1%})" in sentence
    if full_mnist:  # the published label counts: 1 is the most common digit, 5 the least
        assert (glued_value(notebook, "ch3_most_common_digit"), glued_value(notebook, "ch3_least_common_digit")) == (1, 5)


def test_ch3_claims_about_the_pixels_hold(chapter):
    notebook = chapter["03_preprocessing"]
    assert glued_value(notebook, "ch3_zero_share") > 0.5  # "most pixels are background"
    assert glued_value(notebook, "ch3_scaled_mean") < -0.5  # "still far from zero"
    assert 0.75 < glued_value(notebook, "ch3_train_centered_std") < 1  # "a little below 1"
    assert glued_value(notebook, "ch3_test_centered_mean") != 0  # "do not match exactly"
    assert glued_value(notebook, "ch3_first_image_shift") < 0.5  # "small here", inputs of size about 1


def test_ch3_scaling_before_centring_changes_no_input(chapter):
    # "after centring, the scaling step makes no difference": equal up to float32 rounding
    assert glued_value(chapter["03_preprocessing"], "ch3_scaling_largest_difference") < 1e-5


# --- chapter 1: notation ----------------------------------------------------------------------------


def test_ch1_maps_our_weight_matrix_to_pmls_and_kerass(chapter):
    notebook = chapter["01_mlp_notation"]
    # ours: one row per hidden unit; PML: inputs with the bias unit by hidden units; Keras: inputs by units
    assert glued_value(notebook, "ch1_map_W_shape") == (50, 784)
    assert glued_value(notebook, "ch1_map_pml_shape") == (785, 50)
    assert glued_value(notebook, "ch1_map_kernel_shape") == (784, 50)
    assert glued_value(notebook, "ch1_map_b_shape") == (50,)


# --- chapter 4: the model ---------------------------------------------------------------------------


def test_ch4_parameter_count_equals_chapter_1s(chapter):
    keras_count = glued_value(chapter["04_keras_mlp"], "ch4_params_total")
    by_hand = glued_value(chapter["01_mlp_notation"], "ch1_params_total")
    assert keras_count == by_hand == 784 * 50 + 50 + 50 * 50 + 50 + 50 * 10 + 10


def test_ch4_parameters_per_layer_add_up(chapter):
    per_layer = [glued_value(chapter["04_keras_mlp"], f"ch4_params_layer{i}") for i in (1, 2, 3)]
    assert per_layer == [784 * 50 + 50, 50 * 50 + 50, 50 * 10 + 10]


def test_ch4_schedule_follows_keras2_decay_and_plain_decay_is_ignored(chapter):
    notebook = chapter["04_keras_mlp"]
    updates = glued_value(notebook, "ch4_total_updates")
    assert glued_value(notebook, "ch4_mnist_n_train") == 60_000  # the tutorial's run: full MNIST
    assert updates == 50 * 844  # ceil(54,000 / 64) batches per epoch
    assert glued_value(notebook, "ch4_lr_after_training") == pytest.approx(0.001 / (1 + 1e-7 * updates))
    assert glued_value(notebook, "ch4_lr_ignored_decay") == pytest.approx(0.001)


def test_ch4_glorot_variance_factors_are_the_compromise_the_text_derives(chapter):
    notebook = chapter["04_keras_mlp"]
    for i, (n_in, n_out) in enumerate([(784, 50), (50, 50), (50, 10)], start=1):
        sigma2 = 2 / (n_in + n_out)
        assert glued_value(notebook, f"ch4_forward_factor_layer{i}") == pytest.approx(n_in * sigma2, rel=0.1)
        assert glued_value(notebook, f"ch4_backward_factor_layer{i}") == pytest.approx(n_out * sigma2, rel=0.1)
    # "the forward variance grows and the backward one shrinks" where the layer narrows
    assert glued_value(notebook, "ch4_forward_factor_layer1") > 1.5 > 0.2 > glued_value(notebook, "ch4_backward_factor_layer1")


# --- what fit does (05_fit_by_hand) -----------------------------------------------------------------


def test_fit_gradients_agree_with_finite_differences_and_tensorflow(chapter):
    notebook = chapter["05_fit_by_hand"]
    assert glued_value(notebook, "fit_fd_relative_error") < 1e-7
    assert glued_value(notebook, "fit_tape_relative_error") < 1e-5
    for layer in ("hidden_1", "hidden_2", "output"):
        assert glued_value(notebook, f"fit_tape_error_{layer}") < 1e-5
    assert glued_value(notebook, "fit_fd_broken_error") > 1e-2  # "the check can fail"


def test_fit_numpy_sgd_reproduces_model_fit(chapter):
    notebook = chapter["05_fit_by_hand"]
    value = functools.partial(glued_value, notebook)
    assert value("fit_equivalent") is True
    assert value("fit_change_relative_error") < value("fit_tolerance") <= 1e-4
    assert value("fit_max_difference") < 1e-6 and value("fit_max_difference") < 1e-3 * value("fit_max_change")
    assert value("fit_plain_relative_error") > 100 * value("fit_tolerance")  # without momentum: far off


def test_fit_loss_section_claims_hold(chapter):
    notebook = chapter["05_fit_by_hand"]
    value = functools.partial(glued_value, notebook)
    assert value("fit_n_params") == glued_value(chapter["01_mlp_notation"], "ch1_params_total")
    assert value("fit_clipped_loss") == pytest.approx(-math.log(value("fit_epsilon")), rel=1e-4)
    assert value("fit_clipped_loss") < value("fit_big_logit")  # clipping understates the loss
    assert 0 < value("fit_batch_likelihood") < 1.2e-38  # "too small for float32"


def test_fit_momentum_sentences_hold(chapter):
    notebook = chapter["05_fit_by_hand"]
    value = functools.partial(glued_value, notebook)
    assert value("fit_momentum_limit") == pytest.approx(10)
    k = value("fit_momentum_k")
    assert value("fit_momentum_factor_k") == pytest.approx((1 - 0.9**k) / (1 - 0.9))
    assert value("fit_effective_lr") == pytest.approx(value("fit_tutorial_lr") * value("fit_momentum_limit"))


def test_fit_training_accuracy_is_a_running_mean_below_the_end_of_epoch_figures(chapter):
    notebook = chapter["05_fit_by_hand"]
    value = functools.partial(glued_value, notebook)
    assert value("fit_epoch_batches") == math.ceil(value("fit_n_fit") / 64)
    assert value("fit_epoch_reported") == pytest.approx(value("fit_epoch_running_mean"), abs=1 / value("fit_n_fit"))
    # "the reported training accuracy sits below the validation accuracy"
    assert value("fit_epoch_reported") < value("fit_epoch_validation")
    assert value("fit_epoch_reported") < value("fit_epoch_end_of_epoch")


# --- chapter 6: training and evaluation -------------------------------------------------------------


def test_ch6_states_its_data_source(chapter, full_mnist):
    source = glued_value(chapter["06_training"], "ch6_data_source")
    assert isinstance(source, str) and source
    assert ("60,000" in source) == full_mnist


def test_ch6_comparison_with_the_tutorial_says_what_the_numbers_show(chapter, full_mnist):
    notebook = chapter["06_training"]
    tolerance_pp = glued_value(notebook, "ch6_close_pp")
    differences = [glued_value(notebook, f"ch6_{split}_accuracy_diff_pp") for split in ("train", "test")]
    close = glued_value(notebook, "ch6_close_to_tutorial")
    sentence = glued_value(notebook, "ch6_tutorial_comparison")
    assert close == (full_mnist and all(abs(d) <= tolerance_pp for d in differences))
    assert sentence.startswith("The results are close to the tutorial's") == close
    if not full_mnist:
        assert "cannot be compared" in sentence
    else:
        # On full MNIST the tutorial's model lands near the tutorial's figures.
        assert close, f"{differences} percentage points from the tutorial's accuracies"


def test_ch6_update_count_is_that_of_its_own_run(chapter):
    notebook = chapter["06_training"]
    per_epoch = glued_value(notebook, "ch6_updates_per_epoch")
    n_fit = 0.9 * glued_value(notebook, "ch6_n_train")  # validation_split=0.1
    assert abs(per_epoch - n_fit / 64) <= 1
    assert glued_value(notebook, "ch6_total_updates") == 50 * per_epoch
    total = glued_value(notebook, "ch6_total_updates")
    assert glued_value(notebook, "ch6_lr_after_training") == pytest.approx(0.001 / (1 + 1e-7 * total), rel=1e-6)


def test_ch6_best_validation_epoch_is_one_of_the_epochs(chapter):
    notebook = chapter["06_training"]
    assert 1 <= glued_value(notebook, "ch6_best_val_loss_epoch") <= glued_value(notebook, "ch6_n_epochs") == 50


def test_ch6_overfitting_sentence_follows_the_validation_loss_and_its_noise(chapter):
    notebook = chapter["06_training"]
    value = functools.partial(glued_value, notebook)
    best, n_epochs = value("ch6_best_val_loss_epoch"), value("ch6_n_epochs")
    rise, noise = value("ch6_val_loss_rise"), value("ch6_val_loss_rise_se")
    sentence = value("ch6_overfitting")
    assert rise == pytest.approx(value("ch6_final_val_loss") - value("ch6_best_val_loss"))
    assert noise >= 0 and (noise > 0) == (best != n_epochs)  # zero only when the two weights are one
    # the gap is the training accuracy's lead over the validation accuracy, not itself overfitting
    assert value("ch6_accuracy_gap_val_pp") == pytest.approx(
        100 * (value("ch6_final_accuracy") - value("ch6_final_val_accuracy")))
    if best == n_epochs:
        assert rise == 0 and "no sign of overfitting" in sentence
    elif rise <= 2 * noise:
        assert f"lowest after epoch {best} " in sentence and "within two standard errors" in sentence
        assert "overfitting" not in sentence
    else:
        assert "more than two standard errors" in sentence and "which is overfitting" in sentence
        assert value("ch6_final_loss") < value("ch6_train_loss_at_best_epoch")


def _check_paired_test(accuracy_a, accuracy_b, only_a, only_b, n, glued_p) -> float:
    """Two models scored on the same ``n`` images: their accuracies differ by exactly the images only one
    gets right, and the glued p-value is McNemar's exact test on those; returns that p-value."""
    from scipy.stats import binomtest

    assert accuracy_a - accuracy_b == pytest.approx((only_a - only_b) / n, abs=1e-9)
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    assert glued_p == pytest.approx(p, rel=1e-6)
    return p


def test_ch6_the_validation_set_chooses_the_epoch_and_the_models_are_compared_pairwise(chapter):
    from course_utils.models import accuracy_standard_error

    notebook = chapter["06_training"]
    value = functools.partial(glued_value, notebook)
    n_test, final, chosen = value("ch6_n_test"), value("ch6_test_accuracy"), value("ch6_chosen_test_accuracy")
    assert value("ch6_test_accuracy_se") == pytest.approx(accuracy_standard_error(final, n_test))
    assert value("ch6_chosen_difference_pp") == pytest.approx(100 * (chosen - final))
    only_chosen, only_final = value("ch6_only_chosen_right"), value("ch6_only_final_right")
    p = _check_paired_test(chosen, final, only_chosen, only_final, n_test, value("ch6_mcnemar_p"))
    disagreements = only_chosen + only_final
    sentence = value("ch6_epoch_choice")
    if value("ch6_best_val_loss_epoch") == value("ch6_n_epochs"):
        assert chosen == final and "lowest after the last epoch" in sentence
        assert "weights of that epoch classify" not in sentence  # said once, not twice
    else:
        assert f"Of the {disagreements} test images" in sentence
        assert ("the difference is clear" in sentence) == (p < 0.05)


def test_ch6_training_accuracy_exceeds_test_accuracy(chapter):
    notebook = chapter["06_training"]
    train_accuracy = glued_value(notebook, "ch6_train_accuracy")
    test_accuracy = glued_value(notebook, "ch6_test_accuracy")
    assert train_accuracy > test_accuracy
    gap = glued_value(notebook, "ch6_accuracy_gap_pp")
    assert gap == pytest.approx(100 * (train_accuracy - test_accuracy))


def test_ch6_differences_to_the_tutorial_are_computed_from_the_quoted_figures(chapter):
    notebook = chapter["06_training"]
    assert glued_value(notebook, "ch6_tutorial_train_accuracy") == TUTORIAL_TRAIN_ACCURACY
    assert glued_value(notebook, "ch6_tutorial_test_accuracy") == TUTORIAL_TEST_ACCURACY
    for split, tutorial in (("train", TUTORIAL_TRAIN_ACCURACY), ("test", TUTORIAL_TEST_ACCURACY)):
        ours = glued_value(notebook, f"ch6_{split}_accuracy")
        difference = glued_value(notebook, f"ch6_{split}_accuracy_diff_pp")
        assert difference == pytest.approx(100 * (ours - tutorial))


def test_ch6_misclassified_count_matches_test_accuracy(chapter):
    notebook = chapter["06_training"]
    n_test = glued_value(notebook, "ch6_n_test")
    wrong = glued_value(notebook, "ch6_n_misclassified")
    assert wrong == round((1 - glued_value(notebook, "ch6_test_accuracy")) * n_test)
    assert 0 < glued_value(notebook, "ch6_confused_count") <= wrong
    assert glued_value(notebook, "ch6_confused_true") != glued_value(notebook, "ch6_confused_predicted")


def test_ch6_training_improved_on_the_first_epoch(chapter):
    notebook = chapter["06_training"]
    first, final = (glued_value(notebook, f"ch6_{when}_val_accuracy") for when in ("first", "final"))
    assert final > first
    assert glued_value(notebook, "ch6_final_loss") < glued_value(notebook, "ch6_final_val_loss")


# --- chapter 7: going further ----------------------------------------------------------------------


def _compared(only_a: tuple[int, ...], only_b: tuple[int, ...], n: int) -> str:
    """Chapter 7's phrase for setting a against setting b, trained with the same seeds and scored on the
    same ``n`` validation images, from how many images only a's run and only b's run got right, seed by
    seed: clear when McNemar's exact test finds the difference (p < 0.05) with every seed, in the
    direction of the mean, and the mean difference is more than twice its standard error over the seeds."""
    from scipy.stats import binomtest

    differences = [(a - b) / n for a, b in zip(only_a, only_b)]
    mean = statistics.fmean(differences)
    if len(differences) < 2 or mean == 0:
        return "not clearly different from"
    standard_error = statistics.stdev(differences) / math.sqrt(len(differences))
    every_seed = all(a + b > 0 and binomtest(a, a + b, 0.5).pvalue < 0.05 and (a > b) == (mean > 0)
                     for a, b in zip(only_a, only_b))
    if abs(mean) > 2 * standard_error and every_seed:
        return "clearly above" if mean > 0 else "clearly below"
    return "not clearly different from"


def test_ch7_compared_is_the_rule_the_chapter_states():
    assert _compared((30, 25, 40), (5, 8, 4), 1000) == "clearly above"
    assert _compared((5, 8, 4), (30, 25, 40), 1000) == "clearly below"
    assert _compared((30, 25, 12), (5, 8, 6), 1000) == "not clearly different from"  # one seed not significant
    assert _compared((12, 12, 150), (0, 0, 0), 1000) == "not clearly different from"  # the seeds' spread
    assert _compared((30,), (5,), 1000) == "not clearly different from"  # one seed


def test_ch7_sweep_comparisons_agree_with_every_seed_and_the_seeds_spread(chapter):
    from course_utils.models import accuracy_standard_error

    notebook = chapter["07_going_further"]
    value = functools.partial(glued_value, notebook)
    n_val, n_seeds = value("ch7_sweep_n_val"), value("ch7_n_seeds")
    assert n_seeds >= 3  # "several seeds"
    assert value("ch7_sweep_se") == pytest.approx(accuracy_standard_error(value("ch7_tutorial_accuracy"), n_val))
    comparisons = {  # phrase glued: (mean accuracy, compared with)
        "ch7_best_lr_vs_tutorial": ("ch7_best_lr_accuracy", "ch7_tutorial_accuracy"),
        "ch7_smallest_lr_vs_best": ("ch7_smallest_lr_accuracy", "ch7_best_lr_accuracy"),
        "ch7_largest_lr_vs_best": ("ch7_largest_lr_accuracy", "ch7_best_lr_accuracy"),
        "ch7_no_momentum_vs_tutorial": ("ch7_no_momentum_accuracy", "ch7_tutorial_momentum_accuracy"),
        "ch7_high_momentum_vs_tutorial": ("ch7_high_momentum_accuracy", "ch7_tutorial_momentum_accuracy"),
        "ch7_tutorial_decay_vs_no_decay": ("ch7_tutorial_decay_accuracy", "ch7_no_decay_accuracy"),
        "ch7_large_decay_vs_no_decay": ("ch7_decay_1e-2_accuracy", "ch7_no_decay_accuracy"),
        "ch7_many_vs_few_units": ("ch7_many_units_accuracy", "ch7_few_units_accuracy"),
    }
    for phrase, (a, b) in comparisons.items():
        only_a, only_b = value(f"{phrase}_only_a"), value(f"{phrase}_only_b")
        assert len(only_a) == len(only_b) == n_seeds, phrase
        assert value(phrase) == _compared(only_a, only_b, n_val), phrase
        # the counts are those of the runs whose mean accuracies the text gives: the same digits, so
        # mean(a) - mean(b) is the mean over the seeds of (only_a - only_b) / n exactly
        differences = [(x - y) / n_val for x, y in zip(only_a, only_b)]
        assert value(a) - value(b) == pytest.approx(statistics.fmean(differences), abs=1e-9), phrase
        assert value(f"{phrase}_mean_pp") == pytest.approx(100 * statistics.fmean(differences), abs=1e-7), phrase
        assert value(f"{phrase}_se_pp") == pytest.approx(
            100 * statistics.stdev(differences) / math.sqrt(n_seeds), abs=1e-7), phrase
        assert value(f"{a}_sd") >= 0 and value(f"{b}_sd") >= 0, phrase
    # "the best learning rate", "the smallest", "the largest" are what they say
    assert value("ch7_smallest_lr") < value("ch7_best_lr") < value("ch7_largest_lr")
    assert value("ch7_best_lr_accuracy") >= max(value(f"ch7_{w}_lr_accuracy") for w in ("smallest", "largest"))
    assert value("ch7_best_lr_accuracy") >= value("ch7_tutorial_accuracy")
    # the tutorial's settings are one run: the same mean in the learning-rate, momentum and decay sweeps
    assert value("ch7_tutorial_accuracy") == value("ch7_tutorial_momentum_accuracy") == value("ch7_tutorial_decay_accuracy")
    # "the tutorial's decay ... changes nothing": it shrinks the learning rate by less than 0.01 %
    assert value("ch7_lr_factor_tutorial_decay") > 0.9999
    assert value("ch7_tutorial_decay_vs_no_decay") == "not clearly different from"
    assert value("ch7_tutorial_decay_difference_pp") == pytest.approx(
        100 * abs(value("ch7_tutorial_decay_accuracy") - value("ch7_no_decay_accuracy")))
    # "momentum does much of the work" only where running without it was clearly worse
    assert value("ch7_momentum_sentence").startswith(
        "With a learning rate as small" if value("ch7_no_momentum_vs_tutorial") == "clearly below" else "Momentum")
    assert value("ch7_sweep_updates") == value("ch7_sweep_epochs") * math.ceil(value("ch7_sweep_n_train") / 64)


def test_ch7_momentum_sums_past_gradients_and_weight_decay_is_not_learning_rate_decay(chapter):
    notebook = chapter["07_going_further"]
    value = functools.partial(glued_value, notebook)
    assert value("ch7_momentum_step_factor_0.9") == pytest.approx(10)
    assert value("ch7_momentum_step_factor_0.99") == pytest.approx(100)
    # SGD(learning_rate=0.1, weight_decay=0.5), one update with a zero gradient: w = 1 - 0.1 * 0.5
    assert value("ch7_weight_decay_weight_after") == pytest.approx(0.95)
    assert value("ch7_weight_decay_lr_after") == pytest.approx(0.1)


def test_ch7_vanishing_gradient_claims_hold(chapter):
    notebook = chapter["07_going_further"]
    value = functools.partial(glued_value, notebook)
    layers = value("ch7_deep_layers")
    ratio = value("ch7_error_ratio_sigmoid")  # the backpropagated error, which (1/4)^L is about
    assert value("ch7_sigmoid_bound") == pytest.approx(0.25 ** layers)
    # "A 50 x 50 Glorot-uniform matrix has a spectral norm near 2 ... the bound is about 1/2 per layer"
    assert 1.7 < value("ch7_spectral_norm_min") <= value("ch7_spectral_norm_max") < 2.3
    assert 0.4 < value("ch7_per_layer_bound") < 0.6
    # the weights can stretch the error: 1/4 alone is no bound on a layer's factor
    assert value("ch7_per_layer_bound") > 0.25
    # the sentence about (1/4)^L follows the measured error, not the weights' gradients
    assert value("ch7_ratio_above_quarter_power") == (ratio > 0.25 ** layers)
    assert value("ch7_quarter_sentence").startswith(
        "The error shrank less than that" if ratio > 0.25 ** layers else "The error shrank even more than that")
    # "The error's ratio stays below that bound, as it must" (the product of 1/4 ||W||_2 over the layers)
    assert ratio < value("ch7_product_bound")
    assert value("ch7_per_layer_measured") == pytest.approx(ratio ** (1 / layers))
    # "The gradient's ratio is the larger of the two because ... the pixels are ... larger"
    assert value("ch7_grad_ratio_sigmoid") > ratio and value("ch7_input_norm_ratio_sigmoid") > 1
    # the vanishing gradient the chapter shows: sigmoid's first layer gets orders of magnitude less
    assert value("ch7_grad_ratio_sigmoid") < 1e-3 < value("ch7_grad_ratio_relu")
    # "the error shrinks by a few-fold at most" in tanh and ReLU networks, "larger than the errors' ratios"
    for activation in ("tanh", "relu"):
        error_ratio = value(f"ch7_error_ratio_{activation}")
        assert 0.1 < error_ratio and error_ratio > 1e3 * ratio, activation
        assert value(f"ch7_grad_ratio_{activation}") > error_ratio, activation


def test_ch7_vanishing_gradient_holds_over_several_draws(chapter):
    notebook = chapter["07_going_further"]
    value = functools.partial(glued_value, notebook)
    draws, layers = value("ch7_deep_draws"), value("ch7_deep_layers")
    assert draws == value("ch7_n_seeds")
    low, high = {}, {}
    for activation in ("sigmoid", "tanh", "relu"):
        low[activation], high[activation] = (value(f"ch7_error_ratio_{activation}_{w}") for w in ("min", "max"))
        # the draw plotted above is one of them
        assert low[activation] <= value(f"ch7_error_ratio_{activation}") <= high[activation], activation
    every_draw = 1000 * high["sigmoid"] < min(low["tanh"], low["relu"])
    assert value("ch7_draws_sentence").startswith("In every draw" if every_draw else "Not in every draw")
    count = value("ch7_quarter_power_count")
    assert 0 <= count <= draws
    if high["sigmoid"] < 0.25 ** layers:
        assert count == draws
    if low["sigmoid"] >= 0.25 ** layers:
        assert count == 0
    # the one draw of the W1 sentence is counted
    assert count >= (value("ch7_error_ratio_sigmoid") < 0.25 ** layers)


def test_ch7_the_validation_set_chooses_the_width_and_the_epoch(chapter):
    notebook = chapter["07_going_further"]
    value = functools.partial(glued_value, notebook)
    n_train, n_validation, n_fit = value("ch7_n_train"), value("ch7_n_validation"), value("ch7_n_fit")
    # the last 10 % held out, the images validation_split=0.1 held out in chapter 6
    assert n_validation == round(0.1 * n_train) and n_fit + n_validation == n_train
    assert n_fit == value("ch7_n_fit_tutorial")
    chosen, other, candidates = value("ch7_n_hidden"), value("ch7_other_n_hidden"), value("ch7_candidates")
    assert sorted((chosen, other)) == sorted(candidates) and chosen != other
    assert value("ch7_candidates_text") == " or ".join(f"{n:,}" for n in candidates)
    assert 1 <= value("ch7_best_epoch") <= value("ch7_epochs") and 1 <= value("ch7_other_best_epoch") <= value("ch7_epochs")
    # the higher validation accuracy wins; a tie goes to the smaller network
    chosen_accuracy, other_accuracy = value("ch7_chosen_val_accuracy"), value("ch7_other_val_accuracy")
    assert chosen_accuracy > other_accuracy or (chosen_accuracy == other_accuracy and chosen < other)
    only_chosen, only_other = value("ch7_val_only_chosen"), value("ch7_val_only_other")
    p = _check_paired_test(chosen_accuracy, other_accuracy, only_chosen, only_other, n_validation,
                           value("ch7_val_mcnemar_p"))
    disagreements = only_chosen + only_other
    sentence = value("ch7_width_sentence")
    assert sentence.startswith(f"On the validation images, {chosen:,} units" if p < 0.05 else "The two widths are not clearly")
    assert f"of the {disagreements} images" in sentence
    assert value("ch7_selection_seconds") >= value("ch7_fit_seconds") > 0


def test_ch7_better_mlp_beats_chapter_5_and_says_what_changed(chapter):
    ch4, ch6, ch7 = chapter["04_keras_mlp"], chapter["06_training"], chapter["07_going_further"]
    value = functools.partial(glued_value, ch7)
    assert value("ch7_n_test") == glued_value(ch6, "ch6_n_test")
    # "That is far fewer mistakes than the tutorial's network made"
    assert value("ch7_n_errors") < glued_value(ch6, "ch6_n_misclassified")
    # the comparison table
    assert value("ch7_tutorial_params") == glued_value(ch4, "ch4_params_total")
    assert value("ch7_params_ratio") == pytest.approx(value("ch7_params") / value("ch7_tutorial_params"))
    n_hidden, layers = value("ch7_n_hidden"), value("ch7_n_hidden_layers")
    assert value("ch7_params") == 784 * n_hidden + n_hidden + (layers - 1) * (n_hidden + 1) * n_hidden + (n_hidden + 1) * 10
    assert (value("ch7_tutorial_batch_size"), value("ch7_tutorial_epochs")) == (64, 50)
    assert value("ch7_n_fit_tutorial") == round(0.9 * value("ch7_n_train"))
    # "At the chosen epoch the training accuracy was ..., below / no lower than the test accuracy"
    below = value("ch7_chosen_train_accuracy") < value("ch7_test_accuracy")
    assert value("ch7_train_vs_test").startswith("below the test accuracy" if below else "no lower than")
    # what bench_book.py reads to train the same model with other seeds
    settings = value("ch7_better_settings")
    assert {k: settings[k] for k in ("n_hidden", "n_hidden_layers", "epochs", "batch_size", "validation_fraction")} == {
        "n_hidden": n_hidden, "n_hidden_layers": layers, "epochs": value("ch7_epochs"),
        "batch_size": value("ch7_batch_size"), "validation_fraction": 0.1}


def test_ch7_says_what_the_better_mlp_reached_against_the_99_percent_goal(chapter, full_mnist):
    notebook = chapter["07_going_further"]
    value = functools.partial(glued_value, notebook)
    test_accuracy, n_test = value("ch7_test_accuracy"), value("ch7_n_test")
    assert value("ch7_n_errors") == round((1 - test_accuracy) * n_test)
    assert value("ch7_accuracy_bar") == 0.99
    sentence = value("ch7_accuracy_bar_sentence")
    if not full_mnist:
        assert sentence.startswith("This page was built on the small sample") and "not meant for so few" in sentence
        gap = 100 * (0.99 - test_accuracy)
        assert (f"stays {gap:.1f} percentage points below" in sentence) == (gap > 0)
    elif test_accuracy >= 0.99:
        assert sentence.startswith("On full MNIST that is 99% or more")
    else:
        assert sentence.startswith(f"That falls short of the 99% this section set out for, by {100 * (0.99 - test_accuracy):.2f}")

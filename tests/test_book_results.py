"""What a reader of the built book is told, checked on the numbers the chapters glued into it.

The book build executes every chapter (`make book`) and keeps the executed copies in
`book/_build/jupyter_execute/`. Every number in the prose comes from a `glue(...)` call, which emits an
output of the type `application/papermill.record/<mime type>`; myst-nb moves those outputs out of the
executed copy into `<chapter>.glue.json` beside it, and renders the prose from there. These tests read
the same values back, so a claim like "the test accuracy is close to the tutorial's" is checked on
exactly the number the reader sees.

Adding a check is one function: `glued_value(chapter["05_training"], "ch5_test_accuracy")`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from course_utils.book import glued_values

# Each executed notebook is parsed once per test session.
_glued_values = cache(glued_values)

#: What the tutorial (TensorFlow 1) reported after 50 epochs; chapter 5 quotes the same figures.
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
    """The executed chapters by file stem: ``chapter["05_training"]``."""
    return _Chapters((path.stem, path) for path in executed_notebooks)


@pytest.fixture(scope="module")
def full_mnist(chapter) -> bool:
    """Whether chapter 5 trained on full MNIST (not the embedded 5,000-digit fallback)."""
    return bool(glued_value(chapter["05_training"], "ch5_full_mnist"))


def _needs_full_mnist(full_mnist: bool) -> None:
    if not full_mnist:
        pytest.skip("the book was built with the embedded digits, not full MNIST: accuracies differ")


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
    assert updates == 50 * 844  # ceil(54,000 / 64) batches per epoch
    assert glued_value(notebook, "ch4_lr_after_training") == pytest.approx(0.001 / (1 + 1e-7 * updates))
    assert glued_value(notebook, "ch4_lr_ignored_decay") == pytest.approx(0.001)


# --- chapter 5: training and evaluation -------------------------------------------------------------


def test_ch5_states_its_data_source(chapter, full_mnist):
    source = glued_value(chapter["05_training"], "ch5_data_source")
    assert isinstance(source, str) and source
    assert ("60,000" in source) == full_mnist


def test_ch5_test_accuracy_is_close_to_the_tutorials(chapter, full_mnist):
    _needs_full_mnist(full_mnist)
    test_accuracy = glued_value(chapter["05_training"], "ch5_test_accuracy")
    assert 0.95 <= test_accuracy <= 0.99, (
        f"test accuracy {test_accuracy:.2%}, the tutorial's {TUTORIAL_TEST_ACCURACY:.2%}"
    )


def test_ch5_training_accuracy_exceeds_test_accuracy(chapter):
    notebook = chapter["05_training"]
    train_accuracy = glued_value(notebook, "ch5_train_accuracy")
    test_accuracy = glued_value(notebook, "ch5_test_accuracy")
    assert train_accuracy > test_accuracy
    gap = glued_value(notebook, "ch5_accuracy_gap_pp")
    assert gap == pytest.approx(100 * (train_accuracy - test_accuracy))


def test_ch5_differences_to_the_tutorial_are_computed_from_the_quoted_figures(chapter):
    notebook = chapter["05_training"]
    assert glued_value(notebook, "ch5_tutorial_train_accuracy") == TUTORIAL_TRAIN_ACCURACY
    assert glued_value(notebook, "ch5_tutorial_test_accuracy") == TUTORIAL_TEST_ACCURACY
    for split, tutorial in (("train", TUTORIAL_TRAIN_ACCURACY), ("test", TUTORIAL_TEST_ACCURACY)):
        ours = glued_value(notebook, f"ch5_{split}_accuracy")
        difference = glued_value(notebook, f"ch5_{split}_accuracy_diff_pp")
        assert difference == pytest.approx(100 * (ours - tutorial))


def test_ch5_misclassified_count_matches_test_accuracy(chapter):
    notebook = chapter["05_training"]
    n_test = glued_value(notebook, "ch5_n_test")
    wrong = glued_value(notebook, "ch5_n_misclassified")
    assert wrong == round((1 - glued_value(notebook, "ch5_test_accuracy")) * n_test)
    assert 0 < glued_value(notebook, "ch5_confused_count") <= wrong
    assert glued_value(notebook, "ch5_confused_true") != glued_value(notebook, "ch5_confused_predicted")


def test_ch5_training_improved_on_the_first_epoch(chapter):
    notebook = chapter["05_training"]
    first, final = (glued_value(notebook, f"ch5_{when}_val_accuracy") for when in ("first", "final"))
    assert final > first
    assert glued_value(notebook, "ch5_final_loss") < glued_value(notebook, "ch5_final_val_loss")


# --- chapter 6: going further ----------------------------------------------------------------------


def test_ch6_better_mlp_reaches_its_accuracy_bar(chapter):
    notebook = chapter["06_going_further"]
    if not glued_value(notebook, "ch6_full_mnist"):
        pytest.skip("chapter 6 was built with the embedded digits, not full MNIST: accuracies differ")
    test_accuracy = glued_value(notebook, "ch6_test_accuracy")
    assert test_accuracy >= 0.986, f"chapter 6's better MLP reached only {test_accuracy:.2%} test accuracy"
    n_test = glued_value(notebook, "ch6_n_test")
    assert glued_value(notebook, "ch6_n_errors") == round((1 - test_accuracy) * n_test)
    # the vanishing gradient the chapter shows: sigmoid's first layer gets orders of magnitude less
    assert glued_value(notebook, "ch6_grad_ratio_sigmoid") < 1e-3 < glued_value(notebook, "ch6_grad_ratio_relu")

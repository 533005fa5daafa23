"""What chapter 8 (reverse-mode automatic differentiation) tells its reader, checked on its glued numbers."""

from __future__ import annotations

import functools

import pytest

from test_book_results import chapter, full_mnist, glued_value  # noqa: F401

STEM = "08_autodiff"


@pytest.fixture(scope="module")
def value(chapter):  # noqa: F811
    return functools.partial(glued_value, chapter[STEM])


def test_ch8_says_which_data_it_was_built_on(chapter, full_mnist):  # noqa: F811
    from course_utils.book import glued_outputs

    note = glued_outputs(chapter[STEM])["ch8_data_note"]["data"]["text/markdown"]
    note = "".join(note) if isinstance(note, list) else note
    assert "data-source" in note
    assert ("Built on full MNIST" in note) == full_mnist
    assert glued_value(chapter[STEM], "ch8_full_mnist") == full_mnist


def test_ch8_graph_counts_add_up(value):
    # "three per layer (transpose, matrix product, bias) plus the two tanh and the loss"
    assert value("ch8_n_operations") == 3 * 3 + 2 + 1
    assert value("ch8_n_leaves") == 6 + 2  # six weight and bias arrays, the images and the labels
    assert value("ch8_n_nodes") == value("ch8_n_operations") + value("ch8_n_leaves")
    assert value("ch8_n_weights") == 784 * 50 + 50 + 50 * 50 + 50 + 50 * 10 + 10
    assert value("ch8_fd_passes") == 2 * value("ch8_n_weights")
    assert value("ch8_jacobian_entries") == (value("ch8_n_batch") * 50) * (value("ch8_n_batch") * 784)


def test_ch8_every_vjp_matches_finite_differences_and_a_wrong_one_does_not(value):
    assert value("ch8_vjp_n_ops") >= 15
    assert value("ch8_vjp_max_error") < 1e-7
    assert value("ch8_vjp_broken_error") > 1e-2  # "the check can fail"
    assert value("ch8_composed_difference") < 1e-15  # "the same gradient", composed of primitives


def test_ch8_sweep_written_out_is_backward_and_its_cost_is_about_one_forward_pass(value):
    assert value("ch8_sweep_difference") == 0  # "to the last bit"
    assert value("ch8_backward_ratio") == pytest.approx(2.0)  # two products per product
    assert 1.0 <= value("ch8_backward_ratio_needed") < 1.2  # "about one forward pass more"


def test_ch8_sweep_equals_chapter_5s_backpropagation(value):
    assert value("ch8_ch5_max_difference") < 1e-15  # float64 rounding
    assert value("ch8_ch5_loss_difference") < 1e-14
    assert value("ch8_ch5_max_gradient") > 1e-3  # the gradients compared are not all tiny


def test_ch8_sweep_equals_gradient_tape_for_every_network(value):
    assert value("ch8_tape_n_networks") == 15  # depths 1 to 5, three activations
    assert value("ch8_tape_max_difference") < 1e-13
    assert value("ch8_tape_max_loss_difference") < 1e-13


def test_ch8_float32_keras_differs_by_float32_rounding(value):
    keras32, numpy32 = value("ch8_keras32_relative_error"), value("ch8_numpy32_relative_error")
    eps = value("ch8_float32_eps")
    assert eps == pytest.approx(2.0**-23)
    # "about seven significant digits ... a few times" the float32 spacing, far above float64's
    for error in (keras32, numpy32):
        assert 1e-10 < error < 100 * eps
    assert value("ch8_keras32_max_difference") < 1e-6
    assert value("ch8_float32_ratio") == pytest.approx(keras32 / numpy32)


def test_ch8_float32_sentence_agrees_with_the_numbers(value):
    ratio, sentence = value("ch8_float32_ratio"), value("ch8_float32_sentence")
    if 0.1 <= ratio <= 10:
        assert sentence.startswith("of the same size as")
    elif ratio > 10:
        assert sentence.startswith("larger than")
    else:
        assert sentence.startswith("smaller than")

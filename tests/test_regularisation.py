"""Tests for course_utils.regularisation: penalties, weight decay, dropout, early stopping, batch norm.

Each NumPy function is compared with the Keras object it describes on identical numbers (in float64
where Keras allows it, so that the tolerances are tight), and the batch-norm gradient with finite
differences. Where a check could pass by accident, a deliberately different variant must fail it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import course_utils  # noqa: F401  (before Keras: quietens TensorFlow)
import keras
from course_utils import autodiff
from course_utils.backprop import numerical_gradient, relative_error
from course_utils.regularisation import (
    EarlyStoppingResult,
    adam_step,
    batch_norm_backward,
    batch_norm_graph,
    batch_norm_inference,
    batch_norm_train,
    early_stopping,
    inverted_dropout,
    l2_penalty,
    l2_penalty_gradient,
    repeated_passes,
    sgd_step,
    update_moving_statistics,
)


def _keras_updates(optimizer, w0, gradients):
    """The variable after ``optimizer`` applied each gradient in turn.

    In float32, as Keras trains: Keras keeps the learning rate and Adam's betas as float32 numbers even for
    a float64 variable, so a float64 comparison would only show that rounding.
    """
    w = keras.Variable(w0.copy(), dtype="float32")
    for g in gradients:
        optimizer.apply_gradients([(g, w)])
    return np.asarray(w.numpy())


# --- L2 penalty and weight decay ---------------------------------------------------------------------


def test_l2_penalty_is_keras_l2_regularizer_summed_over_kernels():
    rng = np.random.default_rng(0)
    kernels = [rng.normal(size=(4, 3)), rng.normal(size=(3, 2))]
    regularizer = keras.regularizers.L2(0.01)
    expected = sum(float(regularizer(keras.ops.convert_to_tensor(k))) for k in kernels)
    assert l2_penalty(kernels, 0.01) == pytest.approx(expected, rel=1e-6)


def test_l2_penalty_gradient_is_twice_l2_times_the_weights_and_matches_autodiff():
    import tensorflow as tf

    rng = np.random.default_rng(1)
    W = rng.normal(size=(5, 3))
    variable = tf.Variable(W)
    with tf.GradientTape() as tape:
        penalty = keras.regularizers.L2(0.03)(variable)
    # rtol: Keras keeps the coefficient 0.03 as a float32 number
    np.testing.assert_allclose(l2_penalty_gradient(W, 0.03), tape.gradient(penalty, variable).numpy(), rtol=1e-6)
    np.testing.assert_allclose(l2_penalty_gradient(W, 0.03), 0.06 * W)


def test_sgd_step_with_weight_decay_is_keras_sgd_with_weight_decay():
    rng = np.random.default_rng(2)
    w0 = rng.normal(size=(6, 4)).astype(np.float32)
    gradients = [rng.normal(size=(6, 4)).astype(np.float32) for _ in range(5)]
    keras_w = _keras_updates(keras.optimizers.SGD(0.1, weight_decay=0.02), w0, gradients)
    w = w0
    for g in gradients:
        w = sgd_step(w, g, 0.1, weight_decay=0.02)
    np.testing.assert_allclose(w, keras_w, rtol=1e-6, atol=1e-7)
    assert not np.allclose(w, _keras_updates(keras.optimizers.SGD(0.1), w0, gradients), rtol=1e-4, atol=0)


def test_with_plain_sgd_an_l2_penalty_and_weight_decay_are_the_same_update():
    rng = np.random.default_rng(3)
    w, g, l2 = rng.normal(size=10), rng.normal(size=10), 1e-3
    penalised = sgd_step(w, g + l2_penalty_gradient(w, l2), 0.05)
    decayed = sgd_step(w, g, 0.05, weight_decay=2 * l2)
    np.testing.assert_allclose(penalised, decayed, rtol=1e-14)
    # and the coefficients matter: decay = l2 (not 2 * l2) is a different update
    assert not np.allclose(penalised, sgd_step(w, g, 0.05, weight_decay=l2), rtol=1e-9, atol=0)


@pytest.mark.parametrize("weight_decay", [0.0, 0.004])
def test_adam_step_is_keras_adam_and_adamw(weight_decay):
    rng = np.random.default_rng(4)
    w0 = rng.normal(size=(5, 3)).astype(np.float32)
    gradients = [rng.normal(scale=10.0 ** rng.integers(-4, 1), size=(5, 3)).astype(np.float32) for _ in range(8)]
    optimizer = (keras.optimizers.AdamW(0.01, weight_decay=weight_decay) if weight_decay
                 else keras.optimizers.Adam(0.01))
    keras_w = _keras_updates(optimizer, w0, gradients)
    w, m, v = w0, np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(gradients, start=1):
        w, m, v = adam_step(w, g, m, v, t, 0.01, weight_decay=weight_decay)
    np.testing.assert_allclose(w, keras_w, rtol=1e-5, atol=1e-6)  # float32 rounding; the steps are about 0.01


def test_adam_with_an_l2_penalty_is_not_adamw():
    rng = np.random.default_rng(5)
    w0, l2 = rng.normal(size=20), 1e-3
    gradients = [rng.normal(size=20) for _ in range(5)]
    w_l2, w_decay = w0, w0
    m1 = v1 = m2 = v2 = np.zeros(20)
    for t, g in enumerate(gradients, start=1):
        w_l2, m1, v1 = adam_step(w_l2, g + l2_penalty_gradient(w_l2, l2), m1, v1, t, 0.01)
        w_decay, m2, v2 = adam_step(w_decay, g, m2, v2, t, 0.01, weight_decay=2 * l2)
    assert np.abs(w_l2 - w_decay).max() > 1e-6


def test_adam_moves_a_weight_with_only_a_penalty_gradient_by_the_learning_rate_whatever_the_coefficient():
    # as long as the gradient is large against epsilon / sqrt(1 - beta_2**t), about 3e-6 at the first update
    for l2 in (1e-1, 1e-2, 1e-3):
        w, m, v = np.array([0.5, -0.5]), np.zeros(2), np.zeros(2)
        new_w, _, _ = adam_step(w, l2_penalty_gradient(w, l2), m, v, 1, 0.001)
        np.testing.assert_allclose(np.abs(w - new_w), 0.001, rtol=0.01)


def test_adam_step_keeps_float32():
    w = np.ones(3, dtype=np.float32)
    new_w, m, v = adam_step(w, np.ones(3, dtype=np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32), 1)
    assert new_w.dtype == m.dtype == v.dtype == np.float32


# --- dropout -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.9])
def test_inverted_dropout_equals_keras_dropout_given_its_mask_exactly(rate):
    rng = np.random.default_rng(6)
    A = rng.normal(size=(64, 50)).astype(np.float32)
    reveal, dropout = keras.layers.Dropout(rate, seed=11), keras.layers.Dropout(rate, seed=11)
    keep = reveal(np.ones_like(A), training=True).numpy() != 0
    np.testing.assert_array_equal(inverted_dropout(A, keep, rate), dropout(A, training=True).numpy())


def test_inverted_dropout_keeps_the_expected_activation():
    rng = np.random.default_rng(7)
    A = rng.normal(size=(20_000, 3))
    keep = rng.random(A.shape) >= 0.4
    np.testing.assert_allclose(inverted_dropout(A, keep, 0.4).mean(axis=0), A.mean(axis=0), atol=0.05)
    np.testing.assert_array_equal(inverted_dropout(A, np.ones(A.shape, bool), 0.0), A)


def test_inverted_dropout_rejects_bad_rates_and_masks():
    A = np.ones((2, 3))
    with pytest.raises(ValueError, match="rate"):
        inverted_dropout(A, np.ones((2, 3), bool), 1.0)
    with pytest.raises(ValueError, match="boolean"):
        inverted_dropout(A, np.ones((2, 3)), 0.5)
    with pytest.raises(ValueError, match="shape"):
        inverted_dropout(A, np.ones((3, 2), bool), 0.5)


# --- early stopping ------------------------------------------------------------------------------------


class _Model:
    stop_training = False


def _keras_early_stopping(values, patience, min_delta=0.0, mode="min"):
    """Drive keras.callbacks.EarlyStopping through a recorded history as fit would."""
    callback = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, min_delta=min_delta, mode=mode)
    model = _Model()
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {"val_loss": value})
        if model.stop_training:
            break
    stopped = callback.stopped_epoch + 1 if callback.stopped_epoch > 0 else None
    return EarlyStoppingResult(best_epoch=callback.best_epoch + 1, stopped_epoch=stopped)


def test_early_stopping_on_a_plain_history():
    values = [1.0, 0.8, 0.7, 0.72, 0.71, 0.7, 0.75, 0.6]
    assert early_stopping(values, patience=3) == EarlyStoppingResult(best_epoch=3, stopped_epoch=6)  # 0.7 ties
    assert early_stopping(values, patience=5) == EarlyStoppingResult(best_epoch=8, stopped_epoch=None)
    assert early_stopping(values, patience=3, mode="max") == EarlyStoppingResult(best_epoch=1, stopped_epoch=4)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(0, 6).map(float), min_size=1, max_size=15),  # small integers: many ties
       patience=st.integers(0, 4), min_delta=st.sampled_from([0.0, 0.5, 1.5]), mode=st.sampled_from(["min", "max"]))
def test_early_stopping_is_keras_rule(values, patience, min_delta, mode):
    assert early_stopping(values, patience, min_delta, mode) == _keras_early_stopping(values, patience, min_delta, mode)


def test_early_stopping_rejects_bad_arguments():
    with pytest.raises(ValueError, match="patience"):
        early_stopping([1.0], -1)
    with pytest.raises(ValueError, match="mode"):
        early_stopping([1.0], 1, mode="lowest")
    with pytest.raises(ValueError, match="empty"):
        early_stopping([], 1)


# --- batch normalisation -------------------------------------------------------------------------------


def _keras_batch_norm(gamma, beta, momentum=0.99, epsilon=1e-3):
    layer = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon, dtype="float64")
    layer.build((None, len(gamma)))
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    return layer


def test_batch_norm_training_moving_statistics_and_inference_equal_keras():
    rng = np.random.default_rng(8)
    gamma, beta = rng.normal(1, 0.3, 6), rng.normal(size=6)
    layer = _keras_batch_norm(gamma, beta, momentum=0.9, epsilon=1e-3)
    moving_mean, moving_variance = np.zeros(6), np.ones(6)
    for _ in range(4):
        X = rng.normal(loc=2.0, scale=3.0, size=(16, 6))
        Y, mean, variance = batch_norm_train(X, gamma, beta)
        np.testing.assert_allclose(Y, layer(X, training=True).numpy(), rtol=1e-10, atol=1e-12)
        moving_mean, moving_variance = update_moving_statistics(moving_mean, moving_variance, mean, variance, 0.9)
    np.testing.assert_allclose(moving_mean, layer.moving_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(moving_variance, layer.moving_variance.numpy(), rtol=1e-12)
    X = rng.normal(size=(5, 6))
    np.testing.assert_allclose(batch_norm_inference(X, gamma, beta, moving_mean, moving_variance),
                               layer(X, training=False).numpy(), rtol=1e-10, atol=1e-12)


def test_batch_norm_uses_the_biased_variance():
    X = np.array([[0.0], [2.0]])
    _, mean, variance = batch_norm_train(X, np.ones(1), np.zeros(1))
    assert (float(mean[0]), float(variance[0])) == (1.0, 1.0)  # divided by n = 2, not n - 1 = 1


def test_batch_norm_output_columns_have_mean_beta_and_spread_gamma():
    rng = np.random.default_rng(9)
    X = rng.normal(loc=5.0, scale=4.0, size=(200, 3))
    gamma, beta = np.array([1.0, 2.0, 0.5]), np.array([0.0, -1.0, 3.0])
    Y, _, _ = batch_norm_train(X, gamma, beta, epsilon=0.0)
    np.testing.assert_allclose(Y.mean(axis=0), beta, atol=1e-12)
    np.testing.assert_allclose(Y.std(axis=0), gamma, rtol=1e-12)


def test_batch_norm_backward_matches_finite_differences_the_graph_and_sums_to_zero():
    rng = np.random.default_rng(10)
    X, gamma, beta = rng.normal(size=(7, 4)) * 2 + 1, rng.normal(1, 0.5, 4), rng.normal(size=4)
    G = rng.normal(size=(7, 4))

    def loss():
        return float(np.sum(G * batch_norm_train(X, gamma, beta)[0]))

    numeric = numerical_gradient(loss, [X, gamma, beta])
    closed = batch_norm_backward(G, X, gamma)
    assert relative_error(list(closed), numeric) < 1e-7
    tensors = [autodiff.Tensor(a) for a in (X, gamma, beta)]
    graph_out = batch_norm_graph(*tensors)
    np.testing.assert_allclose(graph_out.value, batch_norm_train(X, gamma, beta)[0], rtol=1e-12)
    autodiff.sum(G * graph_out).backward()
    for graph_grad, closed_grad in zip([t.grad for t in tensors], closed):
        np.testing.assert_allclose(graph_grad, closed_grad, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(closed[0].sum(axis=0), 0, atol=1e-12)
    # the naive gradient, gamma / sqrt(var + eps) * G, ignores the batch statistics and is wrong
    naive = gamma / np.sqrt(X.var(axis=0) + 1e-3) * G
    assert relative_error(naive, numeric[0]) > 0.1


def test_batch_norm_gradient_equals_gradient_tape_on_keras_layer():
    import tensorflow as tf

    rng = np.random.default_rng(11)
    X, gamma, beta = rng.normal(size=(9, 5)), rng.normal(1, 0.5, 5), rng.normal(size=5)
    G = rng.normal(size=(9, 5))
    layer = _keras_batch_norm(gamma, beta)
    X_tf = tf.constant(X)
    with tf.GradientTape() as tape:
        tape.watch(X_tf)
        loss = tf.reduce_sum(G * layer(X_tf, training=True))
    tape_grads = [g.numpy() for g in tape.gradient(loss, [X_tf, layer.gamma, layer.beta])]
    for ours, theirs in zip(batch_norm_backward(G, X, gamma), tape_grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


# --- repeated passes -----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), n_updates=st.integers(1, 40), batch_size=st.integers(1, 64))
def test_repeated_passes_are_permutations_joined_end_to_end(n, n_updates, batch_size):
    rows = repeated_passes(n, n_updates, batch_size, np.random.default_rng(0))
    assert len(rows) == n_updates * batch_size
    for start in range(0, len(rows) - n + 1, n):  # every complete pass visits each example once
        assert sorted(rows[start:start + n]) == list(range(n))
    assert set(rows) <= set(range(n))
    np.testing.assert_array_equal(rows, repeated_passes(n, n_updates, batch_size, np.random.default_rng(0)))


def test_repeated_passes_rejects_empty_requests():
    with pytest.raises(ValueError, match="at least 1"):
        repeated_passes(0, 10, 64, np.random.default_rng(0))

"""Tests for course_utils.backprop: the loss, backpropagation and SGD with momentum in NumPy.

The gradients are checked against central finite differences and against TensorFlow's automatic
differentiation; the optimizer against Keras's own ``model.fit``. Each check also shows that it can
fail: a deliberately wrong variant must miss by far more than the tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest

import course_utils  # noqa: F401  (before Keras: quietens TensorFlow)
import keras
from course_utils import backprop
from course_utils.models import build_tutorial_mlp, tutorial_learning_rate, tutorial_optimizer


def _random_network(rng, sizes, scale=0.5):
    weights = [rng.normal(scale=scale, size=(m, d)) for d, m in zip(sizes[:-1], sizes[1:])]
    biases = [rng.normal(scale=scale, size=m) for m in sizes[1:]]
    return weights, biases


def _random_batch(rng, n, n_features, n_classes):
    return rng.normal(size=(n, n_features)), np.eye(n_classes)[rng.integers(0, n_classes, size=n)]


# --- softmax, log-softmax and the loss --------------------------------------------------------------


def test_softmax_rows_are_probabilities_even_for_huge_net_inputs():
    Z = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0], [0.0, np.log(2.0), 0.0]])
    with np.errstate(all="raise"):
        P = backprop.softmax(Z)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_allclose(P[2], [0.25, 0.5, 0.25])
    np.testing.assert_allclose(P[0], backprop.softmax(np.array([[1.0, 2.0, 0.0]]))[0])


def test_log_softmax_is_log_of_softmax_and_stays_finite_where_softmax_underflows():
    rng = np.random.default_rng(0)
    Z = rng.normal(scale=3, size=(20, 10))
    np.testing.assert_allclose(backprop.log_softmax(Z), np.log(backprop.softmax(Z)))
    z = np.array([[0.0, 120.0]], dtype=np.float32)
    assert backprop.softmax(z)[0, 0] == 0  # e^-120 underflows in float32 ...
    np.testing.assert_allclose(backprop.log_softmax(z), [[-120.0, 0.0]])  # ... its logarithm does not


def test_cross_entropy_is_the_mean_negative_log_probability_of_the_true_class():
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(8, 5))
    labels = rng.integers(0, 5, size=8)
    expected = -np.mean(np.log(backprop.softmax(Z)[np.arange(8), labels]))
    assert backprop.cross_entropy(np.eye(5)[labels], Z) == pytest.approx(expected)


def test_cross_entropy_of_a_confident_mistake_is_exact():
    z = np.array([[0.0, 120.0]], dtype=np.float32)
    assert backprop.cross_entropy(np.array([[1.0, 0.0]]), z) == pytest.approx(120.0)


def test_cross_entropy_is_keras_categorical_crossentropy_from_logits():
    rng = np.random.default_rng(2)
    Z, Y = rng.normal(scale=4, size=(16, 10)).astype("float32"), np.eye(10)[rng.integers(0, 10, 16)]
    keras_loss = float(keras.losses.CategoricalCrossentropy(from_logits=True)(Y, Z))
    assert backprop.cross_entropy(Y, Z) == pytest.approx(keras_loss, rel=1e-5)


def test_two_class_cross_entropy_is_logistic_regressions_cost():
    rng = np.random.default_rng(3)
    Z = rng.normal(scale=3, size=(50, 2))
    y = rng.integers(0, 2, size=50)
    a = 1 / (1 + np.exp(-(Z[:, 1] - Z[:, 0])))
    binary = -np.mean(y * np.log(a) + (1 - y) * np.log(1 - a))
    assert backprop.cross_entropy(np.eye(2)[y], Z) == pytest.approx(binary)


# --- the forward pass ------------------------------------------------------------------------------


def test_forward_returns_every_layers_activations():
    rng = np.random.default_rng(4)
    weights, biases = _random_network(rng, [7, 5, 4, 3])
    X, _ = _random_batch(rng, 6, 7, 3)
    activations = backprop.forward(X, weights, biases)
    assert [A.shape for A in activations] == [(6, 7), (6, 5), (6, 4), (6, 3)]
    assert activations[0] is X
    A_h1 = np.tanh(X @ weights[0].T + biases[0])
    np.testing.assert_allclose(activations[1], A_h1)
    np.testing.assert_allclose(activations[-1].sum(axis=1), 1.0)
    Zs = backprop.net_inputs(X, weights, biases)
    np.testing.assert_allclose(backprop.softmax(Zs[-1]), activations[-1])


def test_forward_computes_what_the_keras_model_predicts():
    model = build_tutorial_mlp(12, 6, 4, seed=0)
    rng = np.random.default_rng(5)
    weights, biases = backprop.keras_weights(model)
    biases = [rng.normal(scale=0.1, size=b.shape).astype("float32") for b in biases]  # check the biases too
    model.set_weights(backprop.to_keras_weights(weights, biases))
    X = rng.uniform(-1, 1, size=(9, 12)).astype("float32")
    np.testing.assert_allclose(backprop.forward(X, weights, biases)[-1], model.predict(X, verbose=0), atol=1e-6)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
def test_dense_forward_computes_what_keras_predicts_for_every_activation(activation):
    # The grader runs students' recorded models with it (grading/measure.py): it must be Keras's function.
    model = build_tutorial_mlp(12, 6, 4, hidden_activation=activation, seed=0)
    model.layers[-1].activation = keras.activations.get("softmax")
    rng = np.random.default_rng(6)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    layers = backprop.dense_layers(model)
    assert [a for _, _, a in layers] == [activation, activation, "softmax"]
    X = rng.normal(size=(9, 12)).astype("float32")
    np.testing.assert_allclose(backprop.dense_forward(X, layers), model.predict(X, verbose=0), rtol=1e-5, atol=1e-6)
    wrong = [(kernel, bias, "tanh" if a != "tanh" else "relu") for kernel, bias, a in layers[:-1]] + layers[-1:]
    assert not np.allclose(backprop.dense_forward(X, wrong), model.predict(X, verbose=0), atol=1e-3)


def test_dense_layers_refuses_a_layer_it_cannot_compute():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.3), keras.layers.Dense(2),
                              keras.layers.Reshape((2, 1))])
    with pytest.raises(ValueError, match="is a Reshape, not a Dense layer"):
        backprop.dense_layers(model)
    assert len(backprop.dense_layers(keras.Sequential(model.layers[:2]))) == 1, "dropout computes nothing"


def test_keras_weights_are_the_transposed_kernels_and_round_trip():
    model = build_tutorial_mlp(12, 6, 4, seed=0)
    weights, biases = backprop.keras_weights(model)
    assert [W.shape for W in weights] == [(6, 12), (6, 6), (4, 6)]  # (units, inputs)
    kernels = [layer.get_weights()[0] for layer in model.layers]
    assert all(np.array_equal(W, kernel.T) for W, kernel in zip(weights, kernels))
    before = [w.copy() for w in model.get_weights()]
    model.set_weights(backprop.to_keras_weights(weights, biases))
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


# --- gradients -------------------------------------------------------------------------------------


def test_numerical_gradient_of_a_known_function_restores_the_arrays():
    a, b = np.array([1.0, -2.0, 3.0]), np.array([[0.5, 4.0]])
    copies = a.copy(), b.copy()
    gradient = backprop.numerical_gradient(lambda: float(np.sum(a**2) + 3 * np.sum(b**3)), [a, b])
    np.testing.assert_allclose(gradient[0], 2 * a, rtol=1e-7)
    np.testing.assert_allclose(gradient[1], 9 * b**2, rtol=1e-7)
    assert np.array_equal(a, copies[0]) and np.array_equal(b, copies[1])


@pytest.mark.parametrize("sizes", [[5, 3], [6, 4, 3], [6, 4, 4, 3], [3, 5, 2, 4, 2]], ids=str)
def test_backward_matches_finite_differences(sizes):
    rng = np.random.default_rng(len(sizes))
    weights, biases = _random_network(rng, sizes)
    X, Y = _random_batch(rng, 5, sizes[0], sizes[-1])

    def loss():
        return backprop.cross_entropy(Y, backprop.net_inputs(X, weights, biases)[-1])

    grads_W, grads_b = backprop.backward(backprop.forward(X, weights, biases), weights, Y)
    assert [g.shape for g in grads_W] == [W.shape for W in weights]
    assert [g.shape for g in grads_b] == [b.shape for b in biases]
    numeric = backprop.numerical_gradient(loss, weights + biases)
    assert backprop.relative_error(grads_W + grads_b, numeric) < 1e-7


def test_gradient_check_catches_a_missing_tanh_derivative():
    rng = np.random.default_rng(7)
    weights, biases = _random_network(rng, [6, 4, 4, 3])
    X, Y = _random_batch(rng, 5, 6, 3)
    activations = backprop.forward(X, weights, biases)
    D = (activations[-1] - Y) / len(Y) @ weights[2]  # no tanh'
    wrong = ((D @ weights[1]) * (1 - activations[1] ** 2)).T @ X
    numeric = backprop.numerical_gradient(
        lambda: backprop.cross_entropy(Y, backprop.net_inputs(X, weights, biases)[-1]), [weights[0]])
    assert backprop.relative_error(wrong, numeric) > 1e-2


def test_backward_matches_tensorflow_on_the_tutorial_model():
    import tensorflow as tf

    model = build_tutorial_mlp(seed=0)
    rng = np.random.default_rng(8)
    for layer in model.layers:  # random biases, so that their gradients are not all alike
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel, rng.normal(scale=0.1, size=bias.shape).astype("float32")])
    X = rng.normal(size=(32, 784)).astype("float32")
    Y = np.eye(10, dtype="float32")[rng.integers(0, 10, size=32)]
    variables = [v for layer in model.layers for v in (layer.kernel, layer.bias)]
    with tf.GradientTape() as tape:
        loss = keras.losses.CategoricalCrossentropy()(Y, model(X))
    tape_grads = [g.numpy() for g in tape.gradient(loss, variables)]

    weights, biases = (list(map(np.float64, p)) for p in backprop.keras_weights(model))
    grads_W, grads_b = backprop.backward(backprop.forward(X.astype(np.float64), weights, biases), weights, Y)
    ours = [array for gW, gb in zip(grads_W, grads_b) for array in (gW.T, gb)]  # kernel order
    assert backprop.relative_error(ours, tape_grads) < 1e-5
    assert float(loss) == pytest.approx(backprop.cross_entropy(Y, backprop.net_inputs(X, weights, biases)[-1]),
                                        rel=1e-5)


def test_relative_error():
    a = [np.array([3.0, 4.0]), np.array([0.0])]
    assert backprop.relative_error(a, a) == 0
    assert backprop.relative_error(np.zeros(3), np.zeros(3)) == 0
    assert backprop.relative_error(np.array([3.0, 4.0]), np.array([3.0, 4.5])) == pytest.approx(0.5 / np.hypot(3, 4.5))
    with pytest.raises(ValueError, match="cannot compare"):
        backprop.relative_error(np.zeros(3), np.zeros(4))


def test_a_pooled_relative_error_dilutes_a_mistake_that_each_array_shows():
    # Chapter 5's advice: bias gradients averaged instead of summed over 32 examples look nearly right
    # pooled over all parameters of the tutorial's network, and plainly wrong array by array.
    rng = np.random.default_rng(3)
    weights, biases = _random_network(rng, [784, 50, 50, 10], scale=0.1)
    X, Y = _random_batch(rng, 32, 784, 10)
    grads_W, grads_b = backprop.backward(backprop.forward(X, weights, biases), weights, Y)
    averaged = [g / len(Y) for g in grads_b]
    pooled = backprop.relative_error(grads_W + averaged, grads_W + grads_b)
    per_array = [backprop.relative_error(a, b) for a, b in zip(averaged, grads_b)]
    assert 1e-3 < pooled < 0.5 and min(per_array) > 0.9, (pooled, per_array)


# --- SGD with momentum ------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 1, 10, 42_200])
def test_decayed_learning_rate_is_the_tutorials_schedule(k):
    expected = float(tutorial_learning_rate(0.001, 1e-7)(k))
    assert backprop.decayed_learning_rate(0.001, 1e-7, k) == pytest.approx(expected, rel=1e-6)


def test_sgd_momentum_step_is_kerass_rule_and_leaves_its_inputs_alone():
    w, g, v = np.array([1.0, 2.0]), np.array([0.5, -1.0]), np.array([0.1, 0.2])
    (w_new,), (v_new,) = backprop.sgd_momentum_step([w], [g], [v], learning_rate=0.1, momentum=0.9)
    np.testing.assert_allclose(v_new, 0.9 * v - 0.1 * g)
    np.testing.assert_allclose(w_new, w + v_new)
    assert np.array_equal(w, [1.0, 2.0]) and np.array_equal(v, [0.1, 0.2])
    (w_plain,), _ = backprop.sgd_momentum_step([w], [g], [np.zeros(2)], learning_rate=0.1, momentum=0.0)
    np.testing.assert_allclose(w_plain, w - 0.1 * g)


def test_sgd_momentum_step_keeps_float32():
    w = np.ones(3, dtype=np.float32)
    (w_new,), (v_new,) = backprop.sgd_momentum_step([w], [np.ones(3, dtype=np.float32)], [np.zeros_like(w)], 0.1, 0.9)
    assert w_new.dtype == v_new.dtype == np.float32


def test_velocity_is_an_exponentially_decaying_sum_of_gradients():
    rng = np.random.default_rng(9)
    beta, eta = 0.9, 0.01
    gradients = [rng.normal(size=4) for _ in range(25)]
    params, velocities = [np.zeros(4)], [np.zeros(4)]
    for G in gradients:
        params, velocities = backprop.sgd_momentum_step(params, [G], velocities, eta, beta)
    k = len(gradients)
    np.testing.assert_allclose(velocities[0], -eta * sum(beta ** (k - 1 - i) * G for i, G in enumerate(gradients)))
    # With a constant gradient the step grows towards 1 / (1 - beta) plain steps
    params, velocities = [np.zeros(1)], [np.zeros(1)]
    for _ in range(200):
        params, velocities = backprop.sgd_momentum_step(params, [np.ones(1)], velocities, 1.0, beta)
    assert -velocities[0][0] == pytest.approx(1 / (1 - beta))


# --- the whole of fit ---------------------------------------------------------------------------------


def _sgd_by_hand(X, Y, weights, biases, batch_size, learning_rate, decay, momentum):
    """fit(X, Y, batch_size, epochs=1, shuffle=False) in NumPy; the per-batch correct counts too."""
    params, n_layers = [*weights, *biases], len(weights)
    velocities = [np.zeros_like(p) for p in params]
    n_correct = []
    for k, start in enumerate(range(0, len(X), batch_size)):
        X_k, Y_k = X[start:start + batch_size], Y[start:start + batch_size]
        activations = backprop.forward(X_k, params[:n_layers], params[n_layers:])
        n_correct.append(int(np.sum(activations[-1].argmax(axis=1) == Y_k.argmax(axis=1))))
        grads_W, grads_b = backprop.backward(activations, params[:n_layers], Y_k)
        eta = backprop.decayed_learning_rate(learning_rate, decay, k)
        params, velocities = backprop.sgd_momentum_step(params, grads_W + grads_b, velocities, eta, momentum)
    return params, n_correct


@pytest.fixture(scope="module")
def keras_run():
    """A small tutorial-style model trained one epoch by Keras, with a large learning rate and decay.

    The large settings make momentum and decay change the weights visibly in a few batches; the
    last batch is smaller than the others.
    """
    rng = np.random.default_rng(10)
    X = rng.normal(size=(150, 20)).astype("float32")
    Y = np.eye(3, dtype="float32")[rng.integers(0, 3, size=150)]
    settings = dict(learning_rate=0.1, decay=1e-2, momentum=0.9)
    model = build_tutorial_mlp(20, 8, 3, optimizer=tutorial_optimizer(**settings), seed=0)
    weights, biases = backprop.keras_weights(model)
    history = model.fit(X, Y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    fitted_weights, fitted_biases = backprop.keras_weights(model)
    fitted = [*fitted_weights, *fitted_biases]
    return dict(X=X, Y=Y, settings=settings, initial=(weights, biases), fitted=fitted, history=history.history)


def _change_error(params, run):
    initial = [*run["initial"][0], *run["initial"][1]]
    return backprop.relative_error([p - p0 for p, p0 in zip(params, initial)],
                                   [f - p0 for f, p0 in zip(run["fitted"], initial)])


def test_numpy_sgd_reproduces_keras_fit(keras_run):
    params, _ = _sgd_by_hand(keras_run["X"], keras_run["Y"], *keras_run["initial"], batch_size=32,
                             **keras_run["settings"])
    for ours, theirs in zip(params, keras_run["fitted"]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert _change_error(params, keras_run) < 1e-4


@pytest.mark.parametrize("wrong", [dict(momentum=0.0), dict(decay=0.0), dict(momentum=0.5)], ids=str)
def test_fit_comparison_tells_optimizers_apart(keras_run, wrong):
    settings = {**keras_run["settings"], **wrong}
    params, _ = _sgd_by_hand(keras_run["X"], keras_run["Y"], *keras_run["initial"], batch_size=32, **settings)
    assert _change_error(params, keras_run) > 1e-3


def test_fits_training_metrics_are_running_means_over_the_epoch(keras_run):
    _, n_correct = _sgd_by_hand(keras_run["X"], keras_run["Y"], *keras_run["initial"], batch_size=32,
                                **keras_run["settings"])
    # Each batch scored with the weights before its own update, the counts summed over the epoch
    assert keras_run["history"]["accuracy"][0] == pytest.approx(sum(n_correct) / len(keras_run["X"]), abs=1e-6)

"""Tests for course_utils.diagnostics: the checks of chapter "The practice of training".

Each measurement is checked against something independent: the loss against Keras's, the gradients
against the NumPy backpropagation of course_utils.backprop, the update ratios against the gradient
that made the update, the clipping against Keras's optimizers on the same gradients. Small networks
and random data only: no MNIST.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import course_utils  # noqa: F401  (before Keras: quietens TensorFlow)
import keras
from course_utils import backprop, diagnostics
from course_utils.models import build_tutorial_mlp, tutorial_optimizer


def _small_model(seed=0, activation="tanh", learning_rate=0.001, steps_per_execution=32, n_classes=3):
    return build_tutorial_mlp(n_features=6, n_hidden=5, n_classes=n_classes, hidden_activation=activation,
                              optimizer=tutorial_optimizer(learning_rate), seed=seed,
                              steps_per_execution=steps_per_execution)


def _batch(rng, n=12, n_features=6, n_classes=3):
    X = rng.normal(size=(n, n_features)).astype("float32")
    labels = rng.integers(0, n_classes, size=n)
    return X, labels, np.eye(n_classes, dtype="float32")[labels]


# --- the loss at the start -------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 10, 1000])
def test_chance_loss_is_ln_k(k):
    assert diagnostics.chance_loss(k) == pytest.approx(math.log(k))


def test_chance_loss_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2 classes"):
        diagnostics.chance_loss(1)


def test_a_network_with_zero_output_weights_starts_exactly_at_ln_k():
    model = _small_model(n_classes=4)
    weights = model.get_weights()
    weights[-2][...] = 0  # output kernel: every logit is 0, every class gets 1/4
    model.set_weights(weights)
    X, labels, _ = _batch(np.random.default_rng(1), n_classes=4)
    assert diagnostics.mean_cross_entropy(model, X, labels) == pytest.approx(math.log(4), abs=1e-12)


def test_layer_outputs_rebuild_the_models_output():
    model = _small_model()
    X, _, _ = _batch(np.random.default_rng(2))
    outputs = diagnostics.layer_outputs(model, X)
    assert list(outputs) == ["hidden_1", "hidden_2", "output"]
    Z, A = outputs["output"]
    np.testing.assert_allclose(A, model(X, training=False).numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(backprop.softmax(diagnostics.output_logits(model, X)), A, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.tanh(outputs["hidden_1"][0]), outputs["hidden_1"][1], rtol=1e-6, atol=1e-7)


def test_mean_cross_entropy_is_kerass_loss():
    model = _small_model()
    X, labels, Y = _batch(np.random.default_rng(3))
    keras_loss = float(keras.losses.CategoricalCrossentropy()(Y, model(X, training=False)))
    assert diagnostics.mean_cross_entropy(model, X, labels) == pytest.approx(keras_loss, rel=1e-5)


def test_mean_cross_entropy_stays_finite_and_exact_for_huge_logits():
    model = _small_model()
    model.set_weights([100 * w if w.ndim == 2 else w for w in model.get_weights()])
    X, labels, _ = _batch(np.random.default_rng(4))
    Z = diagnostics.output_logits(model, X).astype(np.float64)
    assert (model(X, training=False).numpy() == 0).any()  # Keras's float32 softmax rounds some to 0
    loss = diagnostics.mean_cross_entropy(model, X, labels)
    expected = np.mean(np.log(np.exp(Z - Z.max(1, keepdims=True)).sum(1)) + Z.max(1) - Z[np.arange(len(Z)), labels])
    assert np.isfinite(loss) and loss == pytest.approx(expected, rel=1e-12)


def test_mean_cross_entropy_wants_one_label_per_row():
    model = _small_model()
    X, labels, _ = _batch(np.random.default_rng(5))
    with pytest.raises(ValueError, match="one integer label per row"):
        diagnostics.mean_cross_entropy(model, X, labels[:-1])


# --- overfitting one batch -------------------------------------------------------------------------


def test_overfit_batch_makes_one_update_per_step_and_fits_the_batch():
    model = _small_model(learning_rate=0.1)
    X, labels, Y = _batch(np.random.default_rng(6), n=8)
    result = diagnostics.overfit_batch(model, X, Y, 150)
    assert int(model.optimizer.iterations) == 150 and result.losses.shape == (150,)
    assert result.final_accuracy == 1.0 and result.final_loss < 0.1
    assert result.final_loss == pytest.approx(diagnostics.mean_cross_entropy(model, X, labels))
    assert result.losses[-1] < result.losses[0]


def test_labels_reshuffled_every_step_cannot_be_learned():
    rng = np.random.default_rng(7)
    X, _, _ = _batch(rng, n=8)
    Y = np.eye(2, dtype="float32")[[0, 1] * 4]  # half and half: the best constant prediction costs ln 2
    model = build_tutorial_mlp(n_features=6, n_hidden=5, n_classes=2, optimizer=tutorial_optimizer(0.1), seed=0)
    result = diagnostics.overfit_batch(model, X, Y, 150, relabel_every_step=True)
    assert result.final_loss > 0.5 * math.log(2) and result.final_accuracy < 1.0


def test_overfit_batch_needs_a_step():
    with pytest.raises(ValueError, match="at least 1"):
        diagnostics.overfit_batch(_small_model(), np.zeros((2, 6)), np.eye(3)[[0, 1]], 0)


# --- update-to-weight ratios -----------------------------------------------------------------------


def test_update_to_weight_ratio_by_hand():
    before = {"a": np.array([[3.0, 4.0]]), "b": np.ones((2, 2))}
    after = {"a": np.array([[3.0, 4.5]]), "b": np.ones((2, 2))}
    assert diagnostics.update_to_weight_ratios(before, after) == {"a": pytest.approx(0.1), "b": 0.0}


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, (3, 4), elements=st.floats(-10, 10)),
       hnp.arrays(np.float64, (3, 4), elements=st.floats(-1, 1)),
       st.floats(1e-3, 1e3))
def test_update_to_weight_ratio_does_not_depend_on_the_weights_scale(w, step, scale):
    if np.linalg.norm(w) < 1e-3:
        return
    plain = diagnostics.update_to_weight_ratios({"l": w}, {"l": w + step})["l"]
    scaled = diagnostics.update_to_weight_ratios({"l": scale * w}, {"l": scale * (w + step)})["l"]
    assert scaled == pytest.approx(plain, rel=1e-9, abs=1e-12)


def test_update_to_weight_ratios_reject_mismatched_snapshots():
    with pytest.raises(ValueError, match="different layers"):
        diagnostics.update_to_weight_ratios({"a": np.ones(2)}, {"b": np.ones(2)})
    with pytest.raises(ValueError, match="changed shape"):
        diagnostics.update_to_weight_ratios({"a": np.ones(2)}, {"a": np.ones(3)})
    with pytest.raises(ValueError, match="all-zero"):
        diagnostics.update_to_weight_ratios({"a": np.zeros(2)}, {"a": np.ones(2)})


def test_kernel_snapshot_is_a_copy():
    model = _small_model()
    snapshot = diagnostics.kernel_snapshot(model)
    assert list(snapshot) == ["hidden_1", "hidden_2", "output"]
    model.set_weights([w + 1 for w in model.get_weights()])
    assert not np.allclose(snapshot["hidden_1"], model.layers[0].kernel.numpy())


def test_update_ratio_logger_records_every_update_and_the_first_follows_from_the_gradient():
    rng = np.random.default_rng(8)
    X, _, Y = _batch(rng, n=40)
    model = _small_model(learning_rate=0.05, steps_per_execution=1)
    before = diagnostics.kernel_snapshot(model)
    gradients = diagnostics.kernel_gradients(model, X[:8], Y[:8])
    logger = diagnostics.UpdateRatioLogger()
    model.fit(X, Y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[logger])
    assert {name: len(r) for name, r in logger.ratios.items()} == {"hidden_1": 5, "hidden_2": 5, "output": 5}
    # The velocity starts at 0, so the first update is -eta * g
    for name, g in gradients.items():
        expected = 0.05 * np.linalg.norm(g.astype(np.float64)) / np.linalg.norm(before[name].astype(np.float64))
        assert logger.ratios[name][0] == pytest.approx(expected, rel=1e-4)


def test_update_ratio_logger_refuses_several_steps_per_execution():
    X, _, Y = _batch(np.random.default_rng(9))
    model = _small_model(steps_per_execution=4)
    with pytest.raises(ValueError, match="steps_per_execution=1"):
        model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[diagnostics.UpdateRatioLogger()])


# --- gradients and snapshots -----------------------------------------------------------------------


def test_kernel_and_loss_gradients_are_numpy_backpropagation():
    model = _small_model(seed=3)
    X, _, Y = _batch(np.random.default_rng(10))
    kernels, biases = model.get_weights()[0::2], model.get_weights()[1::2]
    W = [k.T.astype(np.float64) for k in kernels]
    b = [v.astype(np.float64) for v in biases]
    grads_W, grads_b = backprop.backward(backprop.forward(X.astype(np.float64), W, b), W, Y.astype(np.float64))
    by_kernel = diagnostics.kernel_gradients(model, X, Y)
    every_variable = diagnostics.loss_gradients(model, X, Y)
    for name, g_W, g_b, g_kernel, g_bias in zip(by_kernel, grads_W, grads_b, every_variable[0::2],
                                                 every_variable[1::2]):
        np.testing.assert_allclose(by_kernel[name], g_W.T, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(g_kernel, g_W.T, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(g_bias, g_b, rtol=1e-4, atol=1e-7)


def test_training_snapshots_are_taken_at_the_epochs_asked_for():
    rng = np.random.default_rng(11)
    X, _, Y = _batch(rng, n=32)
    model = _small_model()
    start = diagnostics.layer_outputs(model, X[:10])
    start_gradients = diagnostics.kernel_gradients(model, X[:10], Y[:10])
    snapshots = diagnostics.TrainingSnapshots(X[:10], Y[:10], at=[2, 0])
    model.fit(X, Y, batch_size=8, epochs=3, verbose=0, callbacks=[snapshots])
    assert sorted(snapshots.snapshots) == [0, 2]
    A, G = snapshots.snapshots[0]["hidden_2"]
    np.testing.assert_array_equal(A, start["hidden_2"][1])
    np.testing.assert_array_equal(G, start_gradients["hidden_2"])
    assert not np.array_equal(snapshots.snapshots[2]["hidden_2"][0], A)  # training changed them


def test_training_snapshots_need_epochs():
    with pytest.raises(ValueError, match="at must list"):
        diagnostics.TrainingSnapshots(np.zeros((2, 6)), np.eye(3)[[0, 1]], at=[])


# --- dead ReLUs ------------------------------------------------------------------------------------


def test_dead_unit_fractions_count_units_that_are_zero_for_every_row():
    model = _small_model(activation="relu")
    weights = model.get_weights()
    weights[1][:2] = -1e3  # two of the five first-layer units can never be positive
    weights[3][:] = -1e3  # every second-layer unit is dead
    model.set_weights(weights)
    X, _, _ = _batch(np.random.default_rng(12))
    assert diagnostics.dead_unit_fractions(model, X) == {"hidden_1": pytest.approx(0.4), "hidden_2": 1.0}


def test_a_healthy_relu_layer_has_no_dead_units_on_varied_inputs():
    model = _small_model(activation="relu")
    X = np.concatenate([np.eye(6), -np.eye(6)]).astype("float32") * 10  # every direction and its opposite
    fractions = diagnostics.dead_unit_fractions(model, X)
    assert fractions["hidden_1"] == 0.0


# --- clipping --------------------------------------------------------------------------------------

gradient_lists = st.lists(hnp.arrays(np.float64, st.sampled_from([(3,), (2, 4), (5, 1)]),
                                     elements=st.floats(-100, 100)), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(gradient_lists, st.floats(0.01, 50))
def test_clip_by_global_norm_caps_the_norm_and_keeps_the_direction(grads, clip):
    clipped = diagnostics.clip_by_global_norm(grads, clip)
    norm = diagnostics.global_norm(grads)
    assert diagnostics.global_norm(clipped) <= clip * (1 + 1e-9) + 1e-12
    if norm <= clip:
        for g, c in zip(grads, clipped):
            np.testing.assert_array_equal(g, c)
    elif norm > 1e-6:
        assert diagnostics.global_norm(clipped) == pytest.approx(clip)
        assert diagnostics.cosine_similarity(grads, clipped) == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(gradient_lists, st.floats(0.01, 50))
def test_clip_each_by_norm_caps_every_variable(grads, clip):
    clipped = diagnostics.clip_each_by_norm(grads, clip)
    for g, c in zip(grads, clipped):
        assert np.linalg.norm(c) <= clip * (1 + 1e-9)
        if np.linalg.norm(g) <= clip:
            np.testing.assert_array_equal(g, c)


def test_global_norm_is_the_norm_of_everything_together():
    grads = [np.array([3.0]), np.array([[4.0, 0.0]]), np.zeros(3)]
    assert diagnostics.global_norm(grads) == 5.0
    assert diagnostics.global_norm([np.zeros(2)]) == 0.0


def test_clipping_by_variable_turns_the_gradient_and_by_global_norm_does_not():
    grads = [np.array([30.0, 40.0]), np.array([0.3, 0.4])]
    assert diagnostics.cosine_similarity(grads, diagnostics.clip_by_global_norm(grads, 1.0)) == pytest.approx(1.0)
    each = diagnostics.clip_each_by_norm(grads, 1.0)
    np.testing.assert_allclose(each[0], [0.6, 0.8])
    np.testing.assert_array_equal(each[1], grads[1])
    assert diagnostics.cosine_similarity(grads, each) < 0.9


@pytest.mark.parametrize("option", ["global_clipnorm", "clipnorm"])
def test_numpy_clipping_is_kerass(option):
    rng = np.random.default_rng(13)
    model = _small_model(seed=4)
    X, _, Y = _batch(rng)
    model.set_weights([5 * w if w.ndim == 2 else w for w in model.get_weights()])
    grads = [50 * g for g in diagnostics.loss_gradients(model, X, Y)]  # large enough to be clipped
    clip, eta = 0.5, 0.1
    numpy_clip = diagnostics.clip_by_global_norm if option == "global_clipnorm" else diagnostics.clip_each_by_norm
    expected = [v.numpy() - eta * g for v, g in zip(model.trainable_variables, numpy_clip(grads, clip))]
    keras.optimizers.SGD(eta, **{option: clip}).apply_gradients(
        zip([keras.ops.convert_to_tensor(g) for g in grads], model.trainable_variables))
    for v, w in zip(model.trainable_variables, expected):
        np.testing.assert_allclose(v.numpy(), w, rtol=1e-5, atol=1e-6)


def test_clipping_needs_a_positive_threshold():
    for clip in (diagnostics.clip_by_global_norm, diagnostics.clip_each_by_norm):
        with pytest.raises(ValueError, match="positive"):
            clip([np.ones(2)], 0.0)


def test_cosine_similarity():
    assert diagnostics.cosine_similarity([np.array([1.0, 0.0])], [np.array([0.0, 2.0])]) == 0.0
    assert diagnostics.cosine_similarity([np.ones(2)], [-np.ones(2)]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="different numbers"):
        diagnostics.cosine_similarity([np.ones(2)], [np.ones(3)])
    with pytest.raises(ValueError, match="all-zero"):
        diagnostics.cosine_similarity([np.zeros(2)], [np.ones(2)])

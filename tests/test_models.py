"""Tests for course_utils.models: the tutorial's model, optimizer, predictions and epoch logger."""

from __future__ import annotations

import io

import numpy as np
import pytest

import course_utils  # noqa: F401  (before Keras: quietens TensorFlow)
import keras

from course_utils.models import (
    BestEpoch,
    EpochLogger,
    accuracy,
    accuracy_standard_error,
    McNemar,
    SeedComparison,
    compare_over_seeds,
    difference_standard_error,
    mcnemar_test,
    build_tutorial_mlp,
    confusion_matrix,
    predict_classes,
    summary_text,
    tutorial_learning_rate,
    tutorial_optimizer,
)

TUTORIAL_PARAMETER_COUNT = 784 * 50 + 50 + 50 * 50 + 50 + 50 * 10 + 10


def _take_sgd_steps(optimizer: keras.optimizers.Optimizer, k: int) -> None:
    variable = keras.Variable(np.zeros(3, dtype="float32"))
    gradient = np.ones(3, dtype="float32")
    for _ in range(k):
        optimizer.apply_gradients([(gradient, variable)])


# --- learning rate ---------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 1, 5, 1000, 42_200])
def test_schedule_is_keras2_decay_rule(k):
    lr, decay = 0.001, 1e-7
    schedule = tutorial_learning_rate(lr, decay)
    assert float(schedule(k)) == pytest.approx(lr / (1 + decay * k), rel=1e-6)


@pytest.mark.parametrize("k", [0, 1, 3, 7])
def test_optimizer_learning_rate_after_k_steps(k):
    # A large decay makes each step's change visible in float32.
    lr, decay = 0.1, 0.5
    optimizer = tutorial_optimizer(learning_rate=lr, decay=decay)
    _take_sgd_steps(optimizer, k)
    assert int(optimizer.iterations) == k
    assert float(optimizer.learning_rate) == pytest.approx(lr / (1 + decay * k), rel=1e-6)


def test_first_update_uses_the_undecayed_learning_rate():
    # Keras 2 used iterations = 0 for the first batch; plain SGD: w <- w - lr * g.
    optimizer = tutorial_optimizer(learning_rate=0.1, decay=0.5, momentum=0.0)
    variable = keras.Variable(np.zeros(2, dtype="float32"))
    optimizer.apply_gradients([(np.ones(2, dtype="float32"), variable)])
    np.testing.assert_allclose(variable.numpy(), [-0.1, -0.1], rtol=1e-6)
    optimizer.apply_gradients([(np.ones(2, dtype="float32"), variable)])
    np.testing.assert_allclose(variable.numpy(), [-0.1 - 0.1 / 1.5] * 2, rtol=1e-6)


def test_plain_sgd_decay_argument_is_ignored_by_keras3():
    # Why the schedule exists: the tutorial's spelling no longer decays anything.
    with pytest.warns(UserWarning, match="decay"):
        optimizer = keras.optimizers.SGD(learning_rate=0.1, decay=0.5)
    _take_sgd_steps(optimizer, 5)
    assert float(optimizer.learning_rate) == pytest.approx(0.1)


def test_tutorial_optimizer_defaults():
    optimizer = tutorial_optimizer()
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert optimizer.momentum == pytest.approx(0.9)
    assert not optimizer.nesterov
    schedule = optimizer.get_config()["learning_rate"]["config"]
    assert schedule["initial_learning_rate"] == pytest.approx(0.001)
    assert schedule["decay_rate"] == pytest.approx(1e-7)
    assert schedule["decay_steps"] == 1
    assert schedule["staircase"] is False


# --- architecture ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tutorial_model():
    return build_tutorial_mlp(seed=1)


def test_architecture(tutorial_model):
    dense = tutorial_model.layers
    assert [layer.units for layer in dense] == [50, 50, 10]
    assert [layer.activation.__name__ for layer in dense] == ["tanh", "tanh", "softmax"]
    assert tutorial_model.input_shape == (None, 784)
    assert tutorial_model.output_shape == (None, 10)
    for layer in dense:
        assert isinstance(layer.kernel_initializer, keras.initializers.GlorotUniform)
        assert isinstance(layer.bias_initializer, keras.initializers.Zeros)
        assert not np.any(layer.bias.numpy())


def test_parameter_count(tutorial_model):
    assert tutorial_model.count_params() == TUTORIAL_PARAMETER_COUNT == 42_310


def test_compiled_with_tutorial_loss_metric_and_optimizer(tutorial_model):
    assert tutorial_model.loss == "categorical_crossentropy"
    assert isinstance(tutorial_model.optimizer, keras.optimizers.SGD)
    assert tutorial_model.optimizer.momentum == pytest.approx(0.9)
    config = tutorial_model.get_compile_config()
    assert config["metrics"] == ["accuracy"]


def test_glorot_uniform_limits(tutorial_model):
    # Glorot uniform draws from U(-l, l) with l = sqrt(6 / (fan_in + fan_out)).
    for layer in tutorial_model.layers:
        fan_in, fan_out = layer.kernel.shape
        limit = np.sqrt(6 / (fan_in + fan_out))
        kernel = layer.kernel.numpy()
        assert np.abs(kernel).max() <= limit
        assert np.abs(kernel).max() > 0.9 * limit


def test_summary_text_is_the_plain_summary_table(tutorial_model):
    text = summary_text(tutorial_model, line_length=70)
    assert text.startswith('Model: "tutorial_mlp"')
    for row in ("hidden_1 (Dense)", "hidden_2 (Dense)", "output (Dense)", "39,250", "2,550", "510"):
        assert row in text
    assert "Total params: 42,310" in text
    assert "\x1b" not in text  # no colour escape codes
    assert max(len(line) for line in text.splitlines()) <= 70


def test_options_change_the_architecture():
    model = build_tutorial_mlp(
        n_features=20, n_hidden=8, n_classes=3, hidden_activation="relu", n_hidden_layers=3, seed=0
    )
    assert [layer.units for layer in model.layers] == [8, 8, 8, 3]
    assert [layer.activation.__name__ for layer in model.layers] == ["relu"] * 3 + ["softmax"]
    assert model.count_params() == 20 * 8 + 8 + 2 * (8 * 8 + 8) + 8 * 3 + 3


def test_custom_optimizer_is_used():
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    model = build_tutorial_mlp(n_features=4, n_hidden=2, n_classes=2, optimizer=optimizer, seed=0)
    assert model.optimizer is optimizer


def test_rejects_zero_hidden_layers():
    with pytest.raises(ValueError, match="n_hidden_layers"):
        build_tutorial_mlp(n_hidden_layers=0)


def test_same_seed_same_weights_different_seed_different_weights(tutorial_model):
    again = build_tutorial_mlp(seed=1)
    other = build_tutorial_mlp(seed=2)
    for w1, w2 in zip(tutorial_model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(w1, w2)
    assert not np.array_equal(tutorial_model.get_weights()[0], other.get_weights()[0])


def test_layers_get_different_seeds():
    model = build_tutorial_mlp(n_features=50, n_hidden=50, seed=3)
    first, second = model.layers[0].kernel.numpy(), model.layers[1].kernel.numpy()
    assert not np.array_equal(first, second)


# --- predictions and accuracy ----------------------------------------------------------------------


class _FixedModel:
    """Stands in for a Keras model: returns given probabilities."""

    def __init__(self, probabilities):
        self.probabilities = np.asarray(probabilities, dtype="float32")

    def predict(self, X, batch_size=None, verbose="auto"):
        assert verbose == 0
        return self.probabilities[: len(X)]


def test_predict_classes_values():
    model = _FixedModel([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    classes = predict_classes(model, np.zeros((3, 4)))
    np.testing.assert_array_equal(classes, [1, 0, 2])


def test_predict_classes_with_keras_model(tutorial_model):
    X = np.random.default_rng(0).normal(size=(17, 784)).astype("float32")
    classes = predict_classes(tutorial_model, X, batch_size=8)
    assert classes.shape == (17,)
    assert np.issubdtype(classes.dtype, np.integer)
    assert classes.min() >= 0 and classes.max() <= 9
    expected = np.argmax(tutorial_model.predict(X, verbose=0), axis=1)
    np.testing.assert_array_equal(classes, expected)


def test_accuracy():
    assert accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
    with pytest.raises(ValueError, match="shape"):
        accuracy([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        accuracy([], [])


def test_accuracy_standard_error_is_binomial():
    assert accuracy_standard_error(0.98, 10_000) == pytest.approx(0.0014)
    assert accuracy_standard_error(0.9, 1_000) == pytest.approx((0.9 * 0.1 / 1000) ** 0.5)
    assert accuracy_standard_error(1.0, 50) == 0.0
    with pytest.raises(ValueError, match="accuracy"):
        accuracy_standard_error(1.5, 10)
    with pytest.raises(ValueError, match="n="):
        accuracy_standard_error(0.5, 0)


def test_mcnemar_is_the_exact_binomial_test_on_the_disagreements():
    from scipy.stats import binomtest

    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, size=2000)
    a, b = y.copy(), y.copy()
    a[:30] = (y[:30] + 1) % 10  # a wrong on 30 images b gets right
    b[30:45] = (y[30:45] + 1) % 10  # b wrong on 15 that a gets right
    a[45:60] = b[45:60] = (y[45:60] + 2) % 10  # both wrong: no information
    result = mcnemar_test(y, a, b)
    assert (result.only_a, result.only_b) == (15, 30)
    assert result.p_value == pytest.approx(binomtest(15, 45, 0.5).pvalue, rel=1e-9)
    assert mcnemar_test(y, b, a).p_value == pytest.approx(result.p_value)
    assert mcnemar_test(y, a, a) == McNemar(0, 0, 1.0)


def test_a_paired_difference_can_be_clear_where_two_standard_errors_of_one_accuracy_see_none():
    # Chapters 6 and 7 compare models on the same images. Two models that agree on all but 35 of
    # 10,000 images, 30 of those going to one model: 0.25 percentage points apart, less than two
    # standard errors of one accuracy (0.27 points), yet the paired test is clear.
    y = np.zeros(10_000, dtype=int)
    a, b = y.copy(), y.copy()
    wrong_both = 150
    a[:wrong_both] = b[:wrong_both] = 1
    b[wrong_both:wrong_both + 30] = 1
    a[wrong_both + 30:wrong_both + 35] = 1
    acc_a, acc_b = float(np.mean(a == y)), float(np.mean(b == y))
    assert abs(acc_a - acc_b) < 2 * accuracy_standard_error(acc_b, len(y))
    assert mcnemar_test(y, a, b).significant()
    # Independent test sets of the same size: the difference's standard error combines both
    assert difference_standard_error(acc_a, 10_000, acc_b, 10_000) == pytest.approx(
        (accuracy_standard_error(acc_a, 10_000) ** 2 + accuracy_standard_error(acc_b, 10_000) ** 2) ** 0.5)


def test_best_epoch_keeps_the_weights_of_the_best_epoch_without_changing_the_model():
    model = build_tutorial_mlp(n_features=6, n_hidden=4, n_classes=2, seed=0)
    best = BestEpoch("val_loss")
    best.set_model(model)
    best.on_train_begin()
    snapshots = []
    for epoch, val_loss in enumerate([0.9, 0.5, 0.7, 0.5]):
        model.set_weights([w + epoch for w in model.get_weights()])
        snapshots.append(model.get_weights())
        best.on_epoch_end(epoch, {"loss": 1.0, "val_loss": val_loss})
    assert (best.epoch, best.value) == (2, 0.5)  # counted from 1; a tie keeps the earlier epoch
    for kept, expected in zip(best.weights, snapshots[1]):
        np.testing.assert_array_equal(kept, expected)
    for now, last in zip(model.get_weights(), snapshots[-1]):  # the model itself is left alone
        np.testing.assert_array_equal(now, last)
    highest = BestEpoch("val_accuracy", mode="max")
    highest.set_model(model)
    for epoch, value in enumerate([0.5, 0.8, 0.7]):
        highest.on_epoch_end(epoch, {"val_accuracy": value})
    assert highest.epoch == 2
    with pytest.raises(ValueError, match="val_loss"):
        BestEpoch().on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(ValueError, match="mode"):
        BestEpoch(mode="lowest")


def test_best_epoch_during_fit_matches_the_history():
    X, y = _small_problem()
    model = build_tutorial_mlp(n_features=6, n_hidden=4, n_classes=2, seed=0)
    best = BestEpoch()
    history = model.fit(X, y, epochs=4, batch_size=16, validation_split=0.25, verbose=0, callbacks=[best])
    losses = history.history["val_loss"]
    assert best.epoch == int(np.argmin(losses)) + 1 and best.value == pytest.approx(min(losses))


# --- training: epoch logger and steps_per_execution ------------------------------------------------


def _small_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 6)).astype("float32")
    y = keras.utils.to_categorical((X[:, 0] > 0).astype(int), 2)
    return X, y


def test_epoch_logger_format():
    logger = EpochLogger()
    logs = {"accuracy": 0.81339, "loss": 0.71234, "val_accuracy": 0.9, "val_loss": 0.345678}
    line = logger.format_line(0, 50, logs)
    assert line == "epoch  1/50  loss 0.7123  acc 0.8134  val_loss 0.3457  val_acc 0.9000"
    assert logger.format_line(49, 50, {"loss": 0.1}) == "epoch 50/50  loss 0.1000"
    assert EpochLogger(digits=2).format_line(2, None, {"loss": 0.123}) == "epoch 3  loss 0.12"


def test_epoch_logger_every_kth_epoch_during_fit():
    X, y = _small_problem()
    model = build_tutorial_mlp(n_features=6, n_hidden=4, n_classes=2, seed=0)
    stream = io.StringIO()
    model.fit(
        X, y, epochs=7, batch_size=16, validation_split=0.25, verbose=0,
        callbacks=[EpochLogger(every=3, stream=stream)],
    )
    lines = stream.getvalue().splitlines()
    assert [line.split("/")[0] for line in lines] == ["epoch 1", "epoch 3", "epoch 6", "epoch 7"]
    for line in lines:
        names = line.split()[2::2]
        assert names == ["loss", "acc", "val_loss", "val_acc"]
        assert "ms" not in line and "s/step" not in line


def test_epoch_logger_rejects_bad_every():
    with pytest.raises(ValueError, match="every"):
        EpochLogger(every=0)


def test_steps_per_execution_does_not_change_the_numbers():
    X, y = _small_problem()
    histories = []
    for steps in (1, 4):
        keras.utils.set_random_seed(0)
        model = build_tutorial_mlp(n_features=6, n_hidden=4, n_classes=2, seed=0,
                                   steps_per_execution=steps)
        history = model.fit(X, y, epochs=3, batch_size=8, shuffle=True, verbose=0)
        histories.append((history.history["loss"], model.get_weights()))
    (loss_1, weights_1), (loss_4, weights_4) = histories
    np.testing.assert_allclose(loss_1, loss_4, rtol=1e-6)
    for w1, w4 in zip(weights_1, weights_4):
        np.testing.assert_allclose(w1, w4, rtol=1e-5, atol=1e-7)


def test_confusion_matrix():
    matrix = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], n_classes=3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert matrix.sum() == 6
    with pytest.raises(ValueError, match="y_pred"):
        confusion_matrix([0, 1], [0, 3], n_classes=3)
    with pytest.raises(ValueError, match="equal length"):
        confusion_matrix([0, 1], [0], n_classes=3)


# --- chapter 7: deep networks' gradients and the better MLP ------------------------------------------

from course_utils.models import RandomShift, build_better_mlp, build_deep_mlp, gradient_norms_per_layer  # noqa: E402


def _shift_of(original: np.ndarray, shifted: np.ndarray, max_shift: int) -> tuple[int, int] | None:
    """The (down, right) move that turns ``original`` into ``shifted`` (zero fill), or None."""
    height, width = original.shape
    for down in range(-max_shift, max_shift + 1):
        for right in range(-max_shift, max_shift + 1):
            expected = np.zeros_like(original)
            expected[max(down, 0):height + min(down, 0), max(right, 0):width + min(right, 0)] = \
                original[max(-down, 0):height - max(down, 0), max(-right, 0):width - max(right, 0)]
            if np.array_equal(expected, shifted):
                return down, right
    return None


def test_random_shift_moves_each_image_by_at_most_max_shift_with_zero_fill():
    images = np.random.default_rng(0).integers(1, 255, size=(64, 7 * 7)).astype("float32")
    layer = RandomShift(2, image_shape=(7, 7), seed=3)
    shifted = np.asarray(layer(images, training=True))
    assert shifted.shape == images.shape
    moves = [_shift_of(a.reshape(7, 7), b.reshape(7, 7), 2) for a, b in zip(images, shifted)]
    assert None not in moves
    assert len(set(moves)) > 10  # every image draws its own shift


def test_random_shift_fill_value_and_identity_outside_training():
    images = np.full((4, 25), 5.0, dtype="float32")
    layer = RandomShift(1, image_shape=(5, 5), fill_value=-1.0, seed=0)
    np.testing.assert_array_equal(np.asarray(layer(images)), images)
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
    shifted = np.asarray(layer(images, training=True))
    assert set(np.unique(shifted)) <= {-1.0, 5.0}
    np.testing.assert_array_equal(np.asarray(RandomShift(0, image_shape=(5, 5))(images, training=True)), images)


def test_random_shift_same_seed_same_shifts():
    images = np.random.default_rng(1).random((16, 36)).astype("float32")
    first = np.asarray(RandomShift(2, image_shape=(6, 6), seed=7)(images, training=True))
    second = np.asarray(RandomShift(2, image_shape=(6, 6), seed=7)(images, training=True))
    np.testing.assert_array_equal(first, second)
    with pytest.raises(ValueError, match="max_shift"):
        RandomShift(-1)


def test_build_deep_mlp_layers_and_initialisation():
    model = build_deep_mlp(4, 8, activation="relu", n_features=20, n_classes=3, seed=0)
    assert [layer.name for layer in model.layers] == ["hidden_1", "hidden_2", "hidden_3", "hidden_4", "output"]
    assert model.layers[0].kernel.shape == (20, 8)
    assert type(model.layers[0].kernel_initializer).__name__ == "HeNormal"
    sigmoid = build_deep_mlp(2, 8, activation="sigmoid", n_features=20, n_classes=3, seed=0)
    assert type(sigmoid.layers[0].kernel_initializer).__name__ == "GlorotUniform"
    again = build_deep_mlp(2, 8, activation="sigmoid", n_features=20, n_classes=3, seed=0)
    for w1, w2 in zip(sigmoid.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(w1, w2)
    with pytest.raises(ValueError, match="n_hidden_layers"):
        build_deep_mlp(0)


def test_gradient_norms_match_a_manual_gradient_and_vanish_with_depth_for_sigmoid():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 30)).astype("float32")
    y = np.eye(4, dtype="float32")[rng.integers(0, 4, 32)]
    model = build_deep_mlp(8, 16, activation="sigmoid", n_features=30, n_classes=4, seed=1)
    norms = gradient_norms_per_layer(model, X, y)
    assert list(norms) == [f"hidden_{i}" for i in range(1, 9)] + ["output"]

    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.categorical_crossentropy(y, model(X)))
    manual = tape.gradient(loss, model.layers[-1].kernel)
    assert norms["output"] == pytest.approx(float(np.linalg.norm(manual)), rel=1e-5)
    # sigma' <= 1/4: eight sigmoid layers shrink the first layer's gradient by orders of magnitude
    assert norms["hidden_1"] < 1e-3 * norms["output"]
    relu_model = build_deep_mlp(8, 16, activation="relu", n_features=30, n_classes=4, seed=1)
    relu = gradient_norms_per_layer(relu_model, X, y)
    assert relu["hidden_1"] > 1e-2 * relu["output"]


def test_build_better_mlp_takes_raw_pixels_and_is_compiled():
    model = build_better_mlp(100, n_hidden=32, n_hidden_layers=2, dropout=0.3, max_shift=2)
    names = [layer.name for layer in model.layers]
    assert names == ["to_0_1", "random_shift", "hidden_1", "dropout_1", "hidden_2", "dropout_2", "output"]
    assert model.count_params() == 784 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10
    assert model.loss == "categorical_crossentropy"
    schedule = model.optimizer.learning_rate if not hasattr(model.optimizer, "_learning_rate") \
        else model.optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert float(schedule(0)) == pytest.approx(0.001)
    assert float(schedule(100)) == pytest.approx(0.0, abs=1e-9)
    pixels = np.random.default_rng(0).integers(0, 256, size=(5, 784)).astype("float32")
    np.testing.assert_allclose(np.asarray(model.layers[0](pixels)), pixels / 255, rtol=1e-6)
    probabilities = model.predict(pixels, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)


def test_build_better_mlp_rejects_bad_arguments():
    with pytest.raises(ValueError, match="steps"):
        build_better_mlp(0)
    with pytest.raises(ValueError, match="dropout"):
        build_better_mlp(10, dropout=1.0)
    with pytest.raises(ValueError, match="square"):
        build_better_mlp(10, n_features=30)


def test_better_mlp_training_is_repeatable_with_set_seeds():
    from course_utils.reproducibility import set_seeds

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(96, 784)).astype("float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, 96)]
    losses = []
    for _ in range(2):
        set_seeds(5)
        model = build_better_mlp(6, n_hidden=16)
        losses.append(model.fit(X, y, batch_size=32, epochs=2, verbose=0).history["loss"])
    assert losses[0] == losses[1]


def test_layer_errors_are_chapter_5s_deltas_and_their_column_sums_the_bias_gradients():
    import tensorflow as tf

    from course_utils import backprop
    from course_utils.models import error_norms_per_layer, layer_errors

    rng = np.random.default_rng(2)
    X = rng.normal(size=(24, 12)).astype("float32")
    y = np.eye(4, dtype="float32")[rng.integers(0, 4, 24)]
    model = build_tutorial_mlp(12, 6, 4, seed=0)
    errors = layer_errors(model, X, y)
    assert list(errors) == [layer.name for layer in model.layers]
    # the output error is (P - Y) / n, chapter 5's Delta^(out)
    probabilities = backprop.forward(X, *backprop.keras_weights(model))[-1]
    np.testing.assert_allclose(errors[model.layers[-1].name], (probabilities - y) / len(y), atol=1e-6)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.categorical_crossentropy(y, model(X)))
    bias_gradients = tape.gradient(loss, [layer.bias for layer in model.layers])
    for layer, gradient in zip(model.layers, bias_gradients):
        np.testing.assert_allclose(errors[layer.name].sum(axis=0), gradient.numpy(), atol=1e-6)
    norms = error_norms_per_layer(model, X, y)
    assert norms == {name: pytest.approx(float(np.linalg.norm(error))) for name, error in errors.items()}


# --- several seeds (chapter 7's sweeps) ------------------------------------------------------------


def _small_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(80, 12)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 80)]
    return X[:60], y[:60], X[60:]


def _tutorial_build():
    return build_tutorial_mlp(12, 6, 3, optimizer=tutorial_optimizer(0.05, 1e-3, 0.9))


def _dropout_adam_build():
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dropout(0.5), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="categorical_crossentropy")
    return model


@pytest.mark.parametrize("build", [_tutorial_build, _dropout_adam_build], ids=["tutorial_sgd", "dropout_adam"])
def test_fit_seeded_runs_train_exactly_as_freshly_built_models(build):
    from course_utils.models import _EpochPredictions, fit_seeded_runs
    from course_utils.reproducibility import set_seeds

    X, y, X_val = _small_data()
    seeds = [3, 4, 3]  # the third seed repeats the first: the reused model must start over
    runs = fit_seeded_runs(build, seeds, X, y, X_val, batch_size=16, epochs=2)
    assert [run.seed for run in runs] == seeds
    for run in runs:
        set_seeds(run.seed)
        fresh = build()
        initial = fresh.get_weights()
        recorder = _EpochPredictions(X_val)
        fresh.fit(X, y, batch_size=16, epochs=2, verbose=0, callbacks=[recorder])
        assert all(np.array_equal(a, b) for a, b in zip(run.initial_weights, initial))
        assert all(np.array_equal(a, b) for a, b in zip(run.final_weights, fresh.get_weights()))
        np.testing.assert_array_equal(run.predictions, np.stack(recorder.predictions))
        assert run.predictions.shape == (2, len(X_val))
    assert all(np.array_equal(a, b) for a, b in zip(runs[0].final_weights, runs[2].final_weights))
    assert not np.array_equal(runs[0].initial_weights[0], runs[1].initial_weights[0])


def test_fit_seeded_runs_keeps_the_callers_callbacks_and_rejects_another_shape():
    from course_utils.models import fit_seeded_runs

    X, y, X_val = _small_data()
    logger = EpochLogger(stream=io.StringIO())
    fit_seeded_runs(_tutorial_build, [1, 2], X, y, X_val, batch_size=16, epochs=2, callbacks=[logger])
    assert logger.stream.getvalue().count("epoch 2/2") == 2
    shapes = iter([6, 7])
    with pytest.raises(ValueError, match="another shape"):
        fit_seeded_runs(lambda: build_tutorial_mlp(12, next(shapes), 3), [1, 2], X, y, X_val, epochs=1)
    with pytest.raises(ValueError, match="seed"):
        fit_seeded_runs(_tutorial_build, [], X, y, X_val)


def _runs_with_differences(only_a: list[int], only_b: list[int], n: int = 1000):
    # Per seed: a alone right on only_a images, b alone right on only_b images, both right elsewhere
    y = np.zeros(n, dtype=int)
    predictions_a, predictions_b = [], []
    for k_a, k_b in zip(only_a, only_b):
        a, b = y.copy(), y.copy()
        b[:k_a] = 1
        a[k_a:k_a + k_b] = 1
        predictions_a.append(a)
        predictions_b.append(b)
    return y, predictions_a, predictions_b


def test_compare_over_seeds_counts_and_differences_are_paired():
    from scipy.stats import binomtest

    y, a, b = _runs_with_differences([30, 25, 40], [5, 8, 4])
    comparison = compare_over_seeds(y, a, b)
    assert [(t.only_a, t.only_b) for t in comparison.paired] == [(30, 5), (25, 8), (40, 4)]
    assert comparison.differences == pytest.approx([0.025, 0.017, 0.036])
    assert comparison.mean_difference == pytest.approx(np.mean([0.025, 0.017, 0.036]))
    assert comparison.difference_sd == pytest.approx(np.std([0.025, 0.017, 0.036], ddof=1))
    assert comparison.difference_se == pytest.approx(comparison.difference_sd / np.sqrt(3))
    for test, (k, n) in zip(comparison.paired, [(5, 35), (8, 33), (4, 44)]):
        assert test.p_value == pytest.approx(binomtest(k, n, 0.5).pvalue, rel=1e-9)
    assert comparison.phrase() == "clearly above"
    assert compare_over_seeds(y, b, a).phrase() == "clearly below"


@pytest.mark.parametrize("only_a, only_b, why", [
    ([30, 25, 12], [5, 8, 6], "one seed's McNemar test is not significant"),
    ([30, 25, 5], [5, 8, 30], "one seed goes the other way"),
    ([12, 12, 150], [0, 0, 0], "the mean is within two standard errors over the seeds"),
    ([30], [5], "one seed says nothing about the seeds' spread"),
    ([10, 10, 10], [10, 10, 10], "no difference at all"),
])
def test_compare_over_seeds_needs_every_seed_and_the_spread_to_agree(only_a, only_b, why):
    comparison = compare_over_seeds(*_runs_with_differences(only_a, only_b))
    assert not comparison.clear(), why
    assert comparison.phrase() == "not clearly different from"


def test_compare_over_seeds_with_no_spread_is_clear_when_every_seed_is():
    comparison = compare_over_seeds(*_runs_with_differences([30, 30, 30], [5, 5, 5]))
    assert comparison.difference_sd == 0 and comparison.clear()
    assert isinstance(comparison, SeedComparison)
    with pytest.raises(ValueError, match="per seed"):
        compare_over_seeds(np.zeros(3), [np.zeros(3)], [])

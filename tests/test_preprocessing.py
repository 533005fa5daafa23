"""The tutorial's preprocessing (course_utils/preprocessing.py)."""

import numpy as np
import pytest

from course_utils.preprocessing import TrainStatistics, center_with_train_stats, one_hot, scale_to_symmetric_range


def test_scaling_maps_0_255_onto_minus_one_one():
    scaled = scale_to_symmetric_range(np.array([[0, 51, 255]], dtype=np.uint8))
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, [[-1.0, -0.6, 1.0]], rtol=1e-6)


def test_scaling_agrees_with_the_tutorials_formula():
    images = np.random.default_rng(0).integers(0, 256, (20, 784), dtype=np.uint8)
    np.testing.assert_allclose(scale_to_symmetric_range(images), ((images / 255.0) - 0.5) * 2, rtol=1e-6, atol=1e-6)


def test_centring_uses_training_statistics_for_every_array():
    rng = np.random.default_rng(1)
    X_train = rng.normal(3.0, 2.0, (500, 6))
    X_test = rng.normal(5.0, 1.0, (100, 6))
    train_c, test_c = center_with_train_stats(X_train, X_test)

    expected_mean, expected_std = X_train.mean(axis=0), X_train.std()
    np.testing.assert_allclose(train_c, (X_train - expected_mean) / expected_std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(test_c, (X_test - expected_mean) / expected_std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(train_c.mean(axis=0), 0, atol=1e-5)
    # the test set is not centred on its own mean: it carries the shift the training data lacks
    assert test_c.mean() == pytest.approx((5.0 - 3.0) / expected_std, abs=0.1)
    assert train_c.dtype == test_c.dtype == np.float32


def test_test_data_never_influences_the_statistics():
    rng = np.random.default_rng(2)
    X_train = rng.normal(size=(50, 4))
    first, _ = center_with_train_stats(X_train, rng.normal(size=(10, 4)))
    second, _ = center_with_train_stats(X_train, rng.normal(100, 50, size=(10, 4)))
    np.testing.assert_array_equal(first, second)


def test_statistics_reject_mismatched_or_constant_data():
    stats = TrainStatistics.fit(np.arange(12.0).reshape(3, 4))
    with pytest.raises(ValueError, match=r"\(5,\).*\(4,\)"):
        stats.apply(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="constant"):
        TrainStatistics.fit(np.ones((3, 4)))
    with pytest.raises(ValueError, match="non-empty"):
        TrainStatistics.fit(np.ones(4))


def test_one_hot_matches_keras_to_categorical():
    import keras

    labels = np.array([5, 0, 4, 1, 9, 2, 1, 3, 1, 4], dtype=np.uint8)
    encoded = one_hot(labels)
    assert encoded.dtype == np.float32 and encoded.shape == (10, 10)
    np.testing.assert_array_equal(encoded, keras.utils.to_categorical(labels, 10))
    np.testing.assert_array_equal(encoded.argmax(axis=1), labels)


def test_one_hot_rejects_bad_labels():
    with pytest.raises(ValueError, match="0..9"):
        one_hot(np.array([3, 10]))
    with pytest.raises(ValueError, match="0..2"):
        one_hot(np.array([-1, 2]), num_classes=3)
    with pytest.raises(ValueError, match="integers"):
        one_hot(np.array([0.5, 1.0]))
    assert one_hot(np.array([], dtype=int)).shape == (0, 10)

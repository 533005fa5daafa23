"""Tests for course_utils.optimisers: the update rules and schedules against Keras's own.

Every rule is stepped beside the Keras optimizer of the same name on the same float32 weights and the
same random gradients; the weights must agree to float32 rounding (in practice bit for bit, except where
a schedule's cosine rounds differently in TensorFlow). Each check also shows that it can fail: a
variant with one thing changed misses by far more than the tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import course_utils  # noqa: F401  (before Keras: quietens TensorFlow)
import keras
from course_utils import optimisers
from course_utils.backprop import sgd_momentum_step
from course_utils.optimisers import SGD, Adam, AdamW, RMSprop, cosine_decay, step_beside_keras

SHAPES = [(6, 4), (4,)]  # a kernel and a bias
# float32 rounding: a few units in the last place of weights of size about 1
RTOL, ATOL = 1e-6, 1e-7


def _start(seed, scale=1.0):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    gradients = [[(scale * rng.normal(size=s)).astype(np.float32) for s in SHAPES] for _ in range(20)]
    return weights, gradients


def _beside_keras(numpy_optimiser, keras_optimizer, seed=0, n_steps=20, scale=1.0):
    """(NumPy weights, Keras weights, initial weights) after n_steps on the same random gradients."""
    weights, gradients = _start(seed, scale)
    variables = [keras.Variable(w, name=name) for w, name in zip(weights, ["kernel", "bias"])]
    ours = step_beside_keras(numpy_optimiser, keras_optimizer, variables, lambda k: gradients[k], n_steps)
    return ours, [v.numpy() for v in variables], weights


def _assert_same(ours, theirs, initial):
    for a, b, w0 in zip(ours, theirs, initial, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
        assert not np.allclose(b, w0, rtol=RTOL, atol=ATOL)  # the weights did move


PAIRS = {
    "SGD": (lambda: SGD(0.1), lambda: keras.optimizers.SGD(0.1)),
    "momentum": (lambda: SGD(0.01, momentum=0.9), lambda: keras.optimizers.SGD(0.01, momentum=0.9)),
    "Nesterov": (lambda: SGD(0.01, momentum=0.9, nesterov=True),
                 lambda: keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True)),
    "RMSprop": (lambda: RMSprop(), lambda: keras.optimizers.RMSprop()),
    "Adam": (lambda: Adam(), lambda: keras.optimizers.Adam()),
    "AdamW": (lambda: AdamW(weight_decay=0.5), lambda: keras.optimizers.AdamW(weight_decay=0.5)),
    "SGD with weight decay": (lambda: SGD(0.1, momentum=0.5, weight_decay=0.2),
                              lambda: keras.optimizers.SGD(0.1, momentum=0.5, weight_decay=0.2)),
}


@pytest.mark.parametrize("name", PAIRS)
def test_each_rule_takes_kerass_steps_for_twenty_updates(name):
    ours, keras_optimizer = (make() for make in PAIRS[name])
    _assert_same(*_beside_keras(ours, keras_optimizer))
    assert ours.iterations == int(keras_optimizer.iterations) == 20


def test_the_comparison_tells_rules_apart():
    # Adam against Keras's RMSprop, and Keras-form momentum against the same rule without momentum
    for ours, theirs in [(Adam(), keras.optimizers.RMSprop()), (SGD(0.01), keras.optimizers.SGD(0.01, momentum=0.9)),
                         (SGD(0.01, momentum=0.9), keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True))]:
        a, b, _ = _beside_keras(ours, theirs)
        assert max(np.abs(x - y).max() for x, y in zip(a, b)) > 1e3 * ATOL


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rule=st.sampled_from(["momentum", "Nesterov", "RMSprop", "Adam", "AdamW"]),
    learning_rate=st.floats(1e-4, 0.5),
    beta=st.floats(0.0, 0.999),
    scale=st.sampled_from([1e-6, 1e-3, 1.0, 30.0]),  # tiny gradients are where epsilon matters
    seed=st.integers(0, 2**16),
)
def test_rules_match_keras_for_any_settings_and_gradient_scale(rule, learning_rate, beta, scale, seed):
    if rule in ("momentum", "Nesterov"):
        ours = SGD(learning_rate, momentum=beta, nesterov=rule == "Nesterov")
        theirs = keras.optimizers.SGD(learning_rate, momentum=beta, nesterov=rule == "Nesterov")
    elif rule == "RMSprop":
        ours, theirs = RMSprop(learning_rate, rho=beta), keras.optimizers.RMSprop(learning_rate, rho=beta)
    else:
        kind = {"Adam": (Adam, keras.optimizers.Adam), "AdamW": (AdamW, keras.optimizers.AdamW)}[rule]
        ours, theirs = kind[0](learning_rate, beta_2=max(beta, 0.5)), kind[1](learning_rate, beta_2=max(beta, 0.5))
    a, b, _ = _beside_keras(ours, theirs, seed=seed, n_steps=6, scale=scale)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL)


def test_a_schedule_drives_the_numpy_optimiser_as_it_drives_keras():
    schedule = keras.optimizers.schedules.CosineDecay(0.0, 12, alpha=0.1, warmup_target=0.01, warmup_steps=5)
    ours = Adam(lambda k: cosine_decay(k, 0.0, 12, alpha=0.1, warmup_target=0.01, warmup_steps=5))
    _assert_same(*_beside_keras(ours, keras.optimizers.Adam(schedule)))


def test_sgd_with_momentum_is_chapter_5s_step():
    weights, gradients = _start(3)
    optimiser, velocities = SGD(0.01, momentum=0.9), [np.zeros_like(w) for w in weights]
    ours, theirs = weights, weights
    for g in gradients:
        ours = optimiser.step(ours, g)
        theirs, velocities = sgd_momentum_step(theirs, g, velocities, 0.01, 0.9)
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))
    assert all(np.array_equal(a, b) for a, b in zip(optimiser.state["momentum"], velocities))


def test_step_leaves_its_arguments_alone_and_keeps_the_dtype():
    weights, gradients = _start(4)
    before = [w.copy() for w in weights]
    for optimiser in (SGD(0.1), SGD(0.1, momentum=0.9, nesterov=True), RMSprop(), Adam(), AdamW()):
        new = optimiser.step(weights, gradients[0])
        assert all(np.array_equal(w, b) for w, b in zip(weights, before))
        assert [w.dtype for w in new] == [np.float32, np.float32]
        assert [w.shape for w in new] == SHAPES
    float64 = [w.astype(np.float64) for w in weights]
    assert Adam().step(float64, gradients[0])[0].dtype == np.float64


def test_mismatched_lists_and_state_before_the_first_step_are_errors():
    weights, gradients = _start(5)
    with pytest.raises(ValueError, match="2 weight arrays but 1 gradients"):
        Adam().step(weights, gradients[0][:1])
    with pytest.raises(ValueError, match="first step"):
        Adam().slots_per_weight()
    with pytest.raises(ValueError, match="momentum"):
        SGD(momentum=1.5)


# --- the maths the chapter states -------------------------------------------------------------------


def test_adams_first_step_is_the_learning_rate_times_the_sign_of_the_gradient():
    g = np.array([3.0, -1e-3, 2e-2, -40.0])
    w = Adam(learning_rate=0.01, epsilon=1e-12).step([np.zeros(4)], [g])[0]
    np.testing.assert_allclose(w, -0.01 * np.sign(g), rtol=1e-7)  # epsilon: 3e-8 for |g| = 1e-3


def test_rmsprops_first_step_is_uncorrected():
    g = np.array([3.0, -0.5])
    w = RMSprop(learning_rate=0.01, rho=0.9, epsilon=1e-12).step([np.zeros(2)], [g])[0]
    np.testing.assert_allclose(w, -0.01 * np.sign(g) / math.sqrt(1 - 0.9), rtol=1e-8)


def test_kerass_adam_is_algorithm_1_with_a_rescaled_epsilon():
    # Keras adds epsilon to sqrt(s), i.e. Algorithm 1 with eps_t = epsilon / sqrt(1 - beta_2**t) added to sqrt(s_hat)
    rng = np.random.default_rng(6)
    lr, beta_1, beta_2, epsilon = 0.01, 0.9, 0.999, 1e-3  # a large epsilon, so that it matters
    optimiser, w = Adam(lr, beta_1, beta_2, epsilon), np.zeros(5)
    for t in range(1, 30):
        g = rng.normal(scale=1e-3, size=5)
        new = optimiser.step([w], [g])[0]
        m, s = optimiser.state["momentum"][0], optimiser.state["velocity"][0]
        m_hat, s_hat = m / (1 - beta_1**t), s / (1 - beta_2**t)
        eps_t = epsilon / math.sqrt(1 - beta_2**t)
        np.testing.assert_allclose(w - new, lr * m_hat / (np.sqrt(s_hat) + eps_t), rtol=1e-12)
        w = new
    # with the paper's constant epsilon instead, the steps are clearly different
    paper, keras_form = Adam(lr, epsilon=epsilon, paper_epsilon=True), Adam(lr, epsilon=epsilon)
    g = rng.normal(scale=1e-3, size=5)
    assert not np.allclose(paper.step([np.zeros(5)], [g])[0], keras_form.step([np.zeros(5)], [g])[0], rtol=1e-2)


def test_adamw_shrinks_every_weight_first_then_takes_adams_step():
    # a zero gradient: Adam's step is 0, only the decay acts, on biases as on kernels
    w = [np.ones(3, dtype=np.float32), np.full(2, -2.0, dtype=np.float32)]
    after = AdamW(learning_rate=0.1, weight_decay=0.5).step(w, [np.zeros(3), np.zeros(2)])
    np.testing.assert_allclose(after[0], 1 - 0.1 * 0.5)
    np.testing.assert_allclose(after[1], -2 * (1 - 0.1 * 0.5))
    # in general: AdamW = Adam applied to the shrunk weights, with the gradient of the unshrunk ones
    weights, gradients = _start(7)
    adamw, adam = AdamW(learning_rate=0.01, weight_decay=0.3), Adam(learning_rate=0.01)
    ours, theirs = weights, weights
    for g in gradients:
        ours = adamw.step(ours, g)
        theirs = adam.step([w - w * np.float32(0.3) * np.float32(0.01) for w in theirs], g)
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))


def test_nesterov_in_kerass_form_is_the_look_ahead_method():
    # Keras stores u = w + beta v and takes the gradient there: textbook Nesterov, reparametrised
    A = np.diag([1.0, 10.0, 0.1])
    grad = lambda w: A @ w  # noqa: E731  (f(w) = w^T A w / 2)
    lr, beta = 0.05, 0.9
    w, v = np.array([1.0, -1.0, 2.0]), np.zeros(3)
    keras_form, u = SGD(lr, momentum=beta, nesterov=True), w.copy()
    for _ in range(40):
        v = beta * v - lr * grad(w + beta * v)  # the textbook: gradient at the look-ahead point
        w = w + v
        u = keras_form.step([u], [grad(u)])[0]
        np.testing.assert_allclose(u, w + beta * v, rtol=1e-12, atol=1e-14)


def test_kerass_momentum_and_the_textbooks_agree_only_for_a_constant_learning_rate():
    rng = np.random.default_rng(8)
    gradients = [rng.normal(size=4) for _ in range(30)]

    def textbook(rates):  # v <- beta v + g, w <- w - lr v
        w, v = np.zeros(4), np.zeros(4)
        for g, lr in zip(gradients, rates):
            v = 0.9 * v + g
            w = w - lr * v
        return w

    def keras_form(rates):
        optimiser, w = SGD(lambda k: rates[k], momentum=0.9), np.zeros(4)
        for g in gradients:
            w = optimiser.step([w], [g])[0]
        return w

    constant, decaying = [0.01] * 30, [0.01 / (1 + 0.2 * k) for k in range(30)]
    np.testing.assert_allclose(keras_form(constant), textbook(constant), rtol=1e-12)
    assert not np.allclose(keras_form(decaying), textbook(decaying), rtol=1e-3)


# --- the schedule -----------------------------------------------------------------------------------


@settings(max_examples=10, deadline=None)
@given(
    initial=st.floats(0.0, 0.1),
    decay_steps=st.integers(1, 40),
    alpha=st.floats(0.0, 0.5),
    warmup=st.one_of(st.none(), st.tuples(st.floats(1e-4, 1.0), st.integers(1, 20))),
)
def test_cosine_decay_equals_kerass_at_every_step(initial, decay_steps, alpha, warmup):
    target, warmup_steps = warmup if warmup else (None, 0)
    schedule = keras.optimizers.schedules.CosineDecay(initial, decay_steps, alpha=alpha, warmup_target=target,
                                                      warmup_steps=warmup_steps)
    steps = np.arange(decay_steps + warmup_steps + 5)  # past the end: flat
    ours = cosine_decay(steps, initial, decay_steps, alpha, target, warmup_steps)
    theirs = np.array([float(schedule(k)) for k in steps])
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=1e-9)


def test_cosine_decay_shape_of_the_curve():
    lr = cosine_decay(np.arange(40), 0.001, 20, alpha=0.1, warmup_target=0.01, warmup_steps=10)
    assert lr[0] == np.float32(0.001)  # the warm-up starts at the initial rate, not 0 as Keras's docstring says
    np.testing.assert_allclose(lr[5], 0.001 + (0.01 - 0.001) * 5 / 10, rtol=1e-6)
    assert lr[10] == np.float32(0.01) and lr.argmax() == 10  # the peak, then down
    np.testing.assert_allclose(lr[20], 0.01 * (0.1 + 0.9 * 0.5), rtol=1e-6)  # half way down the cosine
    np.testing.assert_allclose(lr[30:], 0.001, rtol=1e-6)  # alpha * target from the end on
    assert np.all(np.diff(lr[:11]) > 0) and np.all(np.diff(lr[10:31]) < 0)
    assert float(cosine_decay(7, 0.5, 10)) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.7)) / 2, rel=1e-6)


# --- memory -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, slots", [("SGD", {}), ("momentum", {"momentum": 1.0}),
                                         ("Nesterov", {"momentum": 1.0}), ("RMSprop", {"velocity": 1.0}),
                                         ("Adam", {"momentum": 1.0, "velocity": 1.0}),
                                         ("AdamW", {"momentum": 1.0, "velocity": 1.0})])
def test_slots_per_weight_are_counted_from_kerass_variables_and_match_ours(name, slots):
    from course_utils.models import build_tutorial_mlp

    ours, theirs = (make() for make in PAIRS[name])
    model = build_tutorial_mlp(optimizer=theirs)
    theirs.build(model.trainable_variables)
    counted = optimisers.keras_slots_per_weight(theirs, model.trainable_variables)
    assert counted == pytest.approx(slots)
    weights = [v.numpy() for v in model.trainable_variables]
    ours.step(weights, [np.zeros_like(w) for w in weights])
    assert ours.slots_per_weight() == pytest.approx(sum(counted.values()))
    assert set(ours.state) == set(slots)


# --- training with the NumPy optimisers ---------------------------------------------------------------


def _tiny_data(seed=9, n=50, n_features=12, n_classes=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features)).astype(np.float32)
    y = rng.integers(0, n_classes, size=n)
    return X, np.eye(n_classes, dtype=np.float32)[y], y


def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch():
    order = optimisers.epoch_order(100, 0, 1)
    assert sorted(order) == list(range(100))
    assert np.array_equal(order, optimisers.epoch_order(100, 0, 1))
    assert not np.array_equal(order, optimisers.epoch_order(100, 1, 1))
    assert not np.array_equal(order, optimisers.epoch_order(100, 0, 2))


def test_fit_mlp_is_the_loop_it_describes():
    from course_utils.backprop import backward, cross_entropy, forward, net_inputs

    X, Y, y = _tiny_data()
    rng = np.random.default_rng(10)
    weights = [rng.normal(scale=0.5, size=s).astype(np.float32) for s in [(6, 12), (3, 6)]]
    biases = [np.zeros(6, np.float32), np.zeros(3, np.float32)]
    before = [w.copy() for w in weights + biases]
    run = optimisers.fit_mlp(Adam(0.01), weights, biases, X, Y, X[:20], y[:20], epochs=3, batch_size=16, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(weights + biases, before))  # inputs untouched

    params, adam = weights + biases, Adam(0.01)
    for epoch in range(3):
        order = optimisers.epoch_order(len(X), epoch, 4)
        for start in range(0, len(X), 16):  # the last batch is smaller: 50 = 3 * 16 + 2
            batch = order[start:start + 16]
            gW, gb = backward(forward(X[batch], params[:2], params[2:]), params[:2], Y[batch])
            params = adam.step(params, gW + gb)
    assert all(np.array_equal(a, b) for a, b in zip(run.weights + run.biases, params))
    logits = net_inputs(X[:20], params[:2], params[2:])[-1]
    assert run.val_loss[-1] == pytest.approx(cross_entropy(Y[:20], logits))
    assert run.val_accuracy[-1] == pytest.approx(np.mean(logits.argmax(axis=1) == y[:20]))
    assert len(run.val_loss) == len(run.val_accuracy) == 3


def test_fit_mlp_trains_as_model_fit_does():
    from course_utils.backprop import keras_weights
    from course_utils.models import build_tutorial_mlp

    X, Y, y = _tiny_data(n=40)
    model = build_tutorial_mlp(n_features=12, n_hidden=5, n_classes=3, seed=3,
                               optimizer=keras.optimizers.Adam(learning_rate=0.01))
    W0, b0 = keras_weights(model)
    run = optimisers.fit_mlp(Adam(0.01), W0, b0, X, Y, X, y, epochs=2, batch_size=16, seed=5)
    for epoch in range(2):
        order = optimisers.epoch_order(len(X), epoch, 5)
        model.fit(X[order], Y[order], batch_size=16, epochs=1, shuffle=False, verbose=0)
    W, b = keras_weights(model)
    for ours, theirs in zip(run.weights + run.biases, W + b):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    assert run.val_loss[-1] == pytest.approx(model.evaluate(X, Y, verbose=0)[0], rel=1e-5)


def test_keras_slots_refuse_variables_of_another_model():
    w = keras.Variable(np.ones(3, dtype="float32"), name="kernel")
    optimizer = keras.optimizers.Adam()
    optimizer.build([w])
    with pytest.raises(ValueError, match="belongs to none"):
        optimisers.keras_slots_per_weight(optimizer, [keras.Variable(np.ones(2, dtype="float32"), name="other")])

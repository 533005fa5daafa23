"""Tests for course_utils.autodiff: reverse-mode automatic differentiation over NumPy arrays.

Every operation's vector-Jacobian product is checked against central finite differences in float64,
broadcasting and reductions against their shapes, the reverse sweep against chapter 5's hand-written
backpropagation and ``tf.GradientTape``, and the topological order against its definition. A wrong VJP
must be caught: one test breaks one on purpose.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import course_utils  # noqa: F401  (before TensorFlow: quietens it)
from course_utils import autodiff as ad
from course_utils import backprop
from course_utils.autodiff import Tensor


def _vjp_error(f, *arrays, seed=0):
    """Relative error of f's VJP with a random G against finite differences of sum(G * f(...))."""
    rng = np.random.default_rng(seed)
    G = rng.normal(size=np.shape(f(*[Tensor(a) for a in arrays]).value))
    return ad.check_gradients(lambda *ts: ad.sum(f(*ts) * G), *arrays)


RNG = np.random.default_rng(2024)
M34, M34b, M45 = RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4)), RNG.normal(size=(4, 5))
POSITIVE = RNG.uniform(0.5, 2.0, size=(3, 4))
ONE_HOT = np.eye(4)[[0, 3, 1]]

# name -> (function of tensors, its arrays): one entry per operation of the module.
OPS = {
    "add": (lambda a, b: a + b, [M34, M34b]),
    "add broadcast row": (lambda a, b: a + b, [M34, RNG.normal(size=4)]),
    "add broadcast column": (lambda a, b: a + b, [M34, RNG.normal(size=(3, 1))]),
    "add scalar tensor": (lambda a, b: a + b, [M34, np.array(0.7)]),
    "radd number": (lambda a: 2.5 + a, [M34]),
    "sub": (lambda a, b: a - b, [M34, RNG.normal(size=(1, 4))]),
    "rsub number": (lambda a: 1.0 - a, [M34]),
    "mul": (lambda a, b: a * b, [M34, RNG.normal(size=4)]),
    "rmul array": (lambda a: M34b * a, [M34]),
    "div": (lambda a, b: a / b, [M34, POSITIVE]),
    "div broadcast": (lambda a, b: a / b, [M34, POSITIVE[:1]]),
    "rdiv number": (lambda a: 3.0 / a, [POSITIVE]),
    "neg": (lambda a: -a, [M34]),
    "square": (lambda a: a**2, [M34]),
    "cube": (lambda a: a**3, [M34]),
    "power -1.5": (lambda a: a**-1.5, [POSITIVE]),
    "matmul": (lambda a, b: a @ b, [M34, M45]),
    "matmul function": (ad.matmul, [M34, M45]),
    "rmatmul array": (lambda b: M34 @ b, [M45]),
    "transpose": (lambda a: a.T, [M34]),
    "tanh": (ad.tanh, [M34]),
    "logistic": (ad.logistic, [M34 * 3]),
    "relu": (ad.relu, [M34]),
    "exp": (ad.exp, [M34]),
    "log": (ad.log, [POSITIVE]),
    "sqrt": (ad.sqrt, [POSITIVE]),
    "sum": (ad.sum, [M34]),
    "sum axis 0": (lambda a: ad.sum(a, axis=0), [M34]),
    "sum axis -1 keepdims": (lambda a: ad.sum(a, axis=-1, keepdims=True), [M34]),
    "sum axes (0, 1) of 3-D": (lambda a: ad.sum(a, axis=(0, 2)), [RNG.normal(size=(2, 3, 4))]),
    "mean": (ad.mean, [M34]),
    "mean axis 0 keepdims": (lambda a: ad.mean(a, axis=0, keepdims=True), [M34]),
    "mean axis 1": (lambda a: ad.mean(a, axis=1), [M34]),
    "softmax cross-entropy": (ad.softmax_cross_entropy, [M34 * 3, ONE_HOT]),
    "softmax cross-entropy, soft labels": (ad.softmax_cross_entropy, [M34, POSITIVE / POSITIVE.sum(1, keepdims=True)]),
}


@pytest.mark.parametrize("name", OPS)
def test_every_vjp_matches_finite_differences(name):
    f, arrays = OPS[name]
    assert _vjp_error(f, *arrays) < 1e-7


def test_a_wrong_vjp_is_caught():
    def wrong_tanh(a):  # forgets the square in 1 - tanh(z)**2
        out = np.tanh(a.value)
        return Tensor._node(out, "tanh", [a], lambda G: (G * (1 - out),))

    assert _vjp_error(wrong_tanh, M34) > 1e-2


def test_values_are_numpys():
    a, b = Tensor(M34), Tensor(M45)
    np.testing.assert_array_equal((a @ b).value, M34 @ M45)
    np.testing.assert_allclose(ad.logistic(Tensor([-800.0, 0.0, 800.0])).value, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(ad.relu(a).value, np.maximum(M34, 0))
    np.testing.assert_array_equal(ad.mean(a, axis=0).value, M34.mean(axis=0))
    np.testing.assert_array_equal((a / 2 - 1).value, M34 / 2 - 1)
    assert Tensor(3).value.dtype == np.float64 and Tensor(3).shape == ()


def test_an_array_on_the_left_makes_a_tensor():
    out = np.ones(4) + Tensor(M34)  # NumPy defers to Tensor.__radd__
    assert isinstance(out, Tensor) and out.shape == (3, 4)


def test_softmax_cross_entropy_is_chapter_5s_loss_and_gradient():
    rng = np.random.default_rng(1)
    Z, Y = rng.normal(scale=3, size=(8, 5)), np.eye(5)[rng.integers(0, 5, 8)]
    logits = Tensor(Z)
    loss = ad.softmax_cross_entropy(logits, Y)
    assert float(loss.value) == pytest.approx(backprop.cross_entropy(Y, Z), rel=1e-14)
    loss.backward()
    np.testing.assert_allclose(logits.grad, (backprop.softmax(Z) - Y) / 8, rtol=1e-12)


def test_softmax_cross_entropy_is_finite_for_huge_logits():
    logits = Tensor([[1000.0, -1000.0], [0.0, 2000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is harmless
        loss = ad.softmax_cross_entropy(logits, np.array([[0.0, 1.0], [1.0, 0.0]]))
        loss.backward()
    assert float(loss.value) == pytest.approx(2000.0)
    np.testing.assert_allclose(logits.grad, [[0.5, -0.5], [-0.5, 0.5]])


def test_relu_derivative_at_zero_is_zero_like_tensorflow():
    import tensorflow as tf

    z = np.array([-1.0, 0.0, 2.0])
    x = Tensor(z)
    ad.sum(ad.relu(x)).backward()
    variable = tf.Variable(z)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(tf.nn.relu(variable))
    np.testing.assert_array_equal(x.grad, tape.gradient(y, variable).numpy())
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])


# --- broadcasting and reductions -------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 4), cols=st.integers(1, 4), kind=st.sampled_from(["row", "col", "1x1", "scalar", "full"]),
       op=st.sampled_from(["add", "sub", "mul", "div"]))
def test_broadcast_operands_get_gradients_of_their_own_shape(rows, cols, kind, op):
    rng = np.random.default_rng(rows * 10 + cols)
    shape = {"row": (cols,), "col": (rows, 1), "1x1": (1, 1), "scalar": (), "full": (rows, cols)}[kind]
    a, b = rng.normal(size=(rows, cols)), rng.uniform(0.5, 2, size=shape)
    f = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
         "div": lambda x, y: x / y}[op]
    grad_a, grad_b = ad.gradients(lambda x, y: ad.sum(f(x, y) ** 2), a, b)
    assert grad_a.shape == a.shape and grad_b.shape == b.shape
    assert grad_a.dtype == grad_b.dtype == np.float64
    assert ad.check_gradients(lambda x, y: ad.sum(f(x, y) ** 2), a, b) < 1e-7


def test_bias_gradient_is_the_column_sum_of_the_upstream_gradient():
    G = np.arange(12.0).reshape(4, 3)
    b = Tensor(np.zeros(3))
    (Tensor(np.ones((4, 3))) + b).backward(G)
    np.testing.assert_array_equal(b.grad, G.sum(axis=0))


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 1), (1, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_reductions_spread_the_gradient_over_what_they_reduced(axis, keepdims, reduce):
    x = np.random.default_rng(3).normal(size=(2, 3, 4))
    t = Tensor(x)
    out = getattr(ad, reduce)(t, axis=axis, keepdims=keepdims)
    assert out.shape == getattr(np, reduce)(x, axis=axis, keepdims=keepdims).shape
    out.backward(np.ones(out.shape))
    count = x.size // max(np.size(out.value), 1)
    np.testing.assert_allclose(t.grad, np.full(x.shape, 1.0 if reduce == "sum" else 1 / count))


# --- the reverse sweep -----------------------------------------------------------------------------


def test_a_tensor_used_twice_gets_both_contributions():
    x = Tensor(3.0)
    y = x * x + x  # x is an input of two nodes, and twice of the same node
    y.backward()
    assert float(x.grad) == pytest.approx(2 * 3.0 + 1)


def test_a_diamond_graph_adds_both_paths():
    x = Tensor(np.array([0.3, -1.2]))
    h = ad.tanh(x)
    out = ad.sum(h * ad.exp(h))  # two paths from h to out
    out.backward()
    expected = (np.exp(np.tanh(x.value)) * (1 + np.tanh(x.value))) * (1 - np.tanh(x.value) ** 2)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-14)


def test_leaves_accumulate_over_backward_calls_and_intermediates_restart():
    w = Tensor(np.array([1.0, 2.0]))
    for _ in range(2):
        h = w * 3
        loss = ad.sum(h**2)
        loss.backward()
    np.testing.assert_allclose(w.grad, 2 * (18 * w.value))  # two sweeps of 18 w each
    h_grad = h.grad.copy()
    loss.backward()
    np.testing.assert_allclose(h.grad, h_grad)  # the intermediate did not accumulate
    w.grad = None
    loss.backward()
    np.testing.assert_allclose(w.grad, 18 * w.value)


def test_grad_is_none_until_backward():
    x = Tensor([1.0, 2.0])
    y = ad.sum(x)
    assert x.grad is None and y.grad is None
    y.backward()
    assert x.grad.shape == x.shape and float(y.grad) == 1.0


def test_backward_of_a_non_scalar_needs_a_gradient():
    with pytest.raises(ValueError, match="needs a scalar"):
        Tensor(M34).backward()
    with pytest.raises(ValueError, match="gradient has shape"):
        ad.tanh(Tensor(M34)).backward(np.ones(3))


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="plain number"):
        Tensor(M34) ** Tensor(2.0)
    with pytest.raises(ValueError, match="2-D"):
        ad.matmul(Tensor(np.ones(3)), Tensor(np.ones(3)))
    with pytest.raises(ValueError, match="one shape"):
        ad.softmax_cross_entropy(Tensor(M34), np.eye(3))


def _network(rng, sizes, scale=0.5):
    weights = [rng.normal(scale=scale, size=(m, d)) for d, m in zip(sizes[:-1], sizes[1:])]
    biases = [rng.normal(scale=scale, size=m) for m in sizes[1:]]
    return weights, biases


def _autodiff_loss(X, Y, weights, biases, activation=ad.tanh):
    A = Tensor(X)
    for l, (W, b) in enumerate(zip(weights, biases)):
        Z = A @ W.T + b
        A = Z if l == len(weights) - 1 else activation(Z)
    return ad.softmax_cross_entropy(A, Y)


@pytest.mark.parametrize("sizes", [[5, 3], [6, 4, 3], [784, 50, 50, 10]], ids=str)
def test_the_sweep_equals_chapter_5s_backpropagation(sizes):
    rng = np.random.default_rng(len(sizes))
    weights, biases = _network(rng, sizes, scale=0.1)
    X, Y = rng.normal(size=(16, sizes[0])), np.eye(sizes[-1])[rng.integers(0, sizes[-1], 16)]
    Ws, bs = [Tensor(W) for W in weights], [Tensor(b) for b in biases]
    _autodiff_loss(X, Y, Ws, bs).backward()
    grads_W, grads_b = backprop.backward(backprop.forward(X, weights, biases), weights, Y)
    for ours, theirs in zip([t.grad for t in Ws + bs], grads_W + grads_b):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_the_sweep_equals_gradient_tape(activation):
    import tensorflow as tf

    rng = np.random.default_rng(11)
    weights, biases = _network(rng, [7, 6, 5, 4, 3])
    X, Y = rng.normal(size=(9, 7)), np.eye(3)[rng.integers(0, 3, 9)]
    Ws, bs = [Tensor(W) for W in weights], [Tensor(b) for b in biases]
    _autodiff_loss(X, Y, Ws, bs, ad.ACTIVATIONS[activation]).backward()
    variables = [tf.Variable(p) for p in weights + biases]
    with tf.GradientTape() as tape:
        A = tf.constant(X)
        for l in range(len(weights)):
            Z = tf.matmul(A, variables[l], transpose_b=True) + variables[len(weights) + l]
            A = Z if l == len(weights) - 1 else getattr(tf.nn, activation)(Z)
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(Y, A))
    for ours, theirs in zip([t.grad for t in Ws + bs], tape.gradient(loss, variables)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=1e-14)


# --- the topological order -------------------------------------------------------------------------


def _ancestors(out):
    seen, todo = {}, [out]
    while todo:
        node = todo.pop()
        if id(node) not in seen:
            seen[id(node)] = node
            todo.extend(node.inputs)
    return seen


def test_topological_order_lists_every_ancestor_once_inputs_first():
    rng = np.random.default_rng(5)
    weights, biases = _network(rng, [4, 3, 3, 2])
    loss = _autodiff_loss(rng.normal(size=(5, 4)), np.eye(2)[[0, 1, 1, 0, 1]],
                          [Tensor(W) for W in weights], [Tensor(b) for b in biases])
    order = ad.topological_order(loss)
    position = {id(t): i for i, t in enumerate(order)}
    assert len(position) == len(order), "each node once"
    assert set(position) == set(_ancestors(loss)), "every node the loss depends on, nothing else"
    assert order[-1] is loss
    assert all(position[id(u)] < position[id(t)] for t in order for u in t.inputs)


def test_topological_order_of_a_shared_node_and_a_leaf():
    x = Tensor(1.0, name="x")
    assert ad.topological_order(x) == [x]
    h = ad.exp(x)
    out = h * h + h
    order = ad.topological_order(out)
    assert sum(t is h for t in order) == 1 and order.index(x) < order.index(h)


def test_a_deep_graph_needs_no_recursion():
    x = Tensor(0.5)
    y = x
    for _ in range(5000):  # far more than Python's recursion limit of nested calls
        y = y * 1.0001
    y.backward()
    assert len(ad.topological_order(y)) == 1 + 2 * 5000
    assert float(x.grad) == pytest.approx(1.0001**5000)


def test_describe_graph_names_nodes_in_order():
    X, W = Tensor(M34, name="X"), Tensor(np.ones((2, 4)), name="W")
    Z = (X @ W.T).named("Z")
    rows = ad.describe_graph(ad.mean(Z))
    assert [r["op"] for r in rows] == ["input", "input", "transpose", "matmul", "mean"]
    assert rows[3]["name"] == "Z" and rows[3]["inputs"] == "X, t2" and rows[3]["shape"] == (3, 2)
    assert repr(Z) == "Tensor(name='Z', op='matmul', shape=(3, 2))"


def test_vjp_gives_one_gradient_per_input_of_its_shape():
    a, b = Tensor(M34), Tensor(np.ones(4))
    G = np.arange(12.0).reshape(3, 4)
    grad_a, grad_b = (a * b).vjp(G)
    np.testing.assert_array_equal(grad_a, G)
    np.testing.assert_array_equal(grad_b, (G * M34).sum(axis=0))
    assert a.vjp(G) == ()


def test_a_leaf_keeps_its_own_copy_of_the_array():
    array = np.ones(3)
    t = Tensor(array)
    array[0] = 5.0
    assert t.value[0] == 1.0
    assert np.array_equal(Tensor(t).value, t.value)


def test_a_star_import_keeps_the_builtin_sum():
    namespace = {}
    exec("from course_utils.autodiff import *", namespace)
    assert "sum" not in namespace and "Tensor" in namespace and "mean" in namespace
    from course_utils.autodiff import sum as tensor_sum  # noqa: F401  (still importable by name)

"""Reverse-mode automatic differentiation over NumPy arrays: backpropagation for any network.

A :class:`Tensor` wraps a float64 array. Every operation on tensors (``+ - * / ** @``, :func:`tanh`,
:func:`sum`, :func:`softmax_cross_entropy`, ...) returns a new tensor that remembers its inputs and
one function, its *vector-Jacobian product* (VJP): given ``G = dL/d(output)``, the gradient of a scalar
``L`` with respect to the output, it returns ``dL/d(input)`` for each input. The tensors form a
computational graph; ``loss.backward()`` visits it in reverse :func:`topological_order` and adds each
node's VJP into its inputs' ``.grad`` (the chain rule, with a sum where a tensor is used more than once).

Notation as in the course (chapters 1 and 5, :mod:`course_utils.backprop`): examples are rows, a layer
is ``Z = A_prev @ W.T + b`` with ``W`` of shape ``(units, units of the layer before)``. ``b`` of shape
``(units,)`` is broadcast over the rows, and its gradient is summed back over them.

Chapter "backpropagation for any network" (``08_autodiff``) derives every VJP here and checks it
against finite differences, against chapter 5's hand-written :func:`course_utils.backprop.backward` and
against ``tf.GradientTape``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from course_utils.backprop import log_softmax, numerical_gradient, relative_error, softmax

# ``sum`` is left out of ``__all__`` on purpose: ``from course_utils.autodiff import *`` must not hide
# Python's built-in ``sum``. Import it by name (``from course_utils.autodiff import sum``) or use ``ad.sum``.
__all__ = [
    "ACTIVATIONS",
    "Tensor",
    "check_gradients",
    "describe_graph",
    "exp",
    "gradients",
    "log",
    "logistic",
    "matmul",
    "mean",
    "relu",
    "softmax_cross_entropy",
    "sqrt",
    "tanh",
    "topological_order",
    "transpose",
]


class Tensor:
    """A float64 array in a computational graph.

    ``Tensor(value, name=None)`` makes a leaf (an input or a parameter). Operations make the other nodes;
    each keeps ``inputs`` (the tensors it was computed from), ``op`` (the operation's name) and its VJP.
    After ``loss.backward()``, ``.grad`` holds ``dL/d(this tensor)``, an array of ``.value``'s shape
    (``None`` before). Gradients *accumulate* into ``.grad`` of leaves as in PyTorch: set ``t.grad = None``
    to start again. Plain numbers and arrays combined with a tensor are wrapped as constant leaves.
    """

    # Makes NumPy hand ``array + tensor`` to Tensor.__radd__ instead of looping over the array.
    __array_priority__ = 1000

    def __init__(self, value, name: str | None = None):
        # A copy: changing the array afterwards must not change the graph's numbers
        self.value = np.array(value.value if isinstance(value, Tensor) else value, dtype=np.float64)
        self.name = name
        self.grad: np.ndarray | None = None
        self.op = "input"
        self.inputs: tuple[Tensor, ...] = ()
        self._vjp: Callable[[np.ndarray], tuple[np.ndarray, ...]] | None = None

    @classmethod
    def _node(cls, value, op: str, inputs: Sequence[Tensor], vjp: Callable) -> Tensor:
        """A tensor computed by ``op`` from ``inputs``; ``vjp(G)`` returns one gradient per input."""
        out = cls(())
        out.value = np.asarray(value, dtype=np.float64)  # computed here: no copy needed
        out.op, out.inputs, out._vjp = op, tuple(inputs), vjp
        return out

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def ndim(self) -> int:
        return self.value.ndim

    @property
    def T(self) -> Tensor:
        """The transpose of a 2-D tensor (``W.T`` in ``A @ W.T + b``)."""
        return transpose(self)

    def named(self, name: str) -> Tensor:
        """Give this tensor a name (shown by :func:`describe_graph`) and return it: ``(A @ W.T).named("Z")``."""
        self.name = name
        return self

    def __repr__(self) -> str:
        name = f"name={self.name!r}, " if self.name else ""
        return f"Tensor({name}op={self.op!r}, shape={self.shape})"

    # --- the reverse sweep ------------------------------------------------------------------------

    def vjp(self, G) -> tuple[np.ndarray, ...]:
        """This node's local vector-Jacobian products: ``dL/d(input)`` for each input, given ``G = dL/d(self)``.

        ``G`` has this tensor's shape; each result has its input's shape. A leaf returns ``()``.
        """
        return () if self._vjp is None else self._vjp(np.asarray(G, dtype=np.float64))

    def backward(self, gradient=None) -> None:
        """Backpropagate from this tensor: fill ``.grad`` of every tensor it was computed from.

        For a scalar (one-element) tensor ``dL/dL = 1`` starts the sweep. For any other shape pass
        ``gradient`` (an array of this shape, the ``G`` of a vector-Jacobian product). Every node, in
        reverse topological order, adds its VJP into its inputs' ``.grad``. Leaves accumulate across
        calls; the nodes in between start again from zero on each call.
        """
        if gradient is None:
            if self.value.size != 1:
                raise ValueError(f"backward() without a gradient needs a scalar, not shape {self.shape}: "
                                 "pass gradient=an array of that shape, or reduce with sum() or mean()")
            gradient = np.ones_like(self.value)
        gradient = np.asarray(gradient, dtype=np.float64)
        if gradient.shape != self.shape:
            raise ValueError(f"gradient has shape {gradient.shape}, the tensor {self.shape}")
        order = topological_order(self)
        for node in order:
            if node.inputs or node.grad is None:  # intermediate nodes restart; leaves accumulate
                node.grad = np.zeros_like(node.value)
        self.grad = np.asarray(self.grad + gradient)
        for node in reversed(order):
            if not node.inputs:
                continue
            for tensor, g in zip(node.inputs, node.vjp(node.grad), strict=True):
                tensor.grad = np.asarray(tensor.grad + g)  # the chain rule's sum over every use of ``tensor``

    # --- operators (NumPy broadcasting; gradients summed back to each operand's shape) -------------

    def __add__(self, other):
        return _add(self, other)

    def __radd__(self, other):
        return _add(other, self)

    def __sub__(self, other):
        return _sub(self, other)

    def __rsub__(self, other):
        return _sub(other, self)

    def __mul__(self, other):
        return _mul(self, other)

    def __rmul__(self, other):
        return _mul(other, self)

    def __truediv__(self, other):
        return _div(self, other)

    def __rtruediv__(self, other):
        return _div(other, self)

    def __neg__(self):
        return Tensor._node(-self.value, "neg", [self], lambda G: (-G,))

    def __pow__(self, p):
        return _pow(self, p)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x, name="const")


def _unbroadcast(G: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``G`` back to ``shape``: the gradient of an operand that broadcasting repeated.

    A bias ``b`` of shape ``(m,)`` added to every row of an ``(n, m)`` array is used n times, so
    ``dL/db = G.sum(axis=0)``; a ``(1, m)`` or ``(n, 1)`` operand is summed over its axes of length 1.
    """
    G = G.sum(axis=tuple(range(G.ndim - len(shape)))) if G.ndim > len(shape) else G
    axes = tuple(i for i, (g, s) in enumerate(zip(G.shape, shape, strict=True)) if s == 1 and g != 1)
    return G.sum(axis=axes, keepdims=True) if axes else G


def _add(a, b) -> Tensor:
    a, b = _as_tensor(a), _as_tensor(b)
    return Tensor._node(a.value + b.value, "add", [a, b],
                        lambda G: (_unbroadcast(G, a.shape), _unbroadcast(G, b.shape)))


def _sub(a, b) -> Tensor:
    a, b = _as_tensor(a), _as_tensor(b)
    return Tensor._node(a.value - b.value, "sub", [a, b],
                        lambda G: (_unbroadcast(G, a.shape), _unbroadcast(-G, b.shape)))


def _mul(a, b) -> Tensor:
    a, b = _as_tensor(a), _as_tensor(b)
    return Tensor._node(a.value * b.value, "mul", [a, b],
                        lambda G: (_unbroadcast(G * b.value, a.shape), _unbroadcast(G * a.value, b.shape)))


def _div(a, b) -> Tensor:
    a, b = _as_tensor(a), _as_tensor(b)
    out = a.value / b.value
    return Tensor._node(out, "div", [a, b],
                        lambda G: (_unbroadcast(G / b.value, a.shape), _unbroadcast(-G * out / b.value, b.shape)))


def _pow(a: Tensor, p) -> Tensor:
    if isinstance(p, Tensor) or np.ndim(p) != 0:
        raise TypeError("a ** p takes a plain number p; for a tensor exponent write exp(p * log(a))")
    p = float(p)
    return Tensor._node(a.value**p, f"pow {p:g}", [a], lambda G: (G * p * a.value ** (p - 1),))


def matmul(a, b) -> Tensor:
    """``A @ B`` for 2-D tensors. VJP: ``dL/dA = G @ B.T`` and ``dL/dB = A.T @ G``."""
    a, b = _as_tensor(a), _as_tensor(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul takes 2-D tensors, not shapes {a.shape} and {b.shape}")
    return Tensor._node(a.value @ b.value, "matmul", [a, b], lambda G: (G @ b.value.T, a.value.T @ G))


def transpose(a) -> Tensor:
    """The transpose of a 2-D tensor. VJP: ``dL/dA = G.T``."""
    a = _as_tensor(a)
    if a.ndim != 2:
        raise ValueError(f"transpose takes a 2-D tensor, not shape {a.shape}")
    return Tensor._node(a.value.T, "transpose", [a], lambda G: (G.T,))


def tanh(a) -> Tensor:
    """Element-wise tanh. VJP: ``G * (1 - tanh(Z)**2)``, from the output the forward pass kept."""
    a = _as_tensor(a)
    out = np.tanh(a.value)
    return Tensor._node(out, "tanh", [a], lambda G: (G * (1 - out**2),))


def logistic(a) -> Tensor:
    """The logistic sigmoid ``1 / (1 + exp(-z))``. VJP: ``G * s * (1 - s)`` with ``s = logistic(Z)``.

    Not named ``sigmoid``: chapter 1's exercise asks students for a function of that name, and no helper
    of the course may answer an exercise by being imported."""
    a = _as_tensor(a)
    out = 0.5 * (1 + np.tanh(a.value / 2))  # the same function, without exp's overflow for large -z
    return Tensor._node(out, "logistic", [a], lambda G: (G * out * (1 - out),))


def relu(a) -> Tensor:
    """``max(z, 0)``. VJP: ``G * (Z > 0)``; the derivative at 0 is taken as 0, as TensorFlow does."""
    a = _as_tensor(a)
    return Tensor._node(np.maximum(a.value, 0), "relu", [a], lambda G: (G * (a.value > 0),))


#: The activation operations by the names Keras and TensorFlow give them (``activation="sigmoid"``).
ACTIVATIONS = {"tanh": tanh, "sigmoid": logistic, "relu": relu}


def exp(a) -> Tensor:
    """Element-wise ``e**z``. VJP: ``G * exp(Z)``."""
    a = _as_tensor(a)
    out = np.exp(a.value)
    return Tensor._node(out, "exp", [a], lambda G: (G * out,))


def log(a) -> Tensor:
    """Element-wise natural logarithm. VJP: ``G / Z``."""
    a = _as_tensor(a)
    return Tensor._node(np.log(a.value), "log", [a], lambda G: (G / a.value,))


def sqrt(a) -> Tensor:
    """Element-wise square root. VJP: ``G / (2 sqrt(Z))``."""
    a = _as_tensor(a)
    out = np.sqrt(a.value)
    return Tensor._node(out, "sqrt", [a], lambda G: (G / (2 * out),))


def _expand(G: np.ndarray, shape: tuple[int, ...], axis, keepdims: bool) -> np.ndarray:
    """``G`` of a reduction's output, broadcast back to the input's ``shape`` (each entry was used once)."""
    if axis is not None and not keepdims:
        axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
        G = np.expand_dims(G, tuple(ax % len(shape) for ax in axes))
    return np.broadcast_to(G, shape)


def sum(a, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001  (the contract's name, like np.sum)
    """``a.sum(axis, keepdims)`` as NumPy computes it. VJP: ``G`` copied back over the summed axes."""
    a = _as_tensor(a)
    return Tensor._node(np.sum(a.value, axis=axis, keepdims=keepdims), "sum", [a],
                        lambda G: (_expand(G, a.shape, axis, keepdims).copy(),))


def mean(a, axis=None, keepdims: bool = False) -> Tensor:
    """``a.mean(axis, keepdims)``. VJP: ``G / count`` copied back, ``count`` entries per mean."""
    a = _as_tensor(a)
    out = np.mean(a.value, axis=axis, keepdims=keepdims)
    count = a.value.size // max(np.size(out), 1)
    return Tensor._node(out, "mean", [a], lambda G: (_expand(G, a.shape, axis, keepdims) / count,))


def softmax_cross_entropy(logits, Y_onehot) -> Tensor:
    """Mean categorical cross-entropy of the rows' softmax, from the logits (Keras's ``from_logits=True``).

    ``L = -(1/n) sum_i sum_c y_ic log softmax(z_i)_c``, computed with
    :func:`course_utils.backprop.log_softmax`, so it is finite for any logits. Fused into one node because
    its VJP is simple where softmax's alone is not: ``dL/dZ = G (P - Y) / n`` for one-hot rows (``P``
    the softmax; in general ``G (P * rowsum(Y) - Y) / n``), and ``dL/dY = -G log softmax(Z) / n``.
    """
    Z, Y = _as_tensor(logits), _as_tensor(Y_onehot)
    if Z.ndim != 2 or Y.shape != Z.shape:
        raise ValueError(f"logits and labels must be 2-D of one shape, not {Z.shape} and {Y.shape}")
    n = Z.shape[0]
    log_P = log_softmax(Z.value)
    loss = -(Y.value * log_P).sum() / n

    def vjp(G):
        P = softmax(Z.value)
        return (G * (P * Y.value.sum(axis=1, keepdims=True) - Y.value) / n, -G * log_P / n)

    return Tensor._node(loss, "softmax_cross_entropy", [Z, Y], vjp)


# --- the graph -------------------------------------------------------------------------------------


def topological_order(out: Tensor) -> list[Tensor]:
    """Every tensor ``out`` depends on, each once, inputs before the nodes computed from them.

    A depth-first search that appends a node after all of its inputs (post-order), written with an
    explicit stack so that a deep graph cannot exceed Python's recursion limit. ``out`` comes last;
    the reverse sweep walks the list backwards.
    """
    order, visited = [], set()
    stack = [(out, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        stack.extend((t, False) for t in reversed(node.inputs) if id(t) not in visited)
    return order


def describe_graph(out: Tensor) -> list[dict]:
    """The graph of ``out`` as plain rows, in topological order: ``step, name, op, inputs, shape``.

    Unnamed tensors are called ``t<step>``, constants made from plain numbers or arrays ``const``.
    """
    order = topological_order(out)
    names = {id(t): t.name or f"t{i}" for i, t in enumerate(order)}
    return [{"step": i, "name": names[id(t)], "op": t.op, "inputs": ", ".join(names[id(u)] for u in t.inputs),
             "shape": t.shape} for i, t in enumerate(order)]


# --- gradients of functions ------------------------------------------------------------------------


def gradients(f: Callable[..., Tensor], *arrays: np.ndarray) -> list[np.ndarray]:
    """The gradient of the scalar ``f(*tensors)`` with respect to each array, by one reverse sweep.

    ``f`` takes one :class:`Tensor` per array (wrapped here, float64) and returns a scalar tensor.
    """
    tensors = [Tensor(a) for a in arrays]
    f(*tensors).backward()
    return [t.grad for t in tensors]


def check_gradients(f: Callable[..., Tensor], *arrays: np.ndarray, eps: float = 1e-6) -> float:
    """Relative error between :func:`gradients` and central finite differences of the scalar ``f``.

    Uses :func:`course_utils.backprop.numerical_gradient` on float64 copies of the arrays and
    :func:`course_utils.backprop.relative_error`: about 1e-10 means the VJPs are right, 1e-3 or more
    that one is wrong. Two evaluations of ``f`` per entry: small arrays only.
    """
    copies = [np.array(a, dtype=np.float64) for a in arrays]
    numeric = numerical_gradient(lambda: float(f(*[Tensor(c) for c in copies]).value), copies, eps=eps)
    return relative_error(gradients(f, *copies), numeric)


"""The Tensor, the Function base class of every op, and the backward walk.

A :class:`Function` computes its output from plain arrays in ``forward`` and
returns one gradient per input from ``backward``. Calling a Function on tensors
records it as the output's ``creator`` when any input requires a gradient; the
backward walk visits creators in reverse creation order, so it never recurses.
"""

from __future__ import annotations

import contextlib
import itertools
import threading

import numpy as np

from hpnn.backend import floatx, get_xp, to_numpy, xp_default

_seq = itertools.count(1)


class _GradMode(threading.local):
    """Whether ops record the graph, per thread (as in PyTorch): a thread's
    ``no_grad`` does not switch recording off in another thread, and a new thread
    starts with recording on."""

    enabled = True


_mode = _GradMode()


@contextlib.contextmanager
def no_grad():
    """Context manager in which ops record no graph (inference, optimizer updates),
    in the calling thread."""
    previous = _mode.enabled
    _mode.enabled = False
    try:
        yield
    finally:
        _mode.enabled = previous


@contextlib.contextmanager
def grad_mode(enabled: bool):
    """Context manager that sets graph recording on or off in the calling thread."""
    previous = _mode.enabled
    _mode.enabled = bool(enabled)
    try:
        yield
    finally:
        _mode.enabled = previous


def is_grad_enabled() -> bool:
    """Return whether ops currently record the graph in the calling thread."""
    return _mode.enabled


def _as_array(value, dtype=None):
    """Convert ``value`` to a backend array without copying arrays that fit.

    Lists and Python or NumPy float scalars become ``floatx()`` unless ``dtype``
    is given, so no float64 sneaks in through a literal.
    """
    if isinstance(value, Tensor):
        value = value.data
    xp = get_xp(value)
    if isinstance(value, xp.ndarray):
        return value if dtype is None or value.dtype == dtype else value.astype(dtype)
    arr = np.asarray(value)
    if dtype is None and arr.dtype.kind == "f":
        dtype = floatx()
    return xp_default().asarray(arr, dtype=dtype)


class Tensor:
    """An n-dimensional array that records how it was computed.

    Args:
        data: array-like. Python floats and float64 lists become ``floatx()``
            (float32) unless ``dtype`` says otherwise; arrays keep their dtype.
        requires_grad: whether ``backward`` should compute ``.grad`` for it.

    >>> x = Tensor([1.0, 2.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    array([2., 4.], dtype=float32)
    """

    __slots__ = (
        "__weakref__",
        "_logits",
        "_seq",
        "creator",
        "data",
        "grad",
        "name",
        "requires_grad",
    )
    __array_priority__ = 1000  # numpy scalars/arrays on the left defer to Tensor's operators

    def __init__(self, data, requires_grad: bool = False, dtype=None, name: str | None = None):
        self.data = _as_array(data, dtype)
        self.grad = None
        self.creator = None
        self.requires_grad = bool(requires_grad)
        self._seq = 0
        self._logits = None  # (kind, input) when made by softmax/sigmoid: see hpnn.losses
        self.name = name

    # -- array-like properties -------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        """Return the value as a NumPy array (copied to host memory on a GPU)."""
        return to_numpy(self.data)

    def item(self):
        """Return the value of a one-element tensor as a Python number."""
        return self.data.item()

    def __array__(self, dtype=None, copy=None):
        arr = self.numpy()
        if dtype is not None:
            return arr.astype(dtype, copy=bool(copy))
        return arr.copy() if copy else arr

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.numpy()!r}{grad})"

    def detach(self) -> Tensor:
        """Return a tensor sharing the data but cut from the graph."""
        return Tensor(self.data)

    # -- autodiff ------------------------------------------------------------
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires it.

        Args:
            grad: the gradient flowing into ``self``; defaults to 1 for a scalar.
            retain_graph: keep the graph (and saved arrays) for a second backward.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() called on a tensor that does not require a gradient: no input "
                "of the computation had requires_grad=True, or it ran under no_grad()."
            )
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    "backward() without a gradient needs a one-element tensor. "
                    f"Received: shape={self.shape}"
                )
            grad = get_xp(self.data).ones_like(self.data)
        else:
            # A copy: the caller's array must not become (and be mutated as) a leaf's .grad.
            grad = get_xp(self.data).array(_as_array(grad, self.dtype), copy=True)
            if grad.shape != self.shape:
                raise ValueError(
                    f"backward(): grad must have the tensor's shape {self.shape}. "
                    f"Received: grad.shape={grad.shape}"
                )
        if self.creator is None:
            if self._seq:
                raise RuntimeError(
                    "backward() through a graph that was already freed: pass retain_graph=True "
                    "to the first backward() to walk it twice."
                )
            self.grad = grad if self.grad is None else self.grad + grad
            return
        run_backward(self, grad, retain_graph)

    # -- operators (each only calls the op function) ----------------------------
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __neg__(self):
        return _ops.neg(self)

    def __pow__(self, other):
        return _ops.pow(self, other)

    def __rpow__(self, other):
        return _ops.pow(other, self)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __getitem__(self, index):
        return _ops.getitem(self, index)

    @property
    def T(self):  # noqa: N802 - NumPy's name
        return _ops.transpose(self)

    def sum(self, axis=None, keepdims=False):
        return _ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _ops.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _ops.max(self, axis, keepdims)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops.reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops.transpose(self, axes or None)

    def exp(self):
        return _ops.exp(self)

    def log(self):
        return _ops.log(self)

    def sqrt(self):
        return _ops.sqrt(self)

    def relu(self):
        return _ops.relu(self)

    def sigmoid(self):
        return _ops.sigmoid(self)

    def tanh(self):
        return _ops.tanh(self)


def as_tensor(value, dtype=None) -> Tensor:
    """Return ``value`` as a Tensor (no copy when it already is one)."""
    if isinstance(value, Tensor):
        return value
    return Tensor(_as_array(value, dtype))


# Set by ``hpnn.parallel.census`` while it takes a step's measure: called with every op,
# its inputs and output (on the one thread that runs that step).
census = None


class Function:
    """Base of every differentiable op: subclass and write ``forward`` and ``backward``.

    ``forward(*arrays)`` returns the output array and saves on ``self`` what
    ``backward`` needs. ``backward(gy)`` returns one gradient per input (or a
    single array for one input), ``None`` where none is needed. Both may read
    ``self.needs_input_grad`` (set before ``forward``; all False when no graph
    is recorded) to skip work.
    """

    inputs: tuple = ()
    needs_input_grad: tuple = ()

    def __call__(self, *inputs) -> Tensor:
        tensors = tuple(as_tensor(x) for x in inputs)
        record = _mode.enabled and any(t.requires_grad for t in tensors)
        # Set before forward, so forward can skip saving what no backward will read.
        self.needs_input_grad = (
            tuple(t.requires_grad for t in tensors) if record else (False,) * len(tensors)
        )
        y = self.forward(*(t.data for t in tensors))
        if census is not None:
            census(self, tensors, y)
        xp = get_xp(y)
        # A full reduction returns a NumPy scalar: keep its dtype (float64 stays float64).
        out = Tensor(y if isinstance(y, xp.ndarray) else xp.asarray(y))
        if record:
            out.requires_grad = True
            out.creator = self
            out._seq = next(_seq)
            self.inputs = tensors
        return out

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, gy):
        raise NotImplementedError


def _collect(root: Tensor) -> list[Tensor]:
    """Return the non-leaf tensors reachable from ``root``, latest first."""
    nodes, stack, seen = [], [root], {id(root)}
    while stack:
        t = stack.pop()
        nodes.append(t)
        for x in t.creator.inputs:
            if x.creator is not None and id(x) not in seen:
                seen.add(id(x))
                stack.append(x)
    # An output is always created after its inputs, so creation order is topological.
    nodes.sort(key=lambda t: t._seq, reverse=True)
    return nodes


def run_backward(root: Tensor, grad, retain_graph: bool = False, sink=None) -> None:
    """Walk the graph below ``root`` once, in reverse creation order.

    Leaf gradients accumulate into ``.grad``, or, when ``sink`` is a dict, into
    ``sink[id(leaf)]`` (leaves untouched: two threads may back-propagate through
    graphs sharing the same weights, see :func:`gradients`).
    """
    pending = {id(root): grad}
    for t in _collect(root):
        gy = pending.pop(id(t), None)
        f = t.creator
        if not retain_graph:
            t.creator = None
        if gy is None:
            continue
        gxs = f.backward(gy)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        for x, gx, need in zip(f.inputs, gxs, f.needs_input_grad, strict=False):
            if not need or gx is None:
                continue
            # Accumulate out of place: gradients may alias each other (add passes gy through).
            if x.creator is None:
                if x._seq:
                    raise RuntimeError(
                        "backward() through a graph that was already freed: pass "
                        "retain_graph=True to the first backward() to walk it twice."
                    )
                if sink is not None:
                    prev = sink.get(id(x))
                    sink[id(x)] = gx if prev is None else prev + gx
                elif x.grad is not None:
                    x.grad = x.grad + gx
                else:
                    # A leaf's .grad is its own writable array, never a broadcast view.
                    owned = gx.flags.owndata and getattr(gx.flags, "writeable", True)
                    x.grad = gx if owned else gx.copy()
            else:
                prev = pending.get(id(x))
                pending[id(x)] = gx if prev is None else prev + gx
        if not retain_graph:
            f.inputs = None


def gradients(loss: Tensor, leaves, scale: float = 1.0) -> list:
    """d(``scale * loss``)/d(leaf) for each of ``leaves`` (None where it does not reach
    one), without reading or writing any ``.grad``; frees the graph. ``loss`` must be a
    one-element tensor that requires a gradient."""
    if not loss.requires_grad or loss.size != 1 or loss.creator is None:
        raise ValueError(
            "gradients() needs a one-element loss computed from leaves that require a "
            f"gradient. Received: shape={loss.shape}, requires_grad={loss.requires_grad}"
        )
    sink: dict = {}
    run_backward(loss, get_xp(loss.data).full_like(loss.data, scale), sink=sink)
    return [sink.get(id(v)) for v in leaves]


from hpnn.engine import ops as _ops  # noqa: E402  (ops import Function and Tensor from here)

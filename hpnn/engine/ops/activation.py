"""Activations: relu, sigmoid, tanh, softmax, log_softmax, and a few more."""

from __future__ import annotations

import numpy

from hpnn.backend import get_xp
from hpnn.engine import kernels
from hpnn.engine.tensor import Function, Tensor

# below this many elements a compiled call's dispatch costs more than NumPy's loop
COMPILED_FROM = 4096


def _compiled(*arrays):
    if arrays[0].size < COMPILED_FROM or not all(a.flags.c_contiguous for a in arrays):
        return None
    return kernels.elementwise(*arrays)


class ReLU(Function):
    def forward(self, x):
        k = _compiled(x)
        if k is not None:
            y = numpy.empty_like(x)
            k.relu_forward(x.reshape(-1), y.reshape(-1))
        else:
            y = get_xp(x).maximum(x, 0)
        self.y = y
        return y

    def backward(self, gy):
        # mask from the output: y > 0 exactly where x > 0, and the gradient at 0 is 0
        y = self.y
        k = _compiled(y, gy) if gy.shape == y.shape else None
        if k is None:
            return gy * (y > 0)
        gx = numpy.empty_like(gy)
        k.relu_backward(y.reshape(-1), gy.reshape(-1), gx.reshape(-1))
        return gx


class Sigmoid(Function):
    def forward(self, x):
        xp = get_xp(x)
        # tanh form: no overflow in exp for large |x|
        y = xp.tanh(x * x.dtype.type(0.5))
        y += 1
        y *= x.dtype.type(0.5)
        self.y = y
        return y

    def backward(self, gy):
        y = self.y
        return gy * y * (1 - y)


class Tanh(Function):
    def forward(self, x):
        self.y = get_xp(x).tanh(x)
        return self.y

    def backward(self, gy):
        y = self.y
        return gy * (1 - y * y)


class Softmax(Function):
    """Over the last axis of a float32 NumPy array, one compiled pass per row
    (:mod:`hpnn.engine.kernels.activation`), used from the first call on; else NumPy."""

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        xp = get_xp(x)
        self.x = x  # kept so a cross-entropy loss can work from the logits
        self.kern = None
        if x.ndim and self.axis in (-1, x.ndim - 1) and x.size:
            self.kern = kernels.softmax(x)
        if self.kern is not None:
            rows = xp.ascontiguousarray(x).reshape(-1, x.shape[-1])
            e = xp.empty_like(rows)
            self.kern.softmax_forward(rows, e)
            self.y = e.reshape(x.shape)
            return self.y
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        e /= e.sum(axis=self.axis, keepdims=True)
        self.y = e
        return e

    def backward(self, gy):
        y = self.y
        if self.kern is not None and gy.dtype == y.dtype:
            rows = get_xp(gy).ascontiguousarray(gy).reshape(-1, y.shape[-1])
            gx = get_xp(gy).empty_like(rows)
            self.kern.softmax_backward(y.reshape(rows.shape), rows, gx)
            return gx.reshape(y.shape)
        gx = y * gy
        gx -= y * gx.sum(axis=self.axis, keepdims=True)
        return gx


class LogSoftmax(Function):
    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        self.y = log_softmax_array(x, self.axis)
        return self.y

    def backward(self, gy):
        xp = get_xp(gy)
        return gy - xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)


def log_softmax_array(x, axis=-1):
    """Numerically stable log-softmax of an array (no graph)."""
    xp = get_xp(x)
    z = x - x.max(axis=axis, keepdims=True)
    z -= xp.log(xp.exp(z).sum(axis=axis, keepdims=True))
    return z


class LeakyReLU(Function):
    def __init__(self, negative_slope=0.2):
        self.slope = negative_slope

    def forward(self, x):
        self.x = x
        return get_xp(x).where(x > 0, x, x * x.dtype.type(self.slope))

    def backward(self, gy):
        return get_xp(gy).where(self.x > 0, gy, gy * gy.dtype.type(self.slope))


class ELU(Function):
    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def forward(self, x):
        xp = get_xp(x)
        self.x = x
        self.y = xp.where(x > 0, x, x.dtype.type(self.alpha) * xp.expm1(xp.minimum(x, 0)))
        return self.y

    def backward(self, gy):
        xp = get_xp(gy)
        return xp.where(self.x > 0, gy, gy * (self.y + gy.dtype.type(self.alpha)))


class Softplus(Function):
    def forward(self, x):
        xp = get_xp(x)
        self.x = x
        return xp.logaddexp(x, x.dtype.type(0))

    def backward(self, gy):
        xp = get_xp(gy)
        x = self.x
        return gy * (xp.tanh(x * x.dtype.type(0.5)) + 1) * x.dtype.type(0.5)


def relu(x) -> Tensor:
    """Return ``max(x, 0)``."""
    return ReLU()(x)


def sigmoid(x) -> Tensor:
    """Return ``1 / (1 + exp(-x))``."""
    out = Sigmoid()(x)
    out._logits = ("sigmoid", x)  # lets a cross-entropy work from x, graph or no graph
    return out


def tanh(x) -> Tensor:
    """Return ``tanh(x)``."""
    return Tanh()(x)


def softmax(x, axis: int = -1) -> Tensor:
    """Return ``exp(x) / sum(exp(x))`` along ``axis``."""
    out = Softmax(axis)(x)
    if axis in (-1, out.ndim - 1):
        out._logits = ("softmax", x)  # lets a cross-entropy work from x, graph or no graph
    return out


def log_softmax(x, axis: int = -1) -> Tensor:
    """Return ``log(softmax(x))`` computed stably."""
    return LogSoftmax(axis)(x)


def leaky_relu(x, negative_slope: float = 0.2) -> Tensor:
    """Return ``x`` where positive, ``negative_slope * x`` elsewhere."""
    return LeakyReLU(negative_slope)(x)


def elu(x, alpha: float = 1.0) -> Tensor:
    """Return ``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere."""
    return ELU(alpha)(x)


def softplus(x) -> Tensor:
    """Return ``log(1 + exp(x))``."""
    return Softplus()(x)

"""Reductions: sum, mean, max."""

from __future__ import annotations

from hpnn.backend import get_xp
from hpnn.engine.tensor import Function, Tensor


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axes)


def _expand(g, shape, axes):
    """Give a reduced gradient back its reduced axes (as size 1) for broadcasting."""
    kept = [1 if i in axes else n for i, n in enumerate(shape)]
    return g.reshape(kept)


class Sum(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a):
        self.shape = a.shape
        self.axes = _axes(self.axis, a.ndim)
        return a.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        xp = get_xp(gy)
        return xp.broadcast_to(_expand(gy, self.shape, self.axes), self.shape)


class Mean(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a):
        self.shape = a.shape
        self.axes = _axes(self.axis, a.ndim)
        n = 1
        for i in self.axes:
            n *= a.shape[i]
        self.n = n
        # dtype=a.dtype: np.mean of float32 must stay float32
        return a.mean(axis=self.axes, keepdims=self.keepdims, dtype=a.dtype)

    def backward(self, gy):
        xp = get_xp(gy)
        g = _expand(gy, self.shape, self.axes) * gy.dtype.type(1.0 / self.n)
        return xp.broadcast_to(g, self.shape)


class Max(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a):
        self.a = a
        self.axes = _axes(self.axis, a.ndim)
        self.y = a.max(axis=self.axes, keepdims=True)
        return (
            self.y
            if self.keepdims
            else self.y.reshape([n for i, n in enumerate(a.shape) if i not in self.axes])
        )

    def backward(self, gy):
        # Ties share the gradient equally, as tf.reduce_max does.
        mask = self.a == self.y
        count = mask.sum(axis=self.axes, keepdims=True).astype(gy.dtype)
        return mask * (_expand(gy, self.a.shape, self.axes) / count)


def sum(a, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (an int, a tuple, or None for all)."""
    return Sum(axis, keepdims)(a)


def mean(a, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (an int, a tuple, or None for all)."""
    return Mean(axis, keepdims)(a)


def max(a, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over ``axis``; ties share the gradient."""
    return Max(axis, keepdims)(a)

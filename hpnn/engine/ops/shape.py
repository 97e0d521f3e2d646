"""Shape ops: reshape, transpose, broadcast_to, getitem (slicing), concatenate."""

from __future__ import annotations

from hpnn.backend import get_xp
from hpnn.engine.ops.arith import unbroadcast
from hpnn.engine.tensor import Function, Tensor


class Reshape(Function):
    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, a):
        self.in_shape = a.shape
        return a.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Transpose(Function):
    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, a):
        self.axes = tuple(reversed(range(a.ndim))) if self.axes is None else tuple(self.axes)
        return a.transpose(self.axes)

    def backward(self, gy):
        inverse = [0] * len(self.axes)
        for i, ax in enumerate(self.axes):
            inverse[ax] = i
        return gy.transpose(inverse)


class BroadcastTo(Function):
    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, a):
        self.in_shape = a.shape
        return get_xp(a).broadcast_to(a, self.shape)

    def backward(self, gy):
        return unbroadcast(gy, self.in_shape)


class GetItem(Function):
    def __init__(self, index):
        self.index = index

    def forward(self, a):
        self.in_shape, self.dtype = a.shape, a.dtype
        return a[self.index]

    def backward(self, gy):
        xp = get_xp(gy)
        g = xp.zeros(self.in_shape, dtype=self.dtype)
        if _is_basic(self.index):
            g[self.index] = gy
        else:
            # add.at, not +=: an integer index may name the same element twice
            xp.add.at(g, self.index, gy)
        return g


def _is_basic(index) -> bool:
    """Whether ``index`` is basic indexing (a view: no element named twice)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, slice)) or p is None or p is Ellipsis for p in parts)


class Concatenate(Function):
    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return get_xp(*xs).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        xp = get_xp(gy)
        cuts = []
        total = 0
        for n in self.sizes[:-1]:
            total += n
            cuts.append(total)
        return tuple(xp.split(gy, cuts, axis=self.axis))


def reshape(a, shape) -> Tensor:
    """Return ``a`` with a new shape (one entry may be -1)."""
    return Reshape(shape)(a)


def transpose(a, axes=None) -> Tensor:
    """Permute the axes of ``a`` (reverse them when ``axes`` is None)."""
    return Transpose(axes)(a)


def broadcast_to(a, shape) -> Tensor:
    """Broadcast ``a`` to ``shape``."""
    return BroadcastTo(shape)(a)


def getitem(a, index) -> Tensor:
    """Return ``a[index]``: basic slicing, integer and boolean array indexing."""
    if isinstance(index, Tensor):
        index = index.data
    if isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return GetItem(index)(a)


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join tensors along ``axis``."""
    return Concatenate(axis)(*tensors)

"""Shape ops: reshape, transpose, broadcast_to, getitem (slicing), concatenate,
zero padding and nearest-neighbour upsampling of the spatial axes."""

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


class PadSpatial(Function):
    """Zeros around axes 1..k of a channels-last array: ``pads`` is ``((before, after),)``
    per axis; the gradient is the middle of the output gradient."""

    def __init__(self, pads):
        self.pads = tuple(tuple(p) for p in pads)

    def forward(self, a):
        xp = get_xp(a)
        spatial = list(zip(self.pads, a.shape[1:], strict=False))
        self.index = (slice(None), *(slice(b, b + n) for (b, _), n in spatial))
        shape = (a.shape[0], *(n + b + e for (b, e), n in spatial))
        out = xp.zeros(shape + a.shape[1 + len(self.pads) :], dtype=a.dtype)
        out[self.index] = a
        return out

    def backward(self, gy):
        return gy[self.index]


class Upsample(Function):
    """Each element of axes 1..k repeated ``size[i]`` times (nearest neighbour); the
    gradient sums each block of copies."""

    def __init__(self, size):
        self.size = tuple(int(s) for s in size)

    def forward(self, a):
        xp = get_xp(a)
        self.in_shape = a.shape
        k = len(self.size)
        # (N, d1, 1, d2, 1, ..., C) broadcast to (N, d1, s1, d2, s2, ..., C), then merged
        expanded = [a.shape[0]]
        target = [a.shape[0]]
        for d, s in zip(a.shape[1 : 1 + k], self.size, strict=True):
            expanded += [d, 1]
            target += [d, s]
        rest = a.shape[1 + k :]
        b = xp.broadcast_to(a.reshape(*expanded, *rest), (*target, *rest))
        out_shape = (a.shape[0], *(d * s for d, s in zip(a.shape[1:], self.size, strict=False)))
        return xp.ascontiguousarray(b).reshape(*out_shape, *rest)

    def backward(self, gy):
        k = len(self.size)
        split = [gy.shape[0]]
        for d, s in zip(self.in_shape[1 : 1 + k], self.size, strict=True):
            split += [d, s]
        g = gy.reshape(*split, *self.in_shape[1 + k :])
        return g.sum(axis=tuple(2 + 2 * i for i in range(k)))


def pad_spatial(a, pads) -> Tensor:
    """Zero-pad axes 1..k of ``a`` by ``pads = ((before, after), ...)``."""
    return PadSpatial(pads)(a)


def upsample(a, size) -> Tensor:
    """Repeat every element of axes 1..k of ``a`` ``size`` times (nearest neighbour)."""
    return Upsample(size)(a)


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

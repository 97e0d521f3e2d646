"""Shape ops: reshape, transpose, broadcast_to, getitem (slicing), concatenate,
zero padding and nearest-neighbour upsampling of the spatial axes."""

from __future__ import annotations

import math

import numpy

from hpnn.backend import get_xp
from hpnn.engine import kernels
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
        ids = _row_ids(self.index, self.in_shape)
        if ids is not None and xp is numpy:  # rows of a table: an Embedding's lookup
            return scatter_add_rows(ids, gy, self.in_shape, self.dtype)
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


def _row_ids(index, shape):
    """The integer array of ``a[ids]`` (rows of axis 0), or None for any other index."""
    if isinstance(index, tuple) and len(index) == 1:
        index = index[0]
    ok = isinstance(index, numpy.ndarray) and index.dtype.kind in "iu" and len(shape) >= 1
    return index if ok else None


ROUNDS = 8  # ids named up to this many times are added in rounds, the rest summed per id


def scatter_add_rows(ids, gy, shape, dtype):
    """The gradient of ``table[ids]``: ``zeros(shape)`` with each row of ``gy`` added
    into row ``ids[...]``, one after the other in the order of ``ids``, as
    ``np.add.at`` adds them (the same numbers bit for bit, compiled or not).

    Args:
        ids: integer array (negative ids count from the end); gy: ``ids.shape + shape[1:]``.
    """
    v = shape[0]
    flat = ids.reshape(-1).astype(numpy.int64, copy=False)
    if flat.size and flat.min() < 0:
        flat = numpy.where(flat < 0, flat + v, flat)
    rows = numpy.ascontiguousarray(gy, dtype=dtype).reshape(flat.size, math.prod(shape[1:]))
    g = numpy.zeros((v, rows.shape[1]), dtype=dtype)
    kern = kernels.indexing(rows, g)  # compiled (same numbers) once loaded
    if kern is not None:
        kern.scatter_add_rows(flat, rows, g)
    elif flat.size:
        _scatter_add_sorted(flat, rows, g)
    return g.reshape(shape)


def _scatter_add_sorted(flat, rows, g):
    """``np.add.at(g, flat, rows)`` by id: a stable sort groups each id's rows in their
    order; round k adds the k-th row of every id named at most ``ROUNDS`` times (ids
    unique within a round, so a fancy ``+=`` is exact); an id named more often gets the
    sum of its rows at once. About 4x faster than ``np.add.at`` for an Embedding."""
    order = numpy.argsort(flat, kind="stable")
    s = flat[order]
    first = numpy.empty(s.size, bool)
    first[0] = True
    numpy.not_equal(s[1:], s[:-1], out=first[1:])
    starts = numpy.flatnonzero(first)
    counts = numpy.diff(numpy.append(starts, s.size))
    rank = numpy.arange(s.size) - numpy.repeat(starts, counts)  # place within its id
    light = numpy.repeat(counts <= ROUNDS, counts)
    for k in range(min(ROUNDS, int(counts.max()))):
        sel = numpy.flatnonzero(light & (rank == k))
        if k == 0:
            g[s[sel]] = rows[order[sel]]
        else:
            g[s[sel]] += rows[order[sel]]
    for h in numpy.flatnonzero(counts > ROUNDS):
        part = rows[order[starts[h] : starts[h] + counts[h]]]
        # axis-0 sum of (m, d >= 2) rows adds them in order; one column would be
        # summed pairwise, accumulate is in order always
        g[s[starts[h]]] = part.sum(axis=0) if part.shape[1] > 1 else numpy.cumsum(part)[-1]


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

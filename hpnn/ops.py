"""Keras 3's ``keras.ops`` under the same names, for custom layers and losses.

Every function takes hpnn Tensors, NumPy (or CuPy) arrays or Python numbers and
returns a Tensor recorded for back-propagation (``argmax``, ``argmin``, ``one_hot``,
``shape``, ``top_k``'s indices and the constructors give no gradient, as in Keras).
The arithmetic is the engine's (``hpnn.engine.ops``): each function here is a thin
composition.

    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, x):
            return keras.ops.multiply(x, keras.ops.sigmoid(self.w))
"""

from __future__ import annotations

import builtins
import itertools

import numpy as np

from hpnn import activations as _act
from hpnn.backend import floatx, get_xp, to_numpy
from hpnn.engine import ops as _ops
from hpnn.engine.ops.extra import parse_subscripts
from hpnn.engine.tensor import Tensor, as_tensor


def _t(x) -> Tensor:
    if isinstance(x, Tensor):
        return x
    data = np.asarray(x) if not hasattr(x, "__cuda_array_interface__") else x
    if data.dtype.kind in "biu" or data.dtype == np.float64:
        data = data.astype(floatx())  # Keras casts Python numbers and int arrays too
    return as_tensor(data)


def _axes(axis, ndim: int) -> tuple:
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = tuple(a % ndim if -ndim <= a < ndim else None for a in axes)
    if None in out:
        raise ValueError(f"axis {axis} is out of range for a tensor of rank {ndim}")
    return out


# -- conversion and constructors ------------------------------------------------------------
def convert_to_tensor(x, dtype=None) -> Tensor:
    t = _t(x)
    return t if dtype is None else cast(t, dtype)


def convert_to_numpy(x) -> np.ndarray:
    return to_numpy(x.data if isinstance(x, Tensor) else x)


def cast(x, dtype) -> Tensor:
    t = _t(x)
    return t if t.dtype == np.dtype(dtype) else Tensor(t.data.astype(dtype))


def shape(x) -> tuple:
    return tuple(np.shape(x.data if isinstance(x, Tensor) else x))


def zeros(shape, dtype=None) -> Tensor:
    return Tensor(np.zeros(shape, dtype or floatx()))


def ones(shape, dtype=None) -> Tensor:
    return Tensor(np.ones(shape, dtype or floatx()))


def zeros_like(x, dtype=None) -> Tensor:
    return Tensor(np.zeros(shape(x), dtype or _t(x).dtype))


def ones_like(x, dtype=None) -> Tensor:
    return Tensor(np.ones(shape(x), dtype or _t(x).dtype))


def one_hot(x, num_classes, axis=-1, dtype=None) -> Tensor:
    idx = np.asarray(convert_to_numpy(x)).astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= num_classes):
        raise ValueError(
            f"one_hot: class ids must be in [0, {num_classes}). Received: ids from "
            f"{idx.min()} to {idx.max()}"
        )
    out = np.eye(num_classes, dtype=dtype or floatx())[idx]
    return Tensor(np.moveaxis(out, -1, axis) if axis != -1 else out)


# -- arithmetic -------------------------------------------------------------------------------
def add(x1, x2):
    return _t(x1) + x2


def subtract(x1, x2):
    return _t(x1) - x2


def multiply(x1, x2):
    return _t(x1) * x2


def divide(x1, x2):
    return _t(x1) / x2


true_divide = divide


def negative(x):
    return -_t(x)


def power(x1, x2):
    return _t(x1) ** x2


def square(x):
    x = _t(x)
    return x * x


def sqrt(x):
    return _ops.sqrt(_t(x))


def exp(x):
    return _ops.exp(_t(x))


def log(x):
    return _ops.log(_t(x))


def abs(x):  # noqa: A001 - Keras' name
    return _ops.abs(_t(x))


absolute = abs


def sign(x):
    x = _t(x)
    return Tensor(get_xp(x.data).sign(x.data))


def clip(x, x_min, x_max):
    return _ops.clip(_t(x), x_min, x_max)


def maximum(x1, x2):
    return _ops.maximum(_t(x1), _t(x2))


def minimum(x1, x2):
    return _ops.minimum(_t(x1), _t(x2))


def where(condition, x1, x2):
    """``x1`` where ``condition`` holds, else ``x2`` (gradients flow to both sides)."""
    cond = np.asarray(convert_to_numpy(condition)).astype(bool)
    a, b = _t(x1), _t(x2)
    keep = cond.astype(a.dtype)
    return a * keep + b * (1 - keep)


def erf(x):
    return _ops.erf(_t(x))


def matmul(x1, x2):
    a, b = _t(x1), _t(x2)
    k1 = a.shape[-1] if a.ndim else None
    k2 = (b.shape[-2] if b.ndim > 1 else b.shape[0]) if b.ndim else None
    if a.ndim == 0 or b.ndim == 0 or k1 != k2:
        raise ValueError(
            "matmul: the last axis of x1 must match the second-to-last of x2 (the only one "
            f"of a vector). Received: x1.shape={a.shape}, x2.shape={b.shape}"
        )
    return _ops.matmul(a, b)


# -- reductions --------------------------------------------------------------------------------
def sum(x, axis=None, keepdims=False):  # noqa: A001 - Keras' name
    return _ops.sum(_t(x), axis, keepdims)


def mean(x, axis=None, keepdims=False):
    return _ops.mean(_t(x), axis, keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001 - Keras' name
    return _ops.max(_t(x), axis, keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001 - Keras' name
    return -_ops.max(-_t(x), axis, keepdims)


def var(x, axis=None, keepdims=False):
    x = _t(x)
    centred = x - _ops.mean(x, axis, True)
    return _ops.mean(centred * centred, axis, keepdims)


def std(x, axis=None, keepdims=False):
    return _ops.sqrt(var(x, axis, keepdims))


def argmax(x, axis=None, keepdims=False):
    return Tensor(np.argmax(convert_to_numpy(x), axis=axis, keepdims=keepdims))


def argmin(x, axis=None, keepdims=False):
    return Tensor(np.argmin(convert_to_numpy(x), axis=axis, keepdims=keepdims))


# -- shapes ------------------------------------------------------------------------------------
def reshape(x, newshape):
    x = _t(x)
    newshape = (int(newshape),) if np.isscalar(newshape) else tuple(int(d) for d in newshape)
    known = int(np.prod([d for d in newshape if d != -1]))
    free = newshape.count(-1)
    fits = known == x.size if free == 0 else free == 1 and known and x.size % known == 0
    if not fits:
        raise ValueError(
            f"reshape: cannot give a tensor of shape {x.shape} ({x.size} elements) the shape "
            f"{newshape}"
        )
    return _ops.reshape(x, newshape)


def transpose(x, axes=None):
    return _ops.transpose(_t(x), None if axes is None else tuple(axes))


def expand_dims(x, axis):
    x = _t(x)
    new = list(x.shape)
    for a in sorted(a % (x.ndim + 1) if a < 0 else a for a in np.atleast_1d(axis)):
        new.insert(a, 1)
    return _ops.reshape(x, tuple(new))


def squeeze(x, axis=None):
    x = _t(x)
    if axis is None:
        drop = {i for i, d in enumerate(x.shape) if d == 1}
    else:
        drop = set(_axes(axis, x.ndim))
        wrong = [a for a in drop if x.shape[a] != 1]
        if wrong:
            raise ValueError(f"squeeze: axis {wrong[0]} has size {x.shape[wrong[0]]}, not 1")
    return _ops.reshape(x, tuple(d for i, d in enumerate(x.shape) if i not in drop))


def concatenate(xs, axis=0):
    ts = [_t(x) for x in xs]
    if not ts:
        raise ValueError("concatenate: expected at least one tensor. Received: none")
    ax = _axes(axis, ts[0].ndim)[0]
    rest = [tuple(d for i, d in enumerate(t.shape) if i != ax) for t in ts]
    if any(t.ndim != ts[0].ndim for t in ts) or len(set(rest)) > 1:
        raise ValueError(
            f"concatenate: the tensors must have the same shape except along axis {axis}. "
            f"Received: shapes {[t.shape for t in ts]}"
        )
    return _ops.concatenate(ts, ax)


def stack(xs, axis=0):
    return concatenate([expand_dims(x, axis) for x in xs], axis)


def flatten(x):
    return _ops.reshape(_t(x), (-1,))


# -- neural-network functions (keras.ops and keras.ops.nn) --------------------------------------
def relu(x):
    return _ops.relu(_t(x))


def relu6(x):
    return _act.relu6(_t(x))


def sigmoid(x):
    return _ops.sigmoid(_t(x))


def tanh(x):
    return _ops.tanh(_t(x))


def softplus(x):
    return _ops.softplus(_t(x))


def softmax(x, axis=-1):
    return _ops.softmax(_t(x), axis)


def log_softmax(x, axis=-1):
    return _ops.log_softmax(_t(x), axis)


def leaky_relu(x, negative_slope=0.2):
    return _ops.leaky_relu(_t(x), negative_slope)


def elu(x, alpha=1.0):
    return _ops.elu(_t(x), alpha)


def gelu(x, approximate=True):
    """As ``keras.ops.gelu``, whose default (unlike ``keras.activations.gelu``'s) is the
    tanh approximation."""
    return _act.gelu(_t(x), approximate=approximate)


def silu(x):
    return _act.silu(_t(x))


swish = silu


def selu(x):
    return _act.selu(_t(x))


def normalize(x, axis=-1, order=2, epsilon=None):
    """``x / max(norm(x), epsilon)`` along ``axis`` (the L2 norm: ``order=2`` only;
    ``epsilon`` defaults to ``backend.epsilon()``, 1e-7)."""
    if order != 2:
        raise NotImplementedError(f"normalize: only order=2 is supported. Received: {order}")
    x = _t(x)
    eps = 1e-7 if epsilon is None else float(epsilon)
    return x / _ops.maximum(_ops.sqrt(sum(x * x, axis, True)), eps)


# -- constructors over ranges ------------------------------------------------------------------
def arange(start, stop=None, step=None, dtype=None) -> Tensor:
    """As ``np.arange``; ``int32`` for integer bounds, ``floatx()`` once any is a float."""
    if stop is None:
        start, stop = 0, start
    step = 1 if step is None else step
    if step == 0:
        raise ValueError(f"arange: step must not be 0. Received: step={step}")
    if dtype is None:
        floats = any(np.asarray(v).dtype.kind == "f" for v in (start, stop, step))
        dtype = floatx() if floats else "int32"
    return Tensor(np.arange(start, stop, step).astype(dtype))


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """As ``np.linspace``, in ``floatx()`` unless ``dtype`` is given (no gradient)."""
    if int(num) < 0:
        raise ValueError(f"linspace: num must be non-negative. Received: num={num}")
    out, step = np.linspace(start, stop, int(num), endpoint=endpoint, retstep=True, axis=axis)
    out = Tensor(out.astype(dtype or floatx()))
    return (out, step) if retstep else out


# -- scans, gathers and rearrangements ---------------------------------------------------------
def cumsum(x, axis=None, dtype=None):
    x = _t(x) if dtype is None else cast(x, dtype)
    if axis is None:
        return _ops.cumsum(_ops.reshape(x, (-1,)), 0)
    return _ops.cumsum(x, _axes(axis, x.ndim)[0])


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` over ``axis``, shifted by the (constant) maximum for stability."""
    x = _t(x)
    axes = tuple(range(x.ndim)) if axis is None else _axes(axis, x.ndim)
    m = get_xp(x.data).max(x.data, axis=axes, keepdims=True)
    m = Tensor(get_xp(m).where(get_xp(m).isfinite(m), 0, m).astype(x.dtype))
    out = _ops.log(_ops.sum(_ops.exp(x - m), axes, True)) + m
    return (
        out
        if keepdims
        else _ops.reshape(out, tuple(out.shape[i] for i in range(x.ndim) if i not in axes))
    )


def take(x, indices, axis=None):
    """``x``'s entries at integer ``indices`` along ``axis`` (of the flattened ``x`` when
    None); the gradient adds into each index as often as it is named."""
    x = _t(x)
    idx = np.asarray(convert_to_numpy(indices))
    if idx.dtype.kind == "f" and np.array_equal(idx, np.round(idx)):
        idx = idx.astype(np.int64)  # hpnn keeps integer tensors as floatx
    if idx.dtype.kind not in "iu":
        raise ValueError(f"take: indices must be integers. Received: dtype={idx.dtype}")
    if axis is None:
        x, ax = _ops.reshape(x, (-1,)), 0
    else:
        ax = _axes(axis, x.ndim)[0]
    n = x.shape[ax]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise ValueError(
            f"take: indices must be in [-{n}, {n}) for axis {axis} of shape {x.shape}. "
            f"Received: indices from {idx.min()} to {idx.max()}"
        )
    return _ops.getitem(x, (slice(None),) * ax + (idx,))


def _take_along(x, idx, ax):
    """``np.take_along_axis(x, idx, ax)`` as one differentiable integer index."""
    grid = list(np.ogrid[tuple(slice(n) for n in idx.shape)])
    grid[ax] = idx
    return _ops.getitem(x, tuple(grid))


def sort(x, axis=-1):
    """``x`` sorted ascending along ``axis`` (gradients follow the values)."""
    x = _t(x)
    ax = _axes(axis, x.ndim)[0]
    return _take_along(x, np.argsort(convert_to_numpy(x), axis=ax, kind="stable"), ax)


def top_k(x, k, sorted=True):  # noqa: A002 - Keras' name
    """The ``k`` largest values along the last axis (descending, also when ``sorted`` is
    False) and their ``int32`` indices; the values carry the gradient."""
    x = _t(x)
    if x.ndim == 0 or not 1 <= int(k) <= x.shape[-1]:
        raise ValueError(
            f"top_k: k must be in [1, {x.shape[-1] if x.ndim else 0}] (the size of the last "
            f"axis). Received: k={k}, x.shape={x.shape}"
        )
    idx = np.argsort(-convert_to_numpy(x), axis=-1, kind="stable")[..., : int(k)]
    return _take_along(x, idx, x.ndim - 1), Tensor(idx.astype(np.int32))


def repeat(x, repeats, axis=None):
    """Each entry of ``x`` repeated ``repeats`` times along ``axis`` (of the flattened ``x``
    when None); ``repeats`` is an int or one count per entry."""
    x = _t(x)
    if axis is None:
        x, ax = _ops.reshape(x, (-1,)), 0
    else:
        ax = _axes(axis, x.ndim)[0]
    n, r = x.shape[ax], np.asarray(convert_to_numpy(repeats))
    if r.ndim > 1 or r.size not in (1, n) or r.dtype.kind not in "iuf" or (r < 0).any():
        raise ValueError(
            f"repeat: repeats must be a non-negative int or {n} of them (the size of axis "
            f"{axis}). Received: repeats={repeats}"
        )
    return take(x, np.repeat(np.arange(n), np.broadcast_to(r.astype(np.int64), (n,))), ax)


def tile(x, repeats):
    """``x`` repeated ``repeats[i]`` times along axis ``i`` (as ``np.tile``)."""
    x = _t(x)
    reps = (int(repeats),) if np.isscalar(repeats) else tuple(int(r) for r in repeats)
    if any(r < 0 for r in reps):
        raise ValueError(f"tile: repeats must be non-negative. Received: repeats={repeats}")
    nd = builtins.max(len(reps), x.ndim)
    reps = (1,) * (nd - len(reps)) + reps
    dims = (1,) * (nd - x.ndim) + x.shape
    # (d0, d1) -> (1, d0, 1, d1) -> broadcast (r0, d0, r1, d1) -> (r0*d0, r1*d1)
    y = _ops.reshape(x, tuple(v for d in dims for v in (1, d)))
    y = _ops.broadcast_to(y, tuple(v for r, d in zip(reps, dims, strict=True) for v in (r, d)))
    return _ops.reshape(y, tuple(r * d for r, d in zip(reps, dims, strict=True)))


PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def pad(x, pad_width, mode="constant", constant_values=None):
    """``x`` padded by ``pad_width`` (as ``np.pad``: an int, ``(before, after)`` or one pair
    per axis), in one of ``PAD_MODES``; built as one gather of ``x``'s entries."""
    x = _t(x)
    try:
        pw = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
    except ValueError:
        pw = None
    if pw is None or (pw < 0).any():
        raise ValueError(
            f"pad: pad_width must be non-negative (before, after) pairs for {x.ndim} axes. "
            f"Received: pad_width={pad_width}"
        )
    if mode not in PAD_MODES or (mode != "constant" and constant_values is not None):
        raise ValueError(
            f"pad: mode must be one of {PAD_MODES} (constant_values only with 'constant'). "
            f"Received: mode={mode!r}, constant_values={constant_values}"
        )
    src = np.arange(x.size).reshape(x.shape)
    flat = _ops.reshape(x, (-1,))
    if mode == "constant":  # padding reads one extra entry, the constant, after x's
        index = np.pad(src, pw, constant_values=x.size)
        fill = Tensor(np.full((1,), constant_values or 0, x.dtype))
        return _ops.getitem(_ops.concatenate([flat, fill]), index)
    return _ops.getitem(flat, np.pad(src, pw, mode=mode))


def split(x, indices_or_sections, axis=0):
    """``x`` cut along ``axis`` into equal sections, or at the given indices (a list)."""
    x = _t(x)
    ax = _axes(axis, x.ndim)[0]
    n = x.shape[ax]
    if np.isscalar(indices_or_sections):
        k = int(indices_or_sections)
        if k <= 0 or n % k:
            raise ValueError(
                f"split: axis {axis} of size {n} cannot be cut into {indices_or_sections} "
                f"equal sections. Received: x.shape={x.shape}"
            )
        cuts = [n // k * i for i in range(1, k)]
    else:
        cuts = [int(c) for c in indices_or_sections]
    bounds = [0, *cuts, n]
    head = (slice(None),) * ax
    return [
        _ops.getitem(x, (*head, slice(a, builtins.max(a, b))))
        for a, b in itertools.pairwise(bounds)
    ]


def einsum(subscripts, *operands):
    """Einstein summation, e.g. ``einsum("bij,bjk->bik", a, b)`` (letters only, no
    ``...``); gradients flow to every operand."""
    ts = [_t(o) for o in operands]
    ins, out = parse_subscripts(subscripts, len(ts))
    sizes: dict = {}
    ok = all(len(s) == t.ndim for s, t in zip(ins, ts, strict=True))
    for s, t in zip(ins, ts, strict=True):
        for c, d in zip(s, t.shape, strict=False):
            ok = ok and sizes.setdefault(c, d) == d
    if not ok or len(set(out)) != len(out) or not set(out) <= set(sizes):
        raise ValueError(
            f"einsum: the subscripts do not fit the operands (one letter per axis, one size "
            f"per letter). Received: subscripts={subscripts!r}, shapes={[t.shape for t in ts]}"
        )
    return _ops.einsum(subscripts, *ts)

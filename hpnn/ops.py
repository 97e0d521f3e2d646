"""Keras 3's ``keras.ops`` under the same names, for custom layers and losses.

Every function takes hpnn Tensors, NumPy (or CuPy) arrays or Python numbers and
returns a Tensor recorded for back-propagation (``argmax``, ``argmin``, ``one_hot``,
``shape`` and the constructors give no gradient, as in Keras). The arithmetic is
the engine's (``hpnn.engine.ops``): each function here is a thin composition.

    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, x):
            return keras.ops.multiply(x, keras.ops.sigmoid(self.w))
"""

from __future__ import annotations

import numpy as np

from hpnn import activations as _act
from hpnn.backend import floatx, get_xp, to_numpy
from hpnn.engine import ops as _ops
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

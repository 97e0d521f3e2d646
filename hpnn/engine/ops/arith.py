"""Elementwise arithmetic: add, sub, mul, div, neg, pow, exp, log, sqrt, abs, clip,
maximum, minimum."""

from __future__ import annotations

import numpy as np

from hpnn.backend import floatx, get_xp
from hpnn.engine.tensor import Function, Tensor, as_tensor


def unbroadcast(g, shape):
    """Sum ``g`` down to ``shape``: the one place broadcasting is undone in backward."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1
    )
    g = g.sum(axis=axes, keepdims=True) if axes else g
    return g.reshape(shape)


def _pair(a, b):
    """Make both operands tensors: a bare value goes to the device of the tensor beside
    it, and a bare scalar takes its dtype (no float64 from a Python float)."""
    if not isinstance(a, Tensor):
        a = _like(a, b) if isinstance(b, Tensor) else as_tensor(a)
    if not isinstance(b, Tensor):
        b = _like(b, a)
    return a, b


def _like(value, other: Tensor) -> Tensor:
    xp = get_xp(other.data)
    dtype = other.dtype if _is_scalar(value) and other.dtype.kind == "f" else None
    if isinstance(value, xp.ndarray):
        return Tensor(value if dtype is None else value.astype(dtype))
    arr = np.asarray(value)
    if dtype is None and arr.dtype.kind == "f":
        dtype = floatx()
    return Tensor(xp.asarray(arr, dtype=dtype))


def _is_scalar(v) -> bool:
    return getattr(v, "ndim", 0) == 0


class Add(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, gy):
        sa, sb = self.shapes
        return unbroadcast(gy, sa), unbroadcast(gy, sb)


class Sub(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, gy):
        sa, sb = self.shapes
        gb = unbroadcast(-gy, sb) if self.needs_input_grad[1] else None
        return unbroadcast(gy, sa), gb


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        a, b = self.a, self.b
        ga = unbroadcast(gy * b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(gy * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        a, b = self.a, self.b
        ga = unbroadcast(gy / b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(-gy * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, gy):
        return -gy


class Pow(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a**b
        return self.y

    def backward(self, gy):
        a, b, y = self.a, self.b, self.y
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(gy * b * a ** (b - 1), a.shape)
        if self.needs_input_grad[1]:
            xp = get_xp(a)
            # d(a^b)/db = a^b ln a; defined as 0 where a == 0 (the limit for b > 0).
            ln_a = xp.log(xp.where(a > 0, a, 1))
            gb = unbroadcast(gy * y * ln_a, b.shape)
        return ga, gb


class Exp(Function):
    def forward(self, a):
        self.y = get_xp(a).exp(a)
        return self.y

    def backward(self, gy):
        return gy * self.y


def erf_array(x):
    """The error function of an array, to within about 1e-11 (float64 inside): its
    Taylor series below |x| = 4, the asymptotic series of erfc above (NumPy has no
    erf, and hpnn depends on nothing else)."""
    xp = get_xp(x)
    z = x.astype(xp.float64)
    a = xp.abs(z)
    s = xp.minimum(a, 4.0)
    s2 = s * s
    term, total = s.copy(), s.copy()
    for n in range(1, 64):  # sum of (-1)^n s^(2n+1) / (n! (2n+1))
        term *= -s2 / n
        total += term / (2 * n + 1)
    small = total * (2.0 / np.sqrt(np.pi))
    inv = 1.0 / xp.maximum(a, 4.0) ** 2
    series = 1 - inv / 2 + 3 * inv**2 / 4 - 15 * inv**3 / 8 + 105 * inv**4 / 16
    big = 1 - xp.exp(-(xp.maximum(a, 4.0) ** 2)) * xp.sqrt(inv / np.pi) * series
    return (xp.sign(z) * xp.where(a < 4.0, small, big)).astype(x.dtype)


class Erf(Function):
    def forward(self, a):
        self.a = a
        return erf_array(a)

    def backward(self, gy):
        a = self.a
        scale = a.dtype.type(2.0 / np.sqrt(np.pi))
        return gy * (get_xp(a).exp(-(a * a)) * scale)


class Log(Function):
    def forward(self, a):
        self.a = a
        return get_xp(a).log(a)

    def backward(self, gy):
        return gy / self.a


class Sqrt(Function):
    def forward(self, a):
        self.y = get_xp(a).sqrt(a)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return get_xp(a).abs(a)

    def backward(self, gy):
        return gy * get_xp(self.a).sign(self.a)


class Clip(Function):
    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, a):
        self.a = a
        return get_xp(a).clip(a, self.lo, self.hi)

    def backward(self, gy):
        a = self.a
        return gy * ((a >= self.lo) & (a <= self.hi))


class Maximum(Function):
    """``max(a, b)`` elementwise; the gradient goes to the larger input, to ``a`` on a
    tie (as TensorFlow's). ``Minimum`` is the same with ``<=``."""

    take_a = staticmethod(lambda a, b: a >= b)

    def forward(self, a, b):
        xp = get_xp(a, b)
        self.mask, self.shapes = self.take_a(a, b), (a.shape, b.shape)
        return xp.where(self.mask, a, b)

    def backward(self, gy):
        (sa, sb), m = self.shapes, self.mask
        ga = unbroadcast(gy * m, sa) if self.needs_input_grad[0] else None
        gb = unbroadcast(gy * ~m, sb) if self.needs_input_grad[1] else None
        return ga, gb


class Minimum(Maximum):
    take_a = staticmethod(lambda a, b: a <= b)


def add(a, b) -> Tensor:
    """Return ``a + b`` with NumPy broadcasting."""
    return Add()(*_pair(a, b))


def sub(a, b) -> Tensor:
    """Return ``a - b`` with NumPy broadcasting."""
    return Sub()(*_pair(a, b))


def mul(a, b) -> Tensor:
    """Return ``a * b`` with NumPy broadcasting."""
    return Mul()(*_pair(a, b))


def div(a, b) -> Tensor:
    """Return ``a / b`` with NumPy broadcasting."""
    return Div()(*_pair(a, b))


def neg(a) -> Tensor:
    """Return ``-a``."""
    return Neg()(a)


def pow(a, b) -> Tensor:  # noqa: A001 - the op is called pow, as in NumPy's power
    """Return ``a ** b``; ``b`` may be a scalar or a tensor."""
    return Pow()(*_pair(a, b))


def erf(a) -> Tensor:
    """Return the error function of ``a``."""
    return Erf()(a)


def exp(a) -> Tensor:
    """Return ``e ** a``."""
    return Exp()(a)


def log(a) -> Tensor:
    """Return the natural logarithm of ``a``."""
    return Log()(a)


def sqrt(a) -> Tensor:
    """Return the square root of ``a``."""
    return Sqrt()(a)


def abs(a) -> Tensor:  # noqa: A001
    """Return ``|a|`` (gradient ``sign(a)``, 0 at 0)."""
    return Abs()(a)


def clip(a, lo, hi) -> Tensor:
    """Return ``a`` limited to ``[lo, hi]``; the gradient passes only inside the range."""
    return Clip(lo, hi)(a)


def maximum(a, b) -> Tensor:
    """Return the elementwise maximum of ``a`` and ``b`` (NumPy broadcasting)."""
    return Maximum()(*_pair(a, b))


def minimum(a, b) -> Tensor:
    """Return the elementwise minimum of ``a`` and ``b`` (NumPy broadcasting)."""
    return Minimum()(*_pair(a, b))

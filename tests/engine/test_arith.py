"""Tests for hpnn.engine.ops.arith: forward against NumPy, backward against finite differences."""

import numpy as np
import pytest

from hpnn.engine import Tensor, ops
from hpnn.testing import OpTest, check_grad


def rand(*shape, lo=-1.0, hi=1.0, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, shape)


def away_from_zero(*shape, lo=0.5, hi=1.5, seed=0):
    """Values with |x| in [lo, hi] and random signs."""
    rng = np.random.default_rng(seed)
    return rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape)


# (shape of a, shape of b): broadcasting, scalar-shaped, size-1 dims, odd sizes
BROADCAST_SHAPES = [
    ((3, 4), (3, 4)),
    ((3, 1, 4), (5, 1)),
    ((), (3,)),
    ((2, 3), ()),
    ((1,), (7,)),
    ((4, 1), (1, 3)),
    ((2, 1, 3), (2, 5, 3)),
    ((1, 1, 1), (3, 1, 7)),
]
UNARY_SHAPES = [(1,), (7,), (3, 4), (2, 1, 5)]

# Shape () outputs are covered by test_scalar_shaped_output below.


def binary_cases(b_gen=rand):
    return [
        (rand(*sa, seed=i), b_gen(*sb, seed=100 + i)) for i, (sa, sb) in enumerate(BROADCAST_SHAPES)
    ]


def unary_cases(gen=rand, **kw):
    return [(gen(*s, seed=i, **kw),) for i, s in enumerate(UNARY_SHAPES)]


class TestAdd(OpTest):
    cases = binary_cases()

    def op(self, a, b):
        return a + b

    def reference(self, a, b):
        return a + b


class TestAddFunction(TestAdd):
    def op(self, a, b):
        return ops.add(a, b)


class TestSub(OpTest):
    cases = binary_cases()

    def op(self, a, b):
        return a - b

    def reference(self, a, b):
        return a - b


class TestMul(OpTest):
    cases = binary_cases()

    def op(self, a, b):
        return a * b

    def reference(self, a, b):
        return a * b


class TestMaximum(OpTest):
    cases = binary_cases()  # random values: no ties, where the gradient is one-sided

    def op(self, a, b):
        return ops.maximum(a, b)

    def reference(self, a, b):
        return np.maximum(a, b)


class TestMinimum(OpTest):
    cases = binary_cases()

    def op(self, a, b):
        return ops.minimum(a, b)

    def reference(self, a, b):
        return np.minimum(a, b)


def test_maximum_and_minimum_send_a_tie_to_the_first_input():
    a = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = Tensor(np.array([1.0, 5.0, 0.0]), requires_grad=True)
    ops.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(b.grad, [0.0, 1.0, 0.0])
    a.grad = b.grad = None
    ops.minimum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(b.grad, [0.0, 0.0, 1.0])


class TestDiv(OpTest):
    cases = binary_cases(b_gen=away_from_zero)
    forward_rtol = 1e-5

    def op(self, a, b):
        return a / b

    def reference(self, a, b):
        return a / b


class TestNeg(OpTest):
    cases = unary_cases()

    def op(self, a):
        return -a

    def reference(self, a):
        return -a


class TestPowScalar(OpTest):
    cases = unary_cases(lo=0.5, hi=2.0)

    @pytest.fixture(autouse=True, params=[2, 3, 0.5, -1.5, 1], ids=lambda p: f"p={p}")
    def _exponent(self, request):
        self.p = request.param

    def op(self, a):
        return a**self.p

    def reference(self, a):
        return a**self.p


class TestPowTensor(OpTest):
    cases = [
        (rand(*sa, lo=0.5, hi=2.0, seed=i), rand(*sb, lo=-2.0, hi=2.0, seed=50 + i))
        for i, (sa, sb) in enumerate(BROADCAST_SHAPES)
    ]
    forward_rtol = 1e-5

    def op(self, a, b):
        return a**b

    def reference(self, a, b):
        return a**b


class TestRPow(OpTest):
    cases = unary_cases()

    def op(self, a):
        return 2.5**a

    def reference(self, a):
        return 2.5**a


class TestExp(OpTest):
    cases = unary_cases(lo=-2.0, hi=2.0)

    def op(self, a):
        return ops.exp(a)

    def reference(self, a):
        return np.exp(a)


class TestLog(OpTest):
    cases = unary_cases(lo=0.2, hi=3.0)

    def op(self, a):
        return ops.log(a)

    def reference(self, a):
        return np.log(a)


class TestSqrt(OpTest):
    cases = unary_cases(lo=0.2, hi=3.0)

    def op(self, a):
        return ops.sqrt(a)

    def reference(self, a):
        return np.sqrt(a)


class TestAbs(OpTest):
    cases = unary_cases(gen=away_from_zero)

    def op(self, a):
        return ops.abs(a)

    def reference(self, a):
        return np.abs(a)


def away_from_bounds(*shape, seed=0):
    """Values in [-2, 2] at least 0.1 away from the clip bounds -1 and 1."""
    x = rand(*shape, lo=-2.0, hi=2.0, seed=seed)
    near = np.abs(np.abs(x) - 1.0) < 0.1
    return np.where(near, np.sign(x) * (np.abs(x) + 0.25), x)


class TestClip(OpTest):
    cases = [*unary_cases(gen=away_from_bounds), (np.array([-1.9, -0.5, 0.0, 0.5, 1.9]),)]

    def op(self, a):
        return ops.clip(a, -1.0, 1.0)

    def reference(self, a):
        return np.clip(a, -1.0, 1.0)


def test_clip_gradient_is_zero_outside_the_range():
    x = Tensor(np.array([-3.0, -0.5, 0.5, 3.0], np.float32), requires_grad=True)
    ops.clip(x, -1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0, 0.0])


def test_abs_gradient_at_zero_is_zero():
    x = Tensor(np.array([-2.0, 0.0, 2.0], np.float32), requires_grad=True)
    ops.abs(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [-1.0, 0.0, 1.0])


def test_pow_gradient_wrt_exponent_at_zero_base_is_finite():
    a = Tensor(np.array([0.0, 1.0, 2.0]))
    b = Tensor(np.array(2.0), requires_grad=True)
    (a**b).sum().backward()
    np.testing.assert_allclose(b.grad, 4 * np.log(2.0))


@pytest.mark.parametrize(
    ("g_shape", "shape"),
    [
        ((3, 5, 4), (3, 1, 4)),
        ((3, 5, 4), (5, 1)),
        ((2, 3), ()),
        ((4,), (1,)),
        ((2, 3), (2, 3)),
    ],
)
def test_unbroadcast_sums_to_shape(g_shape, shape):
    g = rand(*g_shape)
    got = ops.unbroadcast(g, shape)
    assert got.shape == shape
    # the sum of g over broadcast axes is the adjoint of broadcast_to
    v = rand(*shape, seed=1)
    np.testing.assert_allclose((got * v).sum(), (g * np.broadcast_to(v, g_shape)).sum())


@pytest.mark.parametrize("op", [ops.add, ops.sub, ops.mul, ops.div])
def test_binary_ops_keep_float32_with_broadcasting(op):
    a = Tensor(np.ones((3, 1), np.float32) * 2, requires_grad=True)
    b = Tensor(np.ones((1, 4), np.float32) * 3, requires_grad=True)
    y = op(a, b)
    assert y.dtype == np.float32 and y.shape == (3, 4)
    y.sum().backward()
    assert a.grad.dtype == np.float32 and a.grad.shape == (3, 1)
    assert b.grad.dtype == np.float32 and b.grad.shape == (1, 4)


SCALAR_SHAPED = {
    "add": (lambda a, b: a + b, 2),
    "sub": (lambda a, b: a - b, 2),
    "mul": (lambda a, b: a * b, 2),
    "div": (lambda a, b: a / b, 2),
    "pow": (lambda a, b: a**b, 2),
    "neg": (lambda a: -a, 1),
    "exp": (ops.exp, 1),
    "log": (ops.log, 1),
    "sqrt": (ops.sqrt, 1),
    "clip": (lambda a: ops.clip(a, -1.0, 1.0), 1),
}


@pytest.mark.parametrize("name", list(SCALAR_SHAPED))
def test_scalar_shaped_output(name):
    fn, arity = SCALAR_SHAPED[name]
    arrays = [np.array(0.7), np.array(1.3)][:arity]
    y = fn(*[Tensor(a) for a in arrays])
    assert y.dtype == np.float64, f"{name} of 0-d float64 inputs gave {y.dtype}"
    check_grad(fn, arrays)

"""Tests for hpnn.engine.ops.reduce: sum, mean and max over every kind of axis."""

import numpy as np
import pytest

from hpnn.engine import Tensor, ops
from hpnn.testing import OpTest, check_grad


def rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape)


def distinct(*shape, seed=0):
    """Tie-free values: a permutation, spaced 1/size apart (far more than the FD step)."""
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(n).reshape(shape) / n - 0.5


SHAPES_3D = [(3, 4, 5), (2, 1, 7), (1, 3, 2)]
AXES = [None, 0, 1, -1, 2, (0, 2), (2, 0), (-1, -3), (0, 1, 2), ()]
# Every (axis, keepdims) pair; the 0-d outputs of sum and mean are tested separately.
CONFIGS = [(axis, keepdims) for axis in AXES for keepdims in (True, False)]
FULL = [(None, False), ((0, 1, 2), False)]
PARTIAL = [c for c in CONFIGS if c not in FULL]


def config_id(c):
    return f"axis={c[0]}-keepdims={c[1]}"


class _Reduction(OpTest):
    fn = None  # ops.sum, ops.mean or ops.max
    np_fn = None

    def op(self, a):
        return type(self).fn(a, axis=self.axis, keepdims=self.keepdims)

    def reference(self, a):
        return type(self).np_fn(a, axis=self.axis, keepdims=self.keepdims)


class TestSum(_Reduction):
    fn, np_fn = ops.sum, np.sum
    cases = [(rand(*s, seed=i),) for i, s in enumerate(SHAPES_3D)]

    @pytest.fixture(autouse=True, params=PARTIAL, ids=config_id)
    def _config(self, request):
        self.axis, self.keepdims = request.param


class TestMean(TestSum):
    fn, np_fn = ops.mean, np.mean


class TestMax(_Reduction):
    fn, np_fn = ops.max, np.max
    cases = [(distinct(*s, seed=i),) for i, s in enumerate(SHAPES_3D)]

    @pytest.fixture(autouse=True, params=CONFIGS, ids=config_id)
    def _config(self, request):
        self.axis, self.keepdims = request.param


class TestReduce1D(OpTest):
    """1-D and size-1 inputs, axis 0 / -1 with and without keepdims."""

    cases = [(distinct(7, seed=1),), (distinct(1, seed=2),)]

    @pytest.fixture(
        autouse=True,
        params=[
            (fn, axis, keepdims)
            for fn in ("sum", "mean", "max")
            for axis in (0, -1)
            for keepdims in (True, False)
        ],
        ids=lambda p: f"{p[0]}-axis={p[1]}-keepdims={p[2]}",
    )
    def _config(self, request):
        self.name, self.axis, self.keepdims = request.param

    def op(self, a):
        return getattr(ops, self.name)(a, axis=self.axis, keepdims=self.keepdims)

    def reference(self, a):
        return getattr(np, self.name)(a, axis=self.axis, keepdims=self.keepdims)


@pytest.mark.parametrize("name", ["sum", "mean"])
@pytest.mark.parametrize("axis", [None, (0, 1, 2), (-1, 0, 1)])
def test_full_reduction_float64(name, axis):
    a = rand(3, 1, 4)
    fn = getattr(ops, name)
    y = fn(Tensor(a), axis=axis)
    assert y.dtype == np.float64, f"{name} over all axes of float64 gave {y.dtype}"
    check_grad(lambda t: fn(t, axis=axis), [a])


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
def test_full_reduction_float32(name):
    a = distinct(3, 1, 4).astype(np.float32)
    x = Tensor(a, requires_grad=True)
    y = getattr(ops, name)(x)
    assert y.shape == () and y.dtype == np.float32
    np.testing.assert_allclose(y.data, getattr(np, name)(a), rtol=1e-6)
    y.backward()
    assert x.grad.dtype == np.float32 and x.grad.shape == a.shape


def test_mean_of_float32_stays_float32_on_large_input():
    x = Tensor(np.full((1000, 100), 0.1, np.float32))
    assert x.mean(axis=0).dtype == np.float32
    assert x.mean().dtype == np.float32
    np.testing.assert_allclose(x.mean(axis=1).data, 0.1, rtol=1e-5)


def test_max_ties_share_the_gradient():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    ops.max(x, axis=1).backward(np.array([1.0, 3.0]))
    np.testing.assert_allclose(x.grad, [[0.0, 0.5, 0.5], [1.0, 1.0, 1.0]])


def test_max_of_negative_values():
    x = Tensor(np.array([[-3.0, -1.0], [-2.0, -5.0]], np.float32), requires_grad=True)
    y = ops.max(x, axis=0)
    np.testing.assert_array_equal(y.data, [-2.0, -1.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 1.0], [1.0, 0.0]])

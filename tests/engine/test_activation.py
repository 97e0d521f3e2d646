"""Tests for hpnn.engine.ops.activation: forward against NumPy, backward by finite differences."""

import warnings

import numpy as np
import pytest

from hpnn.engine import Tensor, ops
from hpnn.testing import OpTest


def rand(*shape, lo=-2.0, hi=2.0, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, shape)


def away_from_zero(*shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.1, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


SHAPES = [(1,), (7,), (3, 4), (2, 1, 5)]


def cases(gen=rand, **kw):
    return [(gen(*s, seed=i, **kw),) for i, s in enumerate(SHAPES)]


def np_sigmoid(x):
    # exp(-log(1 + exp(-x))): no overflow in float64 for any |x| used here
    return np.exp(-np.logaddexp(0.0, -x))


def np_log_softmax(x, axis):
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


class TestReLU(OpTest):
    cases = cases(away_from_zero)

    def op(self, x):
        return ops.relu(x)

    def reference(self, x):
        return np.maximum(x, 0.0)


class TestSigmoid(OpTest):
    cases = [*cases(), (np.array([-50.0, -20.0, -1.0, 0.0, 1.0, 20.0, 50.0]),)]

    def op(self, x):
        return ops.sigmoid(x)

    def reference(self, x):
        return np_sigmoid(x)


class TestTanh(OpTest):
    cases = [*cases(), (np.array([-30.0, -3.0, 0.0, 3.0, 30.0]),)]

    def op(self, x):
        return ops.tanh(x)

    def reference(self, x):
        return np.tanh(x)


class TestSoftmax(OpTest):
    cases = [(rand(3, 4),), (rand(1, 7, seed=1),), (rand(2, 3, 5, seed=2),), (rand(5, 1, seed=3),)]

    @pytest.fixture(autouse=True, params=[-1, 0], ids=lambda a: f"axis={a}")
    def _axis(self, request):
        self.axis = request.param

    def op(self, x):
        return ops.softmax(x, axis=self.axis)

    def reference(self, x):
        return np.exp(np_log_softmax(x, self.axis))


class TestLogSoftmax(TestSoftmax):
    @pytest.fixture(autouse=True, params=[-1, 0, 1], ids=lambda a: f"axis={a}")
    def _axis(self, request):
        self.axis = request.param

    def op(self, x):
        return ops.log_softmax(x, axis=self.axis)

    def reference(self, x):
        return np_log_softmax(x, self.axis)


class TestLeakyReLU(OpTest):
    cases = cases(away_from_zero)

    @pytest.fixture(autouse=True, params=[None, 0.1, 0.3], ids=lambda s: f"slope={s}")
    def _slope(self, request):
        self.slope = request.param

    def op(self, x):
        if self.slope is None:
            return ops.leaky_relu(x)
        return ops.leaky_relu(x, negative_slope=self.slope)

    def reference(self, x):
        slope = 0.2 if self.slope is None else self.slope
        return np.where(x > 0, x, slope * x)


class TestELU(OpTest):
    cases = cases(away_from_zero)

    @pytest.fixture(autouse=True, params=[1.0, 0.5], ids=lambda a: f"alpha={a}")
    def _alpha(self, request):
        self.alpha = request.param

    def op(self, x):
        return ops.elu(x, alpha=self.alpha)

    def reference(self, x):
        return np.where(x > 0, x, self.alpha * (np.exp(np.minimum(x, 0)) - 1))


class TestSoftplus(OpTest):
    cases = [*cases(), (np.array([-40.0, -10.0, 0.0, 10.0, 40.0]),)]

    def op(self, x):
        return ops.softplus(x)

    def reference(self, x):
        return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


EXTREME = np.array([-1e4, -100.0, -50.0, -20.0, 0.0, 20.0, 50.0, 100.0, 1e4], np.float32)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus", "elu", "softmax", "log_softmax"])
def test_large_inputs_give_no_warnings_and_no_nan(name):
    x = Tensor(EXTREME, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            y = getattr(ops, name)(x)
            y.backward(np.ones_like(EXTREME))
    assert y.dtype == np.float32
    assert np.all(np.isfinite(y.data)), y.data
    assert np.all(np.isfinite(x.grad)), x.grad


def test_sigmoid_saturates_exactly():
    y = ops.sigmoid(Tensor(np.array([-50.0, 0.0, 50.0], np.float32))).data
    assert 0.0 <= y[0] < 1e-20
    assert y[1] == 0.5
    assert y[2] == 1.0


def test_softmax_rows_sum_to_one_for_large_logits():
    x = Tensor(np.array([[1000.0, 1000.0, -1000.0], [0.0, 1.0, 2.0]], np.float32))
    y = ops.softmax(x).data
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(y[0], [0.5, 0.5, 0.0], atol=1e-7)


def test_relu_gradient_at_zero_is_zero():
    x = Tensor(np.array([-1.0, 0.0, 1.0], np.float32), requires_grad=True)
    ops.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])


@pytest.mark.parametrize(
    "name", ["relu", "sigmoid", "tanh", "softmax", "log_softmax", "leaky_relu", "elu", "softplus"]
)
def test_float32_in_float32_out(name):
    x = Tensor(rand(3, 4).astype(np.float32), requires_grad=True)
    y = getattr(ops, name)(x)
    assert y.dtype == np.float32
    y.backward(np.ones((3, 4), np.float32))
    assert x.grad.dtype == np.float32

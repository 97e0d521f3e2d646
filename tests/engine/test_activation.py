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


# -- erf and the composite activations (hpnn.activations) ----------------------------------
def test_erf_against_math_erf_and_its_gradient():
    import math

    x = np.linspace(-7.0, 7.0, 2001)
    want = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(ops.erf(Tensor(x)).data, want, rtol=0, atol=1e-10)
    assert ops.erf(Tensor(x.astype(np.float32))).dtype == np.float32
    from hpnn.testing import check_grad

    for i, shape in enumerate(SHAPES):
        check_grad(ops.erf, [rand(*shape, lo=-3.5, hi=3.5, seed=i)])
    # the asymptotic side (at |x| = 4 the two series differ by ~1e-11: a central
    # difference across that seam reads the step, so no point sits on it)
    check_grad(ops.erf, [np.array([-6.0, -4.5, 4.2, 4.5, 6.0])])


COMPOSITE = [
    "relu6", "softsign", "silu", "swish", "gelu", "selu", "mish", "hard_sigmoid",
    "hard_silu", "hard_swish", "exponential",
]  # fmt: skip


@pytest.mark.parametrize("name", COMPOSITE)
def test_composite_activations_backward(name):
    from hpnn import activations
    from hpnn.testing import check_grad

    fn = activations.get(name)
    for i, shape in enumerate(SHAPES):
        x = away_from_zero(*shape, seed=i) * 2.5  # clear of the kinks at 0, +-3, 6
        x[np.isclose(np.abs(x), 3.0, atol=0.05)] = 1.0
        check_grad(fn, [x])


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("silu", lambda x: x * np_sigmoid(x)),
        (
            "selu",
            lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
        ),
        ("mish", lambda x: x * np.tanh(np.logaddexp(0.0, x))),
        ("softsign", lambda x: x / (1 + np.abs(x))),
        ("hard_sigmoid", lambda x: np.clip(x / 6 + 0.5, 0, 1)),
        ("relu6", lambda x: np.clip(x, 0, 6)),
    ],
)
def test_composite_activations_forward(name, reference):
    from hpnn import activations

    x = np.linspace(-8.0, 8.0, 161)
    np.testing.assert_allclose(activations.get(name)(Tensor(x)).data, reference(x), rtol=1e-12)


def test_gelu_exact_and_approximate():
    import math

    from hpnn import activations

    x = np.linspace(-6.0, 6.0, 121)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(activations.gelu(Tensor(x)).data, exact, atol=1e-10)
    tanh = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(activations.gelu(Tensor(x), approximate=True).data, tanh, rtol=1e-12)
    assert np.abs(tanh - exact).max() > 1e-5  # two different functions


@pytest.mark.parametrize(
    "kw",
    [
        {"max_value": 2.0},
        {"negative_slope": 0.1},
        {"threshold": 0.5},
        {"negative_slope": 0.1, "threshold": -0.5, "max_value": 3.0},
    ],
)
def test_relu_with_keras_options(kw):
    from hpnn import activations
    from hpnn.testing import check_grad

    x = np.linspace(-4.0, 4.0, 81) + 0.013  # off every kink
    slope, top, th = kw.get("negative_slope", 0.0), kw.get("max_value"), kw.get("threshold", 0.0)
    want = np.where(x > th, x, 0.0)
    if top is not None:
        want = np.clip(want, 0.0, top)
    want = want - slope * np.maximum(th - x, 0.0)
    np.testing.assert_allclose(activations.relu(Tensor(x), **kw).data, want, rtol=1e-12)
    check_grad(lambda t: activations.relu(t, **kw), [x])


@pytest.mark.parametrize("name", COMPOSITE)
def test_composite_activations_stay_float32_and_finite(name):
    from hpnn import activations

    x = Tensor(EXTREME[1:-1], requires_grad=True)  # +-100 (exp(1e4) is inf in any dtype)
    if name == "exponential":
        x = Tensor(np.array([-50.0, 0.0, 50.0], np.float32), requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        y = activations.get(name)(x)
        y.backward(np.ones(x.shape, np.float32))
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    assert np.all(np.isfinite(y.data)) and np.all(np.isfinite(x.grad))

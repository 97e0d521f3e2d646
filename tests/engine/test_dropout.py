"""Tests for hpnn.engine.ops.dropout: inverted dropout statistics, mask reuse, seeding."""

import numpy as np
import pytest

from hpnn.engine import Tensor, ops

N = 1_000_000
Z = 5.0  # tolerance in standard deviations: a false failure has probability < 1e-6


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.9])
def test_zeroed_fraction_and_mean(rate):
    x = Tensor(np.ones(N, np.float32))
    y = ops.dropout(x, rate, np.random.default_rng(0)).data
    keep = 1.0 - rate
    # each element is dropped independently: the dropped count is Binomial(N, rate)
    dropped = np.mean(y == 0)
    assert abs(dropped - rate) < Z * np.sqrt(rate * keep / N)
    # survivors are scaled by 1/keep, so mean(y) = kept_fraction / keep, with std below
    assert abs(y.mean(dtype=np.float64) - 1.0) < Z * np.sqrt(rate * keep / N) / keep
    np.testing.assert_allclose(np.unique(y), [0.0, 1.0 / keep], rtol=1e-6)


def test_mean_preserved_for_varied_inputs():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.5, 2.0, N).astype(np.float32)
    rate = 0.4
    keep = 1.0 - rate
    y = ops.dropout(Tensor(x), rate, np.random.default_rng(2)).data
    # y_i = x_i * B_i / keep with B_i ~ Bernoulli(keep): Var(sum y) = sum(x^2) * rate / keep
    std_of_mean = np.sqrt((x.astype(np.float64) ** 2).sum() * rate / keep) / N
    assert abs(y.mean(dtype=np.float64) - x.mean(dtype=np.float64)) < Z * std_of_mean


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_uses_the_forward_mask(dtype):
    rng = np.random.default_rng(3)
    xv = rng.uniform(0.5, 1.5, (50, 40)).astype(dtype)
    x = Tensor(xv, requires_grad=True)
    rate = 0.3
    y = ops.dropout(x, rate, np.random.default_rng(4))
    assert y.dtype == dtype
    kept = y.data != 0  # x is never 0, so the output reveals the mask
    mask_scale = kept / (1.0 - rate)
    np.testing.assert_allclose(y.data, xv * mask_scale, rtol=1e-6)
    gy = rng.standard_normal((50, 40)).astype(dtype)
    y.backward(gy)
    assert x.grad.dtype == dtype
    np.testing.assert_allclose(x.grad, gy * mask_scale, rtol=1e-6)


def test_rate_zero_is_identity():
    xv = np.random.default_rng(5).standard_normal((4, 6)).astype(np.float32)
    x = Tensor(xv, requires_grad=True)
    rng = np.random.default_rng(6)
    y = ops.dropout(x, 0.0, rng)
    np.testing.assert_array_equal(y.data, xv)
    gy = np.ones((4, 6), np.float32) * 3.0
    (y * 1.0).backward(gy)
    np.testing.assert_array_equal(x.grad, gy)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan")])
def test_rate_outside_range_raises(rate):
    with pytest.raises(ValueError, match="rate"):
        ops.dropout(Tensor(np.ones(3, np.float32)), rate, np.random.default_rng(0))


def test_same_seed_same_mask():
    x = Tensor(np.ones((30, 30), np.float32))
    a = ops.dropout(x, 0.5, np.random.default_rng(42)).data
    b = ops.dropout(x, 0.5, np.random.default_rng(42)).data
    c = ops.dropout(x, 0.5, np.random.default_rng(43)).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_successive_calls_draw_new_masks():
    x = Tensor(np.ones((30, 30), np.float32))
    rng = np.random.default_rng(7)
    a = ops.dropout(x, 0.5, rng).data
    b = ops.dropout(x, 0.5, rng).data
    assert not np.array_equal(a, b)


def test_dropout_does_not_touch_global_numpy_state():
    np.random.seed(0)
    before = np.random.random()
    np.random.seed(0)
    ops.dropout(Tensor(np.ones(100, np.float32)), 0.5, np.random.default_rng(0))
    assert np.random.random() == before

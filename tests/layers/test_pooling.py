"""Tests for hpnn.layers.pooling: 1-D max/average pooling and global pooling (with masks)."""

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.testing import check_grad


@pytest.fixture
def float64():
    old = hpnn.backend.floatx()
    hpnn.backend.set_floatx("float64")
    yield
    hpnn.backend.set_floatx(old)


def distinct(*shape, seed=0):
    """Tie-free values, so max pooling has one winner per window."""
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(n).reshape(shape) / n - 0.5


def naive_pool1d(x, k, s, padding, kind):
    n, steps, c = x.shape
    if padding == "same":
        out = -(-steps // s)
        total = max((out - 1) * s + k - steps, 0)
        before = total // 2
    else:
        out, before = (steps - k) // s + 1, 0
    y = np.zeros((n, out, c))
    for i in range(out):
        lo, hi = max(i * s - before, 0), min(i * s - before + k, steps)
        win = x[:, lo:hi]
        y[:, i] = win.max(axis=1) if kind == "max" else win.mean(axis=1)
    return y


CASES = [(2, None, "valid"), (3, 2, "valid"), (3, 1, "same"), (2, 2, "same"), (4, 3, "same")]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(("k", "s", "padding"), CASES)
def test_pooling1d_matches_naive(float64, kind, k, s, padding):
    cls = layers.MaxPooling1D if kind == "max" else layers.AveragePooling1D
    layer = cls(k, strides=s, padding=padding)
    x = distinct(2, 7, 3)
    y = layer(x)
    expected = naive_pool1d(x, k, s or k, padding, kind)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)
    assert layer.compute_output_shape((None, 7, 3)) == (None, expected.shape[1], 3)
    check_grad(lambda t: layer(t), [x])


def test_pooling1d_defaults_and_aliases():
    layer = layers.MaxPool1D()
    assert layer.pool_size == 2 and layer.strides == 2 and layer.padding == "valid"
    assert layers.AvgPool1D is layers.AveragePooling1D


@pytest.mark.parametrize(
    ("cls", "shape", "reduce"),
    [
        (layers.GlobalAveragePooling1D, (2, 5, 3), lambda x: x.mean(axis=1)),
        (layers.GlobalMaxPooling1D, (2, 5, 3), lambda x: x.max(axis=1)),
        (layers.GlobalAveragePooling2D, (2, 4, 3, 3), lambda x: x.mean(axis=(1, 2))),
        (layers.GlobalMaxPooling2D, (2, 4, 3, 3), lambda x: x.max(axis=(1, 2))),
    ],
)
def test_global_pooling(float64, cls, shape, reduce):
    x = distinct(*shape)
    np.testing.assert_allclose(cls()(x).numpy(), reduce(x), rtol=1e-12)
    kept = cls(keepdims=True)(x)
    assert kept.shape == (2, *([1] * (len(shape) - 2)), 3)
    assert cls(keepdims=True).compute_output_shape((None, *shape[1:])) == (None, *kept.shape[1:])
    check_grad(lambda t: cls()(t), [x])


def test_masked_global_average_pooling(float64):
    x = distinct(3, 4, 2)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)
    layer = layers.GlobalAveragePooling1D()
    y = layer(x, mask=mask).numpy()
    np.testing.assert_allclose(y[0], x[0, :2].mean(axis=0))
    np.testing.assert_allclose(y[1], x[1].mean(axis=0))
    np.testing.assert_array_equal(y[2], 0)  # nothing to average
    assert layer.compute_mask(x, mask) is None
    check_grad(lambda t: layer(t, mask=mask), [x])


def test_pooling_errors():
    with pytest.raises(ValueError, match=r"MaxPooling1D 'mp': 2 steps are fewer than pool_size=3"):
        layers.MaxPooling1D(3, name="mp")(np.zeros((1, 2, 1), np.float32))
    with pytest.raises(ValueError, match=r"GlobalMaxPooling2D .*rank 4.*Received: shape"):
        layers.GlobalMaxPooling2D()(np.zeros((1, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"channels_last"):
        layers.AveragePooling1D(data_format="channels_first")

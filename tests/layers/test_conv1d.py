"""Tests for hpnn.layers.conv.Conv1D: naive loops, PyTorch, gradients, causal padding."""

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


def rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape)


def naive_conv1d(x, w, b, s, padding):
    n, steps, c = x.shape
    k, _, o = w.shape
    if padding == "causal":
        before, out = k - 1, (steps - 1) // s + 1
    elif padding == "same":
        out = -(-steps // s)
        before = max((out - 1) * s + k - steps, 0) // 2
    else:
        before, out = 0, (steps - k) // s + 1
    xp = np.zeros((n, steps + 2 * k, c))
    xp[:, before : before + steps] = x
    y = np.zeros((n, out, o))
    for i in range(out):
        y[:, i] = np.einsum("nkc,kco->no", xp[:, i * s : i * s + k], w)
    return y + b


CASES = [(3, 1, "valid"), (3, 2, "valid"), (3, 1, "same"), (4, 2, "same"), (3, 1, "causal"),
         (2, 2, "causal"), (1, 1, "causal")]  # fmt: skip


@pytest.mark.parametrize(("k", "s", "padding"), CASES)
def test_conv1d_matches_naive_and_gradients(float64, k, s, padding):
    layer = layers.Conv1D(2, k, strides=s, padding=padding, bias_initializer="random_normal")
    x = rand(2, 7, 3)
    y = layer(x)
    kernel, bias = layer.get_weights()
    assert kernel.shape == (k, 3, 2)  # Keras layout (kernel_size, in, filters)
    expected = naive_conv1d(x, kernel, bias, s, padding)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert layer.compute_output_shape((None, 7, 3)) == (None, expected.shape[1], 2)

    def fn(xt, w, b):
        layer.kernel, layer.bias = w, b
        return layer(xt)

    check_grad(fn, [x, kernel, bias])


def test_causal_output_ignores_the_future():
    layer = layers.Conv1D(1, 3, padding="causal")
    x = rand(1, 6, 2).astype(np.float32)
    y = layer(x).numpy()
    x2 = x.copy()
    x2[:, 4:] = 9.0
    np.testing.assert_array_equal(layer(x2).numpy()[:, :4], y[:, :4])


def test_conv1d_matches_torch():
    torch = pytest.importorskip("torch")
    layer = layers.Conv1D(4, 3, strides=2, activation="relu")
    x = rand(2, 9, 3).astype(np.float32)
    layer(x)
    kernel, bias = rand(3, 3, 4, seed=1), rand(4, seed=2)
    layer.set_weights([kernel, bias])
    yt = torch.nn.functional.conv1d(
        torch.tensor(x.transpose(0, 2, 1)),  # (N, C, L)
        torch.tensor(kernel.transpose(2, 1, 0), dtype=torch.float32),  # (O, C, K)
        torch.tensor(bias, dtype=torch.float32),
        stride=2,
    ).relu()
    np.testing.assert_allclose(
        layer(x).numpy(), yt.numpy().transpose(0, 2, 1), rtol=1e-5, atol=1e-6
    )


def test_conv1d_errors():
    with pytest.raises(ValueError, match=r"Conv1D 'c': expected input of rank 3.*Received: shape"):
        layers.Conv1D(2, 3, name="c")(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"Conv1D 'c2': 2 steps are fewer than kernel_size=3"):
        layers.Conv1D(2, 3, name="c2")(np.zeros((1, 2, 1), np.float32))
    with pytest.raises(
        ValueError, match=r"padding must be 'valid', 'same' or 'causal'. Received: padding='full'"
    ):
        layers.Conv1D(2, 3, padding="full")

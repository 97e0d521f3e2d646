"""Tests for hpnn.engine.ops.pool: max and average pooling (NHWC) against naive loops."""

import numpy as np
import pytest

from hpnn.engine import Tensor, ops
from hpnn.testing import OpTest


def rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape)


def distinct(*shape, seed=0):
    """Tie-free values: a permutation, spaced 1/size apart (far more than the FD step)."""
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(n).reshape(shape) / n - 0.5


def tf_pads(n, k, s, padding):
    """(before, after) padding of one axis under TF rules."""
    if padding == "valid":
        return 0, 0
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def windows(x, pool, strides, padding, fill):
    """Yield (n, i, j, window (kh, kw, C), real-input mask (kh, kw), origin in padded coords)."""
    n_batch, h, w, c = x.shape
    (kh, kw), (sh, sw) = pool, strides
    (pt, pb), (pl, pr) = tf_pads(h, kh, sh, padding), tf_pads(w, kw, sw, padding)
    xpad = np.full((n_batch, h + pt + pb, w + pl + pr, c), fill)
    xpad[:, pt : pt + h, pl : pl + w] = x
    real = np.zeros(xpad.shape[1:3], bool)
    real[pt : pt + h, pl : pl + w] = True
    oh, ow = (xpad.shape[1] - kh) // sh + 1, (xpad.shape[2] - kw) // sw + 1
    for n in range(n_batch):
        for i in range(oh):
            for j in range(ow):
                r, s = i * sh, j * sw
                yield n, i, j, xpad[n, r : r + kh, s : s + kw], real[r : r + kh, s : s + kw], (r, s)


def out_shape(x, pool, strides, padding):
    n_batch, h, w, c = x.shape
    (kh, kw), (sh, sw) = pool, strides
    if padding == "same":
        return n_batch, -(-h // sh), -(-w // sw), c
    return n_batch, (h - kh) // sh + 1, (w - kw) // sw + 1, c


def max_pool_naive(x, pool, strides, padding):
    y = np.zeros(out_shape(x, pool, strides, padding))
    for n, i, j, win, _, _ in windows(x, pool, strides, padding, -np.inf):
        y[n, i, j] = win.max(axis=(0, 1))
    return y


def avg_pool_naive(x, pool, strides, padding):
    y = np.zeros(out_shape(x, pool, strides, padding))
    for n, i, j, win, real, _ in windows(x, pool, strides, padding, 0.0):
        y[n, i, j] = win[real].sum(axis=0) / real.sum()  # only real inputs count
    return y


def max_pool_grad_naive(x, gy, pool, strides, padding):
    """Gradient of max pooling: all of it to the first maximal tap in row-major window order."""
    n_batch, h, w, c = x.shape
    (kh, kw), (sh, sw) = pool, strides
    (pt, pb), (pl, pr) = tf_pads(h, kh, sh, padding), tf_pads(w, kw, sw, padding)
    gpad = np.zeros((n_batch, h + pt + pb, w + pl + pr, c))
    for n, i, j, win, _, (r, s) in windows(x, pool, strides, padding, -np.inf):
        for ch in range(c):
            p, q = np.unravel_index(np.argmax(win[:, :, ch]), (kh, kw))  # argmax: first max
            gpad[n, r + p, s + q, ch] += gy[n, i, j, ch]
    return gpad[:, pt : pt + h, pl : pl + w]


CONFIGS = [
    ((2, 2), None, "valid"),
    ((2, 2), None, "same"),
    ((3, 3), None, "valid"),
    ((3, 3), None, "same"),
    ((3, 3), (2, 2), "valid"),
    ((3, 3), (2, 2), "same"),
    ((2, 3), None, "valid"),
    ((2, 3), (1, 2), "same"),
    ((2, 2), (1, 1), "valid"),
    ((3, 3), (1, 1), "same"),
    ((2, 3), (2, 1), "valid"),
    ((2, 2), (3, 3), "valid"),  # stride > pool: gaps the gradient must leave at 0
    ((2, 2), (3, 2), "same"),
]


def config_id(c):
    pool, strides, padding = c
    s = "pool" if strides is None else f"{strides[0]}x{strides[1]}"
    return f"pool={pool[0]}x{pool[1]}-strides={s}-{padding}"


SHAPES = [(1, 5, 7, 2), (2, 4, 6, 1), (1, 6, 6, 3), (2, 3, 3, 1)]


class _PoolTest(OpTest):
    @pytest.fixture(autouse=True, params=CONFIGS, ids=config_id)
    def _config(self, request):
        self.pool, self.strides, self.padding = request.param

    def call(self, fn, x):
        return fn(x, pool_size=self.pool, strides=self.strides, padding=self.padding)

    def naive(self, fn, x):
        return fn(x, self.pool, self.strides or self.pool, self.padding)


class TestMaxPool2D(_PoolTest):
    cases = [(distinct(*s, seed=i),) for i, s in enumerate(SHAPES)]

    def op(self, x):
        return self.call(ops.max_pool2d, x)

    def reference(self, x):
        return self.naive(max_pool_naive, x)


class TestMaxPool2DReLU(_PoolTest):
    """``relu=True``: ReLU of the pooled values, with its gradient, from one pass."""

    # distinct values around 0, none exactly 0 (the ReLU's kink): some windows are all < 0
    cases = [(distinct(*s, seed=i) + 0.1 / np.prod(s),) for i, s in enumerate(SHAPES)]

    def op(self, x):
        return ops.max_pool2d(x, self.pool, self.strides, self.padding, relu=True)

    def reference(self, x):
        return np.maximum(self.naive(max_pool_naive, x), 0)


class TestAveragePool2D(_PoolTest):
    cases = [(rand(*s, seed=i),) for i, s in enumerate(SHAPES)]

    def op(self, x):
        return self.call(ops.average_pool2d, x)

    def reference(self, x):
        return self.naive(avg_pool_naive, x)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_max_pool_ties_go_to_the_first_tap(config):
    pool, strides, padding = config
    x = np.random.default_rng(0).integers(0, 3, (2, 5, 7, 2)).astype(np.float64)  # many ties
    xt = Tensor(x, requires_grad=True)
    y = ops.max_pool2d(xt, pool_size=pool, strides=strides, padding=padding)
    gy = rand(*y.shape, seed=1)
    y.backward(gy)
    np.testing.assert_allclose(y.data, max_pool_naive(x, pool, strides or pool, padding))
    np.testing.assert_allclose(
        xt.grad, max_pool_grad_naive(x, gy, pool, strides or pool, padding), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize(
    ("window", "first"),
    [
        ([[5.0, 5.0], [5.0, 5.0]], (0, 0)),
        ([[1.0, 3.0], [3.0, 2.0]], (0, 1)),
        ([[1.0, 2.0], [3.0, 3.0]], (1, 0)),
    ],
)
def test_max_pool_tie_explicit(window, first):
    x = Tensor(np.array(window, np.float32).reshape(1, 2, 2, 1), requires_grad=True)
    ops.max_pool2d(x).backward(np.full((1, 1, 1, 1), 7.0, np.float32))
    expected = np.zeros((1, 2, 2, 1), np.float32)
    expected[0, first[0], first[1], 0] = 7.0
    np.testing.assert_array_equal(x.grad, expected)


@pytest.mark.parametrize("fn", [ops.max_pool2d, ops.average_pool2d])
def test_valid_drops_the_remainder(fn):
    x = Tensor(distinct(1, 5, 7, 1).astype(np.float32), requires_grad=True)
    y = fn(x, pool_size=(2, 2), padding="valid")
    assert y.shape == (1, 2, 3, 1)
    y.sum().backward()
    assert np.all(x.grad[:, 4, :] == 0) and np.all(x.grad[:, :, 6] == 0)
    assert x.grad.dtype == np.float32


def test_average_pool_same_counts_only_real_inputs():
    x = Tensor(np.ones((1, 3, 3, 1), np.float32))
    y = ops.average_pool2d(x, pool_size=(2, 2), strides=(1, 1), padding="same")
    np.testing.assert_array_equal(y.data, np.ones((1, 3, 3, 1)))  # zero padding would give < 1


def test_max_pool_same_pads_with_minus_infinity():
    x = Tensor(-np.ones((1, 3, 3, 1), np.float32) * np.arange(1, 10).reshape(1, 3, 3, 1))
    y = ops.max_pool2d(x, pool_size=(2, 2), padding="same")
    np.testing.assert_array_equal(y.data[0, :, :, 0], [[-1.0, -3.0], [-7.0, -9.0]])


# -- against PyTorch -------------------------------------------------------------------

TORCH_CONFIGS = [((2, 2), (2, 2)), ((3, 3), (2, 2)), ((2, 3), (1, 2)), ((3, 2), (3, 1))]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(("pool", "strides"), TORCH_CONFIGS)
def test_pool_matches_torch(kind, pool, strides):
    torch = pytest.importorskip("torch")
    x = rand(2, 7, 8, 3)
    fn = ops.max_pool2d if kind == "max" else ops.average_pool2d
    xt = Tensor(x, requires_grad=True)
    y = fn(xt, pool_size=pool, strides=strides, padding="valid")
    gy = rand(*y.shape, seed=1)
    y.backward(gy)

    tx = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    tfn = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
    ty = tfn(tx, kernel_size=pool, stride=strides)
    ty.backward(torch.tensor(gy.transpose(0, 3, 1, 2)))

    np.testing.assert_allclose(y.data, ty.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-12)
    np.testing.assert_allclose(
        xt.grad, tx.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-14
    )

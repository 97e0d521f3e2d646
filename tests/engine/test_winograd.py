"""Winograd F(4x4, 3x3) convolutions: the transforms are the published matrices, the
compiled transforms give the NumPy ones' numbers bit for bit, and conv2d through them
matches a float64 reference (forward and every gradient) where im2col does."""

import numpy as np
import pytest

from hpnn.engine import ops
from hpnn.engine.ops import conv, winograd
from hpnn.engine.tensor import Tensor


def columns(fn, n):
    """The matrix of a 1-D transform: its outputs for each unit vector."""
    return np.array([fn(*np.eye(n)[:, j]) for j in range(n)]).T


def test_the_transforms_are_the_published_matrices():
    np.testing.assert_array_equal(columns(winograd.bt6, 6), winograd.BT)
    np.testing.assert_array_equal(columns(winograd.b6t, 6), winograd.BT.T)
    np.testing.assert_array_equal(columns(winograd.at6, 6), winograd.AT)
    np.testing.assert_array_equal(columns(winograd.a6t, 4), winograd.AT.T)


def test_the_matrices_compute_a_correlation():
    """A^T [(G g G^T) * (B^T d B)] A is the 3x3 correlation of the 6x6 tile d."""
    rng = np.random.default_rng(0)
    d, g = rng.standard_normal((6, 6)), rng.standard_normal((3, 3))
    bt, gm, at = winograd.BT, winograd.G, winograd.AT
    y = at @ ((gm @ g @ gm.T) * (bt @ d @ bt.T)) @ at.T
    want = np.array([[(d[i : i + 3, j : j + 3] * g).sum() for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def reference(x, w, b, gy, pads):
    """Forward and gradients of a 3x3 stride-1 correlation, in float64, by taps."""
    x64 = np.pad(x.astype(np.float64), ((0, 0), *pads, (0, 0)))
    w64, g64 = w.astype(np.float64), gy.astype(np.float64)
    _, oh, ow, _ = gy.shape
    y = np.zeros(gy.shape) + b
    gx = np.zeros_like(x64)
    gw = np.zeros_like(w64)
    for p in range(3):
        for q in range(3):
            win = x64[:, p : p + oh, q : q + ow]
            y += win @ w64[p, q]
            gx[:, p : p + oh, q : q + ow] += g64 @ w64[p, q].T
            gw[p, q] = win.reshape(-1, win.shape[-1]).T @ g64.reshape(-1, g64.shape[-1])
    (pt, _), (pl, _) = pads
    gx = gx[:, pt : pt + x.shape[1], pl : pl + x.shape[2]]
    return y, gx, gw, g64.sum((0, 1, 2))


SHAPES = [  # (N, H, W, C, O, padding): whole tiles, tiles past the edge, 'same'
    (2, 10, 10, 8, 4, "valid"),
    (3, 13, 13, 32, 32, "valid"),
    (2, 9, 7, 12, 5, "valid"),
    (1, 5, 6, 8, 3, "same"),
    (2, 11, 8, 16, 6, "same"),
]


def run(x, w, b, gy, padding):
    ts = [Tensor(a, requires_grad=True) for a in (x, w, b)]
    y = ops.conv2d(*ts, padding=padding)
    y.backward(gy)
    return [y.numpy()] + [t.grad for t in ts]


def data(shape, seed=0):
    n, h, wd, c, o, padding = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, wd, c)).astype(np.float32)
    w = (rng.standard_normal((3, 3, c, o)) / np.sqrt(9 * c)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    oh, ow = (h, wd) if padding == "same" else (h - 2, wd - 2)
    gy = rng.standard_normal((n, oh, ow, o)).astype(np.float32)
    pads = (conv.pad_amounts(h, 3, 1, padding), conv.pad_amounts(wd, 3, 1, padding))
    return x, w, b, gy, padding, pads


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_conv2d_through_winograd_matches_float64(shape, monkeypatch):
    pytest.importorskip("numba")
    monkeypatch.setenv("HPNN_JIT", "1")
    x, w, b, gy, padding, pads = data(shape)
    assert winograd.applies(x, w, (1, 1), (1, 1))
    got = run(x, w, b, gy, padding)
    monkeypatch.setenv("HPNN_WINOGRAD", "0")
    im2col = run(x, w, b, gy, padding)
    want = reference(x, w, b, gy, pads)
    for name, g, i, e in zip(("y", "x", "w", "b"), got, im2col, want, strict=True):
        scale = np.abs(e).max()
        err, err_im2col = np.abs(g - e).max() / scale, np.abs(i - e).max() / scale
        # float32 rounding: the transforms add up to 9 terms weighted up to 8, so a few
        # times im2col's error, and far from any mistake (which would be of order 1)
        assert err < 2e-5, (name, err, err_im2col)
        assert not np.array_equal(g, i) or name == "b"  # Winograd did run


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_compiled_transforms_give_the_numpy_numbers(shape):
    """So the switch to the compiled transforms, whenever their background load ends,
    never changes a result."""
    pytest.importorskip("numba")
    from hpnn.engine.kernels import wino

    x, w, b, gy, _, pads = data(shape, seed=1)
    x = np.ascontiguousarray(np.pad(x, ((0, 0), *pads, (0, 0))))
    n, oh, ow, o = gy.shape
    th, tw = winograd.tiles_for(oh, ow)
    c = x.shape[3]
    outs = []
    for impl in (winograd, wino):
        v = np.empty((n * th * tw, 36, c), np.float32)
        impl.input_transform(x, th, tw, v)
        m = np.ascontiguousarray(np.matmul(v.transpose(1, 0, 2), winograd.kernel_transform(w)))
        m = np.ascontiguousarray(m.transpose(1, 0, 2))
        y = np.empty(gy.shape, np.float32)
        if impl is wino:
            impl.output_transform(m, b, True, y)
        else:
            impl.output_transform(m, b, y)
        dm = np.empty((n * th * tw, 36, o), np.float32)
        impl.output_grad_transform(gy, th, tw, dm)
        gx = np.zeros(x.shape, np.float32)
        impl.input_grad_transform(v, gx)  # any (T, 36, C) array will do
        outs.append((v, y, dm, gx))
    for a, e in zip(*outs, strict=True):
        np.testing.assert_array_equal(a, e)


def test_where_it_applies(monkeypatch):
    pytest.importorskip("numba")
    monkeypatch.setenv("HPNN_JIT", "1")
    x = np.zeros((1, 8, 8, 8), np.float32)
    w = np.zeros((3, 3, 8, 4), np.float32)
    assert winograd.applies(x, w, (1, 1), (1, 1))
    assert not winograd.applies(x, w, (2, 2), (1, 1))  # strided
    assert not winograd.applies(x, w, (1, 1), (2, 2))  # dilated
    assert not winograd.applies(x, np.zeros((5, 5, 8, 4), np.float32), (1, 1), (1, 1))
    assert not winograd.applies(x[..., :4], w[:, :, :4], (1, 1), (1, 1))  # few channels
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    assert not winograd.applies(x64, w64, (1, 1), (1, 1))  # float64: the gradient checks
    monkeypatch.setenv("HPNN_WINOGRAD", "0")
    assert not winograd.applies(x, w, (1, 1), (1, 1))
    monkeypatch.setenv("HPNN_JIT", "0")
    monkeypatch.setenv("HPNN_WINOGRAD", "1")
    assert not winograd.applies(x, w, (1, 1), (1, 1))  # no compiled transforms
    monkeypatch.setenv("HPNN_WINOGRAD", "maybe")
    with pytest.raises(ValueError, match="HPNN_WINOGRAD: expected 1 or 0"):
        winograd.enabled()


def test_only_what_backward_needs_is_computed(monkeypatch):
    pytest.importorskip("numba")
    monkeypatch.setenv("HPNN_JIT", "1")
    x, w, b, gy, padding, _ = data(SHAPES[1])
    full = run(x, w, b, gy, padding)
    xt, wt = Tensor(x), Tensor(w, requires_grad=True)  # a first layer: no input gradient
    y = ops.conv2d(xt, wt, padding=padding)
    y.backward(gy)
    assert xt.grad is None
    np.testing.assert_array_equal(wt.grad, full[2])

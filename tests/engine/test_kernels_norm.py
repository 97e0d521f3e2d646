"""Tests for hpnn.engine.kernels.norm: the compiled batch and layer normalisation passes
against NumPy references in float64 (the same formulas as hpnn.engine.ops.norm)."""

import numpy as np
import pytest

from hpnn.engine import kernels

EPS = 1e-3
f32 = np.float32


@pytest.fixture
def norm():
    pytest.importorskip("numba")
    module = kernels.normalization(np.zeros(1, f32))
    assert module is not None
    return module


@pytest.fixture
def data():
    """x far from 0 (float32 sums of it lose digits), gamma, beta, gy, of (M, C)."""
    rng = np.random.default_rng(0)
    m, c = 1000, 7
    x = (rng.standard_normal((m, c)) * 2 + 30).astype(f32)
    gamma = rng.uniform(0.5, 1.5, c).astype(f32)
    beta = rng.standard_normal(c).astype(f32)
    gy = rng.standard_normal((m, c)).astype(f32)
    return x, gamma, beta, gy


def f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


def close(got, want, rtol=2e-6, atol=1e-6):
    assert got.dtype == f32
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def test_column_sums_run_in_float64(norm, data):
    x = data[0]
    out = np.empty(x.shape[1], f32)
    norm.col_sums(x, out)
    close(out, x.astype(np.float64).sum(axis=0), rtol=1e-7, atol=0)
    mean = (out / x.shape[0]).astype(f32)
    norm.col_sq_dev_sums(x, mean, out)
    close(out, ((x.astype(np.float64) - mean) ** 2).sum(axis=0), rtol=1e-6, atol=0)


@pytest.mark.parametrize("keep_xhat", [True, False], ids=["train", "inference"])
def test_bn_apply(norm, data, keep_xhat):
    x, gamma, beta, _ = data
    mean = x.mean(axis=0, dtype=np.float64).astype(f32)
    inv = (1 / np.sqrt(x.var(axis=0, dtype=np.float64) + EPS)).astype(f32)
    xhat = np.empty_like(x) if keep_xhat else np.empty((0, 0), f32)
    y = np.empty_like(x)
    norm.bn_apply(x, mean, inv, gamma, beta, xhat, y)
    xd, md, ind, gd, bd = f64(x, mean, inv, gamma, beta)
    want = (xd - md) * ind
    if keep_xhat:
        close(xhat, want)
    close(y, want * gd + bd)


def test_bn_gradient_passes(norm, data):
    x, gamma, _, gy = data
    m = x.shape[0]
    xd, gd, gyd = f64(x, gamma, gy)
    inv = 1 / np.sqrt(xd.var(axis=0) + EPS)
    xhat = ((xd - xd.mean(axis=0)) * inv).astype(f32)
    s1, s2 = np.empty(x.shape[1], f32), np.empty(x.shape[1], f32)
    norm.col_grad_sums(gy, xhat, s1, s2)
    close(s1, gyd.sum(axis=0), rtol=1e-6)
    close(s2, (gyd * xhat).sum(axis=0), rtol=1e-6)
    a, b = (gamma * s1 / m).astype(f32), (gamma * s2 / m).astype(f32)
    gx = np.empty_like(x)
    norm.bn_grad_input(gy, xhat, a, b, inv.astype(f32), gamma, gx)
    # the gradient of batch norm in training, from scratch in float64
    g = gyd * gd
    want = (g - g.mean(axis=0) - xhat * (g * xhat).mean(axis=0)) * inv
    close(gx, want, rtol=1e-5, atol=1e-5)


def layer_norm_reference(x, gamma, beta, gy):
    xd, gd, bd, gyd = f64(x, gamma, beta, gy)
    mean = xd.mean(axis=1, keepdims=True)
    inv = 1 / np.sqrt(xd.var(axis=1, keepdims=True) + EPS)
    xhat = (xd - mean) * inv
    g = gyd * gd
    gx = (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True)) * inv
    return xhat, inv[:, 0], xhat * gd + bd, gx, (gyd * xhat).sum(axis=0), gyd.sum(axis=0)


def test_layer_norm_forward_and_backward(norm, data):
    x, gamma, beta, gy = (a.T.copy() if a.ndim == 2 else a for a in data)  # (7, 1000): C = 1000
    gamma = np.resize(data[1], x.shape[1]).astype(f32)
    beta = np.resize(data[2], x.shape[1]).astype(f32)
    xhat_w, inv_w, y_w, gx_w, gg_w, gb_w = layer_norm_reference(x, gamma, beta, gy)
    xhat, y, inv = np.empty_like(x), np.empty_like(x), np.empty(x.shape[0], f32)
    norm.ln_forward(x, gamma, beta, EPS, xhat, inv, y)
    close(xhat, xhat_w, rtol=1e-5, atol=2e-6)
    close(inv, inv_w)
    close(y, y_w, rtol=1e-5, atol=2e-6)
    gx = np.empty_like(x)
    g_gamma, g_beta = np.ones(x.shape[1]), np.ones(x.shape[1])  # added into
    norm.ln_backward(gy, xhat, inv, gamma, gx, g_gamma, g_beta)
    close(gx, gx_w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g_gamma - 1, gg_w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g_beta - 1, gb_w, rtol=1e-5, atol=1e-5)


def test_the_norm_kernels_apply_to_float32_numpy_only(monkeypatch):
    pytest.importorskip("numba")
    assert kernels.normalization(np.zeros(2)) is None
    monkeypatch.setenv("HPNN_JIT", "0")
    assert kernels.normalization(np.zeros(2, f32)) is None

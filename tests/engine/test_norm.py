"""Tests for hpnn.engine.ops.norm: batch_norm (batch and moving statistics) and layer_norm."""

import numpy as np
import pytest

from hpnn.engine import Tensor, ops
from hpnn.testing import OpTest, check_grad

EPS = 1e-3


def rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape)


def bn_reference(x, gamma=None, beta=None, axis=-1, mean=None, var=None):
    axis = axis % x.ndim
    reduce = tuple(i for i in range(x.ndim) if i != axis)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    if mean is None:
        mean, var = x.mean(axis=reduce), x.var(axis=reduce)  # biased variance
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + EPS)
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


class TestBatchNormTraining(OpTest):
    cases = [
        (rand(4, 3), rand(3, seed=1) + 1.5, rand(3, seed=2)),  # (N, C)
        (rand(2, 3, 4, 2, seed=3), rand(2, seed=4) + 1.5, rand(2, seed=5)),  # NHWC
    ]

    def op(self, x, gamma, beta):
        return ops.batch_norm(x, gamma, beta, epsilon=EPS)

    def reference(self, x, gamma, beta):
        return bn_reference(x, gamma, beta)


class TestBatchNormChannelsFirstNoScale(OpTest):
    cases = [(rand(3, 2, 4, seed=6), rand(2, seed=7))]

    def op(self, x, beta):
        return ops.batch_norm(x, None, beta, axis=1, epsilon=EPS)

    def reference(self, x, beta):
        return bn_reference(x, None, beta, axis=1)


MOVING_MEAN, MOVING_VAR = rand(3, seed=8), rand(3, seed=9) + 1.5


class TestBatchNormInference(OpTest):
    cases = [(rand(5, 2, 3, seed=10), rand(3, seed=11), rand(3, seed=12))]

    def op(self, x, gamma, beta):
        return ops.batch_norm(x, gamma, beta, epsilon=EPS, mean=MOVING_MEAN, variance=MOVING_VAR)

    def reference(self, x, gamma, beta):
        return bn_reference(x, gamma, beta, mean=MOVING_MEAN, var=MOVING_VAR)


def ln_reference(x, gamma, beta, axes):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    return (x - mean) / np.sqrt(var + EPS) * gamma.reshape(shape) + beta.reshape(shape)


class TestLayerNorm(OpTest):
    cases = [
        (rand(3, 4), rand(4, seed=1), rand(4, seed=2)),
        (rand(2, 3, 4, seed=3), rand(4, seed=4), rand(4, seed=5)),
    ]

    def op(self, x, gamma, beta):
        return ops.layer_norm(x, gamma, beta, epsilon=EPS)

    def reference(self, x, gamma, beta):
        return ln_reference(x, gamma, beta, (x.ndim - 1,))


class TestLayerNormTwoAxes(OpTest):
    cases = [(rand(2, 3, 4, seed=6), rand(3, 4, seed=7), rand(3, 4, seed=8))]

    def op(self, x, gamma, beta):
        return ops.layer_norm(x, gamma, beta, axis=(1, 2), epsilon=EPS)

    def reference(self, x, gamma, beta):
        return ln_reference(x, gamma, beta, (1, 2))


def test_batch_stats_are_returned():
    x = rand(6, 3)
    y, mean, var = ops.batch_norm(Tensor(x), return_stats=True, epsilon=EPS)
    np.testing.assert_allclose(mean, x.mean(axis=0))
    np.testing.assert_allclose(var, x.var(axis=0))
    np.testing.assert_allclose(y.data, bn_reference(x))


def test_layer_norm_without_parameters_input_gradient():
    check_grad(lambda t: ops.layer_norm(t, epsilon=EPS), [rand(2, 5)])


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch(training):
    torch = pytest.importorskip("torch")
    x, gamma, beta = rand(4, 5, 3), rand(3, seed=1) + 1.5, rand(3, seed=2)
    mean, var = (None, None) if training else (MOVING_MEAN, MOVING_VAR)
    y = ops.batch_norm(
        *(a.astype(np.float32) for a in (x, gamma, beta)), epsilon=EPS, mean=mean, variance=var
    )
    yt = torch.nn.functional.batch_norm(
        torch.tensor(x.transpose(0, 2, 1), dtype=torch.float32),  # (N, C, L)
        None if training else torch.tensor(mean, dtype=torch.float32),
        None if training else torch.tensor(var, dtype=torch.float32),
        torch.tensor(gamma, dtype=torch.float32),
        torch.tensor(beta, dtype=torch.float32),
        training=training,
        eps=EPS,
    )
    np.testing.assert_allclose(y.data, yt.numpy().transpose(0, 2, 1), rtol=1e-5, atol=1e-5)


def test_layer_norm_matches_torch():
    torch = pytest.importorskip("torch")
    x, gamma, beta = rand(3, 4, 6), rand(6, seed=1), rand(6, seed=2)
    xs = [Tensor(a, requires_grad=True) for a in (x, gamma, beta)]
    gy = rand(3, 4, 6, seed=3)
    ops.layer_norm(*xs, epsilon=EPS).backward(gy)
    ts = [torch.tensor(a, requires_grad=True) for a in (x, gamma, beta)]
    yt = torch.nn.functional.layer_norm(ts[0], (6,), ts[1], ts[2], eps=EPS)
    yt.backward(torch.tensor(gy))
    for a, t in zip(xs, ts, strict=True):
        np.testing.assert_allclose(a.grad, t.grad.numpy(), rtol=1e-9, atol=1e-12)


# -- the compiled passes (float32, numba) against the NumPy op -----------------------------
def _both(fn, *arrays, monkeypatch):
    """``fn``'s output and input gradients with the compiled passes and with NumPy's."""
    pytest.importorskip("numba")
    out = []
    for jit in ("1", "0"):
        monkeypatch.setenv("HPNN_JIT", jit)
        ts = [Tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
        y = fn(*ts)
        gy = np.random.default_rng(9).standard_normal(y.shape).astype(np.float32)
        (y * Tensor(gy)).sum().backward()
        out.append([y.data, *[t.grad for t in ts]])
    return out


@pytest.mark.parametrize("shape", [(16, 5), (4, 6, 6, 3), (3, 7, 8)])
@pytest.mark.parametrize("moving", [False, True])
def test_compiled_batch_norm_matches_numpy(shape, moving, monkeypatch):
    c = shape[-1]
    x, gamma, beta = rand(*shape) * 3 + 1, rand(c, seed=1) + 1.5, rand(c, seed=2)
    stats = (
        {
            "mean": rand(c, seed=3).astype(np.float32),
            "variance": rand(c, seed=4).astype(np.float32) + 1.5,
        }
        if moving
        else {}
    )
    from hpnn.engine.ops import norm_compiled

    seen = []
    real = norm_compiled.BatchNormCompiled.forward
    monkeypatch.setattr(
        norm_compiled.BatchNormCompiled,
        "forward",
        lambda self, *a: seen.append(1) or real(self, *a),
    )
    compiled, numpy = _both(
        lambda x, g, b: ops.batch_norm(x, g, b, epsilon=EPS, **stats),
        x,
        gamma,
        beta,
        monkeypatch=monkeypatch,
    )
    assert seen == [1]  # the compiled op ran once, then the NumPy one
    for a, b in zip(compiled, numpy, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("shape", [(16, 5), (3, 7, 8)])
@pytest.mark.parametrize("params", [True, False])
def test_compiled_layer_norm_matches_numpy(shape, params, monkeypatch):
    c = shape[-1]
    x = rand(*shape) * 3 + 1
    if params:
        compiled, numpy = _both(
            lambda x, g, b: ops.layer_norm(x, g, b, epsilon=EPS),
            x,
            rand(c, seed=1) + 1.5,
            rand(c, seed=2),
            monkeypatch=monkeypatch,
        )
    else:
        compiled, numpy = _both(
            lambda x: ops.layer_norm(x, epsilon=EPS), x, monkeypatch=monkeypatch
        )
    for a, b in zip(compiled, numpy, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)

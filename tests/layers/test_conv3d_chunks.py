"""The 3-D convolution's chunked paths: depth runs of one sample, several samples a
chunk, columns rebuilt in backward, the compiled col2im, all against a naive loop
and float64 finite differences (the small cases of test_conv3d.py take one chunk)."""

import importlib
import itertools

import numpy as np
import pytest

from hpnn.engine import Tensor, kernels, ops
from hpnn.testing import check_grad

# the module, not the function of the same name that hpnn.engine.ops exports
conv3d_op = importlib.import_module("hpnn.engine.ops.conv3d")


def rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape)


def naive_conv3d(x, w, b, strides, padding, dilation):
    """A loop over the output positions of the (TF-padded) input."""
    extents = [(k - 1) * d + 1 for k, d in zip(w.shape[:3], dilation, strict=True)]
    pads, _ = conv3d_op.window_geometry(x.shape[1:4], w.shape[:3], strides, dilation, padding)
    xpad = np.pad(x, [(0, 0), *pads, (0, 0)])
    out = [(p - e) // s + 1 for p, e, s in zip(xpad.shape[1:4], extents, strides, strict=True)]
    y = np.zeros((x.shape[0], *out, w.shape[-1]))
    for pos in itertools.product(*(range(o) for o in out)):
        win = tuple(
            slice(i * s, i * s + e, d)
            for i, s, e, d in zip(pos, strides, extents, dilation, strict=True)
        )
        y[(slice(None), *pos)] = np.tensordot(xpad[(slice(None), *win)], w, axes=4)
    return y + b


CONFIGS = [  # (kernel, strides, padding, dilation)
    ((3, 3, 3), (1, 1, 1), "same", (1, 1, 1)),
    ((3, 2, 3), (2, 1, 2), "valid", (1, 1, 1)),
    ((2, 3, 2), (1, 1, 1), "same", (2, 1, 2)),  # dilated in-plane: the NumPy col2im
    ((3, 1, 1), (1, 1, 1), "same", (1, 1, 1)),  # the slices are their own columns
    ((2, 1, 1), (3, 1, 1), "valid", (1, 1, 1)),  # depth stride past the window: gaps
    ((1, 3, 3), (1, 2, 2), "same", (1, 1, 1)),
]
SHAPE = (3, 7, 5, 6, 2)


def _slice_bytes(kernel, strides, padding, dilation, itemsize):
    _, out = conv3d_op.window_geometry(SHAPE[1:4], kernel, strides, dilation, padding)
    return out[1] * out[2] * kernel[1] * kernel[2] * SHAPE[-1] * itemsize


@pytest.fixture(params=["depth-runs", "samples", "one-chunk"])
def chunking(request, monkeypatch):
    """Sets CHUNK_BYTES (in slices of columns) and drops KEEP_BYTES so the columns are
    rebuilt in backward; yields a function of the config giving that size."""
    monkeypatch.setattr(conv3d_op, "KEEP_BYTES", 0)
    slices = {"depth-runs": 2, "samples": 2 * SHAPE[1] + 2, "one-chunk": 10**6}[request.param]

    def apply(config, itemsize):
        kernel, strides, padding, dilation = config
        size = _slice_bytes(kernel, strides, padding, dilation, itemsize) * slices
        monkeypatch.setattr(conv3d_op, "CHUNK_BYTES", size)

    return request.param, apply


def _conv(config):
    _, strides, padding, dilation = config
    return lambda x, w, b: ops.conv3d(x, w, b, strides, padding, dilation)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_chunked_forward_matches_the_naive_loop(config, chunking):
    _, apply = chunking
    apply(config, 4)
    x, w, b = rand(*SHAPE), rand(*config[0], 2, 3, seed=1), rand(3, seed=2)
    f32 = [a.astype(np.float32) for a in (x, w, b)]
    got = _conv(config)(*(Tensor(a) for a in f32))
    want = naive_conv3d(x, w, b, *config[1:])
    np.testing.assert_allclose(got.data, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_chunked_gradients_float64(config, chunking):
    _, apply = chunking
    apply(config, 8)
    x, w, b = rand(*SHAPE), rand(*config[0], 2, 3, seed=1), rand(3, seed=2)
    check_grad(_conv(config), [x, w, b], rtol=1e-5, atol=1e-7)


def test_the_chunk_plans(monkeypatch):
    """Whole samples while they fit, else runs of depth slices of equal length."""
    plan = conv3d_op._chunks
    assert [(c.i0, c.ns, c.d0, c.m) for c in plan(np, 5, 4, 100, 1, 3)] == [(0, 5, 0, 4)]
    monkeypatch.setattr(conv3d_op, "CHUNK_BYTES", 1300)  # 13 slices: 2 samples a chunk
    assert [(c.i0, c.ns, c.d0, c.m) for c in plan(np, 5, 4, 100, 1, 3)] == [
        (0, 2, 0, 4),
        (2, 2, 0, 4),
        (4, 1, 0, 4),
    ]
    monkeypatch.setattr(conv3d_op, "CHUNK_BYTES", 500)  # 5 slices: 3 outputs, balanced 2 + 2
    runs = plan(np, 2, 4, 100, 1, 3)
    assert [(c.i0, c.d0, c.m, c.s0, c.cnt) for c in runs] == [
        (0, 0, 2, 0, 4),
        (0, 2, 2, 2, 4),
        (1, 0, 2, 0, 4),
        (1, 2, 2, 2, 4),
    ]


def test_compiled_col2im_gives_the_numpy_numbers(monkeypatch):
    if not kernels.warm_up():
        pytest.skip("no compiled kernels")
    monkeypatch.setattr(conv3d_op, "CHUNK_BYTES", 1 << 12)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 9, 8, 8)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 8, 4)).astype(np.float32)
    gy = rng.standard_normal((2, 6, 9, 8, 4)).astype(np.float32)

    def input_grad():
        xt = Tensor(x, requires_grad=True)
        ops.conv3d(xt, w, None, 1, "same").backward(gy)
        return xt.grad

    compiled = input_grad()
    monkeypatch.setenv("HPNN_JIT", "0")
    np.testing.assert_array_equal(compiled, input_grad())


def test_kept_and_rebuilt_columns_give_the_same_gradients(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5, 6, 6, 3)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    gy = rng.standard_normal((3, 4, 4, 4, 4)).astype(np.float32)

    def grads():
        ts = [Tensor(a, requires_grad=True) for a in (x, w, b)]
        ops.conv3d(*ts).backward(gy)
        return [t.grad for t in ts]

    kept = grads()
    monkeypatch.setattr(conv3d_op, "KEEP_BYTES", 0)
    for a, b_ in zip(kept, grads(), strict=True):
        np.testing.assert_array_equal(a, b_)

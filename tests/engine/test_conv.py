"""Tests for hpnn.engine.ops.conv: conv2d (NHWC, Keras kernel layout) against naive loops."""

import numpy as np
import pytest

from hpnn.engine import Tensor, ops
from hpnn.testing import OpTest, check_grad


def rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape)


def tf_pads(n, k, s, padding):
    """(before, after) padding of one axis under TF rules."""
    if padding == "valid":
        return 0, 0
    out = -(-n // s)  # ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def conv2d_naive(x, w, b=None, strides=(1, 1), padding="valid"):
    """Cross-correlation with six nested loops: the reference for conv2d."""
    n_batch, h, wd, c = x.shape
    kh, kw, _, n_out = w.shape
    sh, sw = strides
    (pt, pb), (pl, pr) = tf_pads(h, kh, sh, padding), tf_pads(wd, kw, sw, padding)
    xpad = np.zeros((n_batch, h + pt + pb, wd + pl + pr, c))
    xpad[:, pt : pt + h, pl : pl + wd] = x
    oh = (h + pt + pb - kh) // sh + 1
    ow = (wd + pl + pr - kw) // sw + 1
    if padding == "same":
        assert (oh, ow) == (-(-h // sh), -(-wd // sw))
    y = np.zeros((n_batch, oh, ow, n_out))
    for n in range(n_batch):
        for i in range(oh):
            for j in range(ow):
                for o in range(n_out):
                    for p in range(kh):
                        for q in range(kw):
                            y[n, i, j, o] += xpad[n, i * sh + p, j * sw + q, :] @ w[p, q, :, o]
    if b is not None:
        y += b
    return y


CONFIGS = [
    ((1, 1), "valid"),
    ((2, 2), "valid"),
    ((2, 1), "valid"),
    ((1, 1), "same"),
    ((2, 2), "same"),
    ((2, 1), "same"),
    ((1, 2), "same"),
]


def config_id(c):
    return f"strides={c[0][0]}x{c[0][1]}-{c[1]}"


class TestConv2D(OpTest):
    cases = [
        (rand(2, 5, 7, 1), rand(3, 3, 1, 2, seed=1), rand(2, seed=2)),  # C=1, 3x3, bias
        (rand(1, 5, 7, 3, seed=3), rand(2, 3, 3, 2, seed=4)),  # C=3, 2x3, no bias
        (rand(2, 4, 5, 3, seed=5), rand(1, 1, 3, 4, seed=6), rand(4, seed=7)),  # 1x1
        (rand(2, 5, 7, 3, seed=15), rand(1, 1, 3, 2, seed=16)),  # 1x1, no bias, odd H/W
        (rand(1, 6, 6, 3, seed=8), rand(3, 3, 3, 1, seed=9)),  # even H/W
        (rand(1, 3, 3, 1, seed=10), rand(3, 3, 1, 1, seed=11), rand(1, seed=12)),  # k == H == W
    ]
    forward_atol = 1e-5

    @pytest.fixture(autouse=True, params=CONFIGS, ids=config_id)
    def _config(self, request):
        self.strides, self.padding = request.param

    def op(self, x, w, b=None):
        return ops.conv2d(x, w, b, strides=self.strides, padding=self.padding)

    def reference(self, x, w, b=None):
        return conv2d_naive(x, w, b, self.strides, self.padding)


# How Conv2D lays out and batches its columns: (TAP_MAJOR_BELOW, CHUNK_BYTES, KEEP_BYTES).
# CHUNK_BYTES "two" budgets two samples' columns, so batches of 3 and 5 end on an odd chunk.
LAYOUTS = {
    "tap-major": (10**9, None, None),
    "rows": (0, None, None),
    "rows-chunk1-rebuilt": (0, 1, 0),
    "rows-chunk2-rebuilt": (0, "two", 0),
    "rows-chunk2-kept": (0, "two", 10**9),
}


class TestConv2DLayouts(TestConv2D):
    """The same cases through every column layout and chunking of Conv2D."""

    cases = [*TestConv2D.cases, (rand(5, 4, 6, 2, seed=13), rand(2, 2, 2, 3, seed=14), rand(3))]

    @pytest.fixture(autouse=True, params=list(LAYOUTS), ids=list(LAYOUTS))
    def _layout(self, request, monkeypatch):
        from hpnn.engine.ops import conv

        tap, chunk, keep = LAYOUTS[request.param]
        monkeypatch.setattr(conv, "TAP_MAJOR_BELOW", tap)
        if keep is not None:
            monkeypatch.setattr(conv, "KEEP_BYTES", keep)
        if chunk is None:
            return
        real = conv.Conv2D.forward

        def forward(f, x, w, b=None):
            oh, ow = conv_output_hw(x.shape, w.shape, f.strides, f.padding)
            per_sample = 4 * (w.shape[0] * w.shape[1] * w.shape[2] + (b is not None)) * oh * ow
            monkeypatch.setattr(conv, "CHUNK_BYTES", 1 if chunk == 1 else 2 * per_sample)
            y = real(f, x, w, b)
            if not f.pointwise:  # a 1x1 kernel is one matmul, no columns to lay out
                assert f.chunk == (1 if chunk == 1 else min(2, x.shape[0]))
                assert (f.cols is None) == (keep == 0)
            return y

        monkeypatch.setattr(conv.Conv2D, "forward", forward)


def conv_output_hw(x_shape, w_shape, strides, padding):
    from hpnn.engine.ops.conv import conv_output_length

    return tuple(
        conv_output_length(x_shape[1 + i], w_shape[i], strides[i], padding) for i in range(2)
    )


@pytest.mark.parametrize(("strides", "padding"), CONFIGS, ids=[config_id(c) for c in CONFIGS])
def test_conv2d_without_input_gradient(strides, padding):
    x, w, b = rand(2, 5, 7, 3), rand(2, 3, 3, 2, seed=1), rand(2, seed=2)
    check_grad(lambda *t: ops.conv2d(*t, strides=strides, padding=padding), [x, w, b], wrt=[1, 2])
    xt = Tensor(x)
    wt = Tensor(w, requires_grad=True)
    ops.conv2d(xt, wt, strides=strides, padding=padding).sum().backward()
    assert xt.grad is None
    assert wt.grad.shape == w.shape


@pytest.mark.parametrize("n", [1, 2, 5, 7, 8])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("s", [1, 2, 3])
def test_same_padding_output_size_and_values(n, k, s):
    x = rand(1, n, n + 1, 2)
    w = rand(k, k, 2, 1, seed=1)
    y = ops.conv2d(Tensor(x), Tensor(w), strides=(s, s), padding="same")
    assert y.shape == (1, -(-n // s), -(-(n + 1) // s), 1)
    np.testing.assert_allclose(y.data, conv2d_naive(x, w, None, (s, s), "same"), rtol=1e-12)


def test_conv2d_float32_end_to_end():
    x = Tensor(rand(2, 5, 5, 3).astype(np.float32), requires_grad=True)
    w = Tensor(rand(3, 3, 3, 4, seed=1).astype(np.float32), requires_grad=True)
    b = Tensor(rand(4, seed=2).astype(np.float32), requires_grad=True)
    y = ops.conv2d(x, w, b, padding="same")
    assert y.dtype == np.float32 and y.shape == (2, 5, 5, 4)
    y.backward(np.ones(y.shape, np.float32))
    for t in (x, w, b):
        assert t.grad.dtype == np.float32 and t.grad.shape == t.shape


def test_conv2d_identity_kernel():
    x = rand(2, 4, 5, 3)
    w = np.zeros((3, 3, 3, 3))
    w[1, 1] = np.eye(3)  # the centre tap copies each channel
    y = ops.conv2d(Tensor(x), Tensor(w), padding="same")
    np.testing.assert_allclose(y.data, x, rtol=1e-12)


# -- against PyTorch -------------------------------------------------------------------


@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (2, 1)])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_matches_torch(strides, bias):
    torch = pytest.importorskip("torch")
    x, w = rand(2, 7, 6, 3), rand(3, 2, 3, 4, seed=1)
    b = rand(4, seed=2) if bias else None
    gy_shape = ((7 - 3) // strides[0] + 1, (6 - 2) // strides[1] + 1)
    gy = rand(2, *gy_shape, 4, seed=3)

    ts = [Tensor(a, requires_grad=True) for a in (x, w, b) if a is not None]
    y = ops.conv2d(*ts, strides=strides)
    y.backward(gy)

    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)  # NHWC -> NCHW
    wt = torch.tensor(w.transpose(3, 2, 0, 1), requires_grad=True)  # (KH,KW,C,O) -> (O,C,KH,KW)
    bt = torch.tensor(b, requires_grad=True) if bias else None
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=strides)
    yt.backward(torch.tensor(gy.transpose(0, 3, 1, 2)))

    np.testing.assert_allclose(y.data, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-10)
    np.testing.assert_allclose(
        ts[0].grad, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12
    )
    np.testing.assert_allclose(ts[1].grad, wt.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-10)
    if bias:
        np.testing.assert_allclose(ts[2].grad, bt.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize(
    "make_view",
    [
        lambda r: r.random((3, 9, 9), dtype=np.float32)[..., None],  # 0 stride on C
        lambda r: r.random((3, 9, 18, 2), dtype=np.float32)[:, :, ::2],  # strided W
        lambda r: r.random((2, 9, 9, 3), dtype=np.float32).transpose(0, 2, 1, 3),
        lambda r: np.asfortranarray(r.random((3, 8, 9, 2), dtype=np.float32)),
    ],
    ids=["newaxis", "step2", "transposed", "fortran"],
)
def test_conv2d_on_any_strided_view_equals_on_a_copy(make_view):
    """Regression: im2col once read a 0-stride channel axis (x[..., None]) as contiguous."""
    r = np.random.default_rng(0)
    x = make_view(r)
    w = r.standard_normal((3, 2, x.shape[-1], 4)).astype(np.float32)
    for strides, padding in (((1, 1), "valid"), ((2, 1), "same")):
        got = ops.conv2d(Tensor(x), Tensor(w), strides=strides, padding=padding).data
        want = ops.conv2d(
            Tensor(np.array(x, order="C")), Tensor(w), strides=strides, padding=padding
        ).data
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (3, 1)])
def test_pointwise_conv_on_views_matches_the_naive_loops(strides, bias):
    """1x1 kernels are one matmul of the (strided) pixels: any input layout, both grads."""
    r = np.random.default_rng(1)
    base = r.standard_normal((2, 3, 7, 5)).astype(np.float32)
    w = r.standard_normal((1, 1, 3, 4)).astype(np.float32)
    b = r.standard_normal(4).astype(np.float32) if bias else None
    for x in (base.transpose(0, 2, 3, 1), np.ascontiguousarray(base.transpose(0, 2, 3, 1))):
        ts = [Tensor(a, requires_grad=True) for a in (x, w, b) if a is not None]
        y = ops.conv2d(*ts, strides=strides, padding="same")
        want = conv2d_naive(x.astype(np.float64), w, b, strides, "same")
        np.testing.assert_allclose(y.data, want, rtol=1e-5, atol=1e-5)
        gy = r.standard_normal(y.shape).astype(np.float32)
        y.backward(gy)
        gx = np.zeros(x.shape)
        gx[:, :: strides[0], :: strides[1]] = gy @ w[0, 0].T
        np.testing.assert_allclose(ts[0].grad, gx, rtol=1e-5, atol=1e-5)
        xs = x[:, :: strides[0], :: strides[1]].reshape(-1, 3)
        gw = xs.T.astype(np.float64) @ gy.reshape(-1, 4)
        np.testing.assert_allclose(ts[1].grad[0, 0], gw, rtol=1e-4, atol=1e-5)
        if bias:
            np.testing.assert_allclose(ts[2].grad, gy.sum(axis=(0, 1, 2)), rtol=1e-5, atol=1e-5)

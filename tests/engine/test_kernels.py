"""Tests for hpnn.engine.kernels: the compiled (numba) kernels against the NumPy code.

The NumPy code is the reference (its gradients are checked against finite differences
in float64); the kernels run in float32 only, so they are compared with it there.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hpnn.engine import Tensor, kernels, ops

REPO = Path(__file__).resolve().parents[2]
N, T, F, U = 5, 7, 3, 6
MASK = np.ones((N, T), bool)
MASK[0, 5:] = False  # post-padded
MASK[1, :3] = False  # pre-padded
MASK[2, :] = False  # nothing at all
CONFIGS = {
    "last": {},
    "sequences": {"return_sequences": True},
    "backwards": {"go_backwards": True, "return_sequences": True},
    "masked": {"mask": MASK, "return_sequences": True},
    "masked-backwards-last": {"mask": MASK, "go_backwards": True},
    "masked-zero-output": {"mask": MASK, "zero_output_for_mask": True, "return_sequences": True},
    "state": {"return_state": True, "mask": MASK},
    "state-sequences": {"return_state": True, "return_sequences": True, "go_backwards": True},
}


@pytest.fixture(autouse=True)
def _kernels_loaded():
    """Load the kernels up front: otherwise the exact ones arrive from a background
    thread a moment after their first request (test_background_loading covers that)."""
    if importlib.util.find_spec("numba") is not None and os.environ.get("HPNN_JIT", "1") != "0":
        kernels.warm_up()


@pytest.fixture
def rnn_kernels():
    pytest.importorskip("numba")
    module = kernels.recurrent(np.zeros(1, np.float32))
    assert module is not None
    return module


def test_tanh_approximation_is_within_float32_rounding(rnn_kernels):
    x = np.linspace(-20, 20, 2_000_001, dtype=np.float32)
    got = np.empty_like(x)
    rnn_kernels.tanh_array(x, got)
    exact = np.tanh(x.astype(np.float64))
    assert np.abs(got - exact).max() <= 3.5e-7  # NumPy's float32 tanh: 6e-8
    np.testing.assert_array_equal(got, -got[::-1])  # odd
    assert np.abs(got).max() <= 1.0


def run_lstm(x, w, r, b, init, opts, seed=0):
    """Forward and all input gradients of the LSTM op, for a fixed random output gradient."""
    tensors = [Tensor(a, requires_grad=True) for a in (x, w, r, b, *init)]
    y = ops.lstm(*tensors[:4], initial_state=tensors[4:] or None, **opts)
    outs = y if isinstance(y, list) else [y]
    rng = np.random.default_rng(seed)
    total = None
    for o in outs:
        term = ops.sum(o * Tensor(rng.standard_normal(o.shape).astype(np.float32)))
        total = term if total is None else total + term
    total.backward()
    return [o.numpy() for o in outs], [t.grad for t in tensors]


@pytest.mark.parametrize("with_state", [False, True], ids=["zeros", "initial-state"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_compiled_lstm_matches_the_numpy_path(rnn_kernels, monkeypatch, config, with_state):
    rng = np.random.default_rng(1)
    f32 = np.float32
    x = rng.uniform(-1, 1, (N, T, F)).astype(f32)
    w = rng.uniform(-0.6, 0.6, (F, 4 * U)).astype(f32)
    r = rng.uniform(-0.6, 0.6, (U, 4 * U)).astype(f32)
    b = rng.uniform(-0.5, 0.5, 4 * U).astype(f32)
    init = [rng.uniform(-1, 1, (N, U)).astype(f32) for _ in range(2)] if with_state else []
    opts = CONFIGS[config]
    monkeypatch.setenv("HPNN_JIT", "1")
    out_jit, grads_jit = run_lstm(x, w, r, b, init, opts)
    monkeypatch.setenv("HPNN_JIT", "0")
    out_np, grads_np = run_lstm(x, w, r, b, init, opts)
    for a, e in zip(out_jit, out_np, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=2e-6)
    for a, e in zip(grads_jit, grads_np, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)


def test_the_kernels_apply_to_float32_numpy_only(rnn_kernels, monkeypatch):
    assert kernels.recurrent(np.zeros(2, np.float64)) is None
    monkeypatch.setenv("HPNN_JIT", "0")
    assert kernels.recurrent(np.zeros(2, np.float32)) is None
    monkeypatch.setenv("HPNN_JIT", "maybe")
    with pytest.raises(ValueError, match=r"HPNN_JIT: expected 1 or 0. Received: 'maybe'"):
        kernels.recurrent(np.zeros(2, np.float32))


def test_import_hpnn_does_not_import_numba():
    code = "import sys, hpnn; print('numba' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


# -- max pooling ------------------------------------------------------------------------------


def run_pool(x, pool_size, strides, relu=False, grad_seed=0):
    xt = Tensor(x, requires_grad=True)
    y = ops.max_pool2d(xt, pool_size, strides, relu=relu)
    g = np.random.default_rng(grad_seed).standard_normal(y.shape).astype(np.float32)
    y.backward(g)
    return y.numpy(), xt.grad


@pytest.mark.parametrize(
    ("shape", "pool_size", "strides"),
    [
        ((3, 26, 26, 32), (2, 2), (2, 2)),  # tiles the input (the reference CNN's first pool)
        ((3, 11, 11, 32), (2, 2), (2, 2)),  # a row and a column left over
        ((2, 9, 7, 5), (3, 3), (2, 2)),  # overlapping windows
        ((2, 8, 9, 3), (2, 3), (1, 3)),
    ],
)
@pytest.mark.parametrize("relu", [False, True], ids=["pool", "pool+relu"])
def test_compiled_max_pool_gives_the_numpy_numbers(monkeypatch, shape, pool_size, strides, relu):
    pytest.importorskip("numba")
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, :2, :2, 0] = 1.5  # a tie: the first tap in row-major order wins
    x[1, 0, 0, 1] = np.nan
    monkeypatch.setenv("HPNN_JIT", "1")
    y_jit, g_jit = run_pool(x, pool_size, strides, relu)
    monkeypatch.setenv("HPNN_JIT", "0")
    y_np, g_np = run_pool(x, pool_size, strides, relu)
    if relu:
        assert (y_jit == 0).any()  # some windows were all negative
    np.testing.assert_array_equal(y_jit, y_np)  # NaN in the same places
    np.testing.assert_array_equal(g_jit, g_np)  # overlapping windows: same order of sums
    assert np.isnan(y_jit[1, 0, 0, 1])


def test_compiled_max_pool_is_used_for_float32_valid_windows(monkeypatch):
    pytest.importorskip("numba")
    from hpnn.engine.ops.pool import MaxPool2D

    monkeypatch.setenv("HPNN_JIT", "1")
    x = np.zeros((1, 4, 4, 2), np.float32)
    f = MaxPool2D((2, 2), (2, 2), "valid")
    f(Tensor(x))
    assert f.kern is not None
    f = MaxPool2D((2, 2), (2, 2), "same")
    f(Tensor(np.zeros((1, 5, 5, 2), np.float32)))
    assert f.kern is None  # padded windows take the NumPy path
    f = MaxPool2D((2, 2), (2, 2), "valid")
    f(Tensor(x.astype(np.float64)))
    assert f.kern is None


# -- convolution: the input gradient through the compiled col2im -----------------------------


def run_conv(x, w, b, strides, padding, grad_seed=0):
    ts = [Tensor(a, requires_grad=True) for a in (x, w, b)]
    y = ops.conv2d(*ts, strides=strides, padding=padding)
    y.backward(np.random.default_rng(grad_seed).standard_normal(y.shape).astype(np.float32))
    return [y.numpy()] + [t.grad for t in ts]


@pytest.mark.parametrize("chunk_bytes", [1, 2 << 20], ids=["chunk1", "whole"])
@pytest.mark.parametrize(
    ("strides", "padding"),
    [((1, 1), "valid"), ((2, 2), "valid"), ((1, 1), "same"), ((2, 1), "same")],
)
def test_compiled_col2im_gives_the_numpy_numbers(monkeypatch, strides, padding, chunk_bytes):
    pytest.importorskip("numba")
    from hpnn.engine.ops import conv

    monkeypatch.setattr(conv, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(conv, "KEEP_BYTES", 0)
    monkeypatch.setenv("HPNN_WINOGRAD", "0")  # im2col with and without the compiled col2im
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 9, 8, 16)).astype(np.float32)  # KW*C >= 16: row-major columns
    w = rng.standard_normal((3, 3, 16, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    monkeypatch.setenv("HPNN_JIT", "1")
    got = run_conv(x, w, b, strides, padding)
    monkeypatch.setenv("HPNN_JIT", "0")
    want = run_conv(x, w, b, strides, padding)
    for a, e in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, e)  # the same matmul, the same order of sums


def test_warm_up_loads_every_signature_training_uses(monkeypatch):
    pytest.importorskip("numba")
    import hpnn
    from hpnn import layers
    from hpnn.engine.kernels import activation, conv, index, pointwise, pool, rnn

    monkeypatch.setenv("HPNN_JIT", "1")
    assert kernels.warm_up()
    dispatchers = [
        pool.max_pool_forward,
        pool.max_pool_backward,
        conv.col2im_add,
        rnn.lstm_forward,
        rnn.lstm_backward,
        index.scatter_add_rows,
        activation.softmax_forward,
        activation.softmax_backward,
        pointwise.relu_forward,
        pointwise.relu_backward,
    ]
    before = [len(f.signatures) for f in dispatchers]
    assert all(before)
    rng = np.random.default_rng(0)
    cnn = hpnn.Sequential(
        [
            hpnn.Input((12, 12, 1)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ]
    )
    cnn.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    cnn.train_on_batch(rng.random((4, 12, 12, 1), dtype=np.float32), np.array([0, 1, 2, 0]))
    cnn.predict(rng.random((2, 12, 12, 1), dtype=np.float32), verbose=0)
    rnn_model = hpnn.Sequential([hpnn.Input((5, 3)), layers.LSTM(4), layers.Dense(2)])
    rnn_model.compile(optimizer="adam", loss="mse")
    rnn_model.train_on_batch(rng.random((3, 5, 3), dtype=np.float32), np.zeros((3, 2), np.float32))
    ids = rng.integers(0, 10, (3, 5))
    for ids_dtype in (np.int64, np.int32):  # the layer passes int64 or the data's own type
        text = hpnn.Sequential(
            [
                hpnn.Input((5,), dtype=ids_dtype),
                layers.Embedding(10, 4),
                layers.Flatten(),
                layers.Dense(3),
                layers.Softmax(),
            ]
        )
        text.compile(optimizer="adam", loss="mse")
        text.train_on_batch(ids.astype(ids_dtype), np.zeros((3, 3), np.float32))
    assert [len(f.signatures) for f in dispatchers] == before  # nothing compiled on first use


def test_warm_up_is_a_no_op_when_switched_off(monkeypatch):
    monkeypatch.setenv("HPNN_JIT", "0")
    assert kernels.warm_up() is False


# -- optimizer ---------------------------------------------------------------------------------


def adam_run(monkeypatch, jit):
    from hpnn import optimizers
    from hpnn.engine.variable import Variable

    monkeypatch.setenv("HPNN_JIT", "1" if jit else "0")
    rng = np.random.default_rng(4)
    variables = [Variable(rng.standard_normal(s).astype(np.float32)) for s in [(7, 5), (5,)]]
    opt = optimizers.Adam(learning_rate=0.01)
    for _ in range(5):
        grads = [rng.standard_normal(v.shape).astype(np.float32) for v in variables]
        opt.apply(grads, variables)
    return [v.numpy().copy() for v in variables] + [a.copy() for a in opt.variables()]


def test_compiled_adam_gives_the_numpy_numbers(monkeypatch):
    pytest.importorskip("numba")
    monkeypatch.setenv("HPNN_JIT", "1")
    assert kernels.optimizer(np.zeros(1, np.float32)) is not None
    for a, b in zip(adam_run(monkeypatch, True), adam_run(monkeypatch, False), strict=True):
        np.testing.assert_array_equal(a, b)


def test_compiled_max_pool_takes_a_strided_view_without_a_new_compile(monkeypatch):
    pytest.importorskip("numba")
    from hpnn.engine.kernels import pool

    monkeypatch.setenv("HPNN_JIT", "1")
    kernels.warm_up()
    count = len(pool.max_pool_forward.signatures)
    base = np.random.default_rng(5).standard_normal((2, 3, 6, 6)).astype(np.float32)
    view = base.transpose(0, 2, 3, 1)  # NCHW storage seen as NHWC: not C-contiguous
    got = ops.max_pool2d(Tensor(view)).numpy()
    monkeypatch.setenv("HPNN_JIT", "0")
    np.testing.assert_array_equal(got, ops.max_pool2d(Tensor(view)).numpy())
    assert len(pool.max_pool_forward.signatures) == count


BACKGROUND = """
import numpy as np, hpnn
from hpnn.engine import Tensor, kernels, ops
from hpnn.engine.ops.pool import MaxPool2D
x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
f = MaxPool2D((2, 2), (2, 2), "valid")
first = f(Tensor(x)).numpy()
print("first request served by", "kernel" if f.kern is not None else "numpy")
assert kernels._ready.wait(300), "the kernels never finished loading"
f = MaxPool2D((2, 2), (2, 2), "valid")
again = f(Tensor(x)).numpy()
print("later served by", "kernel" if f.kern is not None else "numpy")
print("same numbers", np.array_equal(first, again))
"""


def test_background_loading_serves_numpy_first_then_the_kernels():
    pytest.importorskip("numba")
    proc = subprocess.run(
        [sys.executable, "-c", BACKGROUND],
        env={**os.environ, "PYTHONPATH": str(REPO), "HPNN_JIT": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == [
        "first request served by numpy",
        "later served by kernel",
        "same numbers True",
    ], proc.stdout


# -- embedding: the gradient of a row lookup as a compiled scatter-add -------------------------


def lookup_grad(table, ids, grad_seed=0):
    t = Tensor(table, requires_grad=True)
    y = ops.getitem(t, ids)
    y.backward(np.random.default_rng(grad_seed).standard_normal(y.shape).astype(table.dtype))
    return t.grad


def zipf_ids(rng, vocab, shape):
    """Ids as in text: a few named hundreds of times (more than ROUNDS), most a few times."""
    ids = rng.zipf(1.3, shape) - 1
    return np.where(ids < vocab, ids, rng.integers(0, vocab, shape))


@pytest.mark.parametrize("dim", [1, 2, 16], ids=lambda d: f"dim={d}")
@pytest.mark.parametrize("ids_dtype", [np.int64, np.int32, np.uint16])
def test_compiled_scatter_add_gives_the_numbers_of_add_at(monkeypatch, dim, ids_dtype):
    pytest.importorskip("numba")
    rng = np.random.default_rng(6)
    vocab = 50
    table = rng.standard_normal((vocab, dim) if dim > 1 else (vocab,)).astype(np.float32)
    ids = zipf_ids(rng, vocab, (6, 40)).astype(ids_dtype)
    assert np.bincount(ids.ravel()).max() > 8 and (np.bincount(ids.ravel()) == 1).any()
    g = np.random.default_rng(0).standard_normal((*ids.shape, *table.shape[1:]))
    want = np.zeros_like(table)
    np.add.at(want, ids, g.astype(np.float32))
    monkeypatch.setenv("HPNN_JIT", "1")
    assert kernels.indexing(table) is not None
    got_jit = lookup_grad(table, ids)
    monkeypatch.setenv("HPNN_JIT", "0")
    got_np = lookup_grad(table, ids)
    np.testing.assert_array_equal(got_jit, want)  # rows added in the order of ids
    np.testing.assert_array_equal(got_np, want)
    assert got_jit.dtype == np.float32


def test_compiled_scatter_add_takes_negative_ids_and_a_tuple_index(monkeypatch):
    pytest.importorskip("numba")
    monkeypatch.setenv("HPNN_JIT", "1")
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    ids = np.array([[-1, 0], [3, -4]])
    for index in (ids, (ids,)):
        t = Tensor(table, requires_grad=True)
        ops.getitem(t, index).backward(np.ones((2, 2, 3), np.float32))
        np.testing.assert_array_equal(t.grad, [[2] * 3, [0] * 3, [0] * 3, [2] * 3])


# -- softmax -----------------------------------------------------------------------------------


@pytest.fixture
def activation_kernels():
    pytest.importorskip("numba")
    module = kernels.softmax(np.zeros(1, np.float32))
    assert module is not None
    return module


def test_exp_approximation_is_within_float32_rounding(activation_kernels):
    x = np.linspace(-87, 0, 2_000_001, dtype=np.float32)
    got = np.empty_like(x)
    activation_kernels.exp_array(x, got)
    exact = np.exp(x.astype(np.float64))
    assert (np.abs(got - exact) / exact).max() <= 1.2e-7  # 2 ulp; NumPy's float32 exp: 2.0e-7
    assert got[-1] == 1.0
    special = np.array([-88, -1e30, -np.inf, np.nan], np.float32)
    activation_kernels.exp_array(special, got[:4])
    np.testing.assert_array_equal(got[:4], [0, 0, 0, np.nan])


def run_softmax(x, axis=-1, grad_seed=0):
    xt = Tensor(x, requires_grad=True)
    y = ops.softmax(xt, axis=axis)
    y.backward(np.random.default_rng(grad_seed).standard_normal(x.shape).astype(np.float32))
    return y.numpy(), xt.grad


@pytest.mark.parametrize("shape", [(4, 7, 33), (5, 1), (3, 200), (2, 3, 10)])
def test_compiled_softmax_matches_the_numpy_path(activation_kernels, monkeypatch, shape):
    x = (np.random.default_rng(7).standard_normal(shape) * 4).astype(np.float32)
    monkeypatch.setenv("HPNN_JIT", "1")
    y_jit, g_jit = run_softmax(x)
    monkeypatch.setenv("HPNN_JIT", "0")
    y_np, g_np = run_softmax(x)
    np.testing.assert_allclose(y_jit, y_np, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(g_jit, g_np, rtol=1e-5, atol=1e-6)
    assert y_jit.dtype == g_jit.dtype == np.float32


def test_compiled_softmax_gives_nan_where_numpy_does(activation_kernels, monkeypatch):
    inf, nan = np.inf, np.nan
    x = np.array(
        [[0, 1, nan], [nan, 0, 1], [inf, 0, 1], [-inf] * 3, [0, -inf, 1], [-1e30, 0, 0]],
        np.float32,
    )
    monkeypatch.setenv("HPNN_JIT", "1")
    got = ops.softmax(Tensor(x)).numpy()
    monkeypatch.setenv("HPNN_JIT", "0")
    with np.errstate(invalid="ignore"):
        want = ops.softmax(Tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)  # NaN in the same places
    assert np.isnan(got[:4]).all() and not np.isnan(got[4:]).any()


def test_softmax_uses_the_kernel_from_the_first_call_on_the_last_axis_only(monkeypatch):
    pytest.importorskip("numba")
    from hpnn.engine.ops.activation import Softmax

    monkeypatch.setenv("HPNN_JIT", "1")
    x = np.random.default_rng(8).standard_normal((3, 4, 5)).astype(np.float32)
    for axis, used in [(-1, True), (2, True), (1, False)]:
        f = Softmax(axis)
        f(Tensor(x))
        assert (f.kern is not None) == used
    f = Softmax(-1)
    f(Tensor(x.astype(np.float64)))
    assert f.kern is None
    view = x.transpose(0, 2, 1)  # not contiguous: the kernel gets a copy
    got = ops.softmax(Tensor(view)).numpy()
    np.testing.assert_array_equal(got, ops.softmax(Tensor(np.ascontiguousarray(view))).numpy())


@pytest.mark.parametrize("shape", [(64, 100), (4, 9, 9, 16), (3, 50, 40)])
def test_compiled_relu_gives_the_numpy_numbers(monkeypatch, shape):
    pytest.importorskip("numba")
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[:4] = [np.nan, -0.0, np.inf, -np.inf]
    gy = rng.standard_normal(shape).astype(np.float32)
    gy.reshape(-1)[4:7] = [np.inf, np.nan, -np.inf]  # where y is 0 or not: NaN or inf
    results = {}
    for jit in ("1", "0"):
        monkeypatch.setenv("HPNN_JIT", jit)
        t = Tensor(x, requires_grad=True)
        y = ops.relu(t)
        with np.errstate(invalid="ignore"):  # inf * 0 is NaN, on purpose
            y.backward(gy)
        results[jit] = (y.data, t.grad)
    from hpnn.engine.kernels import pointwise

    monkeypatch.setenv("HPNN_JIT", "1")
    assert kernels.elementwise(x) is pointwise, "the compiled passes ran"
    for a, b in zip(results["1"], results["0"], strict=True):
        np.testing.assert_array_equal(a, b)  # NaN in the same places
        assert np.array_equal(np.signbit(a), np.signbit(b)), "-0.0 and 0.0 as NumPy has them"


def test_relu_on_a_strided_view_or_small_array_runs_numpy(monkeypatch):
    pytest.importorskip("numba")
    from hpnn.engine.ops import activation

    monkeypatch.setenv("HPNN_JIT", "1")
    x = np.random.default_rng(0).standard_normal((200, 100)).astype(np.float32)
    assert activation._compiled(x) is not None
    assert activation._compiled(x.T) is None  # not contiguous
    assert activation._compiled(x[:10]) is None  # under COMPILED_FROM elements
    np.testing.assert_array_equal(ops.relu(Tensor(x.T)).data, np.maximum(x.T, 0))

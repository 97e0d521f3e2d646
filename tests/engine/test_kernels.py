"""Tests for hpnn.engine.kernels: the compiled (numba) kernels against the NumPy code.

The NumPy code is the reference (its gradients are checked against finite differences
in float64); the kernels run in float32 only, so they are compared with it there.
"""

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

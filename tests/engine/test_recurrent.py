"""Tests for hpnn.engine.ops.recurrent: simple_rnn, lstm, gru against step-by-step NumPy loops.

The references below are the Keras cell equations written one step at a time, with
Keras 3's masking rule (a masked step keeps the states and repeats the previous
output, or outputs zeros with ``zero_output_for_mask``).
"""

import numpy as np
import pytest

from hpnn.engine import Tensor, ops
from hpnn.testing import OpTest, check_grad

N, T, F, U = 2, 3, 2, 3
# sample 0 is post-padded, sample 1 pre-padded
MASK = np.array([[True, True, False], [False, True, True]])


def rand(*shape, seed=0, scale=0.7):
    return np.random.default_rng(seed).uniform(-scale, scale, shape)


def sig(z):
    return 1 / (1 + np.exp(-z))


# -- reference cells: (x_t, states, W, R, b) -> new states --------------------------------


def rnn_cell(x, states, w, r, b):
    return [np.tanh(x @ w + states[0] @ r + (0 if b is None else b))]


def lstm_cell(x, states, w, r, b):
    h, c = states
    z = x @ w + h @ r + (0 if b is None else b)
    i, f, g, o = np.split(z, 4, axis=1)
    c = sig(f) * c + sig(i) * np.tanh(g)
    return [sig(o) * np.tanh(c), c]


def gru_cell(x, states, w, r, b, reset_after=True):
    (h,) = states
    u = h.shape[1]
    if reset_after:
        b_in, b_rec = (0, 0) if b is None else (b[0], b[1])
        xz, rz = x @ w + b_in, h @ r + b_rec
        z = sig(xz[:, :u] + rz[:, :u])
        rr = sig(xz[:, u : 2 * u] + rz[:, u : 2 * u])
        hh = np.tanh(xz[:, 2 * u :] + rr * rz[:, 2 * u :])
    else:
        xz = x @ w + (0 if b is None else b)
        rz = h @ r[:, : 2 * u]
        z = sig(xz[:, :u] + rz[:, :u])
        rr = sig(xz[:, u : 2 * u] + rz[:, u : 2 * u])
        hh = np.tanh(xz[:, 2 * u :] + (rr * h) @ r[:, 2 * u :])
    return [z * h + (1 - z) * hh]


def gru_v1_cell(x, states, w, r, b):
    return gru_cell(x, states, w, r, b, reset_after=False)


def run_reference(cell, n_states, x, w, r, b, init, opts):
    """Keras' RNN loop around ``cell``; returns what ``pack`` makes of the op's result."""
    n, t, _ = x.shape
    u = r.shape[0]
    mask = opts.get("mask")
    states = list(init) if init else [np.zeros((n, u))] * n_states
    outs = []
    order = range(t - 1, -1, -1) if opts.get("go_backwards") else range(t)
    for step in order:
        new = cell(x[:, step], states, w, r, b)
        out = new[0]
        if mask is not None:
            m = mask[:, step][:, None]
            new = [np.where(m, a, old) for a, old in zip(new, states, strict=True)]
            out = new[0] * m if opts.get("zero_output_for_mask") else new[0]
        states = new
        outs.append(out)
    seq = np.stack(outs, axis=1)
    main = seq if opts.get("return_sequences") else seq[:, -1]
    if opts.get("return_state"):
        return np.concatenate([main.reshape(n, -1), *states], axis=1)
    return main


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


class _RecurrentOpTest(OpTest):
    """Cases: (x, W, R, b[, *initial states]) and one without bias."""

    fn = None
    cell = None
    n_states = 1
    gates = 1
    forward_atol = 1e-5

    @pytest.fixture(autouse=True, params=list(CONFIGS), ids=list(CONFIGS))
    def _config(self, request):
        self.opts = CONFIGS[request.param]

    def bias_shape(self):
        return (self.gates * U,)

    def cases(self):
        g = self.gates * U
        x, w, r = rand(N, T, F), rand(F, g, seed=1), rand(U, g, seed=2)
        b = rand(*self.bias_shape(), seed=3)
        init = [rand(N, U, seed=4 + i) for i in range(self.n_states)]
        return [(x, w, r, b), (x, w, r, b, *init), (x, w, r)]

    def _split(self, xs):
        x, w, r = xs[:3]
        b = xs[3] if len(xs) > 3 else None
        return x, w, r, b, list(xs[4:])

    def op(self, *xs):
        x, w, r, b, init = self._split(xs)
        y = type(self).fn(x, w, r, b, init or None, **self.opts)
        if self.opts.get("return_state"):
            main, *states = y
            return ops.concatenate([ops.reshape(main, (N, -1)), *states], axis=1)
        return y

    def reference(self, *xs):
        x, w, r, b, init = self._split(xs)
        return run_reference(type(self).cell, self.n_states, x, w, r, b, init, self.opts)


class TestSimpleRNN(_RecurrentOpTest):
    fn = staticmethod(ops.simple_rnn)
    cell = staticmethod(rnn_cell)


class TestLSTM(_RecurrentOpTest):
    fn = staticmethod(ops.lstm)
    cell = staticmethod(lstm_cell)
    n_states = 2
    gates = 4


class TestGRU(_RecurrentOpTest):
    fn = staticmethod(ops.gru)
    cell = staticmethod(gru_cell)
    gates = 3

    def bias_shape(self):
        return (2, 3 * U)


class TestGRUResetBefore(_RecurrentOpTest):
    fn = staticmethod(lambda *a, **k: ops.gru(*a, reset_after=False, **k))
    cell = staticmethod(gru_v1_cell)
    gates = 3


@pytest.mark.parametrize("activation", ["relu", "linear", "hard_sigmoid", "sigmoid"])
def test_lstm_other_activations_gradients(activation):
    x, w, r, b = rand(N, T, F), rand(F, 4 * U, seed=1), rand(U, 4 * U, seed=2), rand(4 * U)
    rec = "tanh" if activation == "sigmoid" else "hard_sigmoid"
    check_grad(
        lambda *t: ops.lstm(
            *t, activation=activation, recurrent_activation=rec, return_sequences=True
        ),
        [x, w, r, b],
    )


def test_fully_masked_sequence_keeps_initial_state():
    x, w, r = rand(N, T, F), rand(F, 4 * U, seed=1), rand(U, 4 * U, seed=2)
    h0, c0 = rand(N, U, seed=3), rand(N, U, seed=4)
    mask = np.zeros((N, T), bool)
    out, h, c = ops.lstm(x, w, r, None, [h0, c0], mask=mask, return_state=True)
    np.testing.assert_allclose(out.data, h0)
    np.testing.assert_allclose(h.data, h0)
    np.testing.assert_allclose(c.data, c0)


def test_weights_only_gradient_skips_input():
    x, w, r, b = rand(N, T, F), rand(F, 3 * U, seed=1), rand(U, 3 * U, seed=2), rand(2, 3 * U)
    xt = Tensor(x)
    ws = [Tensor(a, requires_grad=True) for a in (w, r, b)]
    ops.gru(xt, *ws, return_sequences=True).sum().backward()
    assert xt.grad is None
    assert [t.grad.shape for t in ws] == [w.shape, r.shape, b.shape]


def test_float32_stays_float32():
    x = Tensor(rand(N, T, F).astype(np.float32), requires_grad=True)
    ws = [
        Tensor(a.astype(np.float32), requires_grad=True)
        for a in (rand(F, 4 * U), rand(U, 4 * U), rand(4 * U))
    ]
    y = ops.lstm(x, *ws, mask=MASK, return_sequences=True)
    assert y.dtype == np.float32
    y.sum().backward()
    assert all(t.grad.dtype == np.float32 for t in (x, *ws))


def test_bad_activation_and_state_count():
    x, w, r = rand(N, T, F), rand(F, 4 * U), rand(U, 4 * U)
    with pytest.raises(ValueError, match="Received: 'swish'"):
        ops.lstm(x, w, r, activation="swish")
    with pytest.raises(ValueError, match="2 state"):
        ops.lstm(x, w, r, None, [rand(N, U)])


# -- against PyTorch (Keras weights converted to torch's layout) -----------------------


def _torch_case(torch, kind, x, w, r, b):
    """A torch module holding the Keras weights ``w, r, b`` (float64)."""
    u = r.shape[0]
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind]
    mod = cls(x.shape[2], u, batch_first=True).double()
    if kind == "gru":  # Keras z, r, h -> torch r, z, n; bias (2, 3U) = (input, recurrent)
        perm = np.r_[u : 2 * u, 0:u, 2 * u : 3 * u]
        w, r, b_ih, b_hh = w[:, perm], r[:, perm], b[0][perm], b[1][perm]
    else:  # same gate order (LSTM i, f, g, o); one bias, torch's second one zero
        b_ih, b_hh = b, np.zeros_like(b)
    with torch.no_grad():
        mod.weight_ih_l0.copy_(torch.tensor(w.T))
        mod.weight_hh_l0.copy_(torch.tensor(r.T))
        mod.bias_ih_l0.copy_(torch.tensor(b_ih))
        mod.bias_hh_l0.copy_(torch.tensor(b_hh))
    return mod


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_matches_torch(kind):
    torch = pytest.importorskip("torch")
    g = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    n, t, f, u = 3, 5, 4, 6
    x, w, r = rand(n, t, f), rand(f, g * u, seed=1), rand(u, g * u, seed=2)
    b = rand(2, g * u, seed=3) if kind == "gru" else rand(g * u, seed=3)
    gy = rand(n, t, u, seed=4)
    fn = {"lstm": ops.lstm, "gru": ops.gru, "rnn": ops.simple_rnn}[kind]

    # float32 forward
    y32 = fn(*(a.astype(np.float32) for a in (x, w, r, b)), return_sequences=True)
    mod = _torch_case(torch, kind, x, w, r, b)
    xt = torch.tensor(x, requires_grad=True)
    yt, _ = mod(xt)
    np.testing.assert_allclose(y32.data, yt.detach().numpy(), rtol=1e-5, atol=1e-6)

    # float64 gradients of every input
    ts = [Tensor(a, requires_grad=True) for a in (x, w, r, b)]
    fn(*ts, return_sequences=True).backward(gy)
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(ts[0].grad, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    w_grad = mod.weight_ih_l0.grad.numpy().T
    r_grad = mod.weight_hh_l0.grad.numpy().T
    if kind == "gru":
        perm = np.r_[u : 2 * u, 0:u, 2 * u : 3 * u]  # torch r, z, n -> Keras z, r, h
        w_grad, r_grad = w_grad[:, perm], r_grad[:, perm]
        b_grad = np.stack([mod.bias_ih_l0.grad.numpy()[perm], mod.bias_hh_l0.grad.numpy()[perm]])
    else:
        b_grad = mod.bias_ih_l0.grad.numpy()
    np.testing.assert_allclose(ts[1].grad, w_grad, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ts[2].grad, r_grad, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ts[3].grad, b_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((rand(N, F), rand(F, 4 * U), rand(U, 4 * U)), {}, r"rank 3 .*Received: x.shape=\(2, 2\)"),
        ((rand(N, T, F), rand(F + 1, 4 * U), rand(U, 4 * U)), {}, r"kernel of shape \(2, 12\)"),
        (
            (rand(N, T, F), rand(F, 4 * U), rand(U, 4 * U), rand(3 * U)),
            {},
            r"bias of shape \(12,\)",
        ),
        (
            (rand(N, T, F), rand(F, 4 * U), rand(U, 4 * U), None, [rand(N, U), rand(N, U + 1)]),
            {},
            r"initial_state\[1\] of shape \(2, 3\). Received: \(2, 4\)",
        ),
        ((rand(N, T, F), rand(F, 4 * U), rand(U, 4 * U)), {"mask": MASK[:, :2]}, r"mask of shape"),
    ],
)
def test_shape_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ops.lstm(*args, **kwargs)


# -- recurrent dropout: each gate's previous state times its own fixed mask -------------------
# (Keras' cells with recurrent_dropout, implementation 1: h_tm1 * rec_dp_mask[gate])
RMASK = {g: np.random.default_rng(20 + g).choice([0.0, 2.0], size=(g, N, U)) for g in (1, 3, 4)}


def _gates(r, h, m):
    """``[(h * m[k]) @ r_k for each gate k]`` with ``r`` in Keras' (U, G*U) layout."""
    u = h.shape[1]
    return [(h * m[k]) @ r[:, k * u : (k + 1) * u] for k in range(len(m))]


def rnn_cell_rd(x, states, w, r, b):
    (rec,) = _gates(r, states[0], RMASK[1])
    return [np.tanh(x @ w + rec + (0 if b is None else b))]


def lstm_cell_rd(x, states, w, r, b):
    h, c = states
    z = x @ w + np.concatenate(_gates(r, h, RMASK[4]), axis=1) + (0 if b is None else b)
    i, f, g, o = np.split(z, 4, axis=1)
    c = sig(f) * c + sig(i) * np.tanh(g)
    return [sig(o) * np.tanh(c), c]


def gru_cell_rd(x, states, w, r, b, reset_after=True):
    (h,) = states
    u, m = h.shape[1], RMASK[3]
    if reset_after:
        b_in, b_rec = (0, 0) if b is None else (b[0], b[1])
        xz = x @ w + b_in
        rz = np.concatenate(_gates(r, h, m), axis=1) + b_rec
        z = sig(xz[:, :u] + rz[:, :u])
        rr = sig(xz[:, u : 2 * u] + rz[:, u : 2 * u])
        hh = np.tanh(xz[:, 2 * u :] + rr * rz[:, 2 * u :])
    else:
        xz = x @ w + (0 if b is None else b)
        rz_z, rz_r, _ = _gates(r, h, m)
        z, rr = sig(xz[:, :u] + rz_z), sig(xz[:, u : 2 * u] + rz_r)
        hh = np.tanh(xz[:, 2 * u :] + (rr * (h * m[2])) @ r[:, 2 * u :])
    return [z * h + (1 - z) * hh]  # the direct path keeps the undropped state


class TestSimpleRNNRecurrentDropout(_RecurrentOpTest):
    fn = staticmethod(lambda *a, **k: ops.simple_rnn(*a, recurrent_mask=RMASK[1], **k))
    cell = staticmethod(rnn_cell_rd)


class TestLSTMRecurrentDropout(_RecurrentOpTest):
    fn = staticmethod(lambda *a, **k: ops.lstm(*a, recurrent_mask=RMASK[4], **k))
    cell = staticmethod(lstm_cell_rd)
    n_states = 2
    gates = 4


class TestGRURecurrentDropout(_RecurrentOpTest):
    fn = staticmethod(lambda *a, **k: ops.gru(*a, recurrent_mask=RMASK[3], **k))
    cell = staticmethod(gru_cell_rd)
    gates = 3

    def bias_shape(self):
        return (2, 3 * U)


class TestGRUResetBeforeRecurrentDropout(_RecurrentOpTest):
    fn = staticmethod(lambda *a, **k: ops.gru(*a, reset_after=False, recurrent_mask=RMASK[3], **k))
    cell = staticmethod(lambda *a: gru_cell_rd(*a, reset_after=False))
    gates = 3


def test_a_mask_of_ones_is_no_recurrent_dropout():
    x, w, r, b = rand(N, T, F), rand(F, 4 * U, seed=1), rand(U, 4 * U, seed=2), rand(4 * U)
    plain = ops.lstm(x, w, r, b, return_sequences=True).data
    ones = ops.lstm(x, w, r, b, return_sequences=True, recurrent_mask=np.ones((4, N, U))).data
    np.testing.assert_allclose(ones, plain, rtol=1e-12)


def test_recurrent_mask_shape_is_checked():
    x, w, r = rand(N, T, F), rand(F, 4 * U, seed=1), rand(U, 4 * U, seed=2)
    with pytest.raises(ValueError, match=r"lstm: expected recurrent_mask of shape \(4, 2, 3\)"):
        ops.lstm(x, w, r, recurrent_mask=np.ones((N, U)))

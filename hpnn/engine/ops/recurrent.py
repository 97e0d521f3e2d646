"""Recurrent ops: SimpleRNN, LSTM and GRU over a whole sequence, each a single Function.

``x`` is batch-major ``(N, T, F)`` as in Keras. ``forward`` computes the input
projection of every step in one matrix multiply, then loops over time with one
small matmul and in-place gate arithmetic per step, saving the gates;
``backward`` runs backpropagation through time into preallocated buffers and
gets the weight gradients as one batched matmul over all steps. The loop runs
time-major in processing order (reversed for ``go_backwards``) on gate-major
buffers ``(G, T, N, U)``, so every gate of every step is a contiguous block (see
``recurrent_base``).

Weights use Keras' layouts, so ``set_weights`` moves them between the two:
kernel ``(F, G*U)``, recurrent kernel ``(U, G*U)``, gates in Keras order
(LSTM i, f, c, o; GRU z, r, h).

Masking follows Keras 3: at a masked step the states are carried over unchanged
and the output repeats the previous state (zeros with ``zero_output_for_mask``).
"""

from __future__ import annotations

from hpnn.backend import get_xp
from hpnn.engine import kernels
from hpnn.engine.ops.recurrent_base import Recurrent, activate, run, times_derivative, ungate


class SimpleRNN(Recurrent):
    """``h_t = act(x_t @ W + h_{t-1} @ R + b)``."""

    def _run(self, z_all, bias, states):
        xp = get_xp(z_all)
        hs, rk = self.hs, self.r4[0]
        hs[0] = states[0]
        tmp = xp.empty(hs.shape[1:], dtype=hs.dtype)
        rm = self.rm
        for s in range(z_all.shape[1]):
            z = z_all[0, s]
            xp.matmul(hs[s] if rm is None else hs[s] * rm[0], rk, out=tmp)
            z += tmp
            activate(self.act, z, out=hs[s + 1])
            z[...] = hs[s + 1]
            self._carry_masked(s, (hs[s + 1], hs[s]))
        self.z = z_all

    def _bptt(self, dseq, carry):
        xp = get_xp(self.z)
        (dh,) = carry
        d_all = xp.empty_like(self.z)
        tmp, passed = xp.empty_like(dh), xp.empty_like(dh)
        for s in range(self.z.shape[1] - 1, -1, -1):
            if dseq is not None:
                dh += dseq[s]
            if self.mf is not None:
                self._split_masked(s, dh, passed)
            dz = d_all[0, s]
            dz[...] = dh
            times_derivative(self.act, self.z[0, s], dz, tmp)
            xp.matmul(dz, self.rk4_t[0], out=dh)
            if self.rm is not None:
                dh *= self.rm[0]
            if self.mf is not None:
                dh += passed
        g_rk = None
        if self.needs_input_grad[2]:
            g_rk = ungate(self._grad_rk(d_all, self._masked_h(0, 1)))
        return d_all, g_rk, None, [dh]


class LSTM(Recurrent):
    """Keras' LSTM: gates ``i, f, c, o``; ``c_t = f c_{t-1} + i g``, ``h_t = o act(c_t)``."""

    gates = 4
    n_states = 2

    def _run(self, z_all, bias, states):
        xp = get_xp(z_all)
        _, t, n, u = z_all.shape
        hs = self.hs
        cs = xp.empty_like(hs)
        tcs = xp.empty((t, n, u), dtype=hs.dtype)  # act(c_t)
        hs[0], cs[0] = states
        tmp, tmp_u = xp.empty((4, n, u), dtype=hs.dtype), xp.empty((n, u), dtype=hs.dtype)
        # (recurrent dropout: the NumPy loop, which multiplies each gate's previous state)
        self.kern = self._kernels(z_all, self.r4) if self.rm is None else None
        if self.kern is not None:  # one compiled pass per step (hpnn.engine.kernels)
            m = n * u
            z3, rec = z_all.reshape(4, t, m), tmp.reshape(4, m)
            cs2, tcs2, hs2 = cs.reshape(t + 1, m), tcs.reshape(t, m), hs.reshape(t + 1, m)
            for s in range(t):
                xp.matmul(hs[s], self.r4, out=tmp)
                self.kern.lstm_forward(z3, s, rec, cs2, tcs2, hs2)
                self._carry_masked(s, (hs[s + 1], hs[s]), (cs[s + 1], cs[s]))
            self.z, self.cs, self.tcs = z_all, cs, tcs
            return
        rm = self.rm
        for s in range(t):
            z = z_all[:, s]
            xp.matmul(hs[s] if rm is None else hs[s] * rm, self.r4, out=tmp)
            z += tmp
            activate(self.rec_act, z[:2])
            activate(self.act, z[2])
            activate(self.rec_act, z[3])
            i, f, g, o = z
            c = cs[s + 1]
            xp.multiply(f, cs[s], out=c)
            xp.multiply(i, g, out=tmp_u)
            c += tmp_u
            activate(self.act, c, out=tcs[s])
            xp.multiply(o, tcs[s], out=hs[s + 1])
            self._carry_masked(s, (hs[s + 1], hs[s]), (c, cs[s]))
        self.z, self.cs, self.tcs = z_all, cs, tcs

    def _bptt_compiled(self, dseq, dh, dc):
        """BPTT with the compiled kernel; the gradients come out as ``(T, N, 4U)``, gates
        side by side, so each step's ``dh`` and every weight gradient is one 2-D matmul."""
        xp = get_xp(dh)
        _, t, n, u = self.z.shape
        m = n * u
        z3, cs2, tcs2 = self.z.reshape(4, t, m), self.cs.reshape(t + 1, m), self.tcs.reshape(t, m)
        d = xp.empty((t, n, 4 * u), dtype=dh.dtype)
        rk_t = xp.ascontiguousarray(self.recurrent_kernel.T)  # (4U, U)
        dh1, dc1 = dh.reshape(m), dc.reshape(m)
        pass_h, pass_c = xp.empty_like(dh), xp.empty_like(dc)
        for s in range(t - 1, -1, -1):
            if dseq is not None:
                dh += dseq[s]
            if self.mf is not None:
                self._split_masked(s, dh, pass_h)
                self._split_masked(s, dc, pass_c)
            self.kern.lstm_backward(z3, s, cs2, tcs2, dh1, dc1, d[s])
            xp.matmul(d[s], rk_t, out=dh)
            if self.mf is not None:
                dh += pass_h
                dc += pass_c
        g_rk = None
        if self.needs_input_grad[2]:
            g_rk = xp.matmul(self.hs[:t].reshape(t * n, u).T, d.reshape(t * n, 4 * u))
        return d, g_rk, None, [dh, dc]

    def _kernels(self, *arrays):
        """The compiled kernels when they apply (float32 NumPy, default activations)."""
        if (self.act, self.rec_act) != ("tanh", "sigmoid"):
            return None
        return kernels.recurrent(*arrays)

    def _final_states(self):
        return [self.hs[-1], self.cs[-1]]

    def _bptt(self, dseq, carry):
        dh, dc = carry
        if self.kern is not None:
            return self._bptt_compiled(dseq, dh, dc)
        xp = get_xp(self.z)
        _, t, n, u = self.z.shape
        d_all = xp.empty_like(self.z)
        tmp_g = xp.empty((4, n, u), dtype=dh.dtype)
        tmp, tmp2 = xp.empty_like(dh), xp.empty_like(dh)
        pass_h, pass_c = xp.empty_like(dh), xp.empty_like(dc)
        rec, act = self.rec_act, self.act
        for s in range(t - 1, -1, -1):
            if dseq is not None:
                dh += dseq[s]
            if self.mf is not None:
                self._split_masked(s, dh, pass_h)
                self._split_masked(s, dc, pass_c)
            z, dz, tc = self.z[:, s], d_all[:, s], self.tcs[s]
            i, f, g, o = z
            di, df, dg, do = dz
            xp.multiply(dh, tc, out=do)
            times_derivative(rec, o, do, tmp)
            xp.multiply(dh, o, out=tmp2)
            times_derivative(act, tc, tmp2, tmp)
            dc += tmp2
            xp.multiply(dc, g, out=di)
            xp.multiply(dc, self.cs[s], out=df)
            times_derivative(rec, z[:2], dz[:2], tmp_g[:2])
            xp.multiply(dc, i, out=dg)
            times_derivative(act, g, dg, tmp)
            dc *= f
            xp.matmul(dz, self.rk4_t, out=tmp_g)
            if self.rm is not None:
                tmp_g *= self.rm
            xp.sum(tmp_g, axis=0, out=dh)
            if self.mf is not None:
                dh += pass_h
                dc += pass_c
        g_rk = None
        if self.needs_input_grad[2]:
            g_rk = ungate(self._grad_rk(d_all, self._masked_h(0, 4)))
        return d_all, g_rk, None, [dh, dc]


class GRU(Recurrent):
    """Keras' GRU: gates ``z, r, h``; ``h_t = z h_{t-1} + (1 - z) hh``.

    ``reset_after=True`` (Keras' default, cuDNN-compatible): ``hh = act(x W_h + b_h +
    r * (h R_h + rb_h))`` with bias ``(2, 3U)`` = (input bias, recurrent bias).
    ``reset_after=False``: ``hh = act(x W_h + b_h + (r * h) R_h)`` with bias ``(3U,)``.
    """

    gates = 3

    def __init__(self, reset_after=True, **kwargs):
        super().__init__(**kwargs)
        self.reset_after = reset_after

    def bias_shape(self, units):
        return (2, 3 * units) if self.reset_after else (3 * units,)

    def _input_bias(self, bias):
        return bias[0] if bias is not None and self.reset_after else bias

    def _run(self, z_all, bias, states):
        xp = get_xp(z_all)
        _, t, n, u = z_all.shape
        hs, after = self.hs, self.reset_after
        hs[0] = states[0]
        # reset_after: the recurrent candidate part h R_h + rb_h; else r * h_prev
        self.hr = xp.empty((t, n, u), dtype=hs.dtype)
        rec = xp.empty((3 if after else 2, n, u), dtype=hs.dtype)
        tmp = xp.empty((n, u), dtype=hs.dtype)
        rk = self.r4 if after else self.r4[:2]
        rec_bias = bias[1].reshape(3, 1, u) if bias is not None and after else None
        rm = self.rm
        for s in range(t):
            z, h_prev = z_all[:, s], hs[s]
            xp.matmul(h_prev if rm is None else h_prev * rm[: len(rk)], rk, out=rec)
            if rec_bias is not None:
                rec += rec_bias
            z[:2] += rec[:2]
            activate(self.rec_act, z[:2])
            zg, r, hh = z
            if after:
                self.hr[s] = rec[2]
                xp.multiply(r, rec[2], out=tmp)
            else:
                xp.multiply(r, h_prev if rm is None else h_prev * rm[2], out=self.hr[s])
                xp.matmul(self.hr[s], self.r4[2], out=tmp)
            hh += tmp
            activate(self.act, hh)
            h = hs[s + 1]
            xp.subtract(h_prev, hh, out=h)
            h *= zg
            h += hh
            self._carry_masked(s, (h, h_prev))
        self.z = z_all

    def _bptt(self, dseq, carry):
        xp = get_xp(self.z)
        _, t, n, u = self.z.shape
        (dh,) = carry
        after = self.reset_after
        dx_all = xp.empty_like(self.z)  # d(pre-activation), input side
        drec_all = xp.empty_like(self.z) if after else None  # d(h R + rb), recurrent side
        tmp_g = xp.empty((3, n, u), dtype=dh.dtype)
        tmp, tmp2, passed = (xp.empty_like(dh) for _ in range(3))
        rm = self.rm
        for s in range(t - 1, -1, -1):
            if dseq is not None:
                dh += dseq[s]
            if self.mf is not None:
                self._split_masked(s, dh, passed)
            zs, dx, h_prev = self.z[:, s], dx_all[:, s], self.hs[s]
            z, r, hh = zs
            dxz, dxr, dxh = dx
            xp.subtract(h_prev, hh, out=dxz)
            dxz *= dh
            xp.subtract(1, z, out=dxh)
            dxh *= dh
            times_derivative(self.act, hh, dxh, tmp)
            dh *= z  # the direct path h_prev -> h
            if after:
                xp.multiply(dxh, self.hr[s], out=dxr)
                times_derivative(self.rec_act, zs[:2], dx[:2], tmp_g[:2])
                drec = drec_all[:, s]
                drec[:2] = dx[:2]
                xp.multiply(dxh, r, out=drec[2])
                xp.matmul(drec, self.rk4_t, out=tmp_g)
                if rm is not None:
                    tmp_g *= rm
                xp.sum(tmp_g, axis=0, out=tmp)
            else:
                h_in = h_prev if rm is None else h_prev * rm[2]  # what r multiplied
                xp.matmul(dxh, self.rk4_t[2], out=tmp2)  # d(r * h_in)
                xp.multiply(tmp2, h_in, out=dxr)
                times_derivative(self.rec_act, zs[:2], dx[:2], tmp_g[:2])
                tmp2 *= r
                if rm is not None:
                    tmp2 *= rm[2]
                dh += tmp2
                xp.matmul(dx[:2], self.rk4_t[:2], out=tmp_g[:2])
                if rm is not None:
                    tmp_g[:2] *= rm[:2]
                xp.sum(tmp_g[:2], axis=0, out=tmp)
            dh += tmp
            if self.mf is not None:
                dh += passed
        return dx_all, *self._recurrent_grads(dx_all, drec_all), [dh]

    def _recurrent_grads(self, dx_all, drec_all):
        """d(recurrent kernel) and d(recurrent bias) (reset_after only)."""
        xp = get_xp(dx_all)
        g_rbias = None
        if self.reset_after and self.has_bias and self.needs_input_grad[3]:
            g_rbias = drec_all.sum(axis=(1, 2)).reshape(-1)
        if not self.needs_input_grad[2]:
            return None, g_rbias
        if self.reset_after:
            return ungate(self._grad_rk(drec_all, self._masked_h(0, 3))), g_rbias
        g_zr = self._grad_rk(dx_all[:2], self._masked_h(0, 2))
        g_h = self._grad_rk(dx_all[2:], self.hr)
        return ungate(xp.concatenate([g_zr, g_h])), g_rbias


# -- public functions ---------------------------------------------------------------


def simple_rnn(
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    initial_state=None,
    mask=None,
    *,
    activation="tanh",
    go_backwards=False,
    return_sequences=False,
    return_state=False,
    zero_output_for_mask=False,
    recurrent_mask=None,
):
    """A simple RNN over a sequence: ``h_t = act(x_t @ kernel + h_{t-1} @ recurrent + bias)``.

    Args:
        x: ``(N, T, F)``; kernel ``(F, U)``; recurrent_kernel ``(U, U)``; bias ``(U,)``.
        initial_state: ``[h0]`` with ``h0`` of shape ``(N, U)`` (zeros if None).
        mask: bool ``(N, T)``; False steps carry the state over.
        recurrent_mask: ``(1, N, U)`` multipliers of the previous state (recurrent
            dropout), the same at every step; None for none.

    Returns:
        ``(N, T, U)`` with ``return_sequences`` else ``(N, U)``; with ``return_state``
        the list ``[output, h_T]``.
    """
    f = SimpleRNN(
        activation,
        "sigmoid",
        go_backwards,
        return_sequences,
        return_state,
        mask,
        zero_output_for_mask,
        bias is not None,
        recurrent_mask,
    )
    return run(f, x, kernel, recurrent_kernel, bias, initial_state)


def lstm(
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    initial_state=None,
    mask=None,
    *,
    activation="tanh",
    recurrent_activation="sigmoid",
    go_backwards=False,
    return_sequences=False,
    return_state=False,
    zero_output_for_mask=False,
    recurrent_mask=None,
):
    """An LSTM over a sequence, in one op.

    Args:
        x: ``(N, T, F)``; kernel ``(F, 4U)``; recurrent_kernel ``(U, 4U)``; bias
            ``(4U,)``; gate order i, f, c, o (Keras).
        initial_state: ``[h0, c0]``, each ``(N, U)`` (zeros if None).
        mask: bool ``(N, T)``; False steps carry the states over.
        recurrent_mask: ``(4, N, U)`` multipliers of the previous state, one per gate
            (recurrent dropout), the same at every step; None for none.

    Returns:
        ``(N, T, U)`` with ``return_sequences`` else ``(N, U)``; with ``return_state``
        the list ``[output, h_T, c_T]``.
    """
    f = LSTM(
        activation,
        recurrent_activation,
        go_backwards,
        return_sequences,
        return_state,
        mask,
        zero_output_for_mask,
        bias is not None,
        recurrent_mask,
    )
    return run(f, x, kernel, recurrent_kernel, bias, initial_state)


def gru(
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    initial_state=None,
    mask=None,
    *,
    activation="tanh",
    recurrent_activation="sigmoid",
    reset_after=True,
    go_backwards=False,
    return_sequences=False,
    return_state=False,
    zero_output_for_mask=False,
    recurrent_mask=None,
):
    """A GRU over a sequence, in one op.

    Args:
        x: ``(N, T, F)``; kernel ``(F, 3U)``; recurrent_kernel ``(U, 3U)``; gate order
            z, r, h (Keras). bias ``(2, 3U)`` (input, recurrent) with ``reset_after``,
            else ``(3U,)``.
        initial_state: ``[h0]`` with ``h0`` of shape ``(N, U)`` (zeros if None).
        mask: bool ``(N, T)``; False steps carry the state over.
        recurrent_mask: ``(3, N, U)`` multipliers of the previous state, one per gate
            (recurrent dropout), the same at every step; None for none.

    Returns:
        ``(N, T, U)`` with ``return_sequences`` else ``(N, U)``; with ``return_state``
        the list ``[output, h_T]``.
    """
    f = GRU(
        reset_after,
        activation=activation,
        recurrent_activation=recurrent_activation,
        go_backwards=go_backwards,
        return_sequences=return_sequences,
        return_state=return_state,
        mask=mask,
        zero_output_for_mask=zero_output_for_mask,
        has_bias=bias is not None,
        recurrent_mask=recurrent_mask,
    )
    return run(f, x, kernel, recurrent_kernel, bias, initial_state)

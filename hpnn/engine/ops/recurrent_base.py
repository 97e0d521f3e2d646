"""The driver shared by the fused recurrent ops (see ``recurrent.py``), and their activations.

``Recurrent`` does what every cell shares: the input projection of all steps in one
batched matmul, the layouts, masks, packing the outputs and final states, and the
input and weight gradients; a cell writes only its forward loop (``_run``) and its
backpropagation through time (``_bptt``).

Layout: gates are kept gate-major, ``(G, T, N, U)``, so that each gate of each step
is a contiguous ``(N, U)`` block: NumPy runs elementwise ops on contiguous blocks
several times faster than on the column slices of an ``(N, G*U)`` array. The
recurrent kernel ``(U, G*U)`` becomes ``(G, U, U)`` once per call, and a step's
``h @ R`` is one batched matmul into ``(G, N, U)``.
"""

from __future__ import annotations

from numpy import shape as np_shape

from hpnn.backend import get_xp
from hpnn.engine.tensor import Function, Tensor

ACTIVATIONS = ("tanh", "sigmoid", "relu", "linear", "hard_sigmoid")


def activate(name, z, out=None):
    """Apply the activation ``name`` to ``z``, into ``out`` (default: in place)."""
    xp = get_xp(z)
    out = z if out is None else out
    if name == "tanh":
        xp.tanh(z, out=out)
    elif name == "sigmoid":
        # tanh form: no overflow in exp for large |z|
        xp.multiply(z, 0.5, out=out)
        xp.tanh(out, out=out)
        out *= 0.5
        out += 0.5
    elif name == "relu":
        xp.maximum(z, 0, out=out)
    elif name == "hard_sigmoid":  # Keras 3: relu6(z + 3) / 6
        xp.multiply(z, 1.0 / 6.0, out=out)
        out += 0.5
        xp.clip(out, 0, 1, out=out)
    elif out is not z:  # linear
        out[...] = z


def times_derivative(name, y, g, tmp):
    """``g *= act'(z)`` in place, written with the output ``y = act(z)``; ``tmp`` is scratch."""
    xp = get_xp(y)
    if name == "tanh":
        xp.multiply(y, y, out=tmp)
        xp.subtract(1, tmp, out=tmp)
        g *= tmp
    elif name == "sigmoid":
        xp.subtract(1, y, out=tmp)
        tmp *= y
        g *= tmp
    elif name == "relu":
        g *= y > 0
    elif name == "hard_sigmoid":
        g *= (y > 0) & (y < 1)
        g *= 1.0 / 6.0


class Recurrent(Function):
    """The driver shared by the cells: projection, masks, output packing, weight grads.

    Inputs: ``x, kernel, recurrent_kernel[, bias][, *initial_states]``. ``_run``
    fills ``self.hs`` ``(T+1, N, U)`` and keeps the gates ``self.z`` ``(G, T, N, U)``;
    ``_bptt`` returns the pre-activation gradients ``(G, T, N, U)`` of the input side.
    With ``return_state`` the output packs ``(N, T_out + n_states, U)``: the output
    (``T_out`` = T or 1) then the final states; the public functions unpack it.
    """

    gates = 1
    n_states = 1

    def flops(self, xs, y) -> int:
        """The input projection's and every step's multiply-adds, times 2."""
        x, kernel, recurrent = xs[:3]
        return 2 * x.shape[0] * x.shape[1] * (kernel.size + recurrent.size)

    def __init__(
        self,
        activation="tanh",
        recurrent_activation="sigmoid",
        go_backwards=False,
        return_sequences=False,
        return_state=False,
        mask=None,
        zero_output_for_mask=False,
        has_bias=True,
        recurrent_mask=None,
    ):
        self.act, self.rec_act = activation, recurrent_activation
        # recurrent dropout: (G, N, U) multipliers of the previous state, one per gate,
        # the same at every step (Keras' recurrent_dropout); None without
        self.rec_mask = recurrent_mask
        self.go_backwards = go_backwards
        self.return_sequences, self.return_state = return_sequences, return_state
        self.mask, self.zero_output = mask, zero_output_for_mask
        self.has_bias = has_bias
        self.kern = None  # compiled kernels a cell may take in _run (the LSTM does)

    # -- forward -------------------------------------------------------------------
    def forward(self, x, kernel, recurrent_kernel, *rest):
        xp = get_xp(x)
        n, t, f = x.shape
        u, g = recurrent_kernel.shape[0], self.gates
        bias = rest[0] if self.has_bias else None
        init = rest[1:] if self.has_bias else rest
        self.n_init = len(init)
        self.shape = (n, t, f, u)
        self._prepare_mask(xp, x.dtype)
        self.rm = None if self.rec_mask is None else xp.asarray(self.rec_mask, dtype=x.dtype)
        xs = x[:, ::-1] if self.go_backwards else x
        in_bias = self._input_bias(bias)
        # Time-major inputs, with a column of ones when there is an input bias: the bias
        # then rides in the projection's matmul as one more kernel row, and its gradient
        # comes out of the kernel gradient's matmul (no broadcast add, no separate sum).
        k = f + (in_bias is not None)
        self.xt = xp.empty((t * n, k), dtype=x.dtype)
        xp.copyto(self.xt.reshape(t, n, k)[:, :, :f], xs.transpose(1, 0, 2))
        w4 = xp.empty((g, k, u), dtype=x.dtype)
        w4[:, :f] = kernel.reshape(f, g, u).transpose(1, 0, 2)
        if in_bias is not None:
            self.xt[:, f] = 1
            w4[:, f] = in_bias.reshape(g, u)
        self.w4, self.kernel, self.recurrent_kernel = w4, kernel, recurrent_kernel
        self.r4 = xp.ascontiguousarray(recurrent_kernel.reshape(u, g, u).transpose(1, 0, 2))
        xw = xp.matmul(self.xt, w4)  # every step's input projection: (G, T*N, U)
        self.hs = xp.empty((t + 1, n, u), dtype=x.dtype)
        states = list(init) + [
            xp.zeros((n, u), dtype=x.dtype) for _ in range(self.n_states - len(init))
        ]
        self._run(xw.reshape(g, t, n, u), bias, states)
        return self._pack(xp)

    def bias_shape(self, units):
        return (self.gates * units,)

    def _input_bias(self, bias):
        return bias

    def _prepare_mask(self, xp, dtype):
        """Time-major masks in processing order, or None when every step is real."""
        self.keep_old = self.mf = None
        mask = self.mask
        if mask is None or bool(mask.all()):
            return
        m = mask[:, ::-1] if self.go_backwards else mask
        m = xp.ascontiguousarray(m.T)[:, :, None]  # (T, N, 1)
        self.keep_old = ~m  # where the states carry over (forward)
        self.mf = m.astype(dtype)  # float masks for the gradient split (backward)
        self.nmf = 1 - self.mf

    def _carry_masked(self, s, *pairs):
        """At a masked step the new state is the previous one (in place)."""
        if self.keep_old is not None:
            xp = get_xp(self.keep_old)
            for new, old in pairs:
                xp.copyto(new, old, where=self.keep_old[s])

    def _pack(self, xp):
        seq = self.hs[1:]
        if self.zero_output and self.mf is not None:
            seq = seq * self.mf
        main = seq.transpose(1, 0, 2) if self.return_sequences else seq[-1]
        if not self.return_state:
            return main
        main3 = main if self.return_sequences else main[:, None]
        states = [st[:, None] for st in self._final_states()]
        return xp.concatenate([main3, *states], axis=1)

    def _final_states(self):
        return [self.hs[-1]]

    # -- backward ------------------------------------------------------------------
    def backward(self, gy):
        xp = get_xp(gy)
        n, t, _, u = self.shape
        k = self.n_states if self.return_state else 0
        t_out = t if self.return_sequences else 1
        g_main = gy[:, :t_out] if k else gy
        carry = [xp.zeros((n, u), dtype=gy.dtype) for _ in range(self.n_states)]
        for j in range(k):
            carry[j] += gy[:, t_out + j]
        zero_mask = self.mf if (self.zero_output and self.mf is not None) else None
        dseq = None
        if self.return_sequences:
            dseq = g_main.transpose(1, 0, 2)  # (T, N, U), processing order
            if zero_mask is not None:
                dseq = dseq * zero_mask
        else:
            g_last = g_main.reshape(n, u)
            carry[0] += g_last if zero_mask is None else g_last * zero_mask[-1]
        if self.kern is None:
            self.rk4_t = xp.ascontiguousarray(self.r4.transpose(0, 2, 1))
        dz, g_rk, g_rbias, d_init = self._bptt(dseq, carry)
        return self._input_grads(xp, dz, g_rk, g_rbias, d_init)

    def _input_grads(self, xp, dz, g_rk, g_rbias, d_init):
        """Input, kernel and bias gradients from the pre-activation gradients ``dz``:
        gate-major ``(G, T, N, U)``, or ``(T, N, G*U)`` with the gates side by side as in
        Keras' kernel (what the compiled LSTM writes), where each is one 2-D matmul."""
        n, t, f, u = self.shape
        need, g = self.needs_input_grad, self.gates
        gx = gk = gb = None
        want_b = self.has_bias and need[3]
        if dz.ndim == 3:
            d2 = dz.reshape(t * n, g * u)
            if need[0]:
                gx = xp.matmul(d2, self.kernel.T).reshape(t, n, f).transpose(1, 0, 2)
                if self.go_backwards:
                    gx = gx[:, ::-1]
            if need[1] or want_b:
                gkb = xp.matmul(self.xt.T, d2)  # (F[+1], G*U): kernel, then input bias
                gk = gkb[:f] if need[1] else None
                gb = gkb[f] if want_b and self.xt.shape[1] > f else None
            grads = [gx, gk, g_rk] + ([gb] if self.has_bias else [])
            return tuple(grads + list(d_init[: self.n_init]))
        dz2 = dz.reshape(g, t * n, u)
        if need[0]:
            gx = xp.matmul(dz2, self.w4[:, :f].transpose(0, 2, 1)).sum(axis=0)
            gx = gx.reshape(t, n, f).transpose(1, 0, 2)
            if self.go_backwards:
                gx = gx[:, ::-1]
        if need[1] or want_b:
            # (G, F[+1], U): the kernel's gradient, and the input bias's in the last row
            gkb = xp.matmul(self.xt.T, dz2)
            if need[1]:
                gk = ungate(gkb[:, :f])
            if want_b:
                gb = gkb[:, f].reshape(g * u) if self.xt.shape[1] > f else None
                if g_rbias is not None:
                    gb = g_rbias if gb is None else xp.stack([gb, g_rbias])
        grads = [gx, gk, g_rk]
        if self.has_bias:
            grads.append(gb)
        grads += list(d_init[: self.n_init])
        return tuple(grads)

    def _split_masked(self, s, g, passed):
        """Move the gradient of samples masked at step ``s`` from ``g`` into ``passed``."""
        get_xp(g).multiply(g, self.nmf[s], out=passed)
        g *= self.mf[s]

    def _grad_rk(self, d_rec, h_prev=None):
        """d(recurrent kernel): sum over steps of ``h_prev^T @ d``, one batched matmul.

        Args:
            d_rec: ``(G', T, N, U)`` gradients of the recurrent pre-activations.
            h_prev: ``(T, N, U)`` what multiplies the kernel (default the previous states),
                or ``(G', T, N, U)``, one per gate (with recurrent dropout).
        """
        n, t, _, u = self.shape
        h = self.hs[:t] if h_prev is None else h_prev
        xp = get_xp(d_rec)
        g = len(d_rec)
        if h.ndim == 4:
            return xp.matmul(h.reshape(g, t * n, u).transpose(0, 2, 1), d_rec.reshape(g, t * n, u))
        return xp.matmul(h.reshape(t * n, u).T, d_rec.reshape(g, t * n, u))

    def _masked_h(self, lo, hi):
        """The previous states as gates ``lo:hi`` saw them through recurrent dropout,
        ``(hi - lo, T, N, U)``; None without recurrent dropout."""
        if self.rm is None:
            return None
        t = self.shape[1]
        return self.hs[:t][None] * self.rm[lo:hi, None]


def ungate(w4):
    """``(G, A, U)`` back to Keras' ``(A, G*U)`` layout."""
    g, a, u = w4.shape
    return w4.transpose(1, 0, 2).reshape(a, g * u)


def _shape(a):
    return tuple(a.shape) if hasattr(a, "shape") else tuple(np_shape(a))


def check_inputs(f, x, kernel, recurrent_kernel, bias, states):
    """Raise a ValueError naming the op when the shapes do not fit together."""
    name = type(f).__name__.lower()
    for act in (f.act, f.rec_act):
        if act not in ACTIVATIONS:
            raise ValueError(f"{name}: fused activations are {ACTIVATIONS}. Received: {act!r}")
    if len(_shape(x)) != 3:
        raise ValueError(
            f"{name}: expected x of rank 3 (batch, timesteps, features). "
            f"Received: x.shape={_shape(x)}"
        )
    n, t, feat = _shape(x)
    u = _shape(recurrent_kernel)[0]
    width = f.gates * u
    expected = {"kernel": (feat, width), "recurrent_kernel": (u, width)}
    got = {"kernel": _shape(kernel), "recurrent_kernel": _shape(recurrent_kernel)}
    if bias is not None:
        expected["bias"] = f.bias_shape(u)
        got["bias"] = _shape(bias)
    for i, s in enumerate(states):
        expected[f"initial_state[{i}]"], got[f"initial_state[{i}]"] = (n, u), _shape(s)
    if f.mask is not None:
        expected["mask"], got["mask"] = (n, t), _shape(f.mask)
    if f.rec_mask is not None:
        expected["recurrent_mask"] = (f.gates, n, u)
        got["recurrent_mask"] = _shape(f.rec_mask)
    for key, shape in expected.items():
        if got[key] != shape:
            raise ValueError(f"{name}: expected {key} of shape {shape}. Received: {got[key]}")
    if states and len(states) != f.n_states:
        raise ValueError(
            f"{name}: initial_state must hold {f.n_states} state(s). Received: {len(states)}"
        )


def run(f, x, kernel, recurrent_kernel, bias, initial_state):
    """Check the inputs, call the op ``f``, and unpack ``[output, *states]`` for return_state."""
    states = list(initial_state or [])
    check_inputs(f, x, kernel, recurrent_kernel, bias, states)
    if f.mask is not None:
        mask = f.mask.data if isinstance(f.mask, Tensor) else f.mask
        f.mask = get_xp(mask).asarray(mask).astype(bool, copy=False)
    if isinstance(f.rec_mask, Tensor):
        f.rec_mask = f.rec_mask.data
    inputs = [x, kernel, recurrent_kernel] + ([bias] if bias is not None else []) + states
    y = f(*inputs)
    if not f.return_state:
        return y
    t_out = y.shape[1] - f.n_states
    out = y[:, :t_out] if f.return_sequences else y[:, 0]
    return [out, *(y[:, t_out + j] for j in range(f.n_states))]

"""Batch and layer normalisation in the compiled passes of ``hpnn.engine.kernels.norm``.

The same mathematics as :class:`hpnn.engine.ops.norm._Normalize` (the NumPy code,
the reference the float64 gradient checks test), in about two passes through memory
each way instead of about ten: the statistics, then one pass that writes ``xhat``
and ``y``; backward, the two column sums, then one pass for the input's gradient.
Used for float32 NumPy arrays with numba, channels (batch norm) or features (layer
norm) on the last axis. Batch statistics are the whole batch's under a split step
(``step_context.batch_sum``), as in the NumPy code.
"""

from __future__ import annotations

import numpy as np

from hpnn.engine import step_context
from hpnn.engine.tensor import Function


def whole_batch_means(sums, n_local: int, per_sample: int, dtype, gradient: bool = False):
    """This part's ``sums`` over its samples (and ``per_sample`` values a sample and
    column) as the whole batch's means. A ``gradient`` (of the part's own mean loss)
    is weighted by the part's share of the batch for the exchange and brought back to
    the part's scale after (``_Normalize._mean`` says why)."""
    share = step_context.current().share if gradient else 1.0
    if share not in (0.0, 1.0):  # (0: an MPI rank with no sample adds nothing)
        sums = step_context.batch_sum(sums * dtype.type(share)) / dtype.type(share)
    else:
        sums = step_context.batch_sum(sums)
    return sums / dtype.type(step_context.batch_size(n_local) * per_sample)


def _rows(a):
    """``a`` as a C-contiguous ``(M, C)`` matrix over its last axis."""
    return np.ascontiguousarray(a).reshape(-1, a.shape[-1])


class BatchNormCompiled(Function):
    """Batch normalisation over every axis but the last. Inputs: ``x[, gamma][, beta]``."""

    def __init__(self, kern, epsilon, scale, center, mean=None, var=None):
        self.kern, self.epsilon, self.scale, self.center = kern, epsilon, scale, center
        self.fixed = (mean, var) if mean is not None else None

    def _params(self, params, c, dtype):
        gamma = params[0] if self.scale else np.ones(c, dtype)
        beta = params[-1] if self.center else np.zeros(c, dtype)
        return np.ascontiguousarray(gamma, dtype), np.ascontiguousarray(beta, dtype)

    def forward(self, x, *params):
        k, c, dt = self.kern, x.shape[-1], x.dtype
        x2 = _rows(x)
        self.gamma, beta = self._params(params, c, dt)
        if self.fixed is None:
            per_sample = x2.shape[0] // x.shape[0] if x.shape[0] else 0
            s = np.empty(c, dt)
            k.col_sums(x2, s)
            mean = whole_batch_means(s, x.shape[0], per_sample, dt)
            q = np.empty(c, dt)
            k.col_sq_dev_sums(x2, mean, q)
            var = whole_batch_means(q, x.shape[0], per_sample, dt)
            self.batch_mean, self.batch_var = mean, var
            self.per_sample = per_sample
        else:
            mean, var = (np.ascontiguousarray(a, dt).reshape(c) for a in self.fixed)
        self.inv = inv = (1 / np.sqrt(var + dt.type(self.epsilon))).astype(dt)
        keep = any(self.needs_input_grad)
        self.xhat = np.empty_like(x2) if keep else np.empty((0, 0), dt)
        y = np.empty_like(x2)
        k.bn_apply(x2, mean, inv, self.gamma, beta, self.xhat, y)
        self.shape = x.shape
        return y.reshape(x.shape)

    def backward(self, gy):
        k, dt, gamma = self.kern, gy.dtype, self.gamma
        gy2 = _rows(gy)
        c = gy2.shape[1]
        sg, sgx = np.empty(c, dt), np.empty(c, dt)
        k.col_grad_sums(gy2, self.xhat, sg, sgx)
        need = self.needs_input_grad
        grads = [None]
        if self.scale:
            grads.append(sgx.copy() if need[1] else None)
        if self.center:
            grads.append(sg.copy() if need[-1] else None)
        if need[0]:
            if self.fixed is None:
                both = np.concatenate([sg, sgx])
                means = whole_batch_means(both, self.shape[0], self.per_sample, dt, True)
                a, b = gamma * means[:c], gamma * means[c:]
            else:  # fixed statistics: nothing of x in the mean and variance
                a = b = np.zeros(c, dt)
            gx = np.empty_like(gy2)
            k.bn_grad_input(gy2, self.xhat, a, b, self.inv, gamma, gx)
            grads[0] = gx.reshape(self.shape)
        return tuple(grads)


class LayerNormCompiled(Function):
    """Layer normalisation over the last axis. Inputs: ``x[, gamma][, beta]``."""

    def __init__(self, kern, epsilon, scale, center):
        self.kern, self.epsilon, self.scale, self.center = kern, epsilon, scale, center

    def forward(self, x, *params):
        c, dt = x.shape[-1], x.dtype
        x2 = _rows(x)
        gamma = params[0] if self.scale else np.ones(c, dt)
        beta = params[-1] if self.center else np.zeros(c, dt)
        self.gamma = np.ascontiguousarray(gamma, dt).reshape(c)
        beta = np.ascontiguousarray(beta, dt).reshape(c)
        self.xhat, self.inv = np.empty_like(x2), np.empty(x2.shape[0], dt)
        y = np.empty_like(x2)
        self.kern.ln_forward(x2, self.gamma, beta, self.epsilon, self.xhat, self.inv, y)
        self.shape, self.param_shapes = x.shape, [p.shape for p in params]
        return y.reshape(x.shape)

    def backward(self, gy):
        gy2 = _rows(gy)
        c = gy2.shape[1]
        gx = np.empty_like(gy2)
        g_gamma, g_beta = np.zeros(c, np.float64), np.zeros(c, np.float64)
        self.kern.ln_backward(gy2, self.xhat, self.inv, self.gamma, gx, g_gamma, g_beta)
        need = self.needs_input_grad
        grads = [gx.reshape(self.shape) if need[0] else None]
        if self.scale:
            g = g_gamma.astype(gy.dtype).reshape(self.param_shapes[0]) if need[1] else None
            grads.append(g)
        if self.center:
            g = g_beta.astype(gy.dtype).reshape(self.param_shapes[-1]) if need[-1] else None
            grads.append(g)
        return tuple(grads)

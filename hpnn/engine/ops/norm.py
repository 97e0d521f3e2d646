"""Normalisation ops: batch normalisation (batch or moving statistics) and layer normalisation.

Both compute ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``; they differ in
the axes the statistics run over (``stat_axes``) and the axes ``gamma``/``beta``
are shared across (``param_axes``): batch norm reduces over every axis but the
channel axis for both; layer norm takes statistics over the feature axes of each
sample and shares ``gamma``/``beta`` across the batch.
"""

from __future__ import annotations

from hpnn.backend import get_xp
from hpnn.engine import kernels
from hpnn.engine.ops.norm_compiled import BatchNormCompiled, LayerNormCompiled, whole_batch_means
from hpnn.engine.tensor import Function, Tensor


def _axes(axis, ndim):
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a % ndim for a in axes))


class _Normalize(Function):
    """Shared forward and backward. Inputs: ``x[, gamma][, beta]`` (gamma/beta flagged)."""

    def __init__(self, stat_axes, param_axes, epsilon, scale, center, mean=None, var=None):
        self.stat_axes, self.param_axes = stat_axes, param_axes
        self.epsilon, self.scale, self.center = epsilon, scale, center
        self.fixed = (mean, var) if mean is not None else None

    def _mean(self, a, x, b=None, gradient=False):
        """The mean of ``a`` (and of ``b``) over the statistics' axes. Over the batch
        axis (batch normalisation) it is the whole batch's mean: the parts of a split
        step add their sums (``step_context.batch_sum``), one exchange for both.

        A ``gradient`` is the gradient of the part's own mean loss: each part's sum is
        weighted by its share of the batch before the exchange (making it the whole
        batch mean's) and the total brought back to the part's scale after."""
        if 0 not in self.stat_axes:
            vals = (a,) if b is None else (a, b)
            means = [v.mean(axis=self.stat_axes, keepdims=True, dtype=x.dtype) for v in vals]
            return means[0] if b is None else means
        sums = a.sum(axis=self.stat_axes, keepdims=True, dtype=x.dtype)
        if b is not None:
            more = b.sum(axis=self.stat_axes, keepdims=True, dtype=x.dtype)
            sums = get_xp(x).concatenate([sums, more])
        per_sample = 1
        for i in self.stat_axes[1:]:
            per_sample *= x.shape[i]
        sums = whole_batch_means(sums, x.shape[0], per_sample, x.dtype, gradient)
        return sums if b is None else (sums[:1], sums[1:])

    def _param(self, p, x):
        """A parameter of the kept axes' shape, reshaped to broadcast against ``x``."""
        shape = [1 if i in self.param_axes else n for i, n in enumerate(x.shape)]
        return p.reshape(shape)

    def forward(self, x, *params):
        xp = get_xp(x)
        gamma = self._param(params[0], x) if self.scale else None
        beta = self._param(params[-1], x) if self.center else None
        if self.fixed is None:
            mean = self._mean(x, x)
            xhat = x - mean
            var = self._mean(xp.square(xhat), x)
            self.batch_mean, self.batch_var = mean, var
        else:
            mean, var = (self._param(xp.asarray(a, dtype=x.dtype), x) for a in self.fixed)
            xhat = x - mean
        inv = 1 / xp.sqrt(var + x.dtype.type(self.epsilon))
        xhat *= inv
        y = xhat * gamma if gamma is not None else xhat.copy()
        if beta is not None:
            y += beta
        self.xhat, self.inv, self.gamma = xhat, inv, gamma
        self.param_shapes = [p.shape for p in params]
        return y

    def backward(self, gy):
        xhat, inv, gamma = self.xhat, self.inv, self.gamma
        need = self.needs_input_grad
        grads = [None]
        if self.scale:
            g_gamma = (gy * xhat).sum(axis=self.param_axes) if need[1] else None
            grads.append(None if g_gamma is None else g_gamma.reshape(self.param_shapes[0]))
        if self.center:
            g_beta = gy.sum(axis=self.param_axes) if need[-1] else None
            grads.append(None if g_beta is None else g_beta.reshape(self.param_shapes[-1]))
        if need[0]:
            g = gy * gamma if gamma is not None else gy
            if self.fixed is None:
                # d/dx of (x - mean) * inv with mean and var taken from x itself
                a, b = self._mean(g, g, g * xhat, gradient=True)
                gx = g - a
                gx -= xhat * b
                gx *= inv
            else:
                gx = g * inv
            grads[0] = gx
        return tuple(grads)


def batch_norm(
    x,
    gamma=None,
    beta=None,
    axis=-1,
    epsilon: float = 1e-3,
    mean=None,
    variance=None,
    return_stats: bool = False,
):
    """Batch normalisation over every axis of ``x`` but ``axis``.

    Args:
        x: ``(N, ..., C)`` (for ``axis=-1``).
        gamma, beta: ``(C,)`` scale and offset, or None.
        mean, variance: ``(C,)`` moving statistics (inference); None to use the
            batch's own (training), whose mean and biased variance then come back
            with ``return_stats``.

    Returns:
        ``y`` like ``x``; with ``return_stats``, ``(y, batch_mean, batch_var)`` as arrays.
    """
    xd = x.data if isinstance(x, Tensor) else x
    keep = _axes(axis, xd.ndim)
    reduce = tuple(i for i in range(xd.ndim) if i not in keep)
    params = [p for p in (gamma, beta) if p is not None]
    kern = None
    if keep == (xd.ndim - 1,):
        fixed = [a for a in (mean, variance) if a is not None]
        kern = kernels.normalization(xd, *(_data(p) for p in params), *fixed)
    scale, center = gamma is not None, beta is not None
    if kern is not None:
        f = BatchNormCompiled(kern, epsilon, scale, center, mean, variance)
    else:
        f = _Normalize(reduce, reduce, epsilon, scale, center, mean, variance)
    y = f(x, *params)
    if not return_stats:
        return y
    if mean is not None:
        raise ValueError("batch_norm: return_stats needs batch statistics (mean=None).")
    shape = tuple(xd.shape[i] for i in keep)
    return y, f.batch_mean.reshape(shape), f.batch_var.reshape(shape)


def layer_norm(x, gamma=None, beta=None, axis=-1, epsilon: float = 1e-3) -> Tensor:
    """Layer normalisation: statistics over ``axis`` of each sample.

    Args:
        x: ``(N, ..., F)``.
        gamma, beta: shaped like the ``axis`` dims of ``x`` (``(F,)`` for ``axis=-1``).
    """
    xd = x.data if isinstance(x, Tensor) else x
    stat = _axes(axis, xd.ndim)
    param = tuple(i for i in range(xd.ndim) if i not in stat)
    params = [p for p in (gamma, beta) if p is not None]
    kern = None
    if stat == (xd.ndim - 1,) and all(_data(p).ndim == 1 for p in params):
        kern = kernels.normalization(xd, *(_data(p) for p in params))
    if kern is not None:
        f = LayerNormCompiled(kern, epsilon, gamma is not None, beta is not None)
    else:
        f = _Normalize(stat, param, epsilon, gamma is not None, beta is not None)
    return f(x, *params)


def _data(a):
    return a.data if isinstance(a, Tensor) else a

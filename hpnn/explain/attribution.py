"""Attributions of one class score to the input: saliency, SmoothGrad, integrated gradients,
occlusion. Every function works on a batch and returns arrays (no graph)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpnn.backend import floatx
from hpnn.explain.gradients import (
    as_input,
    check_positive_int,
    class_outputs,
    class_score,
    forward,
    gradient,
    resolve_target,
)
from hpnn.random import make_rng

IG_METHODS = ("trapezoid", "midpoint", "gausslegendre")


def _targets(model, x, target, batch_size, where):
    out = class_outputs(forward(model, x, batch_size), where)
    return resolve_target(target, out, where), out


def saliency(
    model,
    x,
    target=None,
    *,
    method="gradient",
    samples=25,
    noise_level=0.15,
    absolute=False,
    seed=None,
    batch_size=256,
):
    """Gradient of the target class output w.r.t. the input (Simonyan et al. 2013).

    Args:
        model: a model whose output is ``(N, classes)``.
        x: inputs ``(N, ...)``.
        target: None (the predicted class), an int, or ``(N,)`` ints.
        method: ``"gradient"`` (plain) or ``"smoothgrad"``: the mean gradient over
            ``samples`` noisy copies with ``sigma = noise_level * (max(x_i) - min(x_i))``
            (Smilkov et al. 2017).
        absolute: return ``|gradient|``.
        seed: int or Generator for SmoothGrad's noise.

    Returns:
        float32 array shaped like ``x``.

    >>> grads = saliency(model, x_test[:8])                      # doctest: +SKIP
    """
    where = "saliency"
    x = as_input(model, x, where)
    batch_size = check_positive_int(batch_size, "batch_size", where)
    targets, _ = _targets(model, x, target, batch_size, where)
    if method == "gradient":
        g, _ = gradient(model, x, class_score(targets), batch_size)
    elif method == "smoothgrad":
        g = _smoothgrad(model, x, targets, samples, noise_level, seed, batch_size)
    else:
        raise ValueError(
            f"{where}: method must be 'gradient' or 'smoothgrad'. Received: method={method!r}"
        )
    return np.abs(g) if absolute else g


def smoothgrad(model, x, target=None, *, samples=25, noise_level=0.15, seed=None, **kwargs):
    """``saliency(..., method="smoothgrad")``: the mean gradient over noisy copies of ``x``."""
    return saliency(
        model,
        x,
        target,
        method="smoothgrad",
        samples=samples,
        noise_level=noise_level,
        seed=seed,
        **kwargs,
    )


def _smoothgrad(model, x, targets, samples, noise_level, seed, batch_size):
    where = "smoothgrad"
    samples = check_positive_int(samples, "samples", where)
    if not isinstance(noise_level, (int, float)) or noise_level < 0:
        raise ValueError(
            f"{where}: noise_level must be a number >= 0. Received: noise_level={noise_level!r}"
        )
    rng = make_rng(seed)
    n = len(x)
    axes = tuple(range(1, x.ndim))
    sigma = (noise_level * (x.max(axis=axes) - x.min(axis=axes))).astype(floatx())
    # All (sample, copy) pairs in one index, cut into batches: copy-major order.
    rows = np.tile(np.arange(n), samples)
    total = np.zeros_like(x)
    score = class_score(targets[rows])
    for start in range(0, len(rows), batch_size):
        idx = rows[start : start + batch_size]
        noise = rng.standard_normal(x[idx].shape, dtype=floatx())
        noisy = x[idx] + noise * sigma[idx].reshape(-1, *(1,) * (x.ndim - 1))
        g, _ = gradient(model, noisy, _shifted(score, start), len(idx))
        np.add.at(total, idx, g)
    return total / samples


def _shifted(score, offset):
    """A score over global rows, applied to a batch whose row 0 is global row ``offset``."""

    def shifted(out, rows):
        return score(out, slice(rows.start + offset, rows.stop + offset))

    return shifted


def _path(steps, method):
    """Points ``alpha`` in [0, 1] and quadrature weights (summing to 1) for the path integral."""
    if method == "trapezoid":
        alphas = np.linspace(0.0, 1.0, steps + 1)
        weights = np.full(steps + 1, 1.0 / steps)
        weights[[0, -1]] *= 0.5
    elif method == "midpoint":
        alphas = (np.arange(steps) + 0.5) / steps
        weights = np.full(steps, 1.0 / steps)
    else:
        nodes, w = np.polynomial.legendre.leggauss(steps)
        alphas, weights = (nodes + 1) / 2, w / 2
    return alphas.astype(floatx()), weights.astype(floatx())


@dataclass
class Attribution:
    """Integrated-gradients result.

    Attributes:
        values: attributions shaped like ``x``.
        completeness_gap: ``(N,)``: ``values[i].sum() - (f(x_i) - f(baseline_i))``; it
            goes to 0 as ``steps`` grows (the completeness axiom).
        target: ``(N,)`` the class attributed.
        f_x, f_baseline: ``(N,)`` the target output at ``x`` and at the baseline.
    """

    values: np.ndarray
    completeness_gap: np.ndarray
    target: np.ndarray
    f_x: np.ndarray
    f_baseline: np.ndarray

    @property
    def relative_gap(self) -> np.ndarray:
        """``|completeness_gap| / |f(x) - f(baseline)|`` per sample."""
        delta = np.abs(self.f_x - self.f_baseline)
        return np.abs(self.completeness_gap) / np.maximum(delta, np.finfo(floatx()).tiny)


def integrated_gradients(
    model, x, target=None, baseline=None, steps=50, *, method="gausslegendre", batch_size=256
):
    """Integrated gradients (Sundararajan et al. 2017) of the target class output.

    ``values = (x - baseline) * integral_0^1 grad f(baseline + a (x - baseline)) da``,
    where ``f`` is what ``predict`` returns for the target class (the probability
    for a softmax head). All (step, sample) pairs run batched.

    Args:
        x: inputs ``(N, ...)``.
        target: None (the predicted class), an int, or ``(N,)`` ints.
        baseline: None (zeros), a number, one input ``x.shape[1:]``, or ``x.shape``.
        steps: points of the quadrature (``steps + 1`` for the trapezoid rule).
        method: ``"gausslegendre"`` (default: on a trained CNN's saturating softmax it
            reaches a given gap with several times fewer steps), ``"trapezoid"`` or
            ``"midpoint"``. Check ``completeness_gap`` and raise ``steps`` if it is large.
        batch_size: inputs per forward/backward pass.

    Returns:
        :class:`Attribution` with ``.values`` and ``.completeness_gap``.

    >>> ig = integrated_gradients(model, x_test[:4], steps=64)    # doctest: +SKIP
    >>> ig.values.shape, ig.completeness_gap.shape                # doctest: +SKIP
    ((4, 28, 28, 1), (4,))
    """
    where = "integrated_gradients"
    x = as_input(model, x, where)
    steps = check_positive_int(steps, "steps", where)
    batch_size = check_positive_int(batch_size, "batch_size", where)
    if method not in IG_METHODS:
        raise ValueError(
            f"{where}: method must be one of {IG_METHODS}. Received: method={method!r}"
        )
    base = _baseline(baseline, x, where)
    targets, out_x = _targets(model, x, target, batch_size, where)
    out_base = forward(model, base, batch_size)
    rows_n = np.arange(len(x))
    f_x, f_base = out_x[rows_n, targets], out_base[rows_n, targets]

    alphas, weights = _path(steps, method)
    n, diff = len(x), x - base
    shape = (-1, *(1,) * (x.ndim - 1))
    pair_sample = np.tile(rows_n, len(alphas))  # step-major: pair p is sample p % n
    pair_step = np.repeat(np.arange(len(alphas)), n)
    total = np.zeros_like(x)
    score = class_score(targets[pair_sample])
    for start in range(0, len(pair_sample), batch_size):
        i = pair_sample[start : start + batch_size]
        k = pair_step[start : start + batch_size]
        points = base[i] + alphas[k].reshape(shape) * diff[i]
        g, _ = gradient(model, points, _shifted(score, start), len(i))
        np.add.at(total, i, g * weights[k].reshape(shape))
    values = diff * total
    gap = values.reshape(n, -1).sum(axis=1) - (f_x - f_base)
    return Attribution(values, gap.astype(floatx()), targets, f_x, f_base)


def _baseline(baseline, x, where):
    if baseline is None:
        return np.zeros_like(x)
    b = np.asarray(baseline, dtype=floatx())
    if b.shape in ((), x.shape[1:], x.shape):
        return np.broadcast_to(b, x.shape).copy()
    raise ValueError(
        f"{where}: baseline must be None, a number, one input of shape {x.shape[1:]} or "
        f"{x.shape}. Received: shape={b.shape}"
    )


def occlusion(model, x, target=None, *, window=None, stride=None, fill=0.0, batch_size=256):
    """How much the target output drops when a window of the image is covered.

    Each pixel gets the mean drop ``f(x) - f(x with the window filled)`` over the
    windows that cover it (Zeiler and Fergus 2014).

    Args:
        x: images ``(N, H, W, C)``.
        window: int or ``(wh, ww)``; default about a seventh of the image side.
        stride: int or pair; default half the window.
        fill: the value the window is filled with.

    Returns:
        float32 ``(N, H, W)``.
    """
    where = "occlusion"
    x = as_input(model, x, where)
    if x.ndim != 4:
        raise ValueError(f"{where}: x must be images (N, H, W, C). Received: shape={x.shape}")
    batch_size = check_positive_int(batch_size, "batch_size", where)
    n, h, w, _ = x.shape
    if window is None:
        window = max(1, round(min(h, w) / 7))
    wh, ww = _pair(window, "window", where)
    if wh > h or ww > w:
        raise ValueError(
            f"{where}: window must fit in the image {(h, w)}. Received: window={(wh, ww)}"
        )
    sh, sw = _pair(
        stride if stride is not None else (max(1, wh // 2), max(1, ww // 2)), "stride", where
    )
    targets, out = _targets(model, x, target, batch_size, where)
    f_x = out[np.arange(n), targets]
    tops, lefts = _starts(h, wh, sh), _starts(w, ww, sw)
    corners = [(t, le) for t in tops for le in lefts]
    drops = np.zeros((n, h, w), dtype=floatx())
    counts = np.zeros((h, w), dtype=floatx())
    for t, le in corners:
        counts[t : t + wh, le : le + ww] += 1
    pair_sample = np.tile(np.arange(n), len(corners))
    pair_corner = np.repeat(np.arange(len(corners)), n)
    for start in range(0, len(pair_sample), batch_size):
        i = pair_sample[start : start + batch_size]
        c = pair_corner[start : start + batch_size]
        batch = x[i].copy()
        for j, corner in enumerate(c):
            t, le = corners[corner]
            batch[j, t : t + wh, le : le + ww] = fill
        scores = forward(model, batch, batch_size)[np.arange(len(i)), targets[i]]
        for j, corner in enumerate(c):
            t, le = corners[corner]
            drops[i[j], t : t + wh, le : le + ww] += f_x[i[j]] - scores[j]
    return drops / counts


def _pair(value, name, where):
    t = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(t) != 2 or any(not isinstance(v, (int, np.integer)) or v <= 0 for v in t):
        raise ValueError(
            f"{where}: {name} must be a positive int or a pair of them. Received: {name}={value!r}"
        )
    return int(t[0]), int(t[1])


def _starts(size, win, stride):
    """Window starts that cover the whole axis (the last one flush with the edge)."""
    starts = list(range(0, size - win + 1, stride))
    if starts[-1] != size - win:
        starts.append(size - win)
    return starts

"""Adversarial examples: FGSM and PGD (L-inf and L2), and Gaussian noise.

Each attack returns the perturbed inputs as a float32 array shaped like ``x``,
clipped to ``input_range`` (``[0, 1]`` by default; None: no clipping). The loss
is the compiled model's loss if there is one, else categorical cross-entropy on
the output (binary cross-entropy for a one-unit head; from the logits under a
softmax or sigmoid, as ``hpnn.losses`` does).
"""

from __future__ import annotations

import numpy as np

from hpnn import losses
from hpnn.backend import floatx, xp_default
from hpnn.engine.tensor import Tensor
from hpnn.explain.gradients import (
    as_input,
    check_positive_int,
    class_outputs,
    forward,
    gradient,
    one_hot,
)
from hpnn.random import make_rng

NORMS = ("inf", 2)


def labels_of(y, n: int, classes: int, where: str) -> np.ndarray:
    """Integer labels ``(N,)`` from integer labels or one-hot rows."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == classes and classes > 1:
        y = y.argmax(axis=1)
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n or (y.dtype.kind == "f" and np.any(y != np.round(y))):
        raise ValueError(
            f"{where}: y must be {n} integer labels or one-hot rows (N, {classes}). "
            f"Received: shape={y.shape}, dtype={y.dtype}"
        )
    y = y.astype(np.int64)
    top = max(classes, 2)
    if y.min() < 0 or y.max() >= top:
        raise ValueError(
            f"{where}: labels must be in [0, {top}). Received: labels from {y.min()} to {y.max()}"
        )
    return y


def _loss(model, loss, classes):
    if loss is not None:
        return losses.get(loss)
    if getattr(model, "compiled", False) and model.loss is not None:
        return model.loss
    return losses.BinaryCrossentropy() if classes == 1 else losses.CategoricalCrossentropy()


def _loss_targets(loss, labels, classes):
    """Labels in the form ``loss`` expects: ints for a sparse loss, else one-hot (or 0/1)."""
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        return labels
    if classes == 1:
        return labels.astype(floatx()).reshape(-1, 1)
    return one_hot(labels, classes)


def loss_gradient(model, x, labels, loss=None, batch_size=256):
    """``d loss / d x`` per sample (the per-sample losses summed, so no 1/N scale)."""
    shape = model.output_shape
    loss = _loss(model, loss, shape[-1] if shape else None)

    def score(out, rows):
        targets = _loss_targets(loss, labels[rows], out.shape[-1])
        return loss.call(Tensor(xp_default().asarray(targets)), out)

    return gradient(model, x, score, batch_size)[0]


def _setup(model, x, y, eps, input_range, batch_size, where):
    x = as_input(model, x, where)
    if not isinstance(eps, (int, float, np.floating, np.integer)) or eps < 0:
        raise ValueError(f"{where}: eps must be a number >= 0. Received: eps={eps!r}")
    if input_range is not None:
        lo, hi = input_range
        if not lo < hi:
            raise ValueError(
                f"{where}: input_range must be (low, high) with low < high, or None. "
                f"Received: input_range={input_range!r}"
            )
    batch_size = check_positive_int(batch_size, "batch_size", where)
    classes = class_outputs(forward(model, x[:1], 1), where).shape[1]
    return x, labels_of(y, len(x), classes, where), batch_size


def _clip(x, input_range):
    if input_range is None:
        return x
    return np.clip(x, input_range[0], input_range[1], out=x)


def fgsm(model, x, y, eps, *, loss=None, targeted=False, input_range=(0.0, 1.0), batch_size=256):
    """Fast gradient sign method (Goodfellow et al. 2015): ``x + eps * sign(d loss / dx)``.

    Args:
        model: a model with ``(N, classes)`` output.
        x: inputs ``(N, ...)``.
        y: true labels ``(N,)`` or one-hot ``(N, classes)``; with ``targeted``, the
            classes to move towards (the step then descends the loss).
        eps: L-inf size of the perturbation.
        loss: a loss name or object; default the compiled loss, else cross-entropy.
        input_range: ``(low, high)`` the results are clipped to; None: no clipping.

    Returns:
        float32 adversarial inputs shaped like ``x``.
    """
    x, labels, batch_size = _setup(model, x, y, eps, input_range, batch_size, "fgsm")
    g = loss_gradient(model, x, labels, loss, batch_size)
    step = np.sign(g).astype(floatx()) * floatx_scalar(eps)
    return _clip(x - step if targeted else x + step, input_range)


def floatx_scalar(value):
    return np.asarray(value, dtype=floatx())[()]


def pgd(
    model,
    x,
    y,
    eps,
    *,
    norm="inf",
    steps=10,
    step_size=None,
    random_start=True,
    seed=None,
    loss=None,
    targeted=False,
    input_range=(0.0, 1.0),
    batch_size=256,
):
    """Projected gradient descent (Madry et al. 2018) in an L-inf or L2 ball of radius ``eps``.

    Args:
        norm: ``"inf"`` (sign steps, box projection) or ``2`` (normalised gradient
            steps, projection onto the L2 ball of each sample).
        steps: gradient steps.
        step_size: default ``2.5 * eps / steps``.
        random_start: start from a uniform random point of the ball.
        seed: int or Generator for the random start.
        y, loss, targeted, input_range: as in :func:`fgsm`.

    Returns:
        float32 adversarial inputs shaped like ``x``; ``|x_adv - x| <= eps`` in the norm.
    """
    where = "pgd"
    x, labels, batch_size = _setup(model, x, y, eps, input_range, batch_size, where)
    norm = "inf" if norm in ("inf", np.inf, float("inf")) else norm
    if norm not in NORMS:
        raise ValueError(f"{where}: norm must be 'inf' or 2. Received: norm={norm!r}")
    steps = check_positive_int(steps, "steps", where)
    alpha = 2.5 * eps / steps if step_size is None else step_size
    if not isinstance(alpha, (int, float, np.floating)) or alpha < 0:
        raise ValueError(f"{where}: step_size must be a number >= 0. Received: {step_size!r}")
    rng = make_rng(seed)
    out = np.empty_like(x)
    for start in range(0, len(x), batch_size):
        rows = slice(start, start + batch_size)
        out[rows] = _pgd_batch(
            model,
            x[rows],
            labels[rows],
            eps,
            alpha,
            norm,
            steps,
            random_start,
            rng,
            loss,
            targeted,
            input_range,
        )
    return out


def _pgd_batch(
    model, x0, labels, eps, alpha, norm, steps, random_start, rng, loss, targeted, input_range
):
    eps, alpha = floatx_scalar(eps), floatx_scalar(alpha)
    x = x0.copy()
    if random_start and eps > 0:
        x += _ball_sample(rng, x0.shape, eps, norm)
        _clip(x, input_range)
    sign = -1 if targeted else 1
    for _ in range(steps):
        g = loss_gradient(model, x, labels, loss, len(x)) * sign
        if norm == "inf":
            x += alpha * np.sign(g).astype(floatx())
            np.clip(x, x0 - eps, x0 + eps, out=x)
        else:
            x += alpha * g / np.maximum(_norms(g), 1e-12)
            delta = x - x0
            x = x0 + delta * np.minimum(1, eps / np.maximum(_norms(delta), 1e-12))
        _clip(x, input_range)
    return x


def _norms(a):
    """Per-sample L2 norms, shaped to broadcast against ``a``."""
    n = np.sqrt(np.square(a).reshape(len(a), -1).sum(axis=1))
    return n.reshape(-1, *(1,) * (a.ndim - 1)).astype(floatx())


def _ball_sample(rng, shape, eps, norm):
    """Uniform samples from the L-inf or L2 ball of radius ``eps``, one per row."""
    if norm == "inf":
        return rng.uniform(-eps, eps, size=shape).astype(floatx())
    d = int(np.prod(shape[1:]))
    direction = rng.standard_normal(shape).astype(floatx())
    radius = eps * rng.random(shape[0]) ** (1.0 / d)
    return (direction / _norms(direction) * radius.reshape(_norms(direction).shape)).astype(
        floatx()
    )


def gaussian_noise(x, sigma, *, seed=None, input_range=(0.0, 1.0)):
    """``x`` plus independent Gaussian noise of standard deviation ``sigma``, clipped."""
    x = np.asarray(x, dtype=floatx())
    if not isinstance(sigma, (int, float, np.floating)) or sigma < 0:
        raise ValueError(f"gaussian_noise: sigma must be a number >= 0. Received: sigma={sigma!r}")
    noisy = x + make_rng(seed).standard_normal(x.shape).astype(floatx()) * floatx_scalar(sigma)
    return _clip(noisy, input_range)

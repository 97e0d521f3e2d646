"""Random augmentation layers with Keras 3 names and arguments.

They act only with ``training=True`` (inside ``fit``) and are the identity otherwise.
Image layers take channels-last batches ``(N, H, W, C)`` and draw one transformation
per image from their own generator (``seed``), vectorised over the batch. They have
no weights and pass no gradient back (they sit at the model's input); GaussianNoise,
which is additive, does pass the gradient through unchanged.

Unlike Keras, calling such a layer by hand defaults to ``training=False``, as every
hpnn layer does: pass ``training=True`` to augment outside ``fit``.

>>> model = Sequential([Input((28, 28, 1)), RandomRotation(0.05), RandomZoom(0.1), ...])
"""

from __future__ import annotations

import numpy as np

from hpnn.backend import get_xp
from hpnn.engine import step_context
from hpnn.engine.tensor import Tensor
from hpnn.layers import image_transform as it
from hpnn.layers.base import Layer
from hpnn.random import make_rng


def _range(owner: str, name: str, factor, symmetric=True, bound=None, floor=None) -> tuple:
    """Keras' factor rule: a number ``f`` means ``(-f, f)``; a pair is ``(lower, upper)``."""
    try:
        if isinstance(factor, (tuple, list)):
            lower, upper = (float(v) for v in factor)
        else:
            lower, upper = (-float(factor) if symmetric else float(factor)), float(factor)
    except (TypeError, ValueError):
        lower, upper = 1.0, 0.0  # reported below
    if lower > upper:
        raise ValueError(
            f"{owner}: {name} must be a number >= 0 or a pair (lower, upper) with lower <= "
            f"upper. Received: {name}={factor!r}"
        )
    if bound is not None and max(abs(lower), abs(upper)) > bound:
        raise ValueError(
            f"{owner}: {name} must have values in [-{bound}, {bound}]. Received: {name}={factor!r}"
        )
    if floor is not None and lower < floor:
        raise ValueError(f"{owner}: {name} must be > {floor}. Received: {name}={factor!r}")
    return lower, upper


def _choice(owner: str, name: str, value, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{owner}: {name} must be one of {allowed}. Received: {name}={value!r}")
    return value


class _Augmentation(Layer):
    """Identity unless training; a per-layer generator; outputs without gradient."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self._rng = make_rng(seed)

    def call(self, x, training=False):
        if not training:
            return x
        if x.requires_grad:
            raise ValueError(
                f"{self._where()}: augmentation layers pass no gradient, so they must come "
                "before any layer with weights (at the model's input). Received: an input "
                "that requires a gradient"
            )
        data = x.data
        if data.dtype.kind != "f":
            data = data.astype(self.dtype)
        return Tensor(self._augment(data))

    def _uniform(self, lower, upper, n, xp):
        draw = step_context.batch_random(self._rng, lambda r, m: r.uniform(lower, upper, m), n)
        return xp.asarray(draw)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class _Image(_Augmentation):
    input_ndim = 4
    rank_hint = "(batch, height, width, channels)"

    def __init__(self, fill_mode, interpolation, fill_value, seed, **kwargs):
        super().__init__(seed=seed, **kwargs)
        owner = type(self).__name__
        self.fill_mode = _choice(owner, "fill_mode", fill_mode, it.FILL_MODES)
        self.interpolation = _choice(owner, "interpolation", interpolation, it.INTERPOLATIONS)
        self.fill_value = float(fill_value)

    def _resample(self, images, maps):
        return it.affine_transform(
            images, maps, self.interpolation, self.fill_mode, self.fill_value
        ).astype(images.dtype, copy=False)

    def get_config(self):
        return {
            **super().get_config(),
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
        }


class RandomFlip(_Augmentation):
    """Flip each image left-right and/or up-down, each with probability 1/2.

    Args:
        mode: ``"horizontal"`` (left-right), ``"vertical"`` (up-down) or
            ``"horizontal_and_vertical"`` (both, drawn independently).
        seed: int or Generator.
    """

    input_ndim = 4
    rank_hint = "(batch, height, width, channels)"
    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode="horizontal_and_vertical", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.mode = _choice("RandomFlip", "mode", mode, self.MODES)

    def _augment(self, x):
        xp = get_xp(x)
        n = len(x)
        if self.mode != "vertical":
            flip = xp.asarray(self._coin(n))[:, None, None, None]
            x = xp.where(flip, x[:, :, ::-1], x)
        if self.mode != "horizontal":
            flip = xp.asarray(self._coin(n))[:, None, None, None]
            x = xp.where(flip, x[:, ::-1], x)
        return x

    def _coin(self, n):
        return step_context.batch_random(self._rng, lambda r, m: r.random(m) < 0.5, n)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


class RandomTranslation(_Image):
    """Shift each image by a random fraction of its height and width.

    Args:
        height_factor: ``f`` or ``(lower, upper)``, fractions of the height in [-1, 1];
            ``f`` means ``(-f, f)``. Positive moves the content down.
        width_factor: the same for the width; positive moves the content right.
        fill_mode: ``"reflect"``, ``"wrap"``, ``"nearest"`` or ``"constant"``.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        fill_value: the value outside the image with ``fill_mode="constant"``.
    """

    def __init__(
        self,
        height_factor,
        width_factor,
        fill_mode="reflect",
        interpolation="bilinear",
        seed=None,
        fill_value=0.0,
        **kwargs,
    ):
        super().__init__(fill_mode, interpolation, fill_value, seed, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._h = _range("RandomTranslation", "height_factor", height_factor, bound=1.0)
        self._w = _range("RandomTranslation", "width_factor", width_factor, bound=1.0)

    def _augment(self, x):
        xp = get_xp(x)
        n, h, w, _ = x.shape
        dy = self._uniform(*self._h, n, xp) * h
        dx = self._uniform(*self._w, n, xp) * w
        return self._resample(x, it.translation_maps(dx, dy))

    def get_config(self):
        return {
            **super().get_config(),
            "height_factor": self.height_factor,
            "width_factor": self.width_factor,
        }


class RandomRotation(_Image):
    """Rotate each image about its center by a random fraction of a full turn.

    Args:
        factor: ``f`` or ``(lower, upper)`` as fractions of 2*pi; ``f`` means ``(-f, f)``.
            Positive rotates counter-clockwise: ``(0.25, 0.25)`` is ``np.rot90``.
        fill_mode, interpolation, fill_value: as in :class:`RandomTranslation`.
    """

    def __init__(
        self,
        factor,
        fill_mode="reflect",
        interpolation="bilinear",
        seed=None,
        fill_value=0.0,
        **kwargs,
    ):
        super().__init__(fill_mode, interpolation, fill_value, seed, **kwargs)
        self.factor = factor
        self._range = _range("RandomRotation", "factor", factor)

    def _augment(self, x):
        xp = get_xp(x)
        n, h, w, _ = x.shape
        lo, hi = self._range
        angle = self._uniform(lo * it.TWO_PI, hi * it.TWO_PI, n, xp)
        return self._resample(x, it.rotation_maps(angle, h, w))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class RandomZoom(_Image):
    """Zoom each image in or out about its center by a random fraction.

    Args:
        height_factor: ``f`` or ``(lower, upper)``, fractions > -1; ``f`` means ``(-f, f)``.
            The vertical zoom is ``1 + u``, ``u`` drawn from the range: positive zooms
            out (the image looks smaller), negative zooms in.
        width_factor: the same horizontally; None keeps the aspect ratio (one draw).
        fill_mode, interpolation, fill_value: as in :class:`RandomTranslation`.
    """

    def __init__(
        self,
        height_factor,
        width_factor=None,
        fill_mode="reflect",
        interpolation="bilinear",
        seed=None,
        fill_value=0.0,
        **kwargs,
    ):
        super().__init__(fill_mode, interpolation, fill_value, seed, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._h = _range("RandomZoom", "height_factor", height_factor, floor=-1.0)
        self._w = (
            None
            if width_factor is None
            else _range("RandomZoom", "width_factor", width_factor, floor=-1.0)
        )

    def _augment(self, x):
        xp = get_xp(x)
        n, h, w, _ = x.shape
        zy = 1.0 + self._uniform(*self._h, n, xp)
        zx = zy if self._w is None else 1.0 + self._uniform(*self._w, n, xp)
        return self._resample(x, it.zoom_maps(zx, zy, h, w))

    def get_config(self):
        return {
            **super().get_config(),
            "height_factor": self.height_factor,
            "width_factor": self.width_factor,
        }


class RandomContrast(_Augmentation):
    """Scale each image's deviation from its per-channel mean by a random factor.

    ``out = clip((x - mean) * f + mean, *value_range)`` with ``mean`` over height and
    width per image and channel, and ``f`` drawn per image from
    ``[1 - lower, 1 + upper]``.

    Args:
        factor: ``f`` (``lower = upper = f``) or ``(lower, upper)``, with
            ``0 <= lower <= 1`` and ``upper >= 0``.
        value_range: the range the output is clipped to (Keras' default ``(0, 255)``).
    """

    input_ndim = 4
    rank_hint = "(batch, height, width, channels)"

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if isinstance(factor, (tuple, list)):
            lower, upper = (float(v) for v in factor)
        else:
            lower = upper = float(factor)
        if lower < 0 or upper < 0 or lower > 1:
            raise ValueError(
                "RandomContrast: factor cannot have negative values or a lower bound greater "
                f"than 1. Received: factor={factor!r}"
            )
        self.factor, self.lower, self.upper = factor, lower, upper
        self.value_range = tuple(value_range)

    def _augment(self, x):
        xp = get_xp(x)
        f = self._uniform(1.0 - self.lower, 1.0 + self.upper, len(x), xp).astype(x.dtype)
        mean = x.mean(axis=(1, 2), keepdims=True, dtype=x.dtype)
        out = (x - mean) * f[:, None, None, None] + mean
        return xp.clip(out, *(x.dtype.type(v) for v in self.value_range))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}


class GaussianNoise(_Augmentation):
    """Add zero-mean Gaussian noise of standard deviation ``stddev`` (training only).

    Any input rank. The gradient passes through unchanged, so unlike the image layers it
    may sit anywhere in a model (as a regulariser).
    """

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not isinstance(stddev, (int, float)) or stddev < 0:
            raise ValueError(f"GaussianNoise: stddev must be >= 0. Received: stddev={stddev!r}")
        self.stddev = float(stddev)

    def call(self, x, training=False):
        if not training or self.stddev == 0:
            return x
        noise = _normal(self._rng, x.shape) * np.float32(self.stddev)
        xp = get_xp(x.data)
        return x + Tensor(xp.asarray(noise, dtype=x.dtype if x.dtype.kind == "f" else self.dtype))

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}


def _normal(rng, shape):
    """Standard normal float32 noise of ``shape``, drawn for the whole batch."""
    rest = tuple(shape[1:])

    def draw(r, n):
        return r.standard_normal((n, *rest), dtype=np.float32)

    return step_context.batch_random(rng, draw, shape[0])


class GaussianDropout(Layer):
    """Multiply by noise of mean 1 and standard deviation ``sqrt(rate / (1 - rate))``
    (training only); the gradient passes through scaled by the same noise."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"{self._where()}: rate must be in [0, 1). Received: rate={rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self._rng = make_rng(seed)

    def call(self, x, training=False):
        if not training or self.rate == 0:
            return x
        std = np.float32(np.sqrt(self.rate / (1.0 - self.rate)))
        noise = _normal(self._rng, x.shape) * std + np.float32(1.0)
        xp = get_xp(x.data)
        return x * xp.asarray(noise, dtype=x.dtype if x.dtype.kind == "f" else self.dtype)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


__all__ = [
    "GaussianDropout",
    "GaussianNoise",
    "RandomContrast",
    "RandomFlip",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
]

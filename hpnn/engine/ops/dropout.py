"""Inverted dropout: zero a fraction ``rate`` of the inputs and scale the rest."""

from __future__ import annotations

from hpnn.engine import step_context
from hpnn.engine.tensor import Function, Tensor


class Dropout(Function):
    def __init__(self, rate: float, rng, noise_shape=None):
        self.rate, self.rng, self.noise_shape = rate, rng, noise_shape

    def forward(self, x):
        keep = 1.0 - self.rate
        shape = x.shape if self.noise_shape is None else self.noise_shape
        dtype = "float64" if x.dtype == "float64" else "float32"
        # Drawn on the host generator so runs are reproducible on every backend, and for
        # the whole batch when a mask row is a sample's (a split step takes its rows).
        if shape[0] == 1 and x.shape[0] != 1:
            u = self.rng.random(shape, dtype=dtype)  # one mask row for every sample
        else:
            rest = tuple(shape[1:])
            u = step_context.batch_random(
                self.rng, lambda rng, n: rng.random((n, *rest), dtype=dtype), shape[0]
            )
        mask = (u < keep).astype(x.dtype)
        mask *= x.dtype.type(1.0 / keep)
        if type(mask) is not type(x):  # pragma: no cover - GPU arrays
            from hpnn.backend import get_xp

            mask = get_xp(x).asarray(mask)
        self.mask = mask
        return x * mask

    def backward(self, gy):
        return gy * self.mask


def dropout(x, rate: float, rng, noise_shape=None) -> Tensor:
    """Zero each element with probability ``rate`` and scale survivors by ``1/(1-rate)``.

    Args:
        x: any tensor.
        rate: fraction to drop, in ``[0, 1)``.
        rng: a ``numpy.random.Generator`` (the layer's own).
        noise_shape: the mask's shape, broadcast against ``x`` (a 1 drops or keeps a
            whole axis together: ``(N, 1, 1, C)`` drops whole feature maps).
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1). Received: rate={rate}")
    if rate == 0.0:
        return x
    return Dropout(rate, rng, None if noise_shape is None else tuple(noise_shape))(x)

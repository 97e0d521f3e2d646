"""Compiled Adam step: one pass over the weights instead of twelve NumPy passes.

The arithmetic is the NumPy code's, operation for operation and in float32, so both
give the same numbers: ``m = (m - g) * b1 + g``, ``v = v + (g * g - v) * (1 - b2)``,
``w = w - m / (sqrt(v) + eps) * lr_t``.
"""

from __future__ import annotations

import math

from numba import njit


@njit(boundscheck=False, error_model="numpy", cache=True, nogil=True)
def adam_update(w, g, m, v, b1, one_minus_b2, eps, lr_t):
    """In place on 1-D float32 arrays; the scalars are float32."""
    for k in range(w.shape[0]):
        gk = g[k]
        mk = (m[k] - gk) * b1 + gk
        vk = v[k] + (gk * gk - v[k]) * one_minus_b2
        m[k] = mk
        v[k] = vk
        w[k] = w[k] - mk / (math.sqrt(vk) + eps) * lr_t


@njit(boundscheck=False, error_model="numpy", cache=True, nogil=True)
def adam_update_sum(w, g1, g2, m, v, b1, one_minus_b2, eps, lr_t):
    """``adam_update`` with the gradient ``g1 + g2`` (two ranks' parts, added in that
    order, in float32): no array of the sum is written and read back."""
    for k in range(w.shape[0]):
        gk = g1[k] + g2[k]
        mk = (m[k] - gk) * b1 + gk
        vk = v[k] + (gk * gk - v[k]) * one_minus_b2
        m[k] = mk
        v[k] = vk
        w[k] = w[k] - mk / (math.sqrt(vk) + eps) * lr_t

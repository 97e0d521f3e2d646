"""Compiled elementwise passes that NumPy makes in two: ReLU forward and backward.

``np.maximum(x, 0)`` runs NumPy's NaN-aware maximum loop (about twice a copy's time),
and the gradient ``gy * (y > 0)`` writes a boolean mask, then reads it back. Here each
is one pass over contiguous memory (the op passes 1-D views: one compiled signature
for every shape), giving exactly NumPy's numbers (NaN stays NaN,
``-0.0`` becomes ``0.0``, and ``gy * 0`` keeps an inf or NaN of ``gy`` a NaN).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_jit = njit(boundscheck=False, error_model="numpy", cache=True, nogil=True)
_ZERO, _ONE = np.float32(0.0), np.float32(1.0)


@_jit
def relu_forward(x, y):
    """``y = max(x, 0)`` elementwise over 1-D arrays, as ``np.maximum`` (NaN stays)."""
    for i in range(x.shape[0]):
        v = x[i]
        y[i] = v if (v > _ZERO or v != v) else _ZERO


@_jit
def relu_backward(y, gy, gx):
    """``gx = gy * (y > 0)`` elementwise over 1-D arrays."""
    for i in range(y.shape[0]):
        gx[i] = gy[i] * (_ONE if y[i] > _ZERO else _ZERO)

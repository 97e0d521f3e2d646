"""DEC's soft assignment (an op with its own backward, and the layer that holds the
centres) and its target distribution.

``q_ij = (1 + |z_i - mu_j|^2 / alpha)^(-(alpha + 1) / 2)``, normalised over j: the
Student's t kernel between embedded point i and centre j (Xie, Girshick, Farhadi 2016).
"""

from __future__ import annotations

import numpy as np

from hpnn.backend import get_xp
from hpnn.engine.tensor import Function, Tensor
from hpnn.layers.base import Layer


class SoftAssignment(Function):
    """``q = softassign(z, centers)``: ``z`` ``(N, d)``, ``centers`` ``(k, d)`` -> ``(N, k)``."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = float(alpha)

    def forward(self, z, centers):
        xp = get_xp(z)
        dt = z.dtype.type
        d = (z * z).sum(axis=1)[:, None] + (centers * centers).sum(axis=1)[None, :]
        d -= dt(2) * (z @ centers.T)
        s = xp.maximum(d, dt(0)) / dt(self.alpha) + dt(1)
        # in the log domain, shifted by the row's max: far points underflow in float32
        log_u = xp.log(s) * dt(-(self.alpha + 1) / 2)
        log_u -= log_u.max(axis=1, keepdims=True)
        q = xp.exp(log_u)
        q /= q.sum(axis=1, keepdims=True)
        self.z, self.centers, self.s, self.q = z, centers, s, q
        return q

    def backward(self, gy):
        z, centers, s, q = self.z, self.centers, self.s, self.q
        dt = q.dtype.type
        # through the normalisation (as softmax), then du/ds = -(alpha+1)/2 * u / s and
        # ds/dd = 1/alpha: g_d is the gradient with respect to the squared distances
        g_d = (gy - (gy * q).sum(axis=1, keepdims=True)) * q / s
        g_d *= dt(-(self.alpha + 1) / (2 * self.alpha))
        gz = gc = None
        if self.needs_input_grad[0]:  # d|z_i - c_j|^2/dz_i = 2 (z_i - c_j)
            gz = dt(2) * (g_d.sum(axis=1, keepdims=True) * z - g_d @ centers)
        if self.needs_input_grad[1]:
            gc = dt(2) * (g_d.sum(axis=0)[:, None] * centers - g_d.T @ z)
        return gz, gc


def soft_assignment(z, centers, alpha: float = 1.0) -> Tensor:
    """DEC's Student's t soft assignment of ``z`` ``(N, d)`` to ``centers`` ``(k, d)``:
    ``(N, k)``, rows summing to 1."""
    if not alpha > 0:
        raise ValueError(f"soft_assignment: alpha must be > 0. Received: alpha={alpha!r}")
    return SoftAssignment(alpha)(z, centers)


def target_distribution(q) -> np.ndarray:
    """DEC's sharpened targets ``p_ij = (q_ij^2 / f_j) / sum_l (q_il^2 / f_l)`` with the
    soft cluster frequencies ``f_j = sum_i q_ij``; ``q`` ``(N, k)``."""
    q = np.asarray(q)
    if q.ndim != 2:
        raise ValueError(
            f"target_distribution: expected q of rank 2 (n_samples, n_clusters). "
            f"Received: shape={q.shape}"
        )
    weight = q**2 / q.sum(axis=0)
    return weight / weight.sum(axis=1, keepdims=True)


class ClusteringLayer(Layer):
    """The soft assignment of its input ``(batch, d)`` to ``n_clusters`` trainable centres
    (weight ``clusters``, shape ``(n_clusters, d)``); outputs ``(batch, n_clusters)``."""

    input_ndim = 2
    rank_hint = "(batch, features)"

    def __init__(self, n_clusters, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.n_clusters = self._positive_int("n_clusters", n_clusters)
        if not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"{self._where()}: alpha must be > 0. Received: alpha={alpha!r}")
        self.alpha = float(alpha)

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim is None:
            raise ValueError(
                f"{self._where()}: the feature axis must be known. Received: shape={input_shape}"
            )
        self._fixed_dims = {1: dim}
        self.clusters = self.add_weight((self.n_clusters, dim), "glorot_uniform", "clusters")
        self.built = True

    def call(self, x, training=False):
        return soft_assignment(x, self.clusters, self.alpha)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_clusters)

    def get_config(self):
        return {**super().get_config(), "n_clusters": self.n_clusters, "alpha": self.alpha}

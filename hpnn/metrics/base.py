"""The metric protocol: a running, weighted mean of a per-sample value, with its state
as one vector (so it can be summed over the parts of a batch and over MPI ranks)."""

from __future__ import annotations

import numpy as np

from hpnn.backend import to_numpy


class Metric:
    """A weighted running mean of a per-sample value ``fn(y_true, y_pred)``."""

    def __init__(self, name=None, dtype=None):
        self.name = name or type(self).__name__.lower()
        self.reset_state()

    def reset_state(self) -> None:
        self.total = 0.0
        self.count = 0.0

    def values(self, y_true, y_pred) -> np.ndarray:
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        v = np.asarray(self.values(to_numpy(y_true), to_numpy(y_pred)), dtype=np.float64)
        if sample_weight is not None:
            w = np.broadcast_to(np.asarray(sample_weight, np.float64), v.shape)
            self.total += float((v * w).sum())
            self.count += float(w.sum())
        else:
            self.total += float(v.sum())
            self.count += v.size

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0

    def state_vector(self) -> np.ndarray:
        """The running sums as one float64 vector: what data-parallel training adds up
        over the ranks (a running total and a count, for most metrics)."""
        return np.array([self.total, self.count], np.float64)

    def set_state_vector(self, vector) -> None:
        self.total, self.count = float(vector[0]), float(vector[1])

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        self.reset_state()
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()


class Mean(Metric):
    """Mean of the values given to ``update_state(values, sample_weight)``."""

    def update_state(self, values, sample_weight=None) -> None:
        v = np.asarray(to_numpy(values), np.float64)
        w = np.ones_like(v) if sample_weight is None else np.broadcast_to(sample_weight, v.shape)
        self.total += float((v * w).sum())
        self.count += float(np.sum(w))


def _labels(y_true, y_pred):
    """Integer labels from sparse (N,) / (N, 1) targets."""
    y = np.asarray(y_true)
    if y.ndim == y_pred.ndim and y.shape[-1] == 1:
        y = y[..., 0]
    return y

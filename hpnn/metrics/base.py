"""The metric protocol: a running, weighted mean of a per-sample value, with its state
as one vector (so it can be summed over the parts of a batch and over MPI ranks)."""

from __future__ import annotations

import numpy as np

from hpnn.backend import floatx, to_numpy
from hpnn.engine.tensor import Tensor, no_grad


def _same_rank(a: np.ndarray, b: np.ndarray, expand_rank_1=True):
    """``a`` and ``b`` with a trailing axis of 1 dropped (or added, to a 1-D one) where
    their ranks differ by one: Keras' ``squeeze_or_expand_to_same_rank``."""
    if a.ndim == b.ndim + 1 and a.shape[-1] == 1:
        if b.ndim == 1 and expand_rank_1:
            b = b[:, None]
        else:
            a = a[..., 0]
    elif b.ndim == a.ndim + 1 and b.shape[-1] == 1:
        if a.ndim == 1 and expand_rank_1:
            a = a[:, None]
        else:
            b = b[..., 0]
    return a, b


def samplewise(values, sample_weight):
    """Per-sample weighted values and per-sample weights, by Keras' rule (its
    ``reduce_to_samplewise_values``): values are averaged over the axes the weights lack,
    multiplied by the weights, and averaged over their remaining non-batch axes; so are
    the weights. Returns ``(values, weights or None)``, both at most 1-D."""
    v = np.asarray(values, np.float64)
    w = None
    if sample_weight is not None:
        w = np.asarray(to_numpy(sample_weight), np.float64)
        v, w = _same_rank(v, w)
        if v.ndim > w.ndim:
            v = v.mean(axis=tuple(range(w.ndim, v.ndim)))
        w = np.broadcast_to(w, v.shape)
        v = v * w
        if w.ndim > 1:
            w = w.mean(axis=tuple(range(1, w.ndim)))
    if v.ndim > 1:
        v = v.mean(axis=tuple(range(1, v.ndim)))
    return v, w


class Metric:
    """A weighted running mean of a per-sample value ``values(y_true, y_pred)``.

    Subclasses with other state keep the protocol the placements rely on: the state is
    ``state_vector()`` (float64 sums that add over the parts of a batch and over MPI
    ranks) and ``set_state_vector`` takes such a sum back.
    """

    def __init__(self, name=None, dtype=None):
        self.name = name or type(self).__name__.lower()
        self.reset_state()

    def reset_state(self) -> None:
        self.total = 0.0
        self.count = 0.0

    def values(self, y_true, y_pred) -> np.ndarray:
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        values = self.values(to_numpy(y_true), to_numpy(y_pred))
        self._add(values, sample_weight)

    def _add(self, values, sample_weight) -> None:
        """Add per-sample values (any shape, batch first) with their weights."""
        v, w = samplewise(values, sample_weight)
        self.total += float(v.sum())
        self.count += float(w.sum()) if w is not None else (v.shape[0] if v.ndim else 1)

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0

    def state_vector(self) -> np.ndarray:
        """The running sums as one float64 vector: what data-parallel training adds up
        over the ranks (a running total and a count, for most metrics)."""
        return np.array([self.total, self.count], np.float64)

    def set_state_vector(self, vector) -> None:
        self.total, self.count = float(vector[0]), float(vector[1])

    def __call__(self, *args, **kwargs):
        """The result on these arguments alone: ``reset_state``, ``update_state``,
        ``result`` (Keras' ``__call__`` does not reset; hpnn's always has)."""
        self.reset_state()
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


class Mean(Metric):
    """Mean of the values given to ``update_state(values, sample_weight)``."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name)

    def update_state(self, values, sample_weight=None) -> None:
        self._add(to_numpy(values), sample_weight)


class Sum(Metric):
    """The (weighted) sum of the values given to ``update_state(values, sample_weight)``,
    as ``keras.metrics.Sum``: ``[1, 3, 5, 7]`` with weights ``[1, 1, 0, 0]`` gives 4."""

    def __init__(self, name="sum", dtype=None):
        super().__init__(name)

    def reset_state(self) -> None:
        self.total = 0.0

    def update_state(self, values, sample_weight=None) -> None:
        v = np.asarray(to_numpy(values), np.float64)
        if sample_weight is not None:
            w = np.asarray(to_numpy(sample_weight), np.float64)
            v, w = _same_rank(v, w)
            if v.ndim > w.ndim:
                v = v.sum(axis=tuple(range(w.ndim, v.ndim)))
            v = v * w
        self.total += float(v.sum())

    def result(self) -> float:
        return self.total

    def state_vector(self) -> np.ndarray:
        return np.array([self.total], np.float64)

    def set_state_vector(self, vector) -> None:
        self.total = float(vector[0])


def as_values(out) -> np.ndarray:
    """A metric function's result (an hpnn Tensor or an array) as a NumPy array."""
    return to_numpy(out.data if isinstance(out, Tensor) else out)


class MeanMetricWrapper(Metric):
    """The running weighted mean of ``fn(y_true, y_pred, **kwargs)``, a per-sample value
    (``keras.metrics.MeanMetricWrapper``). ``fn`` may be built from hpnn's ops (a loss
    function): it runs without a graph."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(
                f"MeanMetricWrapper: fn must be a function fn(y_true, y_pred). Received: fn={fn!r}"
            )
        self._fn, self._fn_kwargs = fn, kwargs
        super().__init__(name or getattr(fn, "__name__", None) or "mean_metric_wrapper")

    def values(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        if y_pred.dtype.kind not in "fc":  # (integer predictions: computed as floats)
            y_pred = y_pred.astype(floatx())
        with no_grad():
            return as_values(self._fn(y_true, y_pred, **self._fn_kwargs))

    def get_config(self) -> dict:
        from hpnn.saving import serialize_keras_object

        return {"name": self.name, "fn": serialize_keras_object(self._fn), **self._fn_kwargs}

    @classmethod
    def from_config(cls, config: dict):
        from hpnn.saving import deserialize_keras_object

        config = dict(config)
        if "fn" in config:
            config["fn"] = deserialize_keras_object(config["fn"])
        return cls(**config)


def _labels(y_true, y_pred):
    """Integer labels from sparse (N,) / (N, 1) targets."""
    y = np.asarray(y_true)
    if y.ndim == y_pred.ndim and y.shape[-1] == 1:
        y = y[..., 0]
    return y

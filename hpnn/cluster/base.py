"""scikit-learn's estimator conventions, without importing scikit-learn.

``__init__`` only stores its arguments; ``get_params``/``set_params`` read and write
them by the names of ``__init__``'s parameters, so ``sklearn.base.clone`` and grid
searches work; fitted state ends in ``_``.
"""

from __future__ import annotations

import inspect
import numbers

import numpy as np


class Estimator:
    """Base of the clustering estimators: parameters, ``fit_predict``, checks."""

    @classmethod
    def _param_names(cls) -> list[str]:
        params = inspect.signature(cls.__init__).parameters.values()
        return sorted(
            p.name for p in params if p.name != "self" and p.kind == p.POSITIONAL_OR_KEYWORD
        )

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's arguments by name (with ``deep``, also ``name__key`` for
        arguments that have parameters of their own)."""
        out = {}
        for name in self._param_names():
            value = getattr(self, name)
            out[name] = value
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update({f"{name}__{k}": v for k, v in value.get_params().items()})
        return out

    def set_params(self, **params):
        """Set constructor arguments by name (``name__key`` for a nested one); returns self."""
        valid = self._param_names()
        for key, value in params.items():
            name, _, rest = key.partition("__")
            if name not in valid:
                raise ValueError(
                    f"{type(self).__name__}.set_params: unknown parameter {name!r}; expected "
                    f"one of {valid}. Received: {key}={value!r}"
                )
            if rest:
                getattr(self, name).set_params(**{rest: value})
            else:
                setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        changed = [
            f"{k}={v!r}" for k, v in self.get_params(deep=False).items() if _differs(v, defaults[k])
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    def fit_predict(self, x) -> np.ndarray:
        """Fit on ``x`` and return the cluster of each sample (``labels_``)."""
        return self.fit(x).labels_

    def _check_fitted(self, what: str) -> None:
        if not hasattr(self, "cluster_centers_"):
            raise RuntimeError(
                f"{type(self).__name__}.{what}(): this estimator is not fitted yet; call "
                "fit(x) first."
            )

    def _check_n_clusters(self, n_samples: int) -> int:
        k = self.n_clusters
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
            raise ValueError(
                f"{type(self).__name__}: n_clusters must be a positive int. "
                f"Received: n_clusters={k!r}"
            )
        if k > n_samples:
            raise ValueError(
                f"{type(self).__name__}: n_clusters must be at most the number of samples "
                f"({n_samples}). Received: n_clusters={k}"
            )
        return int(k)


def _differs(value, default) -> bool:
    try:
        return bool(value != default)
    except (TypeError, ValueError):  # (arrays, models)
        return value is not default


def check_array(x, owner: str, ndim: int | None = None, min_ndim: int = 2) -> np.ndarray:
    """``x`` as a float array (float32 stays float32, other types become float64), or a
    ValueError naming ``owner``: wrong rank, no samples, non-numeric or non-finite."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"{owner}: expected a numeric array of samples. Received: dtype={arr.dtype}"
        )
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(
            f"{owner}: expected x of rank {ndim} (n_samples, n_features). "
            f"Received: shape={arr.shape}"
        )
    if arr.ndim < min_ndim:
        raise ValueError(
            f"{owner}: expected x of rank >= {min_ndim} (n_samples, ...). "
            f"Received: shape={arr.shape}"
        )
    if len(arr) == 0:
        raise ValueError(f"{owner}: expected at least one sample. Received: shape={arr.shape}")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{owner}: x must be finite. Received: {bad} NaN or infinite value(s)")
    return arr


def check_seed(seed, owner: str):
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0:
        return int(seed)
    raise ValueError(
        f"{owner}: seed must be None, a non-negative int or a numpy Generator. "
        f"Received: seed={seed!r}"
    )

"""scikit-learn estimators around hpnn models, as ``keras.wrappers`` (Keras 3).

``SKLearnClassifier`` and ``SKLearnRegressor`` work with ``GridSearchCV``,
``cross_val_score``, pipelines and ``sklearn.base.clone``:

>>> def build(X, y, hidden=16):
...     model = Sequential([Input((X.shape[1],)), Dense(hidden, activation="relu"),
...                         Dense(y.shape[1], activation="softmax")])  # y: one-hot
...     model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
...     return model
>>> clf = SKLearnClassifier(model=build, fit_kwargs={"epochs": 20})
>>> GridSearchCV(clf, {"model_kwargs": [{"hidden": 8}, {"hidden": 32}]}).fit(X, y)

scikit-learn is an optional extra: it is imported when a class is first used
(``pip install scikit-learn``), never by ``import hpnn``.
"""

from __future__ import annotations

import copy
import inspect

import numpy as np

_NAMES = ("SKLearnClassifier", "SKLearnRegressor")
_classes: dict = {}


def _require_sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "hpnn.wrappers needs scikit-learn, an optional extra: pip install scikit-learn "
            f"(or pip install 'hpnn[test]'). Received: ImportError({e})"
        ) from e


def __getattr__(name):
    # PEP 562: the classes derive from scikit-learn's, so they are made on first use.
    if name in _NAMES:
        if not _classes:
            _classes.update(_make_classes())
        return _classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_NAMES])


def _call_builder(fn, X, y, kwargs):
    """``fn(X=X, y=y, **kwargs)`` as Keras calls it; X and y only where ``fn`` takes them."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn(X=X, y=y, **kwargs)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    data = {k: v for k, v in (("X", X), ("y", y)) if takes_any or k in params}
    return fn(**data, **kwargs)


def _make_classes() -> dict:
    _require_sklearn()
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils.validation import check_array, check_is_fitted

    from hpnn.models.model import Model

    class _SKLBase(BaseEstimator):
        """Shared part: building, fitting and predicting with an hpnn model."""

        def __init__(self, model, warm_start=False, model_kwargs=None, fit_kwargs=None):
            self.model = model
            self.warm_start = warm_start
            self.model_kwargs = model_kwargs
            self.fit_kwargs = fit_kwargs

        def set_params(self, **params):
            """Set parameters; ``model__<name>`` and ``fit__<name>`` set one entry of
            ``model_kwargs`` / ``fit_kwargs`` (handy in a ``GridSearchCV`` grid)."""
            for prefix, attr in (("model__", "model_kwargs"), ("fit__", "fit_kwargs")):
                routed = {
                    k[len(prefix) :]: params.pop(k) for k in list(params) if k.startswith(prefix)
                }
                if routed:
                    setattr(self, attr, {**(getattr(self, attr) or {}), **routed})
            return super().set_params(**params)

        def _get_model(self, X, y):
            if self.warm_start and hasattr(self, "model_"):
                return self.model_
            if isinstance(self.model, Model):
                model = copy.deepcopy(self.model)  # each fit starts from the given model
            elif callable(self.model):
                model = _call_builder(self.model, X, y, dict(self.model_kwargs or {}))
            else:
                raise TypeError(
                    f"{type(self).__name__}: model must be an hpnn Model or a callable "
                    f"returning one. Received: model={self.model!r}"
                )
            if not getattr(model, "compiled", False):
                raise RuntimeError(
                    f"{type(self).__name__}: the model must be compiled "
                    f"(model.compile(optimizer=..., loss=...)). Received: {model!r}"
                )
            return model

        def fit(self, X, y, **kwargs):
            """Build (or reuse, with ``warm_start``) the model and train it.

            Args:
                X: ``(n_samples, ...)`` inputs.
                y: ``(n_samples,)`` or ``(n_samples, n_outputs)`` targets.
                **kwargs: passed to ``Model.fit``, over ``fit_kwargs``; ``verbose``
                    defaults to 0.
            """
            X = check_array(X, allow_nd=True, dtype="numeric")
            self.n_features_in_ = X.shape[1] if X.ndim == 2 else None
            encoded = self._encode_target(np.asarray(y), reset=True)
            model = self._get_model(X, self._for_builder(encoded))
            fit_kwargs = {"verbose": 0, **(self.fit_kwargs or {}), **kwargs}
            self.history_ = model.fit(X, self._for_model(model, encoded), **fit_kwargs)
            self.model_ = model
            return self

        def _for_builder(self, encoded):
            return encoded

        def _for_model(self, model, encoded):
            return encoded

        def _raw_predict(self, X):
            check_is_fitted(self, "model_")
            X = check_array(X, allow_nd=True, dtype="numeric")
            return self.model_.predict(X, verbose=0)

        def __sklearn_clone__(self):
            # A Model instance is copied, not shared, by each clone (as Keras does).
            params = self.get_params(deep=False)
            if isinstance(params["model"], Model):
                params["model"] = copy.deepcopy(params["model"])
            return type(self)(**params)

    class SKLearnClassifier(ClassifierMixin, _SKLBase):
        """A scikit-learn classifier around an hpnn model.

        Labels may be anything ``np.unique`` sorts (strings, ints...); ``classes_``
        holds them, and the model sees them encoded to suit its loss: class indices
        ``(n,)`` for ``sparse_categorical_crossentropy``, ``0./1.`` ``(n, 1)`` for
        ``binary_crossentropy`` on one output, one-hot ``(n, n_classes)`` otherwise.

        Args:
            model: a compiled Model (copied before each fit), or a callable returning
                one, called as ``model(X=X, y=y, **model_kwargs)`` (X and y only where
                the callable takes them) with ``y`` one-hot ``(n, n_classes)`` as in Keras.
            warm_start: reuse the fitted model on the next ``fit`` instead of a new one.
            model_kwargs: keyword arguments of the callable.
            fit_kwargs: keyword arguments of ``Model.fit`` (``epochs``, ``batch_size``...).

        Attributes:
            model_: the fitted model. history_: its History. classes_: the labels.
        """

        def _encode_target(self, y, reset=False):
            if y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0]
            if y.ndim != 1:
                raise ValueError(
                    "SKLearnClassifier: y must be a 1-D array of class labels. "
                    f"Received: y.shape={y.shape}"
                )
            if reset:
                self.classes_ = np.unique(y)
                if len(self.classes_) < 2:
                    raise ValueError(
                        "SKLearnClassifier: training needs at least 2 classes. "
                        f"Received: classes={self.classes_.tolist()}"
                    )
            return np.searchsorted(self.classes_, y)

        def _for_builder(self, idx):
            return np.eye(len(self.classes_), dtype=np.float32)[idx]  # as Keras: one-hot

        def _for_model(self, model, idx):
            """Class indices in the form the model's loss expects."""
            name = getattr(model.loss, "name", "")
            n = len(self.classes_)
            if "sparse" in name:
                return idx
            if "binary" in name and model.output_shape and model.output_shape[-1] == 1:
                if n != 2:
                    raise ValueError(
                        f"SKLearnClassifier: a single sigmoid output needs 2 classes. "
                        f"Received: {n} classes"
                    )
                return idx.astype(np.float32)[:, None]
            return np.eye(n, dtype=np.float32)[idx]

        def predict_proba(self, X):
            """Class probabilities ``(n_samples, n_classes)``, columns in ``classes_`` order."""
            p = np.asarray(self._raw_predict(X))
            if p.ndim == 2 and p.shape[1] == 1:
                p = np.hstack([1 - p, p])
            return p

        def predict(self, X):
            """The most probable label of each sample, ``(n_samples,)``."""
            proba = self.predict_proba(X)  # first: it raises NotFittedError when unfitted
            return self.classes_[np.argmax(proba, axis=1)]

    class SKLearnRegressor(RegressorMixin, _SKLBase):
        """A scikit-learn regressor around an hpnn model; arguments as
        :class:`SKLearnClassifier`. A 1-D ``y`` is fed as ``(n, 1)`` and predictions
        come back 1-D. ``score`` is R^2."""

        def _encode_target(self, y, reset=False):
            if reset:
                self._y_1d = y.ndim == 1
            return y.reshape(-1, 1).astype(np.float32) if y.ndim == 1 else y.astype(np.float32)

        def predict(self, X):
            """Predictions ``(n_samples,)`` for a 1-D training target, else 2-D."""
            p = self._raw_predict(X)
            return p.reshape(len(p), -1)[:, 0] if self._y_1d and p.ndim <= 2 else p

    classes = {"SKLearnClassifier": SKLearnClassifier, "SKLearnRegressor": SKLearnRegressor}
    for name, cls in classes.items():
        cls.__module__, cls.__qualname__ = __name__, name  # picklable: hpnn.wrappers.<name>
    _SKLBase.__module__, _SKLBase.__qualname__ = __name__, "_SKLBase"
    return classes


__all__ = list(_NAMES)

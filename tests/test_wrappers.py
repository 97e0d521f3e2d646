"""Tests for hpnn.wrappers: scikit-learn estimators around hpnn models."""

import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone, is_classifier, is_regressor  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402

import hpnn  # noqa: E402
from hpnn import Input, Sequential, layers, optimizers  # noqa: E402
from hpnn.wrappers import SKLearnClassifier, SKLearnRegressor  # noqa: E402


def build_classifier(X, y, hidden=8, loss="sparse_categorical_crossentropy"):
    hpnn.utils.set_random_seed(hidden)
    model = Sequential([
        Input((X.shape[1],)), layers.Dense(hidden, activation="relu"),
        layers.Dense(y.shape[1], activation="softmax"),
    ])  # fmt: skip
    model.compile(optimizer=optimizers.Adam(0.05), loss=loss, metrics=["accuracy"])
    return model


def build_regressor(X, hidden=8):
    hpnn.utils.set_random_seed(0)
    model = Sequential([Input((X.shape[1],)), layers.Dense(hidden, "relu"), layers.Dense(1)])
    model.compile(optimizer=optimizers.Adam(0.05), loss="mse")
    return model


@pytest.fixture
def labelled():
    """Three string-labelled blobs in 4-D."""
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((3, 4)) * 3
    idx = rng.integers(0, 3, 90)
    x = (centers[idx] + rng.standard_normal((90, 4)) * 0.5).astype(np.float32)
    return x, np.array(["cat", "dog", "eel"])[idx]


def test_classifier_fit_predict_proba_score_with_string_labels(labelled):
    x, y = labelled
    clf = SKLearnClassifier(model=build_classifier, fit_kwargs={"epochs": 10, "batch_size": 16})
    assert is_classifier(clf) and clf.fit(x, y) is clf
    assert clf.classes_.tolist() == ["cat", "dog", "eel"]
    proba = clf.predict_proba(x)
    assert proba.shape == (90, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    pred = clf.predict(x)
    assert pred.dtype == y.dtype and set(pred) <= set(y)
    assert clf.score(x, y) > 0.9
    assert len(clf.history_.history["loss"]) == 10 and clf.n_features_in_ == 4


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_classifier_feeds_targets_in_the_losss_form(labelled, loss):
    x, y = labelled
    clf = SKLearnClassifier(build_classifier, model_kwargs={"loss": loss}, fit_kwargs={"epochs": 5})
    assert clf.fit(x, y).score(x, y) > 0.8


def test_binary_classifier_with_one_sigmoid_output(labelled):
    x, y = labelled
    y = np.where(y == "cat", 1, 7)  # arbitrary integer labels

    def build():
        hpnn.utils.set_random_seed(0)
        model = Sequential([Input((4,)), layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer=optimizers.Adam(0.1), loss="binary_crossentropy")
        return model

    clf = SKLearnClassifier(build, fit_kwargs={"epochs": 10}).fit(x, y)
    assert clf.predict_proba(x).shape == (90, 2) and clf.classes_.tolist() == [1, 7]
    assert clf.score(x, y) > 0.9


def test_grid_search_over_hidden_sizes_and_cross_val_score(labelled):
    x, y = labelled
    clf = SKLearnClassifier(build_classifier, fit_kwargs={"epochs": 5, "batch_size": 16})
    grid = GridSearchCV(clf, {"model_kwargs": [{"hidden": 2}, {"hidden": 16}]}, cv=3)
    grid.fit(x, y)
    assert grid.best_params_["model_kwargs"] in ({"hidden": 2}, {"hidden": 16})
    assert (
        grid.best_estimator_.model_.layers[0].units == grid.best_params_["model_kwargs"]["hidden"]
    )
    assert grid.best_score_ > 0.6
    # the scikeras-style routed names work in grids too
    grid = GridSearchCV(clf, {"model__hidden": [2, 16], "fit__epochs": [3]}, cv=2).fit(x, y)
    assert grid.best_params_["model__hidden"] in (2, 16)
    scores = cross_val_score(clf, x, y, cv=3)
    assert scores.shape == (3,) and (scores > 0.6).all()


def test_get_set_params_clone_and_pickle(labelled):
    clf = SKLearnClassifier(build_classifier, model_kwargs={"hidden": 4}, fit_kwargs={"epochs": 2})
    params = clf.get_params()
    assert params == {
        "model": build_classifier,
        "warm_start": False,
        "model_kwargs": {"hidden": 4},
        "fit_kwargs": {"epochs": 2},
    }
    clf.set_params(model__hidden=6, fit__batch_size=8, warm_start=True)
    assert clf.model_kwargs == {"hidden": 6} and clf.fit_kwargs == {"epochs": 2, "batch_size": 8}
    twin = clone(clf)
    assert twin.get_params() == clf.get_params() and not hasattr(twin, "model_")
    again = pickle.loads(pickle.dumps(twin))
    assert type(again) is SKLearnClassifier and again.get_params() == twin.get_params()


def test_model_instance_is_copied_and_warm_start_reuses(labelled):
    x, y = labelled
    base = build_classifier(x, np.zeros((1, 3)), hidden=4)
    w0 = base.get_weights()
    clf = SKLearnClassifier(base, fit_kwargs={"epochs": 2}).fit(x, y)
    assert clf.model_ is not base
    assert all(np.array_equal(a, b) for a, b in zip(base.get_weights(), w0, strict=True))
    warm = SKLearnClassifier(build_classifier, warm_start=True, fit_kwargs={"epochs": 1})
    first = warm.fit(x, y).model_
    assert warm.fit(x, y).model_ is first and first.optimizer.iterations == 2 * 3


def test_regressor_r2_and_1d_predictions():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 3)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.05 * rng.standard_normal(120)
    reg = SKLearnRegressor(build_regressor, fit_kwargs={"epochs": 30, "batch_size": 16})
    assert is_regressor(reg)
    reg.fit(x, y)
    assert reg.predict(x).shape == (120,) and reg.score(x, y) > 0.9
    scores = cross_val_score(reg, x, y, cv=2)
    assert scores.shape == (2,) and (scores > 0.5).all()


def test_errors(labelled):
    x, y = labelled
    with pytest.raises(RuntimeError, match="must be compiled"):
        SKLearnClassifier(lambda: Sequential([Input((4,)), layers.Dense(3)])).fit(x, y)
    with pytest.raises(TypeError, match="Received: model=3"):
        SKLearnClassifier(3).fit(x, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        SKLearnClassifier(build_classifier).fit(x, np.zeros(90))
    with pytest.raises(sklearn.exceptions.NotFittedError):
        SKLearnClassifier(build_classifier).predict(x)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        import hpnn.wrappers

        hpnn.wrappers.Nope

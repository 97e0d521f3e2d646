"""Tests for hpnn.metrics: accuracy resolution, running means, top-k."""

import numpy as np
import pytest

import hpnn
from hpnn import layers, metrics


@pytest.mark.parametrize(
    ("loss", "cls"),
    [
        ("categorical_crossentropy", metrics.CategoricalAccuracy),
        ("sparse_categorical_crossentropy", metrics.SparseCategoricalAccuracy),
        ("binary_crossentropy", metrics.BinaryAccuracy),
        ("CategoricalCrossentropy", metrics.CategoricalAccuracy),
        ("SparseCategoricalCrossentropy", metrics.SparseCategoricalAccuracy),
        ("BinaryCrossentropy", metrics.BinaryAccuracy),
    ],
)
def test_accuracy_is_resolved_from_the_loss(loss, cls):
    for ident in ("accuracy", "acc"):
        m = metrics.get(ident, loss_name=loss, y_true_shape=(8, 10), y_pred_shape=(None, 10))
        assert type(m) is cls
        assert m.name == ident


@pytest.mark.parametrize(
    ("y_shape", "out_shape", "cls"),
    [
        ((8,), (None, 10), metrics.SparseCategoricalAccuracy),
        ((8, 1), (None, 10), metrics.SparseCategoricalAccuracy),
        ((8, 10), (None, 10), metrics.CategoricalAccuracy),
        ((8, 1), (None, 1), metrics.BinaryAccuracy),
        ((8,), (None, 1), metrics.BinaryAccuracy),
    ],
)
def test_accuracy_is_resolved_from_shapes_for_other_losses(y_shape, out_shape, cls):
    assert type(metrics.get("accuracy", "mse", y_shape, out_shape)) is cls


@pytest.mark.parametrize(
    ("loss", "y", "key_cls"),
    [
        ("categorical_crossentropy", np.eye(3)[[0, 1, 2, 1]], metrics.CategoricalAccuracy),
        (
            "sparse_categorical_crossentropy",
            np.array([0, 1, 2, 1]),
            metrics.SparseCategoricalAccuracy,
        ),
    ],
)
def test_compile_resolves_accuracy_in_fit(loss, y, key_cls):
    model = hpnn.Sequential([hpnn.Input((2,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])
    hist = model.fit(np.ones((4, 2)), y, verbose=0)
    assert type(model.metrics[0]) is key_cls
    assert set(hist.history) == {"loss", "accuracy"}


def test_binary_accuracy_from_compile():
    model = hpnn.Sequential([hpnn.Input((2,)), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["acc"])
    model.fit(np.ones((4, 2)), np.array([0, 1, 1, 0]), verbose=0)
    assert type(model.metrics[0]) is metrics.BinaryAccuracy
    assert model.metrics[0].name == "acc"


def test_categorical_accuracy_values():
    y_true = np.eye(3)[[0, 1, 2, 2]]
    y_pred = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3]])
    assert metrics.CategoricalAccuracy()(y_true, y_pred) == pytest.approx(0.5)


def test_sparse_categorical_accuracy_values():
    y_pred = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    m = metrics.SparseCategoricalAccuracy()
    assert m(np.array([0, 1, 2]), y_pred) == pytest.approx(2 / 3)
    assert m(np.array([[0], [1], [2]]), y_pred) == pytest.approx(2 / 3)
    assert m(np.array([0.0, 0.0, 2.0]), y_pred) == pytest.approx(1.0)


def test_binary_accuracy_values_and_threshold():
    y_true = np.array([[1.0], [0.0], [1.0], [0.0]])
    y_pred = np.array([[0.9], [0.6], [0.4], [0.1]])
    assert metrics.BinaryAccuracy()(y_true, y_pred) == pytest.approx(0.5)
    assert metrics.BinaryAccuracy(threshold=0.7)(y_true, y_pred) == pytest.approx(0.75)
    # targets of shape (N,) against outputs (N, 1)
    assert metrics.BinaryAccuracy()(y_true[:, 0], y_pred) == pytest.approx(0.5)


def test_running_mean_across_update_state_calls():
    m = metrics.SparseCategoricalAccuracy()
    y_pred = np.eye(4)
    m.update_state(np.array([0, 1, 2, 3]), y_pred)  # 4/4
    m.update_state(np.array([1, 1]), y_pred[:2])  # 1/2
    assert m.result() == pytest.approx(5 / 6)  # sample-weighted, not the mean of 1.0 and 0.5
    m.reset_state()
    assert m.result() == 0.0
    m.update_state(np.array([1]), y_pred[:1])
    assert m.result() == 0.0


def test_weighted_running_mean():
    m = metrics.SparseCategoricalAccuracy()
    y_pred = np.eye(3)
    m.update_state(np.array([0, 0, 2]), y_pred, sample_weight=np.array([1.0, 3.0, 1.0]))
    # correct: samples 0 and 2 (weights 1 and 1); total weight 5
    assert m.result() == pytest.approx(2 / 5)
    m.update_state(np.array([1]), y_pred[1:2], sample_weight=np.array([5.0]))
    assert m.result() == pytest.approx(7 / 10)


def test_mean_metric_weighted():
    m = metrics.Mean()
    m.update_state(np.array([1.0, 2.0]))
    m.update_state(np.array([4.0]), sample_weight=np.array([2.0]))
    assert m.result() == pytest.approx((1 + 2 + 8) / 4)


def test_mse_mae_metrics():
    y_true = np.array([[0.0, 1.0], [2.0, 2.0]])
    y_pred = np.array([[1.0, 1.0], [0.0, 2.0]])
    assert metrics.MeanSquaredError()(y_true, y_pred) == pytest.approx((0.5 + 2.0) / 2)
    assert metrics.MeanAbsoluteError()(y_true, y_pred) == pytest.approx((0.5 + 1.0) / 2)
    assert isinstance(metrics.get("mse"), metrics.MeanSquaredError)


@pytest.mark.parametrize(("k", "expected"), [(1, 1 / 4), (2, 2 / 4), (3, 3 / 4), (4, 1.0)])
def test_top_k_categorical_accuracy(k, expected):
    y_pred = np.array(
        [
            [0.4, 0.3, 0.2, 0.1],  # true 0: rank 1
            [0.4, 0.3, 0.2, 0.1],  # true 1: rank 2
            [0.1, 0.2, 0.3, 0.4],  # true 1: rank 3
            [0.1, 0.2, 0.3, 0.4],  # true 0: rank 4
        ]
    )
    y_true = np.eye(4)[[0, 1, 1, 0]]
    assert metrics.TopKCategoricalAccuracy(k=k)(y_true, y_pred) == pytest.approx(expected)


def test_top_k_default_k_is_5_and_by_name():
    m = metrics.get("top_k_categorical_accuracy")
    assert isinstance(m, metrics.TopKCategoricalAccuracy) and m.k == 5
    rng = np.random.default_rng(0)
    y_pred = rng.random((50, 10))
    labels = rng.integers(0, 10, 50)
    rank = (y_pred > y_pred[np.arange(50), labels][:, None]).sum(axis=1)  # 0 = top
    assert m(np.eye(10)[labels], y_pred) == pytest.approx((rank < 5).mean())


def test_function_metric_and_unknown_name():
    def always_half(y_true, y_pred):
        return np.full(len(y_true), 0.5)

    m = metrics.get(always_half)
    assert m.name == "always_half"
    assert m(np.zeros(3), np.zeros(3)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"Unknown metric.*Received: metric='acuracy'"):
        metrics.get("acuracy")


# -- precision and recall ----------------------------------------------------------------------
def _binary_case(seed=0, n=40):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, n), rng.random((n, 1)), rng.uniform(0.1, 3.0, n)


@pytest.mark.parametrize(
    ("cls", "sk_name"), [(metrics.Precision, "precision_score"), (metrics.Recall, "recall_score")]
)
def test_precision_and_recall_match_scikit_learn_over_batches(cls, sk_name):
    sk = pytest.importorskip("sklearn.metrics")
    y, p, w = _binary_case()
    m = cls()
    for s in range(0, len(y), 7):  # running sums over uneven batches
        m.update_state(y[s : s + 7], p[s : s + 7], sample_weight=w[s : s + 7])
    want = getattr(sk, sk_name)(y, p[:, 0] > 0.5, sample_weight=w)
    assert m.result() == pytest.approx(want, rel=1e-12)
    unweighted = cls(thresholds=0.3)(y, p)
    assert unweighted == pytest.approx(getattr(sk, sk_name)(y, p[:, 0] > 0.3), rel=1e-12)


def test_precision_and_recall_of_one_class_and_top_k():
    y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    p = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.2, 0.5, 0.3]])
    # class 0: predicted positive (> 0.5) in rows 0 and 1; actually positive in rows 0 and 3
    assert metrics.Precision(class_id=0)(y, p) == pytest.approx(1 / 2)
    assert metrics.Recall(class_id=0)(y, p) == pytest.approx(1 / 2)
    # top 1 of each row is positive: rows 0 and 2 right, 1 and 3 wrong
    assert metrics.Precision(top_k=1)(y, p) == pytest.approx(2 / 4)
    # top 2: 8 predicted positives, 3 of them right; all 4 actual positives but row 1's found
    assert metrics.Precision(top_k=2)(y, p) == pytest.approx(3 / 8)
    assert metrics.Recall(top_k=2)(y, p) == pytest.approx(3 / 4)
    assert metrics.Precision()(np.zeros(3), np.zeros((3, 1))) == 0.0  # nothing predicted


def test_precision_and_recall_in_fit_by_name_and_object():
    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential([hpnn.Input((4,)), layers.Dense(1, activation="sigmoid")])
    model.compile(
        optimizer="adam",
        loss="binary_crossentropy",
        metrics=["precision", metrics.Recall(name="rec")],
    )
    y, _, _ = _binary_case(n=32)
    x = np.random.default_rng(1).standard_normal((32, 4)).astype(np.float32)
    logs = model.evaluate(x, y, return_dict=True, verbose=0)
    p = model.predict(x, verbose=0)
    tp = ((p[:, 0] > 0.5) & (y == 1)).sum()
    assert logs["precision"] == pytest.approx(tp / max((p[:, 0] > 0.5).sum(), 1))
    assert logs["rec"] == pytest.approx(tp / (y == 1).sum())
    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert {"precision", "rec"} <= history.history.keys()


# -- AUC ---------------------------------------------------------------------------------------
def keras_auc(y, p, w=None, num_thresholds=200, curve="ROC", summation="interpolation"):
    """Keras 3's AUC written out threshold by threshold (confusion counts, then the sum)."""
    w = np.ones(len(y)) if w is None else w
    inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    ts = [-1e-7, *inner, 1 + 1e-7]
    tp = np.array([np.sum(w * ((p > t) & (y == 1))) for t in ts])
    fp = np.array([np.sum(w * ((p > t) & (y == 0))) for t in ts])
    tn = np.array([np.sum(w * ((p <= t) & (y == 0))) for t in ts])
    fn = np.array([np.sum(w * ((p <= t) & (y == 1))) for t in ts])

    def div(a, b):
        return np.where(b != 0, a / np.where(b != 0, b, 1), 0.0)

    if curve == "PR" and summation == "interpolation":
        dtp, pp = tp[:-1] - tp[1:], tp + fp
        dp = pp[:-1] - pp[1:]
        slope = div(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * pp[1:]
        ok = (pp[:-1] > 0) & (pp[1:] > 0)
        ratio = np.where(ok, div(pp[:-1], np.maximum(pp[1:], 0)), 1.0)
        return np.sum(div(slope * (dtp + intercept * np.log(ratio)), tp[1:] + fn[1:]))
    recall = div(tp, tp + fn)
    x, yy = (div(fp, fp + tn), recall) if curve == "ROC" else (recall, div(tp, tp + fp))
    heights = {
        "interpolation": (yy[:-1] + yy[1:]) / 2,
        "minoring": np.minimum(yy[:-1], yy[1:]),
        "majoring": np.maximum(yy[:-1], yy[1:]),
    }[summation]
    return np.sum((x[:-1] - x[1:]) * heights)


@pytest.mark.parametrize(
    ("curve", "summation"),
    [("ROC", "interpolation"), ("ROC", "minoring"), ("ROC", "majoring"), ("PR", "interpolation"),
     ("PR", "majoring")],
)  # fmt: skip
def test_auc_follows_keras_over_batches(curve, summation):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.35 * y + rng.random(300) * 0.65, 0, 1)
    w = rng.uniform(0.5, 2.0, 300)
    m = metrics.AUC(num_thresholds=50, curve=curve, summation_method=summation)
    for s in range(0, 300, 64):
        m.update_state(y[s : s + 64], p[s : s + 64, None], sample_weight=w[s : s + 64])
    want = keras_auc(y, p, w, 50, curve, summation)
    assert m.result() == pytest.approx(want, rel=1e-12)


def test_auc_is_close_to_the_exact_area_and_adds_up_over_parts():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1)
    whole = metrics.AUC()
    whole.update_state(y, p)
    assert whole.result() == pytest.approx(sk.roc_auc_score(y, p), abs=5e-3)
    # what MPI ranks do: each counts its part, the counts are added
    a, b = metrics.AUC(), metrics.AUC()
    a.update_state(y[:217], p[:217])
    b.update_state(y[217:], p[217:])
    merged = metrics.AUC()
    merged.set_state_vector(a.state_vector() + b.state_vector())
    assert merged.result() == whole.result()
    logits = np.log(p.clip(1e-6, 1 - 1e-6) / (1 - p.clip(1e-6, 1 - 1e-6)))
    assert metrics.AUC(from_logits=True)(y, logits) == pytest.approx(whole.result(), abs=1e-9)


def test_auc_in_compile_and_bad_arguments():
    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential([hpnn.Input((4,)), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["auc"])
    x = np.random.default_rng(1).standard_normal((32, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    logs = model.evaluate(x, y, return_dict=True, verbose=0)
    assert logs["auc"] == pytest.approx(keras_auc(y, model.predict(x, verbose=0)[:, 0]))
    with pytest.raises(ValueError, match="num_thresholds must be an int > 1"):
        metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="curve must be 'ROC' or 'PR'"):
        metrics.AUC(curve="DET")
    with pytest.raises(NotImplementedError, match="multi_label"):
        metrics.AUC(multi_label=True)


def test_root_mean_squared_error_and_sparse_top_k():
    rng = np.random.default_rng(0)
    t, p = rng.normal(size=(10, 3)), rng.normal(size=(10, 3))
    w = rng.uniform(0.5, 2.0, 10)
    rmse = metrics.RootMeanSquaredError()
    rmse.update_state(t[:4], p[:4], sample_weight=w[:4])
    rmse.update_state(t[4:], p[4:], sample_weight=w[4:])
    want = np.sqrt((((p - t) ** 2).mean(axis=1) * w).sum() / w.sum())
    assert rmse.result() == pytest.approx(want, rel=1e-12)
    labels = np.array([0, 1, 2, 2])
    scores = np.array([[0.5, 0.4, 0.1], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]])
    top2 = metrics.get("sparse_top_k_categorical_accuracy")
    assert top2.k == 5
    m = metrics.SparseTopKCategoricalAccuracy(k=2)
    assert m(labels, scores) == pytest.approx(0.75)  # only row 3 has its label outside


def test_f1_score_in_fit_logs_csv_and_diagnosis(tmp_path, capsys):
    from hpnn.training.diagnose import diagnose

    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential([hpnn.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile(
        optimizer="adam",
        loss="categorical_crossentropy",
        metrics=[metrics.F1Score(), metrics.F1Score(average="macro", name="f1_macro")],
    )
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 4), dtype=np.float32), np.eye(3)[rng.integers(0, 3, 40)]
    log = tmp_path / "log.csv"
    history = model.fit(
        x, y, epochs=2, batch_size=8, verbose=1, validation_data=(x, y),
        callbacks=[hpnn.callbacks.CSVLogger(str(log))],
    )  # fmt: skip
    per_class = history.history["f1_score"][-1]
    assert np.shape(per_class) == (3,) and float(np.min(per_class)) >= 0
    assert np.isclose(history.history["f1_macro"][-1], np.mean(per_class), atol=1e-6)
    assert "f1_macro:" in capsys.readouterr().out
    assert '"[' in log.read_text()  # the per-class scores as one quoted cell
    assert diagnose(history).verdict  # array curves are left out, not an error
    with pytest.raises(ValueError, match="expected one-hot y_true and y_pred"):
        metrics.F1Score().update_state(np.array([0, 1]), np.ones((2, 3)))


def test_r2_score_by_hand_and_in_fit():
    y = np.array([[1.0], [2.0], [3.0], [4.0]])
    p = np.array([[1.5], [2.0], [2.5], [4.0]])
    m = metrics.R2Score()
    m.update_state(y[:2], p[:2])
    m.update_state(y[2:], p[2:])
    assert m.result() == pytest.approx(1 - 0.5 / 5.0)  # SS_res 0.5, SS_tot 5
    m.update_state(y[:, 0], p[:, 0])  # (batch,) works too
    assert m.result() == pytest.approx(1 - 1.0 / 10.0)
    model = hpnn.Sequential([hpnn.Input((3,)), layers.Dense(2)])
    model.compile(optimizer=hpnn.optimizers.Adam(0.05), loss="mse", metrics=[metrics.R2Score()])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    t = x[:, :2] * 2.0 + 1.0
    history = model.fit(x, t, epochs=30, batch_size=16, verbose=0)
    assert history.history["r2_score"][-1] > history.history["r2_score"][0]
    with pytest.raises(ValueError, match="class_aggregation must be one of"):
        metrics.R2Score(class_aggregation="median")


# -- confusion counts --------------------------------------------------------------------------
COUNT_Y = np.array([1, 0, 1, 0, 1])
COUNT_P = np.array([[0.9], [0.6], [0.4], [0.2], [0.55]])
COUNT_W = np.array([1.0, 2.0, 3.0, 4.0, 0.5])
# by hand: predicted positive above 0.3 rows 0,1,2,4; above 0.5 rows 0,1,4; above 0.7 row 0
COUNT_CASES = {
    "TruePositives": (2.0, 1.5, [4.5, 1.5, 1.0]),
    "FalsePositives": (1.0, 2.0, [2.0, 2.0, 0.0]),
    "TrueNegatives": (1.0, 4.0, [4.0, 4.0, 6.0]),
    "FalseNegatives": (1.0, 3.0, [0.0, 3.0, 3.5]),
}


@pytest.mark.parametrize("name", sorted(COUNT_CASES))
def test_confusion_counts_by_hand(name):
    plain, weighted, per_threshold = COUNT_CASES[name]
    cls = getattr(metrics, name)
    assert cls()(COUNT_Y, COUNT_P) == plain
    assert cls()(COUNT_Y, COUNT_P, sample_weight=COUNT_W) == weighted
    assert cls(thresholds=[0.5])(COUNT_Y, COUNT_P, sample_weight=COUNT_W) == weighted
    got = cls(thresholds=[0.3, 0.5, 0.7])(COUNT_Y, COUNT_P, sample_weight=COUNT_W)
    np.testing.assert_array_equal(got, per_threshold)
    # (N, 2) targets are flattened: each row's weight counts for both of its outputs
    two = cls()(np.stack([COUNT_Y, COUNT_Y], 1), np.hstack([COUNT_P, COUNT_P]), COUNT_W)
    assert two == 2 * weighted
    snake = "".join("_" + c.lower() if c.isupper() else c for c in name)[1:]  # true_positives
    by_name = metrics.get(snake)
    assert type(by_name) is cls and by_name.name == cls().name == snake


def test_confusion_counts_state_vector_adds_up_and_bad_thresholds():
    rng = np.random.default_rng(5)
    y, p, w = rng.integers(0, 2, (30, 2)), rng.random((30, 2)), rng.uniform(0.5, 2.0, 30)
    for cls in (metrics.TruePositives, metrics.FalsePositives, metrics.TrueNegatives,
                metrics.FalseNegatives):  # fmt: skip
        whole, a, b = (cls(thresholds=[0.2, 0.5, 0.8]) for _ in range(3))
        whole.update_state(y, p, sample_weight=w)
        a.update_state(y[:11], p[:11], sample_weight=w[:11])
        b.update_state(y[11:], p[11:], sample_weight=w[11:])
        merged = cls(thresholds=[0.2, 0.5, 0.8])
        merged.set_state_vector(a.state_vector() + b.state_vector())
        np.testing.assert_allclose(merged.result(), whole.result(), rtol=1e-12)
        assert len(merged.state_vector()) == 3
        merged.reset_state()
        np.testing.assert_array_equal(merged.result(), [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"Threshold values must be in \[0, 1\]"):
        metrics.TruePositives(thresholds=[0.5, 1.5])

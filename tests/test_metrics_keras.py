"""Keras 3's metrics that hpnn gained for the Keras surface: against Keras itself (same
inputs, sample weights, several update_state calls), by hand, by name in compile, and
with their state summed over the parts of a split batch and over MPI ranks."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hpnn
from hpnn import layers, losses, metrics


def batches(kind, seed=0, n=12, c=4, count=3):
    """``count`` batches ``(y_true, y_pred, sample_weight)`` of one kind of data."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        w = rng.uniform(0.2, 2.0, n).astype(np.float32)
        z = rng.standard_normal((n, c))
        soft = (np.exp(z) / np.exp(z).sum(1, keepdims=True)).astype(np.float32)
        if kind == "prob":  # multi-label probabilities
            y, p = rng.integers(0, 2, (n, c)).astype(np.float32), rng.uniform(0.01, 0.99, (n, c))
        elif kind == "logit":
            y, p = rng.integers(0, 2, (n, c)).astype(np.float32), z * 3
        elif kind == "onehot":
            y, p = np.eye(c, dtype=np.float32)[rng.integers(0, c, n)], soft
        elif kind == "sparse":
            y, p = rng.integers(0, c, n), soft
        elif kind == "sparse_col":  # (N, 1) labels
            y, p = rng.integers(0, c, (n, 1)), soft
        elif kind == "positive":
            y, p = rng.uniform(0.1, 3, (n, c)), rng.uniform(0.1, 3, (n, c))
        elif kind == "signs":
            y, p = rng.choice([-1.0, 1.0], (n, c)), rng.standard_normal((n, c))
        elif kind == "binary":  # 0/1 labels, as hinge metrics map them to -1/1
            y, p = rng.integers(0, 2, (n, 1)).astype(np.float32), rng.standard_normal((n, 1))
        else:
            raise AssertionError(kind)
        out.append((np.asarray(y), np.asarray(p, np.float32), w))
    return out


def follow(got, want, data, weighted=True):
    """Both metrics updated with the same batches: (hpnn's result, Keras' result)."""
    for y, p, w in data:
        got.update_state(y, p, sample_weight=w if weighted else None)
        want.update_state(y, p, sample_weight=w if weighted else None)
    return got.result(), float(np.asarray(want.result()))


MEANS = [
    ("BinaryCrossentropy", {}, "prob"),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "logit"),
    ("CategoricalCrossentropy", {}, "onehot"),
    ("CategoricalCrossentropy", {"label_smoothing": 0.2}, "onehot"),
    ("SparseCategoricalCrossentropy", {}, "sparse"),
    ("SparseCategoricalCrossentropy", {}, "sparse_col"),
    ("SparseCategoricalCrossentropy", {"ignore_class": 1}, "sparse"),
    ("KLDivergence", {}, "onehot"),
    ("Poisson", {}, "positive"),
    ("Hinge", {}, "signs"),
    ("Hinge", {}, "binary"),
    ("SquaredHinge", {}, "signs"),
    ("CategoricalHinge", {}, "onehot"),
    ("CosineSimilarity", {}, "positive"),
    ("LogCoshError", {}, "positive"),
    ("MeanAbsolutePercentageError", {}, "positive"),
    ("MeanSquaredLogarithmicError", {}, "positive"),
    ("PearsonCorrelation", {}, "positive"),
    ("ConcordanceCorrelation", {}, "positive"),
]


@pytest.mark.parametrize(("name", "kwargs", "kind"), MEANS)
@pytest.mark.parametrize("weighted", [True, False])
def test_mean_metrics_follow_keras(keras, name, kwargs, kind, weighted):
    data = batches(kind)
    if "ignore_class" in kwargs and not weighted:
        # Keras 3 drops the ignored samples only when given weights (without, they count
        # as 0s); hpnn always drops them: unweighted equals Keras with weights of 1
        data = [(y, p, np.ones_like(w)) for y, p, w in data]
        weighted = True
    got, want = follow(
        getattr(metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs), data, weighted
    )
    assert got == pytest.approx(want, rel=2e-5, abs=1e-6)


def test_mean_metric_names_and_configs_follow_keras(keras):
    for name, kwargs, _ in MEANS:
        ours, theirs = getattr(metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
        assert ours.name == theirs.name, name
        config = {k: v for k, v in theirs.get_config().items() if k != "dtype"}
        assert ours.get_config() == config, name


@pytest.mark.parametrize(
    ("name", "kwargs", "kind"),
    [
        ("IoU", {"num_classes": 4, "target_class_ids": [0, 2]}, "labels"),
        ("MeanIoU", {"num_classes": 4}, "labels"),
        ("MeanIoU", {"num_classes": 4, "ignore_class": 2}, "labels"),
        ("MeanIoU", {"num_classes": 4, "sparse_y_pred": False}, "scores"),
        ("BinaryIoU", {}, "binary"),
        ("BinaryIoU", {"target_class_ids": [1], "threshold": 0.3}, "binary"),
        ("OneHotIoU", {"num_classes": 4, "target_class_ids": [1, 3]}, "onehot"),
        ("OneHotMeanIoU", {"num_classes": 4}, "onehot"),
        ("OneHotMeanIoU", {"num_classes": 4, "sparse_y_pred": True}, "onehot_labels"),
    ],
)
@pytest.mark.parametrize("weights", ["integer", "float"])
def test_iou_metrics_follow_keras(keras, name, kwargs, kind, weights):
    rng = np.random.default_rng(5)
    data = []
    for _ in range(3):
        n = 40
        w = rng.integers(0, 3, n) if weights == "integer" else rng.uniform(0.1, 2.0, n)
        y, p = rng.integers(0, 4, n), rng.integers(0, 4, n)
        if kind == "scores":
            p = rng.random((n, 4))
        elif kind == "binary":
            y, p = rng.integers(0, 2, n), rng.random(n)
        elif kind.startswith("onehot"):
            y = np.eye(4)[y]
            p = p if kind == "onehot_labels" else rng.random((n, 4))
        data.append((y, np.asarray(p, np.float32), w.astype(np.float32)))
    # Keras counts in int by default (its weights truncated): float weights need float32
    dtype = None if weights == "integer" else "float32"
    got, want = follow(
        getattr(metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs, dtype=dtype), data
    )
    assert got == pytest.approx(want, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PrecisionAtRecall", 0.7),
        ("RecallAtPrecision", 0.6),
        ("SensitivityAtSpecificity", 0.5),
        ("SpecificityAtSensitivity", 0.8),
    ],
)
@pytest.mark.parametrize("num_thresholds", [200, 7, 2, 1])
@pytest.mark.parametrize("class_id", [None, 2])
def test_rate_at_rate_metrics_follow_keras(keras, name, value, num_thresholds, class_id):
    rng = np.random.default_rng(num_thresholds)
    data = []
    for _ in range(3):
        y = rng.integers(0, 2, (30, 3))
        p = np.clip(0.3 * y + rng.random((30, 3)) * 0.7, 0, 1).astype(np.float32)
        p[:4] = np.array([0.0, 1.0, 0.5, 1 / 6], np.float32)[:, None]  # on the thresholds
        data.append((y, p, rng.uniform(0.1, 2.0, 30).astype(np.float32)))
    args = {"num_thresholds": num_thresholds, "class_id": class_id}
    got, want = follow(
        getattr(metrics, name)(value, **args), getattr(keras.metrics, name)(value, **args), data
    )
    assert got == pytest.approx(want, rel=1e-5, abs=1e-7)
    ours = getattr(metrics, name)(value, **args)
    theirs = {k: v for k, v in getattr(keras.metrics, name)(value, **args).get_config().items()}
    theirs.pop("dtype")
    # (Keras numbers the unnamed instances after the first: precision_at_recall_1...)
    assert theirs.pop("name").startswith(ours.name)
    assert {k: v for k, v in ours.get_config().items() if k != "name"} == theirs


def test_sum_mean_and_mean_metric_wrapper_follow_keras(keras):
    rng = np.random.default_rng(2)
    feeds = [
        (rng.random((5, 3)), rng.random(5)),
        (rng.random((4, 3)), None),
        (rng.random((6, 3)), rng.random((6, 1))),
        (rng.random((6, 3)), rng.random((6, 3))),
        (rng.random(6), rng.random(6)),
    ]
    for ours, theirs in (
        (metrics.Sum(), keras.metrics.Sum()),
        (metrics.Mean(), keras.metrics.Mean()),
    ):
        for v, w in feeds:
            ours.update_state(v, w)
            theirs.update_state(v, w)
        assert ours.result() == pytest.approx(float(theirs.result()), rel=1e-6), ours.name

    def gap(y_true, y_pred):
        return hpnn.ops.abs(y_true - y_pred) * 2.0

    def keras_gap(y_true, y_pred):
        return keras.ops.abs(y_true - y_pred) * 2.0

    got, want = follow(
        metrics.MeanMetricWrapper(gap),
        keras.metrics.MeanMetricWrapper(keras_gap),
        batches("positive"),
    )
    assert got == pytest.approx(want, rel=1e-5)


def test_function_forms_follow_keras(keras):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((9, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 9)
    onehot = np.eye(5, dtype=np.float32)[labels]
    binary = rng.integers(0, 2, (9, 5)).astype(np.float32)
    pairs = [
        ("binary_accuracy", (binary, rng.random((9, 5)).astype(np.float32)), {}),
        ("binary_accuracy", (binary, rng.random((9, 5)).astype(np.float32)), {"threshold": 0.7}),
        ("binary_accuracy", (binary[:, 0], rng.random((9, 1)).astype(np.float32)), {}),
        ("categorical_accuracy", (onehot, z), {}),
        ("sparse_categorical_accuracy", (labels, z), {}),
        ("sparse_categorical_accuracy", (labels[:, None], z), {}),
        ("top_k_categorical_accuracy", (onehot, z), {"k": 2}),
        ("sparse_top_k_categorical_accuracy", (labels, z), {"k": 3}),
        (
            "sparse_top_k_categorical_accuracy",
            (labels, np.argsort(-z, axis=1).astype(np.float32)),
            {"k": 2, "from_sorted_ids": True},
        ),
        ("pearson_correlation", (z, z * 0.5 + rng.standard_normal((9, 5))), {}),
        ("concordance_correlation", (z, z * 0.5 + rng.standard_normal((9, 5))), {}),
    ]
    for name, args, kwargs in pairs:
        got = getattr(metrics, name)(*args, **kwargs)
        got = np.asarray(got.data if isinstance(got, hpnn.Tensor) else got)
        want = keras.ops.convert_to_numpy(getattr(keras.metrics, name)(*args, **kwargs))
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
    for name in (
        "binary_crossentropy",
        "categorical_crossentropy",
        "hinge",
        "poisson",
        "huber",
        "kl_divergence",
        "log_cosh",
        "binary_focal_crossentropy",
        "categorical_focal_crossentropy",
        "mean_squared_error",
    ):
        assert getattr(metrics, name) is getattr(losses, name)  # (Keras' are its losses' too)


def test_metric_names_resolve_as_keras_resolves_them(keras):
    from keras.src.metrics import ALL_OBJECTS_DICT

    for name, cls in ALL_OBJECTS_DICT.items():
        if cls.__name__ == "Metric" or name in ("accuracy", "acc"):
            continue  # (compile resolves "accuracy" from the loss, in both)
        try:
            expected = keras.metrics.get(name)
        except TypeError:  # needs arguments (IoU...): hpnn says which, by name
            with pytest.raises(ValueError, match=f"Metric {name!r} .* needs"):
                metrics.get(name)
            continue
        got = metrics.get(name)
        assert type(got).__name__ == type(expected).__name__, name
        assert got.name == name  # as Keras' compile names a metric given by name


# -- by hand (always run) -----------------------------------------------------------------
def test_means_and_sums_by_hand():
    assert metrics.Sum()([1, 3, 5, 7], sample_weight=[1, 1, 0, 0]) == 4.0
    assert metrics.Mean()([1, 3, 5, 7], sample_weight=[1, 1, 0, 0]) == 2.0
    m = metrics.Mean()
    m.update_state(np.array([[1.0, 3.0], [5.0, 7.0]]), sample_weight=[3.0, 1.0])
    assert m.result() == pytest.approx((2 * 3 + 6) / 4)  # rows averaged, then weighted
    pearson = metrics.PearsonCorrelation()
    pearson.update_state([[1, 2, 3], [1, 2, 3]], [[2, 4, 6], [3, 2, 1]], sample_weight=[3, 1])
    assert pearson.result() == pytest.approx((3 * 1 - 1) / 4)
    ccc = metrics.ConcordanceCorrelation()
    assert ccc([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]]) == pytest.approx(1.0, abs=1e-6)
    hinge = metrics.Hinge()
    hinge.update_state([[1.0], [0.0]], [[0.5], [0.5]])  # 0/1 targets as -1/1
    assert hinge.result() == pytest.approx((0.5 + 1.5) / 2)
    y, p = np.eye(3)[[0, 1, 2, 1]], np.array([[0.7, 0.2, 0.1]] * 4)
    cce = metrics.CategoricalCrossentropy()
    cce.update_state(y, p)
    assert cce.result() == pytest.approx(-np.log([0.7, 0.2, 0.1, 0.2]).mean(), rel=1e-6)
    scce = metrics.SparseCategoricalCrossentropy(ignore_class=1)
    scce.update_state([0, 1, 2, 1], p)  # the label-1 samples do not count
    assert scce.result() == pytest.approx(-np.log([0.7, 0.1]).mean(), rel=1e-6)


def test_iou_by_hand():
    # confusion [[1, 1], [1, 1]]: each class 1 / (2 + 2 - 1)
    assert metrics.MeanIoU(2)([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(1 / 3, rel=1e-6)
    iou = metrics.IoU(3, target_class_ids=[1])
    iou.update_state([0, 1, 1, 2], [0, 1, 2, 2], sample_weight=[1, 2, 3, 1])
    assert iou.result() == pytest.approx(2 / (5 + 2 - 2), rel=1e-6)  # class 1: tp 2, union 5
    assert metrics.BinaryIoU(threshold=0.5)([0, 1, 0, 1], [0.1, 0.8, 0.6, 0.3]) == pytest.approx(
        1 / 3, rel=1e-6
    )
    # a class never seen drops out of the mean (not a 0 in it)
    assert metrics.MeanIoU(4)([0, 0], [0, 0]) == pytest.approx(1.0, rel=1e-6)
    one_hot = metrics.OneHotMeanIoU(3)([[1, 0, 0], [0, 1, 0]], [[0.6, 0.3, 0.1], [0.6, 0.3, 0.1]])
    assert one_hot == pytest.approx((1 / 2 + 0) / 2, rel=1e-6)


def test_rates_at_rates_by_hand():
    # thresholds 0, 0.5, 1: above 0 -> tp 2 fp 1 tn 1 fn 0; above 0.5 -> tp 1 fp 0 tn 2 fn 1
    y, p = [0, 0, 1, 1], [0.0, 0.5, 0.5, 1.0]
    assert metrics.PrecisionAtRecall(0.5, num_thresholds=3)(y, p) == pytest.approx(1.0)
    assert metrics.PrecisionAtRecall(1.0, num_thresholds=3)(y, p) == pytest.approx(2 / 3)
    assert metrics.RecallAtPrecision(0.8, num_thresholds=3)(y, p) == pytest.approx(0.5)
    assert metrics.SensitivityAtSpecificity(1.0, num_thresholds=3)(y, p) == pytest.approx(0.5)
    assert metrics.SpecificityAtSensitivity(1.0, num_thresholds=3)(y, p) == pytest.approx(0.5)
    m = metrics.PrecisionAtRecall(0.5, num_thresholds=3)
    m.update_state(y, p, sample_weight=[0, 5, 1, 1])  # a heavy false positive at 0.5
    assert m.result() == pytest.approx(1.0)
    np.testing.assert_allclose(m.counts[:, 0], [2, 5, 0, 0])  # tp, fp, tn, fn above 0


def test_function_forms_by_hand():
    y, p = np.array([[1.0], [0.0], [1.0]]), np.array([[0.9], [0.6], [0.4]])
    np.testing.assert_array_equal(metrics.binary_accuracy(y, p), [[1], [0], [0]])
    scores = np.array([[0.1, 0.5, 0.4], [0.3, 0.3, 0.4]])
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy([1, 0], scores), [1, 0])
    np.testing.assert_array_equal(metrics.categorical_accuracy(np.eye(3)[[2, 2]], scores), [0, 1])
    # ties at the k-th largest count in (as ops.in_top_k): 0.3 is among row 2's top 2
    top2 = metrics.top_k_categorical_accuracy(np.eye(3)[[2, 0]], scores, k=2)
    np.testing.assert_array_equal(top2, [1, 1])
    top2 = metrics.sparse_top_k_categorical_accuracy([0, 0], scores, k=2)
    np.testing.assert_array_equal(top2, [0, 1])
    top1 = metrics.sparse_top_k_categorical_accuracy([0, 2], scores, k=1)
    np.testing.assert_array_equal(top1, [0, 1])
    r = metrics.pearson_correlation([[1.0, 2.0, 3.0]], [[3.0, 2.0, 1.0]])
    np.testing.assert_allclose(r.data, [-1.0], rtol=1e-6)


def test_serialize_and_get_round_trip():
    for m in (
        metrics.MeanIoU(3, ignore_class=0, name="miou"),
        metrics.PrecisionAtRecall(0.4, num_thresholds=9, class_id=1),
        metrics.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
        metrics.SparseCategoricalCrossentropy(ignore_class=2),
        metrics.OneHotIoU(4, [1, 2]),
        metrics.Sum(name="total"),
    ):
        entry = metrics.serialize(m)
        assert entry["module"] == "keras.metrics" and entry["class_name"] == type(m).__name__
        back = metrics.deserialize(entry)
        assert type(back) is type(m) and back.get_config() == m.get_config()
        assert type(metrics.get(entry)) is type(m)
    assert metrics.deserialize("kl_divergence").name == "kl_divergence"
    fn = metrics.serialize(metrics.binary_accuracy)
    assert fn["class_name"] == "function" and metrics.deserialize(fn) is metrics.binary_accuracy
    wrapped = metrics.MeanMetricWrapper(losses.hinge, name="h")
    again = metrics.deserialize(metrics.serialize(wrapped))
    assert again._fn is losses.hinge and again.name == "h"


# -- compile and fit ----------------------------------------------------------------------
def test_new_metrics_by_name_in_compile_and_fit():
    hpnn.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 5)).astype(np.float32)
    y = (x[:, 0] + 0.3 * x[:, 1] > 0).astype(np.float32)[:, None]
    model = hpnn.Sequential([hpnn.Input((5,)), layers.Dense(1, activation="sigmoid")])
    names = ["binary_crossentropy", "BinaryIoU", "hinge", "poisson", "kl_divergence", "bce"]
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=names)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert set(names) <= set(history.history)
    logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0)
    for name in names:
        fresh = metrics.get(name)
        fresh.update_state(y, p)
        assert logs[name] == pytest.approx(fresh.result(), rel=1e-5), name
    assert logs["bce"] == pytest.approx(logs["loss"], rel=1e-5)  # the loss as a metric
    with pytest.raises(ValueError, match=r"Metric 'mean_io_u' .* needs num_classes"):
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["mean_io_u"])


def test_functions_as_metrics_in_compile():
    hpnn.utils.set_random_seed(1)
    x = np.random.default_rng(1).standard_normal((20, 3)).astype(np.float32)
    y = x @ np.array([[1.0, 0.5], [0.0, 1.0], [2.0, -1.0]], np.float32)
    model = hpnn.Sequential([hpnn.Input((3,)), layers.Dense(2)])
    model.compile(
        optimizer="sgd",
        loss="mse",
        metrics=[metrics.pearson_correlation, metrics.log_cosh, metrics.ConcordanceCorrelation()],
    )
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0)
    assert logs["pearson_correlation"] == pytest.approx(
        float(metrics.pearson_correlation(y, p).data.mean()), rel=1e-5
    )
    assert logs["log_cosh"] == pytest.approx(float(losses.log_cosh(y, p).data.mean()), rel=1e-5)
    assert "concordance_correlation" in logs


# -- the batch split and MPI ---------------------------------------------------------------
def split_metrics():
    return [
        metrics.OneHotIoU(3, [0, 2]),
        metrics.OneHotMeanIoU(3),
        metrics.PrecisionAtRecall(0.5),
        metrics.RecallAtPrecision(0.3, class_id=1),
        metrics.SensitivityAtSpecificity(0.5, num_thresholds=20),
        metrics.SpecificityAtSensitivity(0.5),
        metrics.CategoricalCrossentropy(),
        metrics.KLDivergence(),
        metrics.PearsonCorrelation(),
        metrics.ConcordanceCorrelation(),
        metrics.CategoricalHinge(),
        metrics.CosineSimilarity(),
        metrics.MeanAbsolutePercentageError(),
    ]


def three_class(seed=0):
    hpnn.utils.set_random_seed(seed)
    model = hpnn.Sequential(
        [
            hpnn.Input((6,)),
            layers.Dense(8, activation="tanh"),
            layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=split_metrics())
    return model


def three_class_data(n, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)
    return x, hpnn.utils.to_categorical(labels, 3), rng.uniform(0.5, 2.0, n).astype(np.float32)


def test_new_metrics_are_the_same_whole_and_split_across_the_cores(monkeypatch):
    pytest.importorskip("threadpoolctl")
    from hpnn.parallel import split

    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "0")
    monkeypatch.setattr(split, "MIN_PER_PART", 4)
    calls = []
    real = split.run

    def spy(step, kind, plan, slices, *args, **kwargs):
        calls.append((kind, len(slices)))
        return real(step, kind, plan, slices, *args, **kwargs)

    monkeypatch.setattr(split, "run", spy)
    x, y, w = three_class_data(36)
    runs = []
    for setting in ("3", "0"):
        monkeypatch.setenv("HPNN_BATCH_THREADS", setting)
        model = three_class()
        history = model.fit(x, y, sample_weight=w, batch_size=12, epochs=2, verbose=0)
        model.evaluate(x, y, batch_size=12, verbose=0)  # (the census: whole)
        logs = model.evaluate(x, y, sample_weight=w, batch_size=12, verbose=0, return_dict=True)
        runs.append((history.history, logs))
    assert ("train", 3) in calls and ("test", 3) in calls  # the split ran, in three parts
    (ha, la), (hb, lb) = runs
    for key in hb:
        np.testing.assert_allclose(ha[key], hb[key], rtol=1e-5, atol=1e-7, err_msg=key)
    for key in lb:
        assert la[key] == pytest.approx(lb[key], rel=1e-5, abs=1e-7), key


def test_new_metrics_are_the_same_in_worker_processes(monkeypatch):
    pytest.importorskip("threadpoolctl")
    from hpnn.parallel import split, workers

    monkeypatch.setenv("HPNN_BATCH_THREADS", "2")
    monkeypatch.setattr(split, "MIN_PER_PART", 4)
    monkeypatch.setattr(split, "MAX_PER_PART", 6)
    monkeypatch.setattr(workers, "WARM_STEPS", 2)
    ran = []
    real = workers.Pool.run

    def run(self, *args, **kwargs):
        ran.append(True)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(workers.Pool, "run", run)
    x, y, w = three_class_data(60)
    runs = []
    for processes in ("1", "0"):
        monkeypatch.setenv("HPNN_BATCH_PROCESSES", processes)
        model = three_class()
        runs.append(model.fit(x, y, sample_weight=w, batch_size=12, epochs=3, verbose=0).history)
        model._plans["train"].slot.close()
    assert ran  # parts ran in the worker process
    for key in runs[1]:
        np.testing.assert_allclose(runs[0][key], runs[1][key], rtol=1e-5, atol=1e-7, err_msg=key)


def test_state_vectors_add_up_over_parts_as_ranks_add_them():
    x, y, w = three_class_data(40, seed=3)
    p = three_class().predict(x, verbose=0)
    for whole in split_metrics():
        whole.update_state(y, p, sample_weight=w)
        a, b = (
            type(whole).from_config(whole.get_config()),
            type(whole).from_config(whole.get_config()),
        )
        a.update_state(y[:13], p[:13], sample_weight=w[:13])
        b.update_state(y[13:], p[13:], sample_weight=w[13:])
        merged = type(whole).from_config(whole.get_config())
        assert len(merged.state_vector()) == len(whole.state_vector())  # sized before data
        merged.set_state_vector(a.state_vector() + b.state_vector())
        assert merged.result() == pytest.approx(whole.result(), rel=1e-9, abs=1e-12), whole.name
        merged.reset_state()
        assert not merged.state_vector().any() and merged.result() == 0.0


@pytest.fixture
def one_rank():
    hpnn.distributed.init(hpnn.distributed.SingleProcessComm())
    yield
    hpnn.distributed.shutdown()


def _fit_and_evaluate(n, batch_size):
    x, y, w = three_class_data(n)
    model = three_class()
    history = model.fit(x, y, sample_weight=w, batch_size=batch_size, epochs=2, verbose=0)
    logs = model.evaluate(x, y, sample_weight=w, batch_size=batch_size, verbose=0, return_dict=True)
    return history.history, logs


def test_new_metrics_through_a_one_rank_communicator(one_rank):
    ha, la = _fit_and_evaluate(24, 8)
    hpnn.distributed.shutdown()
    hb, lb = _fit_and_evaluate(24, 8)
    for key in hb:
        np.testing.assert_allclose(ha[key], hb[key], rtol=1e-5, atol=1e-7, err_msg=key)
    for key in lb:
        assert la[key] == pytest.approx(lb[key], rel=1e-5, abs=1e-7), key


WORKER = """
import sys, json
sys.path.insert(0, {tests!r})
import numpy as np, hpnn
from test_metrics_keras import _fit_and_evaluate
history, logs = _fit_and_evaluate(24, 4)  # per-rank batch 4: a global batch of 8
if hpnn.distributed.rank() == 0:
    json.dump({{"history": history, "logs": logs}}, open(sys.argv[1], "w"))
"""


def test_new_metrics_under_two_mpi_ranks_equal_one_process(tmp_path):
    exe = shutil.which("mpiexec") or shutil.which("mpiexec", path=str(Path(sys.executable).parent))
    pytest.importorskip("mpi4py")
    if exe is None:
        pytest.skip("mpiexec not installed")
    import json

    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(Path(__file__).parent)))
    env = dict(os.environ, PYTHONPATH=str(Path(hpnn.__file__).parent.parent), OMP_NUM_THREADS="1")
    out = tmp_path / "out.json"
    cmd = [exe, "-n", "2", sys.executable, "-m", "mpi4py", str(script), str(out)]
    proc = subprocess.run(cmd, env=env, timeout=300, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    many = json.loads(out.read_text())
    # two ranks of per-rank batch 4 = one process of batch 8 (the global batch)
    one_history, one_logs = _fit_and_evaluate(24, 8)
    assert many["history"].keys() == one_history.keys()
    for key in one_history:
        np.testing.assert_allclose(
            many["history"][key], one_history[key], rtol=1e-4, atol=1e-6, err_msg=key
        )
    for key in one_logs:
        assert many["logs"][key] == pytest.approx(one_logs[key], rel=1e-4, abs=1e-6), key


# -- bad arguments --------------------------------------------------------------------------
def test_bad_arguments_say_what_was_expected_and_received():
    with pytest.raises(ValueError, match=r"IoU: num_classes must be an int >= 2. Received: 1"):
        metrics.IoU(1, [0])
    with pytest.raises(
        ValueError,
        match=r"target_class_ids must be .* \[0, 3\)\. Received: "
        r"target_class_ids=\[3\]",
    ):
        metrics.IoU(3, [3])
    with pytest.raises(
        ValueError,
        match="PrecisionAtRecall: recall must be a number in "
        r"\[0, 1\]. Received: recall=1.5",
    ):
        metrics.PrecisionAtRecall(1.5)
    with pytest.raises(ValueError, match=r"num_thresholds must be an int > 0\. Received: 0"):
        metrics.SensitivityAtSpecificity(0.5, num_thresholds=0)
    with pytest.raises(ValueError, match="with class_id, y_pred must be"):
        metrics.RecallAtPrecision(0.5, class_id=1).update_state([0, 1], [0.2, 0.8])
    with pytest.raises(NotImplementedError, match=r"last axis only\. Received: axis=0"):
        metrics.CategoricalCrossentropy(axis=0)
    with pytest.raises(TypeError, match="fn must be a function"):
        metrics.MeanMetricWrapper(3)
    with pytest.raises(ValueError, match="MeanIoU 'mean_io_u': y_true and y_pred hold"):
        metrics.MeanIoU(3).update_state([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match=r"Unknown metric: .* Received: metric='no_such'"):
        metrics.get("no_such")

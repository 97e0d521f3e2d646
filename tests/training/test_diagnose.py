"""Tests for hpnn.training.diagnose: verdicts on synthetic and real learning curves."""

import numpy as np
import pytest

import hpnn
from hpnn import Input, Sequential, layers, optimizers
from hpnn.training.callbacks import History
from hpnn.training.diagnose import Diagnosis, diagnose

VERDICTS = {"overfitting", "underfitting", "good fit", "not enough data"}


def test_overfitting_when_val_loss_rises_from_its_minimum():
    h = {
        "loss": [1.0, 0.6, 0.4, 0.3, 0.2, 0.15, 0.1, 0.07, 0.05, 0.03],
        "val_loss": [0.9, 0.6, 0.45, 0.31, 0.33, 0.36, 0.38, 0.41, 0.43, 0.45],
    }
    d = diagnose(h)
    assert d.verdict == "overfitting"
    assert d.reasons[0] == (
        "val_loss rose from 0.31 (epoch 4, its minimum) to 0.45 (epoch 10) while loss kept "
        "falling (0.3 -> 0.03)"
    )
    assert "15.0x the training loss 0.03" in d.reasons[1]
    text = str(d)
    assert text.startswith("Diagnosis: overfitting") and "EarlyStopping" in text


def test_overfitting_from_the_accuracy_gap_alone():
    h = {
        "loss": [1.0, 0.5, 0.4, 0.38, 0.37],
        "val_loss": [1.0, 0.6, 0.55, 0.54, 0.54],
        "accuracy": [0.5, 0.8, 0.9, 0.95, 0.97],
        "val_accuracy": [0.5, 0.7, 0.78, 0.8, 0.81],
    }
    d = diagnose(h)
    assert d.verdict == "overfitting"
    assert d.reasons == [
        "accuracy 0.97 on training vs 0.81 on validation at epoch 5 (a gap of 16 points)"
    ]


def test_underfitting_when_the_loss_plateaus_high():
    h = {"loss": [1.1, 1.0, 0.95, 0.94, 0.94], "val_loss": [1.1, 1.02, 0.97, 0.96, 0.96]}
    d = diagnose(h)
    assert d.verdict == "underfitting"
    assert d.reasons == [
        "loss only fell from 1.1 (epoch 1) to 0.94 (epoch 5), 85% of its initial value"
    ]


def test_underfitting_when_still_falling_at_the_end():
    h = {"loss": [1.0, 0.5, 0.3, 0.2, 0.15], "val_loss": [1.0, 0.55, 0.35, 0.25, 0.2]}
    d = diagnose(h)
    assert d.verdict == "underfitting"
    assert d.reasons == [
        "loss was still falling 25.0% per epoch over the last 3 epochs (0.3 -> 0.15), and "
        "val_loss is at its minimum 0.2: training stopped early"
    ]


def test_diverged_training_is_underfitting():
    d = diagnose({"loss": [1.0, 50.0, float("nan")], "val_loss": [1.0, 2.0, float("nan")]})
    assert d.verdict == "underfitting" and "loss became nan at epoch 3" in d.reasons[0]


def test_good_fit():
    h = {
        "loss": [1.0, 0.4, 0.25, 0.21, 0.2, 0.2],
        "val_loss": [1.0, 0.45, 0.3, 0.26, 0.25, 0.255],
    }
    d = diagnose(h)
    assert d.verdict == "good fit"
    assert d.reasons[0] == "loss fell from 1 to 0.2 and levelled off"
    assert "val_loss ended at 0.255 (epoch 6), within 2% of its minimum 0.25" in d.reasons[1]


def test_not_enough_data():
    d = diagnose({"loss": [1.0, 0.5], "val_loss": [1.0, 0.6]})
    assert d.verdict == "not enough data" and "only 2 epoch(s)" in d.reasons[0]
    assert diagnose({}).verdict == "not enough data"
    # a fine training curve without validation cannot rule out overfitting
    d = diagnose({"loss": [1.0, 0.4, 0.25, 0.21, 0.2, 0.2]})
    assert d.verdict == "not enough data" and "no val_loss curve" in d.reasons[0]
    # ...but an underfit one is underfit with or without validation
    assert diagnose({"loss": [1.1, 1.0, 0.95, 0.94]}).verdict == "underfitting"


def test_validation_freq_and_initial_epoch_are_respected():
    h = History()
    h.epoch = [10, 11, 12, 13, 14, 15]  # resumed at initial_epoch=10
    h.history = {
        "loss": [1.0, 0.6, 0.4, 0.3, 0.2, 0.1],
        "val_loss": [0.5, 0.3, 0.6],  # validation_freq=2: after epochs 12, 14, 16
    }
    d = diagnose(h)
    assert d.verdict == "overfitting"
    assert d.reasons[0].startswith(
        "val_loss rose from 0.3 (epoch 14, its minimum) to 0.6 (epoch 16)"
    )


def test_bad_input():
    with pytest.raises(TypeError, match="Received: list"):
        diagnose([1.0, 0.5])


def test_real_short_runs():
    rng = np.random.default_rng(0)
    # random labels, 20 samples to train on, a wide layer: it can only memorise
    x = rng.standard_normal((40, 20)).astype(np.float32)
    y = rng.integers(0, 2, 40)
    hpnn.utils.set_random_seed(0)
    m = Sequential([Input((20,)), layers.Dense(64, "relu"), layers.Dense(2, "softmax")])
    m.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    d = diagnose(m.fit(x, y, epochs=30, validation_split=0.5, verbose=0))
    assert isinstance(d, Diagnosis) and d.verdict == "overfitting"
    assert any(r.startswith("val_loss rose from") for r in d.reasons)
    # well separated blobs: learnt quickly, validation close behind
    centers = rng.standard_normal((3, 8)) * 2
    y = rng.integers(0, 3, 600)
    x = (centers[y] + rng.standard_normal((600, 8))).astype(np.float32)
    hpnn.utils.set_random_seed(0)
    m = Sequential([Input((8,)), layers.Dense(16, "relu"), layers.Dense(3, "softmax")])
    m.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    d = diagnose(m.fit(x, y, epochs=10, validation_split=0.25, verbose=0))
    assert d.verdict == "good fit", str(d)

"""Tests for hpnn.training.callbacks_extra: ReduceLROnPlateau, LearningRateScheduler,
TerminateOnNaN and CSVLogger, on a small Dense model and synthetic blobs."""

import csv

import numpy as np
import pytest

import hpnn
from hpnn import Input, Sequential, callbacks, layers, optimizers
from hpnn.schedules import ExponentialDecay
from hpnn.training.callbacks_extra import (
    CSVLogger,
    LearningRateScheduler,
    ReduceLROnPlateau,
    TerminateOnNaN,
)


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((3, 4)) * 3
    y = rng.integers(0, 3, 60)
    x = (centers[y] + rng.standard_normal((60, 4)) * 0.5).astype(np.float32)
    return x, y


def model(lr=0.01, optimizer=None):
    hpnn.utils.set_random_seed(0)
    m = Sequential([Input((4,)), layers.Dense(8, activation="relu"), layers.Dense(3, "softmax")])
    m.compile(
        optimizer=optimizer or optimizers.SGD(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return m


class Recorder(callbacks.Callback):
    """Keeps a copy of each epoch's logs as the callbacks before it left them."""

    def __init__(self):
        super().__init__()
        self.logs = []

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append(dict(logs))


def feed(cb, m, values, key="val_loss"):
    """Drive a callback's epoch ends by hand with the monitored values; returns the lrs."""
    cb.set_model(m)
    cb.on_train_begin()
    lrs = []
    for epoch, v in enumerate(values):
        logs = {key: v}
        cb.on_epoch_end(epoch, logs)
        lrs.append(logs["learning_rate"])
    return lrs, m.optimizer.learning_rate


# -- ReduceLROnPlateau -------------------------------------------------------------------


def test_reduce_lr_after_patience_with_cooldown_and_floor():
    m = model(lr=1.0)
    cb = ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.2)
    # Keras' counting: improves at epochs 0-1, then flat; waits 2 (epochs 2, 3) -> 0.5 after
    # epoch 3. The cooldown epoch (4) decrements the counter and then already counts as a
    # wait, so 0.25 comes after epoch 5 and the floor 0.2 after epoch 7; at the floor the
    # rate stays.
    lrs, final = feed(cb, m, [1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert lrs == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2])
    assert final == pytest.approx(0.2)


def test_reduce_lr_min_delta_and_max_mode():
    m = model(lr=1.0)
    # gains of 0.001 < min_delta=0.01 are no improvement; 'acc' in the key means max mode
    cb = ReduceLROnPlateau(monitor="val_accuracy", factor=0.1, patience=2, min_delta=0.01)
    lrs, final = feed(cb, m, [0.5, 0.501, 0.502, 0.6], key="val_accuracy")
    assert cb.monitor_op(0.7, 0.6) and not cb.monitor_op(0.6, 0.7)
    assert lrs == [1.0, 1.0, 1.0, 0.1] and final == pytest.approx(0.1)


def test_reduce_lr_in_fit_logs_the_epochs_rate(blobs):
    x, y = blobs
    m = model(lr=0.1)
    rec = Recorder()
    # monitor the training loss with an impossible min_delta: every epoch is "no improvement"
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10.0, verbose=0)
    m.fit(x, y, batch_size=20, epochs=4, verbose=0, callbacks=[cb, rec])
    assert [r["learning_rate"] for r in rec.logs] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert m.optimizer.learning_rate == pytest.approx(0.0125)


def test_reduce_lr_refuses_a_schedule(blobs):
    x, y = blobs
    m = model(optimizer=optimizers.SGD(ExponentialDecay(0.1, 10, 0.9)))
    with pytest.raises(TypeError, match=r"not settable.*Received: learning_rate=ExponentialDecay"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[ReduceLROnPlateau()])


def test_reduce_lr_bad_arguments_and_missing_monitor():
    with pytest.raises(ValueError, match=r"Received: factor=1\.5"):
        ReduceLROnPlateau(factor=1.5)
    with pytest.raises(ValueError, match="Received: mode='best'"):
        ReduceLROnPlateau(mode="best")
    m = model()
    cb = ReduceLROnPlateau(monitor="val_loss")
    cb.set_model(m)
    cb.on_train_begin()
    with pytest.warns(UserWarning, match="Available: learning_rate, loss"):
        cb.on_epoch_end(0, {"loss": 1.0})


# -- LearningRateScheduler ---------------------------------------------------------------


def test_scheduler_sets_rate_each_epoch_and_logs_it(blobs, capsys):
    x, y = blobs
    m = model(lr=0.1)
    rec = Recorder()
    cb = LearningRateScheduler(lambda epoch, lr: lr if epoch < 2 else lr * 0.5, verbose=1)
    m.fit(x, y, batch_size=20, epochs=4, verbose=0, callbacks=[cb, rec])
    assert [r["learning_rate"] for r in rec.logs] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert "Epoch 3: LearningRateScheduler setting learning rate to 0.05" in capsys.readouterr().out


def test_scheduler_old_one_argument_form_and_numpy_floats(blobs):
    x, y = blobs
    m = model()
    rec = Recorder()
    cb = LearningRateScheduler(lambda epoch: np.float32(0.01 * (epoch + 1)))
    m.fit(x, y, batch_size=30, epochs=3, verbose=0, callbacks=[cb, rec])
    assert [r["learning_rate"] for r in rec.logs] == pytest.approx([0.01, 0.02, 0.03])


def test_scheduler_rejects_non_float_and_schedules(blobs):
    x, y = blobs
    m = model()
    with pytest.raises(ValueError, match=r"should be a float\. Received: 'fast'"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[LearningRateScheduler(lambda e, lr: "fast")])
    with pytest.raises(TypeError, match="Received: schedule=3"):
        LearningRateScheduler(3)
    m = model(optimizer=optimizers.SGD(ExponentialDecay(0.1, 10, 0.9)))
    with pytest.raises(TypeError, match="not settable"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[LearningRateScheduler(lambda e, lr: lr)])


def test_learning_rate_reaches_history(blobs):
    x, y = blobs
    m = model()
    hist = m.fit(x, y, epochs=2, verbose=0, callbacks=[LearningRateScheduler(lambda e, lr: lr)])
    assert hist.history["learning_rate"] == pytest.approx([0.01, 0.01])


# -- TerminateOnNaN ----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_terminate_on_nan_stops_at_the_first_bad_batch(blobs, capsys):
    x = blobs[0] * 1e3
    m = Sequential([Input((4,)), layers.Dense(3)])
    m.compile(optimizer=optimizers.SGD(1e3), loss="mse")
    seen = []
    count = callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(logs["loss"]))
    hist = m.fit(
        x, np.ones((60, 3), np.float32), batch_size=5, epochs=5, verbose=0,
        callbacks=[TerminateOnNaN(), count],
    )  # fmt: skip
    assert not np.isfinite(seen[-1]) and all(np.isfinite(seen[:-1]))
    assert len(seen) < 12 and len(hist.epoch) == 1
    assert "Invalid loss, terminating training" in capsys.readouterr().out


def test_terminate_on_nan_leaves_finite_runs_alone(blobs):
    x, y = blobs
    hist = model().fit(x, y, epochs=3, batch_size=20, verbose=0, callbacks=[TerminateOnNaN()])
    assert len(hist.epoch) == 3


# -- CSVLogger ---------------------------------------------------------------------------


def read_csv(path, sep=","):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=sep))


def test_csv_logger_writes_header_and_rows_with_validation(blobs, tmp_path):
    x, y = blobs
    path = tmp_path / "log.csv"
    m = model()
    hist = m.fit(
        x, y, batch_size=20, epochs=3, verbose=0, validation_split=0.25,
        callbacks=[CSVLogger(path)],
    )  # fmt: skip
    rows = read_csv(path)
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    np.testing.assert_allclose([float(r[2]) for r in rows[1:]], hist.history["loss"], rtol=1e-6)
    np.testing.assert_allclose([float(r[4]) for r in rows[1:]], hist.history["val_loss"])


def test_csv_logger_flushes_each_epoch_and_closes(blobs, tmp_path):
    x, y = blobs
    path = tmp_path / "log.csv"
    logger = CSVLogger(path, separator=";")
    lines_seen = []
    peek = callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: lines_seen.append(len(read_csv(path, ";")))
    )
    model().fit(x, y, epochs=2, batch_size=30, verbose=0, callbacks=[logger, peek])
    assert lines_seen == [2, 3]  # the row is on disk before the next callback runs
    assert logger.csv_file is None
    rows = read_csv(path, ";")
    # no validation in the first epoch: val_ twins hold NA, as in Keras
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert rows[1][3:] == ["NA", "NA"]


def test_csv_logger_append_writes_one_header(blobs, tmp_path):
    x, y = blobs
    path = tmp_path / "log.csv"
    m = model()
    m.fit(x, y, epochs=2, verbose=0, callbacks=[CSVLogger(path)])
    m.fit(x, y, epochs=1, verbose=0, callbacks=[CSVLogger(path, append=True)])
    rows = read_csv(path)
    assert len(rows) == 4 and rows[0][0] == "epoch" and [r[0] for r in rows[1:]] == ["0", "1", "0"]
    m.fit(x, y, epochs=1, verbose=0, callbacks=[CSVLogger(path)])  # overwrite
    assert len(read_csv(path)) == 2


def test_csv_logger_records_learning_rate_after_a_scheduler(blobs, tmp_path):
    x, y = blobs
    path = tmp_path / "log.csv"
    cbs = [LearningRateScheduler(lambda e, lr: 0.1 / (e + 1)), CSVLogger(path)]
    model().fit(x, y, epochs=2, verbose=0, callbacks=cbs)
    rows = read_csv(path)
    col = rows[0].index("learning_rate")
    assert [float(r[col]) for r in rows[1:]] == pytest.approx([0.1, 0.05])


def test_csv_logger_writes_nothing_off_rank_0(blobs, tmp_path, monkeypatch):
    from hpnn.training import callbacks_extra

    monkeypatch.setattr(callbacks_extra, "is_chief", lambda: False)
    x, y = blobs
    path = tmp_path / "log.csv"
    model().fit(x, y, epochs=1, verbose=0, callbacks=[CSVLogger(path)])
    assert not path.exists()

"""Tests for hpnn.models.part_workers: the batch split's parts in forked worker processes
give the threads' numbers bit for bit, and a worker that fails or a model that goes
away leaves nothing behind."""

import gc
import os
import signal
import subprocess
import tempfile
import time

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.models import batch_split, part_workers

pytest.importorskip("threadpoolctl")
pytestmark = pytest.mark.skipif(not part_workers._CAN_FORK, reason="workers fork (Linux)")


@pytest.fixture
def split(monkeypatch):
    """Two threads (one worker), parts of at least 4 and at most 6 samples, workers after
    two split steps."""
    monkeypatch.setenv("HPNN_BATCH_THREADS", "2")
    monkeypatch.setattr(batch_split, "MIN_PER_THREAD", 4)
    monkeypatch.setattr(batch_split, "MAX_PER_PART", 6)
    monkeypatch.setattr(part_workers, "WARM_STEPS", 2)
    return spy_runs(monkeypatch, "train")


def spy_runs(monkeypatch, kind):
    """A list that gets, for each split batch of ``kind`` the worker pool is asked to
    run, whether the workers ran it (True) or handed it back to threads (False)."""
    used = []
    real = part_workers.Pool.run

    def spy(self, *args):
        out = real(self, *args)
        if args[0] == kind:
            used.append(out is not None)
        return out

    monkeypatch.setattr(part_workers.Pool, "run", spy)
    return used


def cnn(frozen=False):
    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential(
        [
            hpnn.Input((8, 8, 2)),
            layers.Conv2D(8, 3, activation="relu", kernel_regularizer="l2", trainable=not frozen),
            layers.Conv2D(8, 3, activation="relu", activity_regularizer="l1"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def data(n=20, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8, 8, 2)).astype(np.float32)
    return x, rng.integers(0, 3, n), rng.uniform(0.5, 2.0, n).astype(np.float32)


def wait_ready(model, timeout=20.0):
    """Wait until the model's worker says it is ready (its start takes a moment)."""
    deadline = time.monotonic() + timeout
    while not model._part_pool.ready(1):
        assert time.monotonic() < deadline, "the worker never came up"
        time.sleep(0.01)


def train(monkeypatch, processes, steps=6, frozen=False):
    """``steps`` training steps; with workers, the first WARM_STEPS on threads, then
    (once the worker is up) the rest through it."""
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", processes)
    model = cnn(frozen)
    x, y, w = data()
    logs = []
    for step in range(steps):
        if processes == "1" and step == part_workers.WARM_STEPS:
            wait_ready(model)
        logs.append(model.train_on_batch(x, y, sample_weight=w, return_dict=True))
    return model, logs


@pytest.mark.parametrize("frozen", [False, True], ids=["all_train", "first_frozen"])
def test_workers_give_the_threads_numbers_bit_for_bit(split, monkeypatch, frozen):
    a, logs_a = train(monkeypatch, "1", frozen=frozen)
    pool = a._part_pool
    assert [w.pid for w in pool.workers] and all(w.ready for w in pool.workers)
    assert split[-3:] == [True] * 3  # the last steps' parts ran in the worker
    assert batch_split.parts(a, 20, training=True) == [
        slice(0, 5), slice(5, 10), slice(10, 15), slice(15, 20)
    ]  # fmt: skip
    b, logs_b = train(monkeypatch, "0", frozen=frozen)
    assert "_part_pool" not in b.__dict__
    assert logs_a == logs_b
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_a_worker_that_dies_hands_back_to_threads(split, monkeypatch):
    want, logs_want = train(monkeypatch, "0", steps=8)
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "1")
    model = cnn()
    x, y, w = data()
    logs = [model.train_on_batch(x, y, sample_weight=w, return_dict=True) for _ in range(4)]
    wait_ready(model)
    pid = model._part_pool.workers[0].pid
    os.kill(pid, signal.SIGKILL)
    with pytest.warns(RuntimeWarning, match="worker processes stopped"):
        logs += [model.train_on_batch(x, y, sample_weight=w, return_dict=True) for _ in range(4)]
    assert model._part_pool.failed and not model._part_pool.workers
    shm = part_workers._shm_dir() or tempfile.gettempdir()
    assert not [f for f in os.listdir(shm) if f.startswith("hpnn-parts-")]  # none left behind
    assert logs == logs_want
    for a, b in zip(model.get_weights(), want.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_workers_end_with_their_model_and_restart_on_recompile(split, monkeypatch):
    model, _ = train(monkeypatch, "1", steps=4)
    first = model._part_pool.workers[0].pid
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y, _ = data()
    model.train_on_batch(x, y)  # a new loss: the old workers end
    assert gone(first) and model._part_pool.workers == []
    for _ in range(3):
        model.train_on_batch(x, y)
    second = model._part_pool.workers[0].pid
    assert second != first and not gone(second)
    del model
    gc.collect()
    assert gone(second)


def test_a_worker_ends_on_its_closed_pipe_while_later_ones_live(split, monkeypatch):
    """A worker forked later holds copies of the earlier workers' pipe ends unless it
    closes them: the earlier worker would never see its pipe close."""
    first, _ = train(monkeypatch, "1", steps=3)
    second, _ = train(monkeypatch, "1", steps=3)
    early, late = first._part_pool.workers[0], second._part_pool.workers[0]
    del first
    gc.collect()
    assert early.exitcode == 0  # left on its own (not killed after CLOSE_WAIT)
    assert not gone(late.pid)
    second._part_pool.close()
    assert late.exitcode == 0


def test_workers_hold_no_other_pipe_open(split, monkeypatch):
    """A subprocess started before the fork still sees its stdin close."""
    child = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    model, _ = train(monkeypatch, "1", steps=3)
    assert model._part_pool.workers[0].ready
    child.stdin.close()
    assert child.wait(timeout=10) == 0
    model._part_pool.close()


def test_an_error_in_a_step_leaves_the_workers_in_step(split, monkeypatch):
    model, _ = train(monkeypatch, "1", steps=4)
    x, y, w = data()
    with pytest.raises(ValueError):
        model.train_on_batch(x, y[:, None, None], sample_weight=w)  # labels of a wrong shape
    want, _ = train(monkeypatch, "0", steps=5)
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "1")
    # the failed step changed nothing and the workers answer the next step's parts
    after = model.train_on_batch(x, y, sample_weight=w, return_dict=True)
    assert split[-1] is True
    want_log = want.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    got_log = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    assert got_log == want_log and isinstance(after["loss"], float)
    for a, b in zip(model.get_weights(), want.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_predict_through_workers_gives_the_threads_outputs(split, monkeypatch):
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "1")
    model = cnn()
    x, _, _ = data(40)
    outs = [model.predict(x, batch_size=20, verbose=0) for _ in range(2)]  # 4 split batches
    wait_ready(model)
    assert split == []  # started by predict alone
    calls = spy_runs(monkeypatch, "predict")
    got = model.predict(x, batch_size=20, verbose=0)
    assert calls == [True, True]
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "0")
    want = model.predict(x, batch_size=20, verbose=0)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(outs[0], want)


def test_evaluate_through_workers_gives_the_threads_numbers(split, monkeypatch):
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "1")
    model, _ = train(monkeypatch, "1", steps=4)
    x, y, w = data(40, seed=5)
    calls = spy_runs(monkeypatch, "test")
    got = model.evaluate(x, y, sample_weight=w, batch_size=20, verbose=0, return_dict=True)
    assert calls == [True, True]
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "0")
    want = model.evaluate(x, y, sample_weight=w, batch_size=20, verbose=0, return_dict=True)
    assert got == want


def test_the_setting(monkeypatch):
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "maybe")
    with pytest.raises(ValueError, match="HPNN_BATCH_PROCESSES: expected 1 or 0"):
        part_workers.enabled()

"""Tests for hpnn.parallel.workers: the batch split's parts in forked worker processes
give the threads' numbers bit for bit, and a worker that fails or a model that goes
away leaves nothing behind."""

import gc
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.parallel import split, workers

pytest.importorskip("threadpoolctl")
pytestmark = pytest.mark.skipif(not workers._CAN_FORK, reason="workers fork (Linux)")


@pytest.fixture
def spy(monkeypatch):
    """Two threads (one worker), parts of at least 4 and at most 6 samples, workers after
    two split steps; the list ``spy_runs`` gives for training steps."""
    monkeypatch.setenv("HPNN_BATCH_THREADS", "2")
    monkeypatch.setattr(split, "MIN_PER_PART", 4)
    monkeypatch.setattr(split, "MAX_PER_PART", 6)
    monkeypatch.setattr(workers, "WARM_STEPS", 2)
    return spy_runs(monkeypatch, "train")


def spy_runs(monkeypatch, kind):
    """A list that gets, for each split batch of ``kind`` the worker pool is asked to
    run, whether the workers ran it (True) or handed it back to threads (False)."""
    used = []
    real = workers.Pool.run

    def run(self, *args):
        out = real(self, *args)
        if args[0] == kind:
            used.append(out is not None)
        return out

    monkeypatch.setattr(workers.Pool, "run", run)
    return used


def cnn(frozen=False, middle=()):
    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential(
        [
            hpnn.Input((8, 8, 2)),
            layers.Conv2D(8, 3, activation="relu", kernel_regularizer="l2", trainable=not frozen),
            *(make() for make in middle),
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


def pool_of(model, kind="train"):
    plan = model._plans.get(kind)
    return None if plan is None else plan.slot.pool


def wait_ready(model, kind="train", timeout=20.0):
    """Wait until the model's worker for ``kind`` steps says it is ready (its start takes
    a moment)."""
    deadline = time.monotonic() + timeout
    pool = pool_of(model, kind)
    assert pool is not None and pool.workers, "the workers were not started"
    while not pool.ready(1):
        assert time.monotonic() < deadline, "the worker never came up"
        time.sleep(0.01)


# The first step of a kind runs whole (the census), then WARM_STEPS split steps on
# threads start the workers: they take the steps from this one on.
FIRST_IN_WORKERS = 1 + 2


def train(monkeypatch, processes, steps=6, frozen=False, middle=()):
    """``steps`` training steps; with workers, the census step and the first WARM_STEPS
    split steps on threads, then (once the worker is up) the rest through it."""
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", processes)
    model = cnn(frozen, middle)
    x, y, w = data()
    logs = []
    for step in range(steps):
        if processes == "1" and step == FIRST_IN_WORKERS:
            wait_ready(model)
        logs.append(model.train_on_batch(x, y, sample_weight=w, return_dict=True))
    return model, logs


@pytest.mark.parametrize("frozen", [False, True], ids=["all_train", "first_frozen"])
def test_workers_give_the_threads_numbers_bit_for_bit(spy, monkeypatch, frozen):
    a, logs_a = train(monkeypatch, "1", frozen=frozen)
    pool = pool_of(a)
    assert [w.pid for w in pool.workers] and all(w.ready for w in pool.workers)
    assert spy[-3:] == [True] * 3  # the last steps' parts ran in the worker
    assert split.parts(a._plans["train"], 20) == [
        slice(0, 5), slice(5, 10), slice(10, 15), slice(15, 20)
    ]  # fmt: skip
    b, logs_b = train(monkeypatch, "0", frozen=frozen)
    assert pool_of(b) is None
    assert logs_a == logs_b
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    pool.close()


def _workers_match_threads(spy, monkeypatch, middle):
    """Seven steps in the workers, then on threads: the same losses and weights, bit for
    bit; returns the workers' model."""
    a, logs_a = train(monkeypatch, "1", steps=7, middle=middle)
    assert spy[-4:] == [True] * 4
    b, logs_b = train(monkeypatch, "0", steps=7, middle=middle)
    assert logs_a == logs_b
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    pool_of(a).close()
    return a


@pytest.mark.parametrize(
    "middle",
    [
        (lambda: layers.Dropout(0.4),),
        (lambda: layers.GaussianNoise(0.2), lambda: layers.SpatialDropout2D(0.2)),
    ],
    ids=["dropout", "noise"],
)
def test_random_layers_in_workers_give_the_threads_numbers_bit_for_bit(spy, monkeypatch, middle):
    """The random generators' states travel with the weights: the worker draws the
    whole batch's masks as the threads do."""
    _workers_match_threads(spy, monkeypatch, middle)


def test_batch_norm_through_workers_gives_the_threads_numbers_bit_for_bit(spy, monkeypatch):
    """Parts that exchange sums mid-pass (batch normalisation in training) run in
    lockstep, one part a thread or a process: the same numbers either way."""
    a = _workers_match_threads(spy, monkeypatch, (layers.BatchNormalization,))
    plan = a._plans["train"]
    assert plan.lockstep and split.parts(plan, 20) == [slice(0, 10), slice(10, 20)]


def test_a_worker_that_dies_hands_back_to_threads(spy, monkeypatch):
    want, logs_want = train(monkeypatch, "0", steps=9)
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "1")
    model = cnn()
    x, y, w = data()
    logs = [model.train_on_batch(x, y, sample_weight=w, return_dict=True) for _ in range(5)]
    wait_ready(model)
    pool = pool_of(model)
    os.kill(pool.workers[0].pid, signal.SIGKILL)
    with pytest.warns(RuntimeWarning, match="worker processes stopped") as record:
        logs += [model.train_on_batch(x, y, sample_weight=w, return_dict=True) for _ in range(4)]
    assert len([r for r in record if "worker processes stopped" in str(r.message)]) == 1
    assert pool.failed and not pool.workers
    assert pool_of(model) is pool  # the plan keeps its failed pool: threads from now on
    shm = workers._shm_dir() or tempfile.gettempdir()
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


def test_workers_end_with_their_model_and_restart_on_recompile(spy, monkeypatch):
    model, _ = train(monkeypatch, "1", steps=5)
    first = pool_of(model).workers[0].pid
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    gc.collect()
    assert gone(first)  # a new compile: the old plans and their workers end
    x, y, _ = data()
    model.train_on_batch(x, y)  # the census of the new plan
    assert pool_of(model) is None
    for _ in range(3):
        model.train_on_batch(x, y)
    second = pool_of(model).workers[0].pid
    assert second != first and not gone(second)
    del model
    gc.collect()
    assert gone(second)


def test_workers_end_when_a_layer_is_frozen(spy, monkeypatch):
    model, _ = train(monkeypatch, "1", steps=5)
    pool = pool_of(model)
    pid = pool.workers[0].pid
    model.layers[0].trainable = False  # the plan's signature changes
    x, y, w = data()
    model.train_on_batch(x, y, sample_weight=w)
    assert gone(pid) and pool.workers == []
    assert pool_of(model) is None  # a new census, a new plan


def test_a_worker_ends_on_its_closed_pipe_while_later_ones_live(spy, monkeypatch):
    """A worker forked later holds copies of the earlier workers' pipe ends unless it
    closes them: the earlier worker would never see its pipe close."""
    first, _ = train(monkeypatch, "1", steps=4)
    second, _ = train(monkeypatch, "1", steps=4)
    early, late = pool_of(first).workers[0], pool_of(second).workers[0]
    del first
    gc.collect()
    assert early.exitcode == 0  # left on its own (not killed after CLOSE_WAIT)
    assert not gone(late.pid)
    pool_of(second).close()
    assert late.exitcode == 0


def test_workers_hold_no_other_pipe_open(spy, monkeypatch):
    """A subprocess started before the fork still sees its stdin close."""
    child = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    model, _ = train(monkeypatch, "1", steps=4)
    assert pool_of(model).workers[0].ready
    child.stdin.close()
    assert child.wait(timeout=10) == 0
    pool_of(model).close()


def test_an_error_in_a_step_leaves_the_workers_in_step(spy, monkeypatch):
    model, _ = train(monkeypatch, "1", steps=5)
    x, y, w = data()
    with pytest.raises(ValueError):
        model.train_on_batch(x, y[:, None, None], sample_weight=w)  # labels of a wrong shape
    want, _ = train(monkeypatch, "0", steps=6)
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "1")
    # the failed step changed nothing and the workers answer the next step's parts
    after = model.train_on_batch(x, y, sample_weight=w, return_dict=True)
    assert spy[-1] is True
    want_log = want.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    got_log = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    assert got_log == want_log and isinstance(after["loss"], float)
    for a, b in zip(model.get_weights(), want.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    pool_of(model).close()


def test_an_error_inside_a_worker_hands_back_to_threads(spy, monkeypatch):
    """A part that raises in the worker: one warning, and the step's parts run again on
    threads, with the random draws the step had (the same numbers as threads alone)."""
    middle = (lambda: layers.Dropout(0.4),)
    want, logs_want = train(monkeypatch, "0", steps=6, middle=middle)
    real = workers._run_here
    parent = os.getpid()

    def broken(*args):  # (the worker is forked with it)
        if os.getpid() != parent:
            raise RuntimeError("broken in the worker")
        return real(*args)

    monkeypatch.setattr(workers, "_run_here", broken)
    with pytest.warns(RuntimeWarning, match="broken in the worker"):
        model, logs = train(monkeypatch, "1", steps=6, middle=middle)
    pool = pool_of(model)
    assert pool.failed and not pool.workers and spy == [False]
    assert logs == logs_want
    for a, b in zip(model.get_weights(), want.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_predict_through_workers_gives_the_threads_outputs(spy, monkeypatch):
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "1")
    model = cnn()
    x, _, _ = data(40)
    outs = [model.predict(x, batch_size=20, verbose=0) for _ in range(2)]  # 1 whole, 3 split
    wait_ready(model, "predict")
    assert spy == [] and pool_of(model, "train") is None  # started by predict alone
    calls = spy_runs(monkeypatch, "predict")
    got = model.predict(x, batch_size=20, verbose=0)
    assert calls == [True, True]
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "0")
    want = model.predict(x, batch_size=20, verbose=0)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(outs[1], want)
    np.testing.assert_allclose(outs[0], want, rtol=1e-5, atol=1e-7)  # its first batch: whole
    pool_of(model, "predict").close()


def test_evaluate_through_workers_gives_the_threads_numbers(spy, monkeypatch):
    model, _ = train(monkeypatch, "1", steps=5)
    x, y, w = data(40, seed=5)
    for _ in range(2):  # the census step, then two split steps start the test workers
        model.evaluate(x, y, sample_weight=w, batch_size=20, verbose=0)
    wait_ready(model, "test")
    calls = spy_runs(monkeypatch, "test")
    got = model.evaluate(x, y, sample_weight=w, batch_size=20, verbose=0, return_dict=True)
    assert calls == [True, True]
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "0")
    want = model.evaluate(x, y, sample_weight=w, batch_size=20, verbose=0, return_dict=True)
    assert got == want
    for kind in ("train", "test"):
        pool_of(model, kind).close()


def test_the_setting(monkeypatch):
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "maybe")
    with pytest.raises(ValueError, match="HPNN_BATCH_PROCESSES: expected 1 or 0"):
        workers.enabled()
    for off in ("0", "off", "no"):
        monkeypatch.setenv("HPNN_BATCH_PROCESSES", off)
        assert not workers.enabled()
    monkeypatch.delenv("HPNN_BATCH_PROCESSES")
    assert workers.enabled()


FAILING_STEP = """
import os, sys, threading
import numpy as np
import hpnn
from hpnn import layers
from hpnn.parallel import split, workers

split.MIN_PER_PART = 4
WHERE = sys.argv[1]  # "threads": the 5th step; "workers": the first step in the workers
in_workers = []
real_run = workers.Pool.run


def run(self, *args, **kwargs):
    in_workers.append(True)
    try:
        return real_run(self, *args, **kwargs)
    finally:
        in_workers.pop()


workers.Pool.run = run


class Boom(layers.Layer):
    calls = 0

    def call(self, x, training=False):
        if training and threading.current_thread() is threading.main_thread():
            if os.getpid() == PARENT:
                Boom.calls += 1
                if (WHERE == "threads" and Boom.calls == 5) or (WHERE == "workers" and in_workers):
                    raise RuntimeError(f"boom in the parent's part ({WHERE})")
        return x


PARENT = os.getpid()
hpnn.utils.set_random_seed(0)
model = hpnn.Sequential([hpnn.Input((6,)), layers.Dense(4), layers.BatchNormalization(),
                         Boom(), layers.Dense(2, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
x = np.random.default_rng(0).random((16 * 400, 6), dtype=np.float32)
model.fit(x, np.arange(len(x)) % 2, batch_size=16, epochs=1, verbose=0)
print("the workers never ran a step")
"""


@pytest.mark.parametrize("where", ["threads", "workers"])
def test_a_failing_part_in_step_ends_the_step_and_never_hangs(where, tmp_path):
    """A part that raises while the others wait for its sums (batch normalisation):
    the error reaches the caller, the waiting threads or worker processes are
    released, and the process ends."""
    script = tmp_path / "failing.py"
    script.write_text(FAILING_STEP)
    env = dict(os.environ, HPNN_BATCH_THREADS="2", HPNN_BATCH_PROCESSES="1")
    env["PYTHONPATH"] = str(Path(hpnn.__file__).parent.parent)
    proc = subprocess.run(
        [sys.executable, str(script), where],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0, proc.stdout
    assert f"boom in the parent's part ({where})" in proc.stderr, proc.stderr[-2000:]

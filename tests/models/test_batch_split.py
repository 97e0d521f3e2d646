"""Tests for hpnn.models.batch_split: a batch split across threads gives the whole
batch's step (weights, loss, metrics, evaluate, predict), and applies only where it may."""

import threading

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.models import batch_split

pytest.importorskip("threadpoolctl")


@pytest.fixture
def split(monkeypatch):
    """Split into (up to) 3 parts of at least 4 samples, whatever this machine's cores."""
    monkeypatch.setenv("HPNN_BATCH_THREADS", "3")
    monkeypatch.setattr(batch_split, "MIN_PER_THREAD", 4)
    monkeypatch.setattr(batch_split, "MIN_PER_THREAD_RECURRENT", 4)
    calls = []
    real = batch_split.run

    def spy(fn, slices):
        calls.append([(s.start, s.stop) for s in slices])
        return real(fn, slices)

    monkeypatch.setattr(batch_split, "run", spy)
    return calls


def cnn(seed=0, regularizer=None, activity=None):
    hpnn.utils.set_random_seed(seed)
    return hpnn.Sequential(
        [
            hpnn.Input((8, 8, 2)),
            layers.Conv2D(
                4,
                3,
                activation="relu",
                kernel_regularizer=regularizer,
                activity_regularizer=activity,
            ),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ]
    )


def residual(seed=0):
    """A functional model: a convolution branch added back onto its input."""
    hpnn.utils.set_random_seed(seed)
    inp = hpnn.Input((8, 8, 2))
    h = layers.Conv2D(2, 3, padding="same", activation="relu")(inp)
    x = layers.MaxPooling2D()(layers.add([inp, h]))
    out = layers.Dense(3, activation="softmax")(layers.Flatten()(x))
    return hpnn.Model(inp, out)


def rnn(seed=0):
    hpnn.utils.set_random_seed(seed)
    return hpnn.Sequential(
        [
            hpnn.Input((5, 3)),
            layers.LSTM(6, return_sequences=True),
            layers.GRU(4),
            layers.Dense(3, activation="softmax"),
        ]
    )


def data(model, n, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *model.input_shape[1:])).astype(np.float32)
    return x, rng.integers(0, 3, n)


def train_both(make, n, monkeypatch, steps=3):
    """The same model trained split (the fixture's setting) and whole; both results."""
    out = []
    for setting in ("3", "0"):
        monkeypatch.setenv("HPNN_BATCH_THREADS", setting)
        model = make()
        model.compile(
            optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        x, y = data(model, n)
        losses = [model.train_on_batch(x, y) for _ in range(steps)]
        out.append((model, losses, x, y))
    return out


@pytest.mark.parametrize(
    "make",
    [
        cnn,
        rnn,
        lambda: cnn(regularizer="l2"),
        lambda: cnn(activity=hpnn.regularizers.L1L2(l1=0.05, l2=0.05)),
        residual,
    ],
    ids=["cnn", "rnn", "cnn_l2", "cnn_activity", "functional"],
)
@pytest.mark.parametrize("n", [12, 13])  # 3 equal parts; parts of 4, 4 and 5
def test_split_step_gives_the_whole_batch_step(make, n, split, monkeypatch):
    (a, la, x, y), (b, lb, _, _) = train_both(make, n, monkeypatch)
    assert split and split[0] == [(0, 4), (4, 8), (8, n)]
    np.testing.assert_allclose(la, lb, rtol=2e-6)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    monkeypatch.setenv("HPNN_BATCH_THREADS", "3")
    ev_a = a.evaluate(x, y, batch_size=n, verbose=0, return_dict=True)
    pred_a = a.predict(x, batch_size=n, verbose=0)
    monkeypatch.setenv("HPNN_BATCH_THREADS", "0")
    ev_b = a.evaluate(x, y, batch_size=n, verbose=0, return_dict=True)
    pred_b = a.predict(x, batch_size=n, verbose=0)
    np.testing.assert_allclose(pred_a, pred_b, rtol=1e-5, atol=1e-7)
    assert ev_a["loss"] == pytest.approx(ev_b["loss"], rel=1e-5)
    assert ev_a["accuracy"] == ev_b["accuracy"]


def test_several_parts_a_thread_give_the_whole_batch_step(split, monkeypatch):
    """Convolution models cut a batch into parts of at most MAX_PER_PART samples; each
    of the threads runs its consecutive parts in turn."""
    monkeypatch.setattr(batch_split, "MAX_PER_PART", 5)
    threads_seen = []
    real_fn = batch_split.run

    def record_threads(fn, slices):
        ran_on = {}

        def part(sl):
            ran_on[sl.start] = threading.current_thread()
            return fn(sl)

        out = real_fn(part, slices)
        threads_seen.append((slices.threads, [ran_on[s.start] for s in slices]))
        return out

    monkeypatch.setattr(batch_split, "run", record_threads)
    model = compiled(cnn())
    assert batch_split.parts(model, 22, training=True) == [
        slice(a, b) for a, b in [(0, 4), (4, 8), (8, 13), (13, 17), (17, 22)]
    ]
    assert batch_split.parts(model, 22, training=True).threads == 3
    assert len(batch_split.parts(compiled(rnn()), 22, training=True)) == 3  # recurrent: 1 a thread
    (a, la, _, _), (b, lb, _, _) = train_both(cnn, 22, monkeypatch)
    threads, on = threads_seen[0]  # five parts on three threads: 1, 2 and 2 in turn
    assert threads == 3 and on[0] is threading.main_thread()
    assert on[1] is on[2] and on[3] is on[4] and on[1] is not on[0] and on[3] is not on[0]
    np.testing.assert_allclose(la, lb, rtol=2e-6)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)


def test_split_step_with_sample_weights_gives_the_whole_batch_step(split, monkeypatch):
    out = []
    for setting in ("3", "0"):
        monkeypatch.setenv("HPNN_BATCH_THREADS", setting)
        model = cnn()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["acc"])
        x, y = data(model, 13)
        w = np.random.default_rng(3).uniform(0.0, 3.0, len(x)).astype(np.float32)
        logs = [model.train_on_batch(x, y, sample_weight=w) for _ in range(3)]
        ev = model.evaluate(x, y, sample_weight=w, batch_size=13, verbose=0)
        out.append((model, logs, ev))
    (a, la, ea), (b, lb, eb) = out
    assert split and split[0] == [(0, 4), (4, 8), (8, 13)]
    np.testing.assert_allclose(la, lb, rtol=2e-6)
    np.testing.assert_allclose(ea, eb, rtol=2e-6)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)


def test_fit_with_splits_matches_fit_without(split, monkeypatch):
    results = []
    for setting in ("3", "0"):
        monkeypatch.setenv("HPNN_BATCH_THREADS", setting)
        model = cnn()
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["acc"])
        x, y = data(model, 40)
        hist = model.fit(x, y, batch_size=12, epochs=2, verbose=0, validation_data=(x, y))
        results.append((hist.history, model.get_weights()))
    (ha, wa), (hb, wb) = results
    assert split  # the split ran
    for key in ha:
        np.testing.assert_allclose(ha[key], hb[key], rtol=1e-5)
    for a, b in zip(wa, wb, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_runs_repeat_exactly(split, monkeypatch):
    (a, la, _, _), _ = train_both(rnn, 12, monkeypatch)
    (b, lb, _, _), _ = train_both(rnn, 12, monkeypatch)
    assert la == lb
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def compiled(model, loss="sparse_categorical_crossentropy"):
    model.compile(optimizer="adam", loss=loss)
    return model


def test_where_it_applies(split):
    model = compiled(cnn())
    assert batch_split.parts(model, 12, training=True) == [slice(0, 4), slice(4, 8), slice(8, 12)]
    assert batch_split.parts(model, 8, training=True) == [slice(0, 4), slice(4, 8)]
    assert batch_split.parts(model, 7, training=True) is None  # parts under MIN_PER_THREAD
    dense_only = compiled(hpnn.Sequential([hpnn.Input((4,)), layers.Dense(3)]), "mse")
    assert batch_split.parts(dense_only, 12, training=False) is None  # BLAS-bound
    hpnn.utils.set_random_seed(0)
    dropout = compiled(
        hpnn.Sequential(
            [hpnn.Input((6, 2)), layers.Conv1D(3, 2), layers.Dropout(0.5), layers.Flatten()]
        ),
        "mse",
    )
    assert batch_split.parts(dropout, 12, training=True) is None  # random in training
    assert batch_split.parts(dropout, 12, training=False) is not None  # identity in inference
    lstm_dropout = compiled(hpnn.Sequential([hpnn.Input((5, 3)), layers.LSTM(4, dropout=0.2)]))
    assert batch_split.parts(lstm_dropout, 12, training=True) is None
    summed = compiled(cnn(), hpnn.losses.SparseCategoricalCrossentropy(reduction="sum"))
    assert batch_split.parts(summed, 12, training=True) is None
    assert batch_split.parts(summed, 12, training=False) is not None
    assert batch_split.parts(compiled(residual()), 12, training=True) is not None
    inp = hpnn.Input((8, 8, 2))
    h = layers.Flatten()(layers.MaxPooling2D()(inp))
    heads = hpnn.Model(inp, [layers.Dense(3)(h), layers.Dense(1)(h)])
    heads.compile(optimizer="sgd", loss="mse")
    assert batch_split.parts(heads, 12, training=True) is None  # several outputs


def test_recurrent_models_need_larger_parts(monkeypatch):
    monkeypatch.setenv("HPNN_BATCH_THREADS", "2")
    conv = compiled(cnn())
    rnn = compiled(hpnn.Sequential([hpnn.Input((5, 3)), layers.LSTM(4), layers.Dense(2)]))
    small = 2 * batch_split.MIN_PER_THREAD
    assert batch_split.MIN_PER_THREAD < batch_split.MIN_PER_THREAD_RECURRENT
    assert batch_split.parts(conv, small, training=True) == [
        slice(0, small // 2),
        slice(small // 2, small),
    ]
    assert batch_split.parts(rnn, small, training=True) is None
    large = 2 * batch_split.MIN_PER_THREAD_RECURRENT
    assert len(batch_split.parts(rnn, large, training=True)) == 2
    assert batch_split.parts(conv, small - 1, training=False) is None


def test_a_subclassed_layer_is_not_split(split):
    class Custom(layers.Conv2D):  # may keep state between calls: hpnn cannot know
        pass

    model = compiled(hpnn.Sequential([hpnn.Input((8, 8, 1)), Custom(2, 3), layers.Flatten()]))
    assert batch_split.parts(model, 12, training=False) is None


def test_setting(monkeypatch):
    model = compiled(cnn())
    monkeypatch.setattr(batch_split, "MIN_PER_THREAD", 4)
    for off in ("0", "1"):
        monkeypatch.setenv("HPNN_BATCH_THREADS", off)
        assert batch_split.parts(model, 64, training=True) is None
    monkeypatch.setenv("HPNN_BATCH_THREADS", "auto")
    threads = batch_split.blas_threads()
    expected = threads if 2 <= threads <= batch_split.MAX_AUTO_THREADS else None
    got = batch_split.parts(model, 64, training=True)
    assert (got and len(got)) == expected or (got is None and expected is None)
    for bad in ("many", "-2"):
        monkeypatch.setenv("HPNN_BATCH_THREADS", bad)
        with pytest.raises(ValueError, match="HPNN_BATCH_THREADS"):
            batch_split.parts(model, 64, training=True)


def test_run_uses_threads_waits_for_all_and_restores_blas():
    before = batch_split.blas_threads()
    seen, inside = set(), []

    def fn(sl):
        seen.add(threading.get_ident())
        inside.append(batch_split.blas_threads())
        return sl.start

    assert batch_split.run(fn, [slice(0, 1), slice(1, 2), slice(2, 3)]) == [0, 1, 2]
    assert len(seen) >= 2 and set(inside) == {1}
    assert batch_split.blas_threads() == before
    done = []

    def failing(sl):
        if sl.start == 1:
            raise RuntimeError("part 1 failed")
        threading.Event().wait(0.05)
        done.append(sl.start)

    with pytest.raises(RuntimeError, match="part 1 failed"):
        batch_split.run(failing, [slice(0, 1), slice(1, 2), slice(2, 3)])
    assert sorted(done) == [0, 2]  # the other parts finished before the error came out
    assert batch_split.blas_threads() == before


def test_parts_record_as_the_caller_does():
    from hpnn.engine import is_grad_enabled, no_grad

    parts = [slice(0, 1), slice(1, 2), slice(2, 3)]
    assert batch_split.run(lambda sl: is_grad_enabled(), parts) == [True] * 3
    with no_grad():
        assert batch_split.run(lambda sl: is_grad_enabled(), parts) == [False] * 3
    assert is_grad_enabled()


def test_split_predict_leaves_recording_on_in_every_thread(split):
    from hpnn.engine import is_grad_enabled

    model = compiled(cnn())
    x, _ = data(model, 16)
    model.predict(x, batch_size=16, verbose=0)
    assert split  # the predict ran split
    parts = [slice(0, 1), slice(1, 2), slice(2, 3)]
    assert batch_split.run(lambda sl: is_grad_enabled(), parts) == [True] * 3
    assert is_grad_enabled()


def test_a_forked_child_gets_a_fresh_pool(monkeypatch):
    batch_split.run(lambda sl: None, [slice(0, 1), slice(1, 2)])
    first = batch_split._pool[1]
    monkeypatch.setattr(batch_split.os, "getpid", lambda: -1)  # as in a forked child
    batch_split.run(lambda sl: None, [slice(0, 1), slice(1, 2)])
    assert batch_split._pool[1] is not first

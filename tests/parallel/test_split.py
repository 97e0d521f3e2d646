"""Tests for hpnn.parallel.split: a batch split across threads gives the whole batch's
step (weights, loss, metrics, evaluate, predict) for any model, batch normalisation and
random layers included, and the thread mechanics underneath."""

import threading
from functools import partial

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.engine import is_grad_enabled, no_grad
from hpnn.parallel import census, split

pytest.importorskip("threadpoolctl")


@pytest.fixture
def spy(monkeypatch):
    """Split into (up to) 3 parts of at least 4 samples, whatever this machine's cores, on
    threads; the list of ``(kind, [(start, stop), ...])`` of every split step."""
    monkeypatch.setenv("HPNN_BATCH_THREADS", "3")
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "0")
    monkeypatch.setattr(split, "MIN_PER_PART", 4)
    calls = []
    real = split.run

    def run(step, kind, plan, slices, *args, **kwargs):
        calls.append((kind, [(s.start, s.stop) for s in slices]))
        return real(step, kind, plan, slices, *args, **kwargs)

    monkeypatch.setattr(split, "run", run)
    return calls


def kinds(calls, kind):
    return [s for k, s in calls if k == kind]


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


def rnn(seed=0, dropout=0.0):
    hpnn.utils.set_random_seed(seed)
    return hpnn.Sequential(
        [
            hpnn.Input((5, 3)),
            layers.LSTM(6, return_sequences=True, dropout=dropout, recurrent_dropout=dropout),
            layers.GRU(4, dropout=dropout),
            layers.Dense(3, activation="softmax"),
        ]
    )


def conv_with(*middle, seed=0):
    """A small convolution model with layers made by ``middle`` (classes or partials)
    between its conv and its head, all made after the seed is set."""
    hpnn.utils.set_random_seed(seed)
    return hpnn.Sequential(
        [
            hpnn.Input((8, 8, 2)),
            layers.Conv2D(4, 3, activation="relu"),
            *(make() for make in middle),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ]
    )


class Gate(layers.Layer):
    """A custom layer: its own weight, its own arithmetic."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

    def call(self, x):
        return hpnn.ops.multiply(x, hpnn.ops.sigmoid(self.w)) + hpnn.ops.mean(
            x, axis=-1, keepdims=True
        )


class Subclassed(hpnn.Model):
    def __init__(self):
        super().__init__()
        self.conv = layers.Conv2D(4, 3, activation="relu")
        self.flat = layers.Flatten()
        self.out = layers.Dense(3, activation="softmax")

    def call(self, x, training=False):
        return self.out(self.flat(self.conv(x)))


def subclassed(seed=0):
    hpnn.utils.set_random_seed(seed)
    return Subclassed()


def data(model, n, seed=1, shape=None):
    rng = np.random.default_rng(seed)
    shape = shape or model.input_shape[1:]
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    return x, rng.integers(0, 3, n)


def train_both(make, n, monkeypatch, steps=3, shape=None):
    """The same model trained split (3 parts) and whole; both results. The first step of
    each runs whole (the census), the others split."""
    out = []
    for setting in ("3", "0"):
        monkeypatch.setenv("HPNN_BATCH_THREADS", setting)
        model = make()
        model.compile(
            optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        x, y = data(model, n, shape=shape)
        losses = [model.train_on_batch(x, y) for _ in range(steps)]
        out.append((model, losses, x, y))
    return out


def assert_same_weights(a, b, rtol=1e-5, atol=1e-6):
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=rtol, atol=atol)


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
def test_split_step_gives_the_whole_batch_step(make, n, spy, monkeypatch):
    (a, la, x, y), (b, lb, _, _) = train_both(make, n, monkeypatch)
    assert kinds(spy, "train") == [[(0, 4), (4, 8), (8, n)]] * 2  # the census step ran whole
    np.testing.assert_allclose(la, lb, rtol=2e-6)
    assert_same_weights(a, b)
    monkeypatch.setenv("HPNN_BATCH_THREADS", "3")
    a.evaluate(x, y, batch_size=n, verbose=0)  # the census steps of test and predict
    a.predict(x, batch_size=n, verbose=0)
    ev_a = a.evaluate(x, y, batch_size=n, verbose=0, return_dict=True)
    pred_a = a.predict(x, batch_size=n, verbose=0)
    assert kinds(spy, "test") and kinds(spy, "predict")
    monkeypatch.setenv("HPNN_BATCH_THREADS", "0")
    ev_b = a.evaluate(x, y, batch_size=n, verbose=0, return_dict=True)
    pred_b = a.predict(x, batch_size=n, verbose=0)
    np.testing.assert_allclose(pred_a, pred_b, rtol=1e-5, atol=1e-7)
    assert ev_a["loss"] == pytest.approx(ev_b["loss"], rel=1e-5)
    assert ev_a["accuracy"] == ev_b["accuracy"]


@pytest.mark.parametrize(
    ("make", "n"),
    [
        (lambda: conv_with(partial(layers.Dropout, 0.5)), 13),
        (lambda: conv_with(partial(layers.SpatialDropout2D, 0.3)), 13),
        (lambda: conv_with(partial(layers.GaussianNoise, 0.3)), 13),
        (lambda: conv_with(partial(layers.GaussianDropout, 0.3)), 13),
        (lambda: conv_with(layers.BatchNormalization), 13),
        (lambda: conv_with(Gate), 13),
        (lambda: conv_with(layers.BatchNormalization, partial(layers.Dropout, 0.3), Gate), 13),
        (lambda: rnn(dropout=0.2), 13),
        (subclassed, 13),
    ],
    ids=[
        "dropout",
        "spatial_dropout",
        "gaussian_noise",
        "gaussian_dropout",
        "batch_norm",
        "custom_layer",
        "all_three",
        "recurrent_dropout",
        "subclassed_model",
    ],
)
def test_every_model_is_split_and_gives_the_whole_batch_step(make, n, spy, monkeypatch):
    """No allow-list: random layers draw the whole batch's masks, batch normalisation
    sums over the whole batch, custom layers and models are plain steps."""
    shape = (8, 8, 2) if make is subclassed else None
    (a, la, _, _), (b, lb, _, _) = train_both(make, n, monkeypatch, shape=shape)
    assert kinds(spy, "train") == [[(0, 4), (4, 8), (8, n)]] * 2
    assert a._plans["train"].splittable
    np.testing.assert_allclose(la, lb, rtol=1e-4, atol=1e-5)
    assert_same_weights(a, b, rtol=1e-4, atol=1e-5)


def test_batch_norm_in_parts_of_several_sizes(spy, monkeypatch):
    """The sums batch normalisation exchanges in the backward pass add the parts'
    gradients: they must all be of the whole batch's mean (each part's backward pass
    seeded with its share), whatever the parts' sizes (here 4, 5 and 5)."""
    (a, la, _, _), (b, lb, _, _) = train_both(
        lambda: conv_with(layers.BatchNormalization), 14, monkeypatch
    )
    assert kinds(spy, "train") == [[(0, 4), (4, 9), (9, 14)]] * 2
    np.testing.assert_allclose(la, lb, rtol=1e-5, atol=1e-6)
    assert_same_weights(a, b, rtol=1e-4, atol=1e-6)


def test_random_flip_is_split_and_gives_the_whole_batch_step(spy, monkeypatch):
    def make():
        return conv_with(seed=0)

    def flipped():
        hpnn.utils.set_random_seed(0)
        return hpnn.Sequential(
            [
                hpnn.Input((8, 8, 2)),
                layers.RandomFlip("horizontal_and_vertical"),
                layers.Conv2D(4, 3, activation="relu"),
                layers.Flatten(),
                layers.Dense(3, activation="softmax"),
            ]
        )

    (a, la, _, _), (b, lb, _, _) = train_both(flipped, 13, monkeypatch)
    assert kinds(spy, "train") == [[(0, 4), (4, 8), (8, 13)]] * 2
    np.testing.assert_allclose(la, lb, rtol=1e-4, atol=1e-5)
    assert_same_weights(a, b, rtol=1e-4, atol=1e-5)
    (c, _, _, _), _ = train_both(make, 13, monkeypatch)  # the flips changed the training
    assert not all(
        np.allclose(wa, wc) for wa, wc in zip(a.get_weights(), c.get_weights(), strict=True)
    )


def test_batch_norm_split_in_three_gives_the_whole_batch_moving_statistics(spy, monkeypatch):
    (a, _, x, y), (b, _, _, _) = train_both(
        lambda: conv_with(partial(layers.BatchNormalization, momentum=0.5)),
        12,
        monkeypatch,
        steps=4,
    )
    assert kinds(spy, "train") == [[(0, 4), (4, 8), (8, 12)]] * 3
    plan = a._plans["train"]
    assert plan.lockstep and plan.splittable
    bn_a, bn_b = a.layers[1], b.layers[1]
    assert not np.allclose(bn_a.moving_mean.data, 0.0)  # they moved
    np.testing.assert_allclose(bn_a.moving_mean.data, bn_b.moving_mean.data, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        bn_a.moving_variance.data, bn_b.moving_variance.data, rtol=1e-4, atol=1e-6
    )
    # inference uses the moving statistics: no sum over the batch, no lockstep
    monkeypatch.setenv("HPNN_BATCH_THREADS", "3")
    a.evaluate(x, y, batch_size=12, verbose=0)
    assert not a._plans["test"].lockstep


def test_a_step_that_applies_gradients_twice_is_not_split(spy, monkeypatch):
    class Twice(hpnn.Sequential):
        def train_step(self, x, y, sample_weight=None):
            loss = super().train_step(x, y, sample_weight)
            super().train_step(x, y, sample_weight)  # a second optimizer.apply
            return loss

    def make():
        hpnn.utils.set_random_seed(0)
        return Twice(
            [hpnn.Input((8, 8, 2)), layers.Conv2D(4, 3), layers.Flatten(), layers.Dense(3)]
        )

    model = make()
    model.compile(optimizer="sgd", loss="mse")
    x, _ = data(model, 12)
    y = np.zeros((12, 3), np.float32)
    losses = [model.train_on_batch(x, y) for _ in range(3)]
    plan = model._plans["train"]
    assert plan.census.applies == 2 and not plan.splittable
    assert split.parts(plan, 12) is None and kinds(spy, "train") == []
    monkeypatch.setenv("HPNN_BATCH_THREADS", "0")
    other = make()
    other.compile(optimizer="sgd", loss="mse")
    assert [other.train_on_batch(x, y) for _ in range(3)] == losses
    # its evaluation and prediction apply nothing: they split
    model.evaluate(x, y, batch_size=12, verbose=0)
    assert model._plans["test"].splittable


def test_predict_and_evaluate_split_give_the_whole_batch(spy, monkeypatch):
    model = conv_with(layers.BatchNormalization, partial(layers.Dropout, 0.5), Gate)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = data(model, 30)
    model.fit(x, y, batch_size=10, epochs=1, verbose=0)
    w = np.random.default_rng(2).uniform(0.5, 2.0, 30).astype(np.float32)
    got = []
    for setting in ("3", "0"):
        monkeypatch.setenv("HPNN_BATCH_THREADS", setting)
        got.append(
            (
                model.predict(x, batch_size=15, verbose=0),
                model.evaluate(x, y, batch_size=15, verbose=0, return_dict=True),
                model.evaluate(x, y, sample_weight=w, batch_size=15, verbose=0),
            )
        )
    (pa, ea, wa), (pb, eb, wb) = got
    assert kinds(spy, "predict") == [[(0, 5), (5, 10), (10, 15)]]  # the first ran whole
    assert len(kinds(spy, "test")) == 3
    np.testing.assert_allclose(pa, pb, rtol=1e-5, atol=1e-7)
    assert ea["loss"] == pytest.approx(eb["loss"], rel=1e-5)
    assert ea["accuracy"] == eb["accuracy"]
    np.testing.assert_allclose(wa, wb, rtol=1e-5)


def test_several_parts_a_thread_give_the_whole_batch_step(spy, monkeypatch):
    """Without a sum over the batch a part holds at most MAX_PER_PART samples; each of
    the threads runs its consecutive parts in turn. With one, every part runs at once."""
    monkeypatch.setattr(split, "MAX_PER_PART", 5)
    threads_seen = []
    real = split.on_threads

    def on_threads(part, slices, on_error=None):
        ran_on = {}

        def recorded(i, sl):
            ran_on[i] = threading.current_thread()
            return part(i, sl)

        out = real(recorded, slices, on_error)
        threads_seen.append((slices.threads, [ran_on[i] for i in range(len(slices))]))
        return out

    monkeypatch.setattr(split, "on_threads", on_threads)
    model = compiled(cnn(), n=22)
    plan = model._plans["train"]
    assert split.parts(plan, 22) == [
        slice(a, b) for a, b in [(0, 4), (4, 8), (8, 13), (13, 17), (17, 22)]
    ]
    assert split.parts(plan, 22).threads == 3 and not split.parts(plan, 22).lockstep
    assert split.runs(split.parts(plan, 22)) == [
        [slice(0, 4)],
        [slice(4, 8), slice(8, 13)],
        [slice(13, 17), slice(17, 22)],
    ]
    assert len(split.parts(compiled(rnn(), n=22)._plans["train"], 22)) == 5  # recurrent too
    bn = compiled(conv_with(layers.BatchNormalization), n=22)._plans["train"]
    lockstep = split.parts(bn, 22)
    assert lockstep == [slice(0, 7), slice(7, 14), slice(14, 22)] and lockstep.lockstep
    assert lockstep.threads == 3  # one part a thread
    threads_seen.clear()
    (a, la, _, _), (b, lb, _, _) = train_both(cnn, 22, monkeypatch)
    threads, on = threads_seen[0]  # five parts on three threads: 1, 2 and 2 in turn
    assert threads == 3 and on[0] is threading.main_thread()
    assert on[1] is on[2] and on[3] is on[4] and on[1] is not on[0] and on[3] is not on[0]
    np.testing.assert_allclose(la, lb, rtol=2e-6)
    assert_same_weights(a, b)


def test_split_step_with_sample_weights_gives_the_whole_batch_step(spy, monkeypatch):
    out = []
    for setting in ("3", "0"):
        monkeypatch.setenv("HPNN_BATCH_THREADS", setting)
        model = cnn()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["acc"])
        x, y = data(model, 13)
        w = np.random.default_rng(3).uniform(0.0, 3.0, len(x)).astype(np.float32)
        logs = [model.train_on_batch(x, y, sample_weight=w) for _ in range(3)]
        model.evaluate(x, y, sample_weight=w, batch_size=13, verbose=0)  # (census)
        ev = model.evaluate(x, y, sample_weight=w, batch_size=13, verbose=0)
        out.append((model, logs, ev))
    (a, la, ea), (b, lb, eb) = out
    assert kinds(spy, "train") == [[(0, 4), (4, 8), (8, 13)]] * 2
    assert kinds(spy, "test") == [[(0, 4), (4, 8), (8, 13)]]
    np.testing.assert_allclose(la, lb, rtol=2e-6)
    np.testing.assert_allclose(ea, eb, rtol=2e-6)
    assert_same_weights(a, b)


def test_fit_with_splits_matches_fit_without(spy, monkeypatch):
    results = []
    for setting in ("3", "0"):
        monkeypatch.setenv("HPNN_BATCH_THREADS", setting)
        model = cnn()
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["acc"])
        x, y = data(model, 40)
        hist = model.fit(x, y, batch_size=12, epochs=2, verbose=0, validation_data=(x, y))
        results.append((hist.history, model.get_weights()))
    (ha, wa), (hb, wb) = results
    assert kinds(spy, "train") and kinds(spy, "test")  # the split ran
    assert (0, 4) in kinds(spy, "train")[-1]  # the last batch (4 samples) ran whole
    for key in ha:
        np.testing.assert_allclose(ha[key], hb[key], rtol=1e-5)
    for a, b in zip(wa, wb, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_runs_repeat_exactly(spy, monkeypatch):
    for make in (rnn, lambda: conv_with(layers.BatchNormalization, partial(layers.Dropout, 0.5))):
        (a, la, _, _), _ = train_both(make, 12, monkeypatch)
        (b, lb, _, _), _ = train_both(make, 12, monkeypatch)
        assert la == lb
        for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_array_equal(wa, wb)


def compiled(model, loss="sparse_categorical_crossentropy", n=12, kind="train"):
    """``model`` compiled, after one ``kind`` step on ``n`` samples (its census)."""
    model.compile(optimizer="adam", loss=loss)
    x, y = data(model, n)
    if loss == "mse":
        y = np.zeros((n, *model.output_shape[1:]), np.float32)
    if kind == "train":
        model.train_on_batch(x, y)
    elif kind == "test":
        model.evaluate(x, y, batch_size=n, verbose=0)
    else:
        model.predict(x, batch_size=n, verbose=0)
    return model


def test_where_it_applies(spy, monkeypatch):
    plan = compiled(cnn())._plans["train"]
    assert split.parts(plan, 12) == [slice(0, 4), slice(4, 8), slice(8, 12)]
    assert split.parts(plan, 8) == [slice(0, 4), slice(4, 8)]
    assert split.parts(plan, 7) is None  # parts under MIN_PER_PART
    assert split.parts(compiled(residual())._plans["train"], 12) is not None
    dropout = hpnn.Sequential(
        [hpnn.Input((6, 2)), layers.Conv1D(3, 2), layers.Dropout(0.5), layers.Flatten()]
    )
    for kind in ("train", "test", "predict"):
        plan = compiled(dropout, "mse", kind=kind)._plans[kind]
        assert split.parts(plan, 12) is not None  # random in training: split all the same

    def trains_split(model, x, y):
        spy.clear()
        for _ in range(3):
            model.train_on_batch(x, y)
        return bool(kinds(spy, "train"))

    summed = cnn()
    summed.compile(
        optimizer="adam", loss=hpnn.losses.SparseCategoricalCrossentropy(reduction="sum")
    )
    x, y = data(summed, 12)
    assert not trains_split(summed, x, y)  # a loss that is not a batch mean
    inp = hpnn.Input((8, 8, 2))
    h = layers.Flatten()(layers.MaxPooling2D()(inp))
    heads = hpnn.Model(inp, [layers.Dense(3)(h), layers.Dense(1)(h)])
    heads.compile(optimizer="sgd", loss="mse")
    assert not trains_split(heads, x, [np.zeros((12, 3)), np.zeros((12, 1))])  # several outputs


def test_where_it_applies_auto(monkeypatch):
    """Without HPNN_BATCH_THREADS the census's cost model decides: a convolution model's
    large batch splits, a small dense model's does not (BLAS-bound, or too little work)."""
    monkeypatch.setenv("HPNN_BATCH_THREADS", "auto")
    monkeypatch.setattr(split, "blas_threads", lambda: 2)
    hpnn.utils.set_random_seed(0)
    larger = hpnn.Sequential(  # (the reference CNN's first layers: about 3 ms a step a core)
        [hpnn.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
         layers.MaxPooling2D(), layers.Flatten(), layers.Dense(3, activation="softmax")]
    )  # fmt: skip
    conv = compiled(larger, n=128)._plans["train"]
    assert census.worth_splitting(conv.census, 2, conv.weight_bytes, True)
    assert split.parts(conv, 128) is not None and split.parts(conv, 128).threads == 2
    tiny = compiled(cnn(), n=64)._plans["train"]  # too little work to pay for a split
    assert not census.worth_splitting(tiny.census, 2, tiny.weight_bytes, True)
    dense = compiled(hpnn.Sequential([hpnn.Input((4,)), layers.Dense(3)]), "mse", n=1024)
    plan = dense._plans["train"]
    assert not census.worth_splitting(plan.census, 2, plan.weight_bytes, True)
    assert split.parts(plan, 1024) is None
    monkeypatch.setattr(split, "blas_threads", lambda: 1)  # one core (or 8: too many)
    assert split.parts(conv, 128) is None
    monkeypatch.setattr(split, "blas_threads", lambda: split.MAX_AUTO_THREADS + 1)
    assert split.parts(conv, 128) is None


def test_setting(monkeypatch):
    monkeypatch.setattr(split, "MIN_PER_PART", 4)
    plan = compiled(cnn(), n=64)._plans["train"]
    for off in ("0", "1"):
        monkeypatch.setenv("HPNN_BATCH_THREADS", off)
        assert split.parts(plan, 64) is None
    monkeypatch.setenv("HPNN_BATCH_THREADS", "auto")
    threads = split.blas_threads()
    worth = census.worth_splitting(plan.census, threads, plan.weight_bytes, True)
    expected = threads if 2 <= threads <= split.MAX_AUTO_THREADS and worth else None
    got = split.parts(plan, 64)
    assert (got and len(got)) == expected or (got is None and expected is None)
    for bad in ("many", "-2"):
        monkeypatch.setenv("HPNN_BATCH_THREADS", bad)
        with pytest.raises(ValueError, match="HPNN_BATCH_THREADS"):
            split.parts(plan, 64)


THREE = [slice(0, 1), slice(1, 2), slice(2, 3)]


def test_on_threads_uses_threads_waits_for_all_and_restores_blas():
    before = split.blas_threads()
    seen, inside = set(), []

    def part(i, sl):
        seen.add(threading.get_ident())
        inside.append(split.blas_threads())
        return (i, sl.start)

    assert split.on_threads(part, THREE) == [(0, 0), (1, 1), (2, 2)]
    assert len(seen) >= 2 and set(inside) == {1}
    assert split.blas_threads() == before
    done = []

    def failing(i, sl):
        if i == 1:
            raise RuntimeError("part 1 failed")
        threading.Event().wait(0.05)
        done.append(i)

    with pytest.raises(RuntimeError, match="part 1 failed"):
        split.on_threads(failing, THREE)
    assert sorted(done) == [0, 2]  # the other parts finished before the error came out
    assert split.blas_threads() == before

    def failing_here(i, sl):
        if i == 0:
            raise RuntimeError("part 0 failed")
        threading.Event().wait(0.05)
        done.append(i)

    done.clear()
    with pytest.raises(RuntimeError, match="part 0 failed"):
        split.on_threads(failing_here, THREE)
    assert sorted(done) == [1, 2]
    assert split.blas_threads() == before


def test_parts_record_as_the_caller_does():
    assert split.on_threads(lambda i, sl: is_grad_enabled(), THREE) == [True] * 3
    with no_grad():
        assert split.on_threads(lambda i, sl: is_grad_enabled(), THREE) == [False] * 3
    assert is_grad_enabled()


def test_split_predict_leaves_recording_on_in_every_thread(spy):
    model = compiled(cnn(), n=16, kind="predict")
    x, _ = data(model, 16)
    model.predict(x, batch_size=16, verbose=0)
    assert kinds(spy, "predict")  # the predict ran split
    assert split.on_threads(lambda i, sl: is_grad_enabled(), THREE) == [True] * 3
    assert is_grad_enabled()


def test_a_forked_child_gets_a_fresh_pool(monkeypatch):
    two = [slice(0, 1), slice(1, 2)]
    split.on_threads(lambda i, sl: None, two)
    first = split._pool[1]
    monkeypatch.setattr(split.os, "getpid", lambda: -1)  # as in a forked child
    split.on_threads(lambda i, sl: None, two)
    assert split._pool[1] is not first


class OwnLossAndTest(hpnn.Sequential):
    """A subclass with its own ``compute_loss`` (a squared-output penalty) and
    ``test_step`` (counted): the placements must call both, in every part."""

    tests = 0

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training)
        return loss + hpnn.ops.mean(y_pred * y_pred) * 0.5

    def test_step(self, x, y, sample_weight=None):
        type(self).tests += 1
        return super().test_step(x, y, sample_weight)


def test_a_subclass_compute_loss_and_test_step_run_in_every_part(spy, monkeypatch):
    def make(cls=OwnLossAndTest):
        hpnn.utils.set_random_seed(0)
        return cls(
            [hpnn.Input((8, 8, 2)), layers.Conv2D(4, 3, activation="relu"),
             layers.Flatten(), layers.Dense(3, activation="softmax")]
        )  # fmt: skip

    (a, la, x, y), (b, lb, _, _) = train_both(make, 12, monkeypatch)
    assert kinds(spy, "train")  # the split ran
    np.testing.assert_allclose(la, lb, rtol=2e-6)
    assert_same_weights(a, b)
    plain = make(hpnn.Sequential)  # the same model without the penalty: another loss
    plain.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert abs(plain.train_on_batch(x, y) - la[0][0]) > 1e-3
    monkeypatch.setenv("HPNN_BATCH_THREADS", "3")
    OwnLossAndTest.tests = 0
    for _ in range(2):  # the census, then split in 3 parts
        a.evaluate(x, y, batch_size=12, verbose=0)
    assert OwnLossAndTest.tests == 1 + 3

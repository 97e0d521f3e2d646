"""Tests for hpnn.models.Sequential: building, weights, fit/evaluate/predict, callbacks."""

import numpy as np
import pytest

import hpnn
from hpnn import Input, Sequential, callbacks, layers
from hpnn.cli import build_model


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def blobs(rng):
    """Three well separated Gaussian blobs in 4-D: (x float64, integer labels)."""
    centers = rng.standard_normal((3, 4)) * 3
    y = rng.integers(0, 3, 60)
    x = centers[y] + rng.standard_normal((60, 4)) * 0.5
    return x, y


def small_model(seed=None, dropout=0.0):
    if seed is not None:
        hpnn.utils.set_random_seed(seed)
    stack = [Input((4,)), layers.Dense(8, activation="relu")]
    if dropout:
        stack.append(layers.Dropout(dropout))
    stack.append(layers.Dense(3, activation="softmax"))
    return Sequential(stack)


def compiled(model, loss="sparse_categorical_crossentropy", optimizer=None, metrics=("accuracy",)):
    model.compile(
        optimizer=optimizer or hpnn.optimizers.Adam(0.01), loss=loss, metrics=list(metrics)
    )
    return model


# -- building ---------------------------------------------------------------------------


def test_reference_cnn_builds_immediately_and_summary_lists_params():
    model = build_model("cnn")
    assert model.built
    assert model.count_params() == 17_578
    assert model.output_shape == (None, 10)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Total params: 17,578" in text
    assert "Trainable params: 17,578" in text
    assert "Non-trainable params: 0" in text
    for shape, params in [
        ("(None, 26, 26, 32)", "320"),
        ("(None, 11, 11, 32)", "9,248"),
        ("(None, 800)", "0"),
        ("(None, 10)", "8,010"),
    ]:
        assert any(shape in line and line.rstrip().endswith(params) for line in text.splitlines())
    for layer in model.layers:
        assert f"{layer.name} ({type(layer).__name__})" in text
    assert [w.shape for w in model.weights] == [
        (3, 3, 1, 32),
        (32,),
        (3, 3, 32, 32),
        (32,),
        (800, 10),
        (10,),
    ]


def test_without_input_builds_on_first_predict(rng):
    model = Sequential([layers.Dense(5, activation="relu"), layers.Dense(2)])
    assert not model.built
    assert model.weights == []
    with pytest.raises(ValueError, match="not been built"):
        model.summary()
    out = model.predict(rng.standard_normal((3, 7)), verbose=0)
    assert out.shape == (3, 2)
    assert model.built
    assert [w.shape for w in model.weights] == [(7, 5), (5,), (5, 2), (2,)]
    model.summary(print_fn=lambda s: None)


def test_without_input_builds_on_first_fit(blobs):
    x, y = blobs
    model = compiled(Sequential([layers.Dense(6), layers.Dense(3, activation="softmax")]))
    model.fit(x, y, epochs=1, verbose=0)
    assert model.count_params() == 4 * 6 + 6 + 6 * 3 + 3


def test_input_shape_kwarg_on_first_layer():
    model = Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(2)])
    assert model.built
    assert model.output_shape == (None, 2)
    assert [w.shape for w in model.weights] == [(3, 4), (4,), (4, 2), (2,)]


def test_add_and_pop():
    model = Sequential()
    model.add(Input((6,)))
    model.add(layers.Dense(4))
    assert model.output_shape == (None, 4)
    top = layers.Dense(2)
    model.add(top)
    assert model.built and model.output_shape == (None, 2)
    assert top.built and top.kernel.shape == (4, 2)
    assert len(model.layers) == 2
    assert model.pop() is top
    assert model.layers[-1].units == 4
    assert model.output_shape == (None, 4)
    model.pop()
    with pytest.raises(IndexError, match="no layer to pop"):
        model.pop()


def test_input_must_come_first():
    model = Sequential([layers.Dense(2)])
    with pytest.raises(ValueError, match="Input can only be the first"):
        model.add(Input((3,)))


def test_add_non_layer_raises():
    with pytest.raises(TypeError, match=r"expects a Layer.*Received: str"):
        Sequential(["dense"])


def test_reusing_a_layer_object_raises():
    d = layers.Dense(4)
    with pytest.raises(ValueError, match="already in the model"):
        Sequential([Input((4,)), d, d])


# -- weights ------------------------------------------------------------------------------


def test_get_set_weights_round_trip(rng):
    a, b = small_model(seed=1), small_model(seed=2)
    x = rng.standard_normal((5, 4))
    assert not np.allclose(a.predict(x, verbose=0), b.predict(x, verbose=0))
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    # get_weights returns copies
    w = a.get_weights()
    w[0][...] = 0
    assert np.any(a.get_weights()[0] != 0)


def test_set_weights_errors():
    model = small_model()
    w = model.get_weights()
    with pytest.raises(ValueError, match=r"4 weight arrays\. Received: 3"):
        model.set_weights(w[:3])
    bad = [*w[:2], np.zeros((8, 4), np.float32), w[3]]
    with pytest.raises(ValueError) as e:
        model.set_weights(bad)
    msg = str(e.value)
    assert "(8, 3)" in msg and "Received: shape=(8, 4)" in msg and "kernel" in msg
    # nothing was half-assigned by the failed call
    for before, after in zip(w, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


# -- fit / evaluate / predict -----------------------------------------------------------------


def test_fit_returns_history_one_entry_per_epoch(blobs):
    x, y = blobs
    model = compiled(small_model(seed=0))
    hist = model.fit(x, y, epochs=3, batch_size=16, validation_data=(x[:10], y[:10]), verbose=0)
    assert isinstance(hist, callbacks.History)
    assert model.history is hist
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in hist.history.values())
    assert hist.epoch == [0, 1, 2]
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert all(0.0 <= a <= 1.0 for a in hist.history["accuracy"])


def test_training_learns_the_blobs(blobs):
    x, y = blobs
    model = compiled(small_model(seed=0))
    model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    _, acc = model.evaluate(x, y, verbose=0)
    assert acc >= 0.9


class Spy(layers.Layer):
    """Records the inputs it sees, in training and in inference."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.train_rows, self.test_rows = [], []

    def call(self, x, training=False):
        (self.train_rows if training else self.test_rows).append(x.numpy()[:, 0].copy())
        return x


def test_validation_split_uses_the_last_fraction(blobs):
    x, y = blobs
    x = x.copy()
    x[:, 0] = np.arange(len(x))  # row ids
    spy = Spy()
    model = compiled(Sequential([Input((4,)), spy, layers.Dense(3, activation="softmax")]))
    hist = model.fit(x, y, epochs=2, batch_size=7, validation_split=0.25, verbose=0)
    train_seen = np.concatenate(spy.train_rows)
    test_seen = np.concatenate(spy.test_rows)
    assert sorted(train_seen) == sorted(list(range(45)) * 2)  # every training row, each epoch
    assert set(test_seen) == set(range(45, 60))
    assert len(test_seen) == 2 * 15
    val_loss, val_acc = model.evaluate(x[45:], y[45:], verbose=0)
    np.testing.assert_allclose(hist.history["val_loss"][-1], val_loss, rtol=1e-6)
    np.testing.assert_allclose(hist.history["val_accuracy"][-1], val_acc, rtol=1e-6)


def test_shuffle_false_keeps_order_and_true_shuffles(blobs):
    x, y = blobs
    x = x.copy()
    x[:, 0] = np.arange(len(x))
    for shuffle in (False, True):
        spy = Spy()
        model = compiled(Sequential([Input((4,)), spy, layers.Dense(3, activation="softmax")]))
        model.fit(x, y, epochs=2, batch_size=8, shuffle=shuffle, verbose=0)
        epoch0 = np.concatenate(spy.train_rows[:8])
        epoch1 = np.concatenate(spy.train_rows[8:])
        assert sorted(epoch0) == list(range(60)) == sorted(epoch1)
        if shuffle:
            assert list(epoch0) != list(range(60)) and list(epoch0) != list(epoch1)
        else:
            assert list(epoch0) == list(range(60)) == list(epoch1)


def np_cce(onehot, p):
    p = p / p.sum(axis=-1, keepdims=True)
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(onehot * np.log(p)).sum(axis=-1)


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_evaluate_matches_manual_computation_from_predict(blobs, loss):
    x, y = blobs
    model = compiled(small_model(seed=3), loss=loss)
    targets = y if loss.startswith("sparse") else hpnn.utils.to_categorical(y, 3)
    model.fit(x, targets, epochs=2, verbose=0)
    p = model.predict(x, batch_size=7, verbose=0).astype(np.float64)
    expected_loss = np_cce(np.eye(3)[y], p).mean()
    expected_acc = (p.argmax(axis=1) == y).mean()
    loss_v, acc = model.evaluate(x, targets, batch_size=13, verbose=0)
    np.testing.assert_allclose(loss_v, expected_loss, rtol=1e-5)
    assert acc == pytest.approx(expected_acc)
    d = model.evaluate(x, targets, verbose=0, return_dict=True)
    assert set(d) == {"loss", "accuracy"}
    np.testing.assert_allclose(d["loss"], expected_loss, rtol=1e-5)
    assert d["accuracy"] == pytest.approx(expected_acc)


def test_evaluate_without_metrics_returns_a_float(blobs):
    x, y = blobs
    model = compiled(small_model(seed=0), metrics=())
    out = model.evaluate(x, y, verbose=0)
    assert isinstance(out, float)


def test_predict_batches_agree_with_one_batch(rng):
    model = build_model("cnn")
    x = rng.random((11, 28, 28, 1))
    whole = model.predict(x, batch_size=11, verbose=0)
    parts = model.predict(x, batch_size=4, verbose=0)
    assert whole.shape == (11, 10) and whole.dtype == np.float32
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(whole.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(model.predict_on_batch(x), whole, rtol=1e-5, atol=1e-7)
    assert model.predict(x[:0], verbose=0).shape == (0, 10)


def test_predict_is_inference_mode():
    hpnn.utils.set_random_seed(0)
    model = Sequential([Input((50,)), layers.Dropout(0.5)])
    x = np.ones((4, 50), np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)


# -- callbacks ---------------------------------------------------------------------------


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append("train_begin")

    def on_train_end(self, logs=None):
        self.events.append("train_end")

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(f"epoch_begin {epoch}")

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(f"epoch_end {epoch} {sorted(logs)}")

    def on_train_batch_begin(self, batch, logs=None):
        self.events.append(f"batch_begin {batch}")

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(f"batch_end {batch} {sorted(logs)}")


def test_callback_hook_order(blobs):
    x, y = blobs
    x, y = x[:10], y[:10]
    rec = Recorder()
    model = compiled(small_model(seed=0))
    model.fit(x, y, epochs=2, batch_size=4, callbacks=[rec], validation_data=(x, y), verbose=0)
    assert rec.model is model
    assert rec.params["epochs"] == 2 and rec.params["steps"] == 3
    expected = ["train_begin"]
    for epoch in range(2):
        expected.append(f"epoch_begin {epoch}")
        for b in range(3):
            expected += [f"batch_begin {b}", f"batch_end {b} ['accuracy', 'loss']"]
        expected.append(f"epoch_end {epoch} ['accuracy', 'loss', 'val_accuracy', 'val_loss']")
    expected.append("train_end")
    assert rec.events == expected


def test_validation_calls_test_hooks(blobs):
    x, y = blobs
    seen = []
    cb = callbacks.LambdaCallback(
        on_test_begin=lambda logs: seen.append("test_begin"),
        on_test_end=lambda logs: seen.append("test_end"),
    )
    model = compiled(small_model(seed=0))
    model.fit(x, y, epochs=1, validation_data=(x, y), callbacks=[cb], verbose=0)
    model.evaluate(x, y, callbacks=[cb], verbose=0)
    assert seen == ["test_begin", "test_end"] * 2


def test_lambda_callback(blobs):
    x, y = blobs
    epochs, batches = [], []
    cb = callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: epochs.append((epoch, logs["loss"])),
        on_train_batch_end=lambda batch, logs: batches.append(batch),
    )
    model = compiled(small_model(seed=0))
    hist = model.fit(x, y, epochs=2, batch_size=20, callbacks=[cb], verbose=0)
    assert [e for e, _ in epochs] == [0, 1]
    assert [loss for _, loss in epochs] == hist.history["loss"]
    assert batches == [0, 1, 2, 0, 1, 2]
    with pytest.raises(TypeError, match="unknown hook"):
        callbacks.LambdaCallback(on_epoch_ending=print)


def test_stop_training_at_epoch_end(blobs):
    x, y = blobs

    def stop(epoch, logs):
        if epoch == 1:
            model.stop_training = True

    model = compiled(small_model(seed=0))
    hist = model.fit(
        x, y, epochs=10, callbacks=[callbacks.LambdaCallback(on_epoch_end=stop)], verbose=0
    )
    assert hist.epoch == [0, 1]
    assert len(hist.history["loss"]) == 2


def test_stop_training_within_an_epoch(blobs):
    x, y = blobs
    batches = []

    def stop(batch, logs):
        batches.append(batch)
        if batch == 1:
            model.stop_training = True

    model = compiled(small_model(seed=0))
    hist = model.fit(
        x,
        y,
        epochs=5,
        batch_size=10,
        callbacks=[callbacks.LambdaCallback(on_train_batch_end=stop)],
        verbose=0,
    )
    assert batches == [0, 1]
    assert hist.epoch == [0]
    # fit resets the flag: a second fit trains again
    hist = model.fit(x, y, epochs=2, batch_size=60, verbose=0)
    assert hist.epoch == [0, 1]


def test_bad_callback_type():
    model = compiled(small_model())
    with pytest.raises(TypeError, match="Callback instances"):
        model.fit(np.ones((2, 4)), np.zeros(2), callbacks=[print], verbose=0)


# -- EarlyStopping, driven by scripted values -----------------------------------------------


class FakeModel:
    """What EarlyStopping touches: weights (here the epoch number) and stop_training."""

    def __init__(self):
        self.epoch = -1
        self.stop_training = False
        self.restored = None

    def get_weights(self):
        return [np.array(self.epoch)]

    def set_weights(self, weights):
        self.restored = int(weights[0])


def drive(es, values, monitor="val_loss"):
    """Run ``es`` over epochs with scripted monitor values; return (epochs run, model)."""
    model = FakeModel()
    es.set_model(model)
    es.on_train_begin()
    ran = 0
    for epoch, value in enumerate(values):
        model.epoch = epoch
        ran += 1
        es.on_epoch_end(epoch, {monitor: value, "loss": 0.0})
        if model.stop_training:
            break
    es.on_train_end()
    return ran, model


def test_early_stopping_patience():
    values = [1.0, 0.9, 0.95, 0.97, 0.99, 0.5]
    assert drive(callbacks.EarlyStopping(patience=0), values)[0] == 3
    assert drive(callbacks.EarlyStopping(patience=2), values)[0] == 4
    assert drive(callbacks.EarlyStopping(patience=3), values)[0] == 5
    assert drive(callbacks.EarlyStopping(patience=4), values)[0] == 6
    es = callbacks.EarlyStopping(patience=2)
    drive(es, values)
    assert es.stopped_epoch == 3 and es.best == 0.9 and es.best_epoch == 1


def test_early_stopping_min_delta():
    values = [1.0, 0.95, 0.9, 0.85]  # improves by 0.05 each epoch
    assert drive(callbacks.EarlyStopping(patience=0, min_delta=0.01), values)[0] == 4
    assert drive(callbacks.EarlyStopping(patience=0, min_delta=0.1), values)[0] == 2


def test_early_stopping_restores_best_weights_when_stopped():
    es = callbacks.EarlyStopping(patience=1, restore_best_weights=True)
    ran, model = drive(es, [1.0, 0.5, 0.7, 0.8, 0.1])
    assert ran == 3
    assert model.restored == 1


def test_early_stopping_restores_best_weights_when_not_stopped():
    es = callbacks.EarlyStopping(patience=10, restore_best_weights=True)
    ran, model = drive(es, [1.0, 0.5, 0.7, 0.8])
    assert ran == 4 and es.stopped_epoch == 0
    assert model.restored == 1
    _, model = drive(callbacks.EarlyStopping(patience=10), [1.0, 0.5, 0.7])
    assert model.restored is None


def test_early_stopping_baseline():
    values = [0.9, 0.8, 0.85, 0.86, 0.87]
    # without a baseline: two epochs without improvement after 0.8
    assert drive(callbacks.EarlyStopping(patience=2), values)[0] == 4
    # with a baseline never reached, the wait never resets: stop at the first non-improvement
    assert drive(callbacks.EarlyStopping(patience=2, baseline=0.5), values)[0] == 3
    # a baseline that is beaten behaves as none
    assert drive(callbacks.EarlyStopping(patience=2, baseline=0.95), values)[0] == 4


def test_early_stopping_start_from_epoch():
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # only gets worse
    assert drive(callbacks.EarlyStopping(patience=1), values)[0] == 2
    es = callbacks.EarlyStopping(patience=1, start_from_epoch=3, restore_best_weights=True)
    ran, model = drive(es, values)
    assert ran == 5
    assert model.restored == 3  # epochs before start_from_epoch are not candidates


@pytest.mark.parametrize(
    ("monitor", "mode"),
    [
        ("val_accuracy", "max"),
        ("accuracy", "max"),
        ("val_acc", "max"),
        ("val_loss", "min"),
        ("loss", "min"),
        ("val_auc", "max"),
    ],
)
def test_early_stopping_mode_auto(monitor, mode):
    es = callbacks.EarlyStopping(monitor=monitor)
    assert es.mode == mode
    rising = [0.1, 0.2, 0.3, 0.4]
    ran, _ = drive(es, rising, monitor=monitor)
    assert ran == (4 if mode == "max" else 2)


def test_early_stopping_explicit_mode_and_errors():
    assert drive(callbacks.EarlyStopping(monitor="val_loss", mode="max"), [0.1, 0.2, 0.3])[0] == 3
    with pytest.raises(ValueError, match=r"mode.*Received: mode='up'"):
        callbacks.EarlyStopping(mode="up")
    with pytest.raises(ValueError, match=r"monitor='val_los'.*Available"):
        drive(callbacks.EarlyStopping(monitor="val_los"), [1.0])


def test_early_stopping_in_fit_on_a_constant_loss(blobs):
    x, y = blobs
    model = compiled(small_model(seed=0), optimizer=hpnn.optimizers.SGD(0.0))
    es = callbacks.EarlyStopping(monitor="loss", patience=3)
    hist = model.fit(x, y, epochs=20, shuffle=False, callbacks=[es], verbose=0)
    assert len(hist.history["loss"]) == 4  # as in Keras' docstring example


def test_early_stopping_in_fit_restores_the_best_epoch(blobs):
    x, y = blobs
    snapshots = []
    scripted = iter([0.9, 0.3, 0.5, 0.6, 0.7])

    def script(epoch, logs):
        snapshots.append(model.get_weights())
        logs["val_loss"] = next(scripted)

    model = compiled(small_model(seed=0))
    es = callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    hist = model.fit(
        x,
        y,
        epochs=5,
        validation_data=(x, y),
        verbose=0,
        callbacks=[callbacks.LambdaCallback(on_epoch_end=script), es],
    )
    assert len(hist.epoch) == 4
    for got, best in zip(model.get_weights(), snapshots[1], strict=True):
        np.testing.assert_array_equal(got, best)
    assert not np.array_equal(model.get_weights()[0], snapshots[-1][0])


# -- seeds and dtypes -------------------------------------------------------------------------


def test_set_random_seed_makes_whole_runs_identical(blobs):
    x, y = blobs

    def run(seed, init_seed=None):
        hpnn.utils.set_random_seed(seed)
        model = compiled(small_model(dropout=0.5))
        if init_seed is not None:  # fixed initial weights: only shuffling and dropout vary
            model.set_weights(small_model(seed=init_seed, dropout=0.5).get_weights())
            hpnn.utils.set_random_seed(seed)
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        return model.get_weights()

    a, b, c = run(7), run(7), run(8)
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a[0], c[0])
    # with the same initial weights, the seed still changes shuffling and dropout
    d, e = run(7, init_seed=1), run(8, init_seed=1)
    assert not np.array_equal(d[0], e[0])


def test_float32_everywhere_after_training_on_float64(blobs):
    x, y = blobs
    assert x.dtype == np.float64
    model = compiled(small_model(seed=0))
    model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y))
    assert all(w.dtype == np.float32 for w in model.get_weights())
    assert all(w.dtype == np.float32 for w in model.weights)
    assert all(s.dtype == np.float32 for s in model.optimizer.variables())
    assert model.predict(x, verbose=0).dtype == np.float32
    hist = model.fit(x.astype(np.float16), y, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    assert model.predict(x.astype(np.int64), verbose=0).dtype == np.float32
    assert all(w.dtype == np.float32 for w in model.get_weights())


def test_train_on_batch_and_test_on_batch(blobs):
    x, y = blobs
    model = compiled(small_model(seed=0))
    before = model.get_weights()[0]
    loss, acc = model.train_on_batch(x[:8], y[:8])
    assert np.isfinite(loss) and 0 <= acc <= 1
    assert not np.array_equal(before, model.get_weights()[0])
    d = model.test_on_batch(x, y, return_dict=True)
    assert set(d) == {"loss", "accuracy"}


def test_evaluate_and_training_loss_agree_for_saturated_softmax():
    model = Sequential([Input((2,)), layers.Dense(3, activation="softmax")])
    model.set_weights([np.array([[1000.0, 0, -1000], [0, 0, 0]], np.float32), np.zeros(3)])
    model.compile(optimizer=hpnn.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    x, y = np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([2, 0])
    train_loss = model.train_on_batch(x, y)  # lr 0: the weights do not move
    assert train_loss == pytest.approx(1000.0)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(train_loss, rel=1e-5)


def test_pop_and_add_on_a_model_built_by_predict(rng):
    x = rng.standard_normal((8, 4))
    model = Sequential([layers.Dense(5), layers.Dense(2)])
    model.predict(x, verbose=0)
    model.pop()
    assert model.predict(x, verbose=0).shape == (8, 5)
    assert model.compute_output_shape((None, 4)) == (None, 5)
    model.add(layers.Dense(3))
    assert model.predict(x, verbose=0).shape == (8, 3)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.zeros((8, 3)), verbose=0)


def test_freezing_and_thawing_follow_keras(blobs):
    x, y = blobs
    base = layers.Dense(8, activation="relu", trainable=False)  # built frozen
    norm = layers.BatchNormalization()
    hpnn.utils.set_random_seed(0)
    model = Sequential([Input((4,)), base, norm, layers.Dense(3, activation="softmax")])
    model = compiled(model)
    assert [w.requires_grad for w in base.weights] == [False, False]  # no gradient work
    frozen = base.get_weights()
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for a, b in zip(frozen, base.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    base.trainable = True
    assert len(model.trainable_weights) == 6
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert not np.array_equal(frozen[0], base.get_weights()[0])
    # a model's flag reaches every layer, as in Keras; the moving statistics stay frozen
    model.trainable = False
    assert not base.trainable and not norm.trainable and model.trainable_weights == []
    model.trainable = True
    assert base.trainable and norm.trainable and len(model.trainable_weights) == 6
    assert [w.requires_grad for w in norm.weights] == [True, True, False, False]


def test_a_model_with_every_layer_frozen_still_fits(blobs):
    x, y = blobs
    model = compiled(small_model(seed=0))
    model.trainable = False
    before = model.get_weights()
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_get_layer_by_name_or_index():
    model = Sequential([Input((4,)), layers.Dense(8, name="hidden"), layers.Dense(3, name="out")])
    assert model.get_layer("hidden") is model.layers[0]
    assert model.get_layer(index=-1) is model.get_layer(name="out")
    with pytest.raises(ValueError, match=r"no layer named 'nope'.*'hidden', 'out'"):
        model.get_layer("nope")
    with pytest.raises(ValueError, match="index 5 out of range"):
        model.get_layer(index=5)
    with pytest.raises(ValueError, match="a layer name or an index"):
        model.get_layer()
    with pytest.raises(ValueError, match=r"index must be an int\. Received: 'a'"):
        model.get_layer(index="a")


def test_a_frozen_layer_adds_no_weight_penalty_but_its_activity_penalty():
    frozen = layers.Dense(3, kernel_regularizer="l2", activity_regularizer="l1", trainable=False)
    model = Sequential([Input((2,)), frozen, layers.Dense(1, kernel_regularizer="l1")])
    model(np.ones((4, 2), dtype="float32"))
    assert len(model.losses) == 2  # the last kernel's penalty and the activity one (as Keras)
    frozen.trainable = True
    assert len(model.losses) == 3

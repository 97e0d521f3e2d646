"""Keras 3 ``.weights.h5`` files into hpnn: a model trained in Keras, the same
architecture built in hpnn, the same predictions."""

import os

import numpy as np
import pytest

import hpnn

os.environ.setdefault("KERAS_BACKEND", "torch")
pytest.importorskip("torch")
pytest.importorskip("h5py")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("these comparisons run Keras on its torch backend", allow_module_level=True)


def cnn(lib):
    return lib.Sequential(
        [
            lib.Input((12, 12, 2)),
            lib.layers.Conv2D(4, 3, activation="relu"),
            lib.layers.BatchNormalization(),
            lib.layers.MaxPooling2D(),
            lib.layers.Flatten(),
            lib.layers.Dense(3, activation="softmax"),
        ]
    )


def recurrent(lib):
    return lib.Sequential(
        [
            lib.Input((6, 3)),
            lib.layers.LSTM(5, return_sequences=True),
            lib.layers.Bidirectional(lib.layers.GRU(4)),
            lib.layers.Dense(2),
        ]
    )


def transformer(lib):
    inp = lib.Input((6, 8))
    att = lib.layers.MultiHeadAttention(2, 4)(inp, inp)
    x = lib.layers.LayerNormalization()(lib.layers.Add()([inp, att]))
    inner = lib.Sequential([lib.layers.Dense(16, activation="relu"), lib.layers.Dense(8)])
    out = lib.layers.GlobalAveragePooling1D()(inner(x))
    return lib.Model(inp, lib.layers.Dense(2)(out))


def two_inputs(lib):
    a, b = lib.Input((4,)), lib.Input((3,))
    h = lib.layers.Concatenate()([lib.layers.Dense(5)(a), lib.layers.Dense(5)(b)])
    return lib.Model([a, b], lib.layers.Dense(1)(h))


CASES = {
    "cnn": (cnn, lambda r: r.random((4, 12, 12, 2), dtype=np.float32)),
    "recurrent": (recurrent, lambda r: r.random((4, 6, 3), dtype=np.float32)),
    "transformer": (transformer, lambda r: r.random((4, 6, 8), dtype=np.float32)),
    "two_inputs": (
        two_inputs,
        lambda r: [r.random((4, 4), dtype=np.float32), r.random((4, 3), dtype=np.float32)],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_keras_model_s_weights_give_its_predictions(name, tmp_path):
    build, data = CASES[name]
    x = data(np.random.default_rng(0))
    theirs = build(keras)
    theirs.compile(optimizer="adam", loss="mse")
    y = theirs.predict(x, verbose=0)
    theirs.fit(
        x, np.random.default_rng(1).random(y.shape).astype(np.float32), epochs=2, verbose=0
    )  # fmt: skip  (trained: moving statistics and weights away from init)
    theirs.save_weights(tmp_path / "m.weights.h5")
    ours = build(hpnn)
    ours.load_weights(tmp_path / "m.weights.h5")
    want = keras.ops.convert_to_numpy(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(ours.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)


def test_another_architecture_is_refused_before_anything_is_set(tmp_path):
    cnn(keras).save_weights(tmp_path / "m.weights.h5")
    other = hpnn.Sequential([hpnn.Input((12, 12, 2)), hpnn.layers.Conv2D(5, 3)])
    before = [w.copy() for w in other.get_weights()]
    with pytest.raises(ValueError, match=r"expects weights of shapes"):
        other.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(other.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_without_h5py_the_error_says_what_to_install(tmp_path, monkeypatch):
    import sys

    cnn(keras).save_weights(tmp_path / "m.weights.h5")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"needs h5py: pip install h5py"):
        cnn(hpnn).load_weights(tmp_path / "m.weights.h5")


def test_fine_tuning_a_keras_trained_model(tmp_path):
    """Keras trains a feature extractor; hpnn loads it, freezes it, trains a new head."""
    rng = np.random.default_rng(0)
    x = rng.random((64, 12, 12, 2), dtype=np.float32)
    y = (x[:, :6].mean(axis=(1, 2, 3)) > x[:, 6:].mean(axis=(1, 2, 3))).astype("int64")
    trained = cnn(keras)
    trained.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    trained.fit(x, y, epochs=2, verbose=0)
    trained.save_weights(tmp_path / "base.weights.h5")

    base = cnn(hpnn)
    base.load_weights(tmp_path / "base.weights.h5")
    frozen = [w.copy() for w in base.get_weights()]
    base.trainable = False
    features = hpnn.Model(base.inputs, base.layers[-2].output)  # up to Flatten
    head = hpnn.layers.Dense(2, activation="softmax", name="new_head")
    model = hpnn.Sequential([features, head])
    model.compile(optimizer=hpnn.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    for a, b in zip(base.get_weights(), frozen, strict=True):  # the base did not move
        np.testing.assert_array_equal(a, b)

"""Keras 3's ``.keras`` format, both ways: a model trained in Keras loads into hpnn with
the same predictions, an hpnn model saved as ``.keras`` loads in Keras with the same
predictions; and, without Keras, the round trip, the errors and the atomic write."""

import json
import os
import zipfile

import numpy as np
import pytest

import hpnn
from hpnn.io import ArchiveError

pytest.importorskip("h5py")


def cnn(lib):
    return lib.Sequential(
        [
            lib.Input((10, 10, 2)),
            lib.layers.Conv2D(4, 3, activation="relu"),
            lib.layers.BatchNormalization(),
            lib.layers.MaxPooling2D(),
            lib.layers.Flatten(),
            lib.layers.Dropout(0.3),
            lib.layers.Dense(3, activation="softmax"),
        ]
    )


def recurrent(lib):
    return lib.Sequential(
        [
            lib.Input((6,)),
            lib.layers.Embedding(12, 4),
            lib.layers.LSTM(5, return_sequences=True),
            lib.layers.GRU(3),
            lib.layers.Dense(2),
        ]
    )


def transformer(lib):
    inp = lib.Input((6, 8))
    att = lib.layers.MultiHeadAttention(2, 4)(inp, inp)
    x = lib.layers.LayerNormalization()(lib.layers.Add()([inp, att]))
    ff = lib.layers.Dense(8)(lib.layers.Dense(16, activation="relu")(x))
    x = lib.layers.LayerNormalization()(lib.layers.Add()([x, ff]))
    out = lib.layers.Dense(2)(lib.layers.GlobalAveragePooling1D()(x))
    return lib.Model(inp, out)


def two_inputs(lib):
    a, b = lib.Input((4,)), lib.Input((3,))
    h = lib.layers.Concatenate()([lib.layers.Dense(5)(a), lib.layers.Dense(5)(b)])
    return lib.Model([a, b], lib.layers.Dense(1)(h))


def depths(lib):
    """Dense layers of one shape at different depths: hpnn lists them in another order
    than Keras, whose order names their weights (a mix-up would go unnoticed)."""
    inp = lib.Input((4,))
    deep = lib.layers.Dense(4)(lib.layers.Dense(4)(lib.layers.Dense(4)(inp)))
    return lib.Model(inp, lib.layers.Add()([lib.layers.Dense(4)(inp), deep]))


def _floats(*shape):
    return lambda r: r.random(shape, dtype=np.float32)


CASES = {
    "cnn": (cnn, _floats(8, 10, 10, 2)),
    "recurrent": (recurrent, lambda r: r.integers(0, 12, (8, 6))),
    "transformer": (transformer, _floats(8, 6, 8)),
    "two_inputs": (two_inputs, lambda r: [_floats(8, 4)(r), _floats(8, 3)(r)]),
    "depths": (depths, _floats(8, 4)),
}


def trained(lib, name, optimizer="adam"):
    """A model of ``CASES[name]`` trained two epochs in ``lib``, and its input."""
    build, data = CASES[name]
    x = data(np.random.default_rng(0))
    model = build(lib)
    model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    y = np.asarray(model.predict(x, verbose=0))
    model.fit(x, np.random.default_rng(1).random(y.shape).astype(np.float32), epochs=2, verbose=0)
    return model, x


def _numpy(keras, y):
    return keras.ops.convert_to_numpy(y)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_keras_model_loads_into_hpnn(keras, name, tmp_path):
    theirs, x = trained(keras, name, optimizer=keras.optimizers.Adam(0.003))
    theirs.save(tmp_path / "m.keras")
    ours = hpnn.models.load_model(tmp_path / "m.keras")
    want = _numpy(keras, theirs.predict(x, verbose=0))
    np.testing.assert_allclose(ours.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)
    assert isinstance(ours.optimizer, hpnn.optimizers.Adam)
    assert ours.optimizer.learning_rate == pytest.approx(0.003)
    assert ours.loss.name in ("mse", "mean_squared_error")
    assert ours._metric_specs == ["mae"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_hpnn_model_loads_into_keras(keras, name, tmp_path):
    ours, x = trained(hpnn, name, optimizer=hpnn.optimizers.Adam(0.003))
    ours.save(tmp_path / "m.keras")
    theirs = keras.saving.load_model(tmp_path / "m.keras")
    got = _numpy(keras, theirs.predict(x, verbose=0))
    np.testing.assert_allclose(got, ours.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert type(theirs.optimizer).__name__ == "Adam"
    assert float(theirs.optimizer.learning_rate) == pytest.approx(0.003)


def test_compile_objects_cross_both_ways(keras, tmp_path):
    """Optimizer and loss given as objects (not names) keep their settings."""
    theirs = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)
    theirs.compile(keras.optimizers.SGD(0.05, momentum=0.9), loss)
    theirs.save(tmp_path / "k.keras")
    ours = hpnn.models.load_model(tmp_path / "k.keras")
    assert isinstance(ours.optimizer, hpnn.optimizers.SGD)
    assert (ours.optimizer.learning_rate, ours.optimizer.momentum) == pytest.approx((0.05, 0.9))
    assert isinstance(ours.loss, hpnn.losses.CategoricalCrossentropy)
    assert ours.loss.kwargs["label_smoothing"] == 0.1

    loss = hpnn.losses.CategoricalCrossentropy(label_smoothing=0.2)
    ours.compile(hpnn.optimizers.RMSprop(0.02, rho=0.8), loss)
    ours.save(tmp_path / "h.keras")
    back = keras.saving.load_model(tmp_path / "h.keras")
    assert type(back.optimizer).__name__ == "RMSprop"
    assert float(back.optimizer.learning_rate) == pytest.approx(0.02)
    assert back.optimizer.rho == pytest.approx(0.8)
    assert back.loss.get_config()["label_smoothing"] == 0.2


def test_hpnn_weights_h5_loads_into_keras(keras, tmp_path):
    ours, x = trained(hpnn, "depths")
    ours.save_weights(tmp_path / "m.weights.h5")
    theirs = depths(keras)
    theirs.load_weights(tmp_path / "m.weights.h5")
    got = _numpy(keras, theirs.predict(x, verbose=0))
    np.testing.assert_allclose(got, ours.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


# -- without Keras -----------------------------------------------------------------------
def test_round_trip_in_hpnn_keeps_predictions_and_compile(tmp_path):
    model, x = trained(hpnn, "transformer", optimizer=hpnn.optimizers.SGD(0.01, momentum=0.5))
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        assert sorted(z.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
    loaded = hpnn.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert isinstance(loaded.optimizer, hpnn.optimizers.SGD)
    assert (loaded.optimizer.learning_rate, loaded.optimizer.momentum) == (0.01, 0.5)
    assert loaded._metric_specs == ["mae"]
    loaded.fit(x, np.zeros((8, 2), np.float32), epochs=1, verbose=0)  # compiled: it trains
    assert hpnn.models.load_model(tmp_path / "m.keras", compile=False).compiled is False


def test_save_weights_h5_round_trip(tmp_path):
    model, x = trained(hpnn, "recurrent")
    model.save_weights(tmp_path / "m.weights.h5")
    other = recurrent(hpnn)
    other.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))


def _edit_config(path, edit):
    """Rewrite the config.json of the .keras file at ``path`` with ``edit(config)``."""
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def _layer_entry(config, class_name):
    return next(e for e in config["config"]["layers"] if e["class_name"] == class_name)


def test_an_unknown_class_is_named_and_custom_objects_supply_it(tmp_path):
    model = two_inputs(hpnn)
    model.save(tmp_path / "m.keras")

    def rename(config):
        _layer_entry(config, "Concatenate")["class_name"] = "FancyConcat"

    _edit_config(tmp_path / "m.keras", rename)
    want = (
        r"layer 'concatenate[_0-9]*' \(FancyConcat\).*no layer class 'FancyConcat'.*custom_objects"
    )
    with pytest.raises(ValueError, match=want):
        hpnn.models.load_model(tmp_path / "m.keras")
    loaded = hpnn.models.load_model(
        tmp_path / "m.keras", custom_objects={"FancyConcat": hpnn.layers.Concatenate}
    )
    x = [np.ones((2, 4), np.float32), np.ones((2, 3), np.float32)]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_an_option_hpnn_cannot_honour_is_refused(tmp_path):
    cnn(hpnn).save(tmp_path / "m.keras")

    def two_groups(config):
        _layer_entry(config, "Conv2D")["config"]["groups"] = 2

    _edit_config(tmp_path / "m.keras", two_groups)
    want = r"config.json, layer 'conv2d[_0-9]*' \(Conv2D\).*no argument 'groups'.*groups=2"
    with pytest.raises(ValueError, match=want):
        hpnn.models.load_model(tmp_path / "m.keras")


@hpnn.saving.register_keras_serializable(package="tests")
class Scale(hpnn.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.w = self.add_weight((input_shape[-1],), "ones", "w")

    def call(self, x, training=False):
        return x * self.w * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def test_a_registered_custom_layer_round_trips(tmp_path):
    model = hpnn.Sequential([hpnn.Input((3,)), Scale(3.0), hpnn.layers.Dense(2)])
    model.layers[0].set_weights([np.array([1.0, 2.0, 3.0], np.float32)])
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        entry = _layer_entry(json.loads(z.read("config.json")), "Scale")
    assert entry["registered_name"] == "tests>Scale"
    loaded = hpnn.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.layers[0], Scale) and loaded.layers[0].factor == 3.0
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("damage", ["truncated", "flipped", "empty"])
def test_a_damaged_file_gives_a_clear_error(damage, tmp_path):
    cnn(hpnn).save(tmp_path / "m.keras")
    data = (tmp_path / "m.keras").read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped":  # inside the weights member: its CRC no longer matches
        i = data.index(b"\x89HDF") + 4000
        data = data[:i] + bytes(b ^ 0xFF for b in data[i : i + 64]) + data[i + 64 :]
    else:
        data = b""
    (tmp_path / "m.keras").write_bytes(data)
    with pytest.raises(ArchiveError, match=r"m\.keras' is truncated, corrupted, or not a \.keras"):
        hpnn.models.load_model(tmp_path / "m.keras")


def test_an_hpnn_archive_named_keras_still_loads(tmp_path):
    """Before this format, save() wrote hpnn's archive whatever the name: content decides."""
    model, x = trained(hpnn, "two_inputs")
    model.save(tmp_path / "m.hpnn")
    os.rename(tmp_path / "m.hpnn", tmp_path / "old.keras")
    loaded = hpnn.models.load_model(tmp_path / "old.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.iterations == model.optimizer.iterations > 0  # hpnn's state


@pytest.mark.parametrize("target", ["m.keras", "m.weights.h5"])
def test_a_failed_write_leaves_the_old_file(target, tmp_path, monkeypatch):
    model = cnn(hpnn)
    path = tmp_path / target
    model.save(path) if target.endswith(".keras") else model.save_weights(path)
    before = path.read_bytes()

    def fail(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)  # the data is written; the commit fails
    model.layers[-1].set_weights([np.zeros_like(w) for w in model.layers[-1].get_weights()])
    with pytest.raises(OSError, match="disk full"):
        model.save(path) if target.endswith(".keras") else model.save_weights(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [target]  # no temporary file left


def test_a_subclassed_model_is_refused_with_the_alternatives(tmp_path):
    class Net(hpnn.Model):
        def __init__(self):
            super().__init__()
            self.dense = hpnn.layers.Dense(2)

        def call(self, x, training=False):
            return self.dense(x)

    net = Net()
    net.predict(np.ones((1, 3), np.float32), verbose=0)
    with pytest.raises(NotImplementedError, match=r"Sequential and functional.*\.hpnn"):
        net.save(tmp_path / "m.keras")
    assert not os.listdir(tmp_path)

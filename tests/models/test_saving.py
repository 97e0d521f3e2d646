"""model.save / load_model, save_weights / load_weights, to_json / model_from_json."""

import json

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.io import ArchiveError


def trained_cnn():
    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential(
        [
            hpnn.Input(shape=(8, 8, 1)),
            layers.Conv2D(
                4,
                3,
                padding="same",
                activation="relu",
                kernel_regularizer=hpnn.regularizers.L2(1e-3),
            ),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25, seed=3),
            layers.Flatten(),
            layers.Dense(
                5, activation="softmax", kernel_initializer="he_normal", bias_regularizer="l1"
            ),
        ]
    )
    model.compile(
        optimizer=hpnn.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 5, 64)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return model, x, y


def test_save_load_round_trip_continues_training_identically(tmp_path):
    model, x, y = trained_cnn()
    model.save(tmp_path / "m.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "m.hpnn")
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.optimizer.iterations == model.optimizer.iterations == 8
    assert loaded.optimizer.learning_rate == pytest.approx(0.01)
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))
    # same optimizer state: one more step gives the same weights (dropout off for this)
    model.layers[2].rate = loaded.layers[2].rate = 0.0
    model.train_on_batch(x[:16], y[:16])
    loaded.train_on_batch(x[:16], y[:16])
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_layer_frozen_after_training_keeps_its_optimizer_state(tmp_path):
    model, x, y = trained_cnn()
    model.layers[0].trainable = False  # its Adam slots stay; it is no longer trainable
    model.save(tmp_path / "m.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "m.hpnn")
    assert not loaded.layers[0].trainable
    assert len(loaded.optimizer.variables()) == len(model.optimizer.variables()) == 8
    for a, b in zip(model.optimizer.variables(), loaded.optimizer.variables(), strict=True):
        np.testing.assert_array_equal(a, b)
    # both go on with the same state (the Dense layer's slots were matched to it)
    model.layers[2].rate = loaded.layers[2].rate = 0.0
    model.train_on_batch(x[:16], y[:16])
    loaded.train_on_batch(x[:16], y[:16])
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_regularizers_and_initializers_survive_json(tmp_path):
    model, _, _ = trained_cnn()
    clone = hpnn.models.model_from_json(model.to_json())
    conv, dense = clone.layers[0], clone.layers[-1]
    assert isinstance(conv.kernel_regularizer, hpnn.regularizers.L2)
    assert conv.kernel_regularizer.l2 == pytest.approx(1e-3)
    assert isinstance(dense.bias_regularizer, hpnn.regularizers.L1)
    assert len(clone.losses) == len(model.losses) == 2
    assert json.loads(clone.to_json()) == json.loads(model.to_json())


def test_weights_only_round_trip_and_mismatch(tmp_path):
    model, x, _ = trained_cnn()
    model.save_weights(tmp_path / "w.hpnn")
    other = hpnn.models.model_from_json(model.to_json())
    other.load_weights(tmp_path / "w.hpnn")
    np.testing.assert_array_equal(other.predict(x), model.predict(x))
    small = hpnn.Sequential([hpnn.Input(shape=(8, 8, 1)), layers.Flatten(), layers.Dense(2)])
    before = small.get_weights()
    with pytest.raises(ValueError, match="weight arrays"):
        small.load_weights(tmp_path / "w.hpnn")
    for a, b in zip(small.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_damaged_file_raises_and_loads_nothing(tmp_path, damage):
    model, _, _ = trained_cnn()
    path = tmp_path / "m.hpnn"
    model.save(path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) * 2 // 3]
    elif damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = bytearray(b"not a model at all")
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"m\.hpnn"):
        hpnn.models.load_model(path)


def test_load_weights_file_as_model_is_refused(tmp_path):
    model, _, _ = trained_cnn()
    model.save_weights(tmp_path / "w.hpnn")
    with pytest.raises(ValueError, match="not a model"):
        hpnn.models.load_model(tmp_path / "w.hpnn")
    with pytest.raises(FileNotFoundError):
        hpnn.models.load_model(tmp_path / "missing.hpnn")


def test_unbuilt_model_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        hpnn.Sequential([layers.Dense(2)]).save(tmp_path / "x.hpnn")


def test_a_layer_saved_frozen_can_be_unfrozen_after_loading(tmp_path):
    model, x, y = trained_cnn()
    model.layers[0].trainable = False
    model.save(tmp_path / "m.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "m.hpnn")
    conv = loaded.layers[0]
    assert not conv.trainable and not any(w.requires_grad for w in conv.weights)
    conv.trainable = True  # fine-tuning: thaw what was loaded frozen
    model.layers[0].trainable = True
    assert len(loaded.trainable_weights) == len(model.trainable_weights) == 4
    for m in (model, loaded):
        m.layers[2].rate = 0.0
        m.compile(optimizer=hpnn.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    before = conv.get_weights()[0].copy()
    model.train_on_batch(x[:16], y[:16])
    loaded.train_on_batch(x[:16], y[:16])
    assert not np.array_equal(before, conv.get_weights()[0])  # it trains again
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


class _Gate(layers.Layer):
    def __init__(self, k=2.0, **kwargs):
        super().__init__(**kwargs)
        self.k = k

    def call(self, x):
        return x * self.k

    def get_config(self):
        return {**super().get_config(), "k": self.k}


def _gate_model(cls):
    model = hpnn.Sequential([hpnn.Input((3,)), cls(3.0), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_a_registered_custom_layer_loads_without_custom_objects(tmp_path):
    gate = type("RegisteredGate", (_Gate,), {})
    model = _gate_model(gate)
    model.save(tmp_path / "m.hpnn")
    with pytest.raises(ValueError, match="register_keras_serializable"):
        hpnn.models.load_model(tmp_path / "m.hpnn")
    with hpnn.saving.custom_object_scope({"RegisteredGate": gate}):
        assert type(hpnn.saving.load_model(tmp_path / "m.hpnn").layers[0]) is gate
    registered = hpnn.saving.register_keras_serializable(package="tests")(gate)
    try:
        assert hpnn.saving.get_registered_name(registered) == "tests>RegisteredGate"
        assert hpnn.saving.get_custom_objects()["tests>RegisteredGate"] is gate
        loaded = hpnn.saving.load_model(tmp_path / "m.hpnn")
        assert type(loaded.layers[0]) is gate and loaded.layers[0].k == 3.0
        x = np.ones((2, 3), "float32")
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
        with pytest.raises(ValueError, match="already registered to another class"):
            hpnn.saving.register_keras_serializable(package="tests")(
                type("RegisteredGate", (_Gate,), {})
            )
    finally:
        for key in ("tests>RegisteredGate", "RegisteredGate"):
            hpnn.saving.get_custom_objects().pop(key, None)


def test_clone_model_has_the_architecture_and_fresh_weights(tmp_path):
    model, x, _ = trained_cnn()
    clone = hpnn.models.clone_model(model)
    assert json.loads(clone.to_json()) == json.loads(model.to_json())
    assert clone.optimizer is None  # uncompiled, as Keras'
    assert not np.array_equal(clone.get_weights()[0], model.get_weights()[0])
    clone.set_weights(model.get_weights())
    model.layers[2].rate = clone.layers[2].rate = 0.0
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))
    hpnn.models.save_model(model, tmp_path / "a.hpnn")
    with pytest.raises(FileExistsError, match="overwrite=False"):
        hpnn.saving.save_model(model, tmp_path / "a.hpnn", overwrite=False)

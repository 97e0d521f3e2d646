"""keras.utils names that hpnn gained: the serialization registry, batch packing,
symbolic-tensor helpers, dtype names, interactive logging, Progbar and Config."""

import io
import json
import logging

import numpy as np
import pytest

import hpnn
from hpnn import layers, utils


def test_the_registry_is_hpnn_saving():
    for name in (
        "register_keras_serializable",
        "get_custom_objects",
        "custom_object_scope",
        "CustomObjectScope",
        "get_registered_name",
        "get_registered_object",
        "serialize_keras_object",
        "deserialize_keras_object",
    ):
        assert getattr(utils, name) is getattr(hpnn.saving, name), name


def test_register_scope_and_names():
    @utils.register_keras_serializable(package="tests_utils")
    class Doubler(layers.Layer):
        def call(self, x):
            return x * 2.0

    @utils.register_keras_serializable(package="tests_utils", name="triple")
    def triple(x):
        return x * 3

    try:
        assert utils.get_registered_name(Doubler) == "tests_utils>Doubler"
        assert utils.get_registered_name(Doubler()) == "tests_utils>Doubler"  # an instance
        assert utils.get_registered_name(triple) == "tests_utils>triple"
        assert utils.get_registered_name(layers.Dense) == "Dense"  # not registered
        assert utils.get_registered_object("tests_utils>Doubler") is Doubler
        assert utils.get_custom_objects()["tests_utils>triple"] is triple
        entry = utils.serialize_keras_object(Doubler(name="d"))
        assert entry["registered_name"] == "tests_utils>Doubler"
        again = utils.deserialize_keras_object(entry)
        assert type(again) is Doubler and again.name == "d"
        fn = utils.serialize_keras_object(triple)
        assert fn["class_name"] == "function" and utils.deserialize_keras_object(fn) is triple
    finally:
        for key in ("tests_utils>Doubler", "Doubler", "tests_utils>triple", "triple"):
            utils.get_custom_objects().pop(key, None)

    class Local:
        pass

    assert utils.get_registered_object("Local") is None
    with utils.CustomObjectScope({"Local": Local}, {"Other": int}):
        assert utils.get_registered_object("Local") is Local
        assert utils.get_registered_object("Other") is int
        with utils.custom_object_scope({"Local": str}):  # the innermost wins
            assert utils.get_registered_object("Local") is str
        assert utils.get_registered_object("Local") is Local
    assert utils.get_registered_object("Local") is None
    assert utils.get_registered_object("Local", custom_objects={"Local": Local}) is Local
    with pytest.raises(TypeError, match="has no get_config"):
        utils.register_keras_serializable()(type("NoConfig", (), {}))
    with pytest.raises(TypeError, match="expected dicts of name -> object"):
        utils.CustomObjectScope(["Local"])


def test_serialize_keras_object_round_trips_hpnn_objects():
    objects = [
        layers.Dense(3, activation="relu", kernel_initializer="he_normal", name="d3"),
        layers.Dropout(0.25, name="drop"),
        hpnn.losses.Huber(delta=0.5),
        hpnn.metrics.MeanIoU(4),
        hpnn.optimizers.Adam(0.01),
        hpnn.initializers.TruncatedNormal(stddev=0.2),
        hpnn.regularizers.L2(0.01),
    ]
    for obj in objects:
        entry = utils.serialize_keras_object(obj)
        json.dumps(entry)  # JSON-able
        assert entry["module"].startswith("keras.") and entry["class_name"] == type(obj).__name__
        back = utils.deserialize_keras_object(entry)
        assert type(back) is type(obj)
        assert utils.serialize_keras_object(back) == entry
    data = {"a": [1, 2.5, None, "x"], "b": np.arange(3, dtype=np.int32), "c": np.float32(0.5)}
    entry = utils.serialize_keras_object(data)
    back = utils.deserialize_keras_object(json.loads(json.dumps(entry)))
    assert back["a"] == [1, 2.5, None, "x"] and back["c"] == 0.5
    np.testing.assert_array_equal(back["b"], [0, 1, 2]) and back["b"].dtype == np.int32
    assert utils.deserialize_keras_object(utils.serialize_keras_object(hpnn.losses.hinge)) is (
        hpnn.losses.hinge
    )
    with pytest.raises(TypeError, match="expected an object with get_config"):
        utils.serialize_keras_object(object())
    with pytest.raises(ValueError, match="no class or function 'Nope'"):
        utils.deserialize_keras_object({"class_name": "Nope", "config": {}})


def test_keras_reads_hpnn_entries_of_plain_objects(keras):
    """An entry hpnn writes for a loss or an initializer is one Keras reads."""
    huber = keras.saving.deserialize_keras_object(
        utils.serialize_keras_object(hpnn.losses.Huber(delta=0.5))
    )
    y, p = np.zeros((4, 2), np.float32), np.array([[0.1, 2.0]] * 4, np.float32)
    assert type(huber).__name__ == "Huber"
    assert float(huber(y, p)) == pytest.approx(hpnn.losses.Huber(delta=0.5)(y, p).item())
    init = keras.saving.deserialize_keras_object(
        utils.serialize_keras_object(hpnn.initializers.TruncatedNormal(stddev=0.2, seed=1))
    )
    assert type(init).__name__ == "TruncatedNormal" and init.get_config()["stddev"] == 0.2


def test_pack_and_unpack_follow_keras(keras):
    x, y, w = np.ones(2), np.zeros(2), np.full(2, 0.5)
    for args in ((x,), (x, y), (x, y, w), ((x, x),), ([x, x], y)):
        ours, theirs = (
            utils.pack_x_y_sample_weight(*args),
            keras.utils.pack_x_y_sample_weight(*args),
        )
        assert type(ours) is type(theirs)
        assert len(ours) == len(theirs) if isinstance(ours, tuple) else ours is theirs
    for data in (x, (x,), (x, y), [x, y, w]):
        ours, theirs = (
            utils.unpack_x_y_sample_weight(data),
            keras.utils.unpack_x_y_sample_weight(data),
        )
        assert [o is t for o, t in zip(ours, theirs, strict=True)] == [True] * 3
    with pytest.raises(ValueError, match="Received: a tuple of 4 elements"):
        utils.unpack_x_y_sample_weight((x, y, w, w))


def test_pack_and_unpack_by_hand():
    x, y = np.ones(2), np.zeros(2)
    assert utils.pack_x_y_sample_weight(x) is x
    assert utils.unpack_x_y_sample_weight(utils.pack_x_y_sample_weight(x, y)) == (x, y, None)
    assert utils.unpack_x_y_sample_weight([x]) == (x, None, None)


def test_symbolic_tensor_helpers():
    a, b = hpnn.Input((3,), name="a"), hpnn.Input((2,), name="b")
    h = layers.Dense(4)(a)
    out = layers.Concatenate()([h, layers.Dense(4)(b), h])
    assert utils.is_keras_tensor(a) and utils.is_keras_tensor(out)
    assert not utils.is_keras_tensor(np.ones(3)) and not utils.is_keras_tensor(
        hpnn.Tensor(np.ones(2))
    )
    sources = utils.get_source_inputs(out)
    assert len(sources) == 2 and sources[0] is a and sources[1] is b
    assert utils.get_source_inputs(a) == [a]
    plain = np.ones(2)
    assert utils.get_source_inputs(plain) is plain


def test_standardize_dtype_follows_keras(keras):
    for dtype in (
        None,
        "float32",
        "float64",
        np.float32,
        np.dtype("int64"),
        int,
        float,
        bool,
        "int",
        "uint8",
        np.bool_,
    ):
        assert utils.standardize_dtype(dtype) == keras.utils.standardize_dtype(dtype), dtype
    for bad in ("float", "no_such_type"):
        with pytest.raises(ValueError):
            keras.utils.standardize_dtype(bad)
        with pytest.raises(ValueError, match=f"invalid dtype. Received: dtype='{bad}'"):
            utils.standardize_dtype(bad)


def test_progbar_averages_as_keras_and_writes_hpnn_lines():
    out = io.StringIO()  # not a terminal: the final line only
    bar = utils.Progbar(4, verbose=1, stateful_metrics=["acc"], stream=out)
    bar.update(1, [("loss", 4.0), ("acc", 0.5)])
    bar.update(3, [("loss", 1.0), ("acc", 0.7)])  # covers 2 steps: weighs 2
    assert bar._values["loss"] == [6.0, 3] and bar._values["acc"] == [0.7, 1]
    assert out.getvalue() == ""
    bar.add(1, [("acc", 0.75)])
    line = out.getvalue()
    assert line.startswith("4/4 [") and "loss: 2.0000" in line and "acc: 0.7500" in line
    quiet = io.StringIO()
    utils.Progbar(2, verbose=0, stream=quiet).update(2, [("loss", 1.0)])
    assert quiet.getvalue() == ""
    unknown = io.StringIO()
    bar = utils.Progbar(None, stream=unknown)
    bar.update(5, [("loss", 1.0)])
    bar.update(7, finalize=True)
    assert unknown.getvalue().startswith("7/7 [")


def test_interactive_logging_switch(caplog):
    assert utils.is_interactive_logging_enabled()
    utils.disable_interactive_logging()
    try:
        assert not utils.is_interactive_logging_enabled()
        with caplog.at_level(logging.INFO, logger="hpnn"):
            utils.Progbar(2).update(2, [("loss", 0.25)])
        assert any("2/2 [" in r.message and "loss: 0.2500" in r.message for r in caplog.records)
    finally:
        utils.enable_interactive_logging()
    assert utils.is_interactive_logging_enabled()


def test_config_follows_keras(keras):
    for cls in (utils.Config, keras.utils.Config):
        c = cls(learning_rate=0.1, layers=2)
        c.momentum = 0.9
        c["units"] = 8
        assert c.learning_rate == 0.1 and c["momentum"] == 0.9 and "units" in c and len(c) == 4
        assert c.as_dict() == {"learning_rate": 0.1, "layers": 2, "momentum": 0.9, "units": 8}
        assert json.loads(c.to_json()) == c.as_dict() and list(c) == sorted(c.as_dict())
        assert c.pop("units") == 8 and c.get("units", 3) == 3
        c.freeze()
        assert c.frozen
        with pytest.raises(ValueError):
            c.momentum = 0.5
        with pytest.raises(ValueError):
            c.update(layers=3)
        c.unfreeze()
        c.update(layers=3)
        assert c.layers == 3
        with pytest.raises(AttributeError, match="momentm"):
            c.momentm


def test_config_by_hand():
    c = utils.Config(a=1)
    del c["a"]
    assert len(c) == 0 and repr(c) == "<Config {}>"
    with pytest.raises(AttributeError, match=r"Did you mean 'alpha'\?"):
        utils.Config(alpha=1).alpah

"""Keras 3's Model methods that a Keras program calls, on Sequential, functional and
subclassed models: summary, the variables lists, metrics_names / reset_metrics /
get_metrics_result, the compile and build configs, and add_loss."""

import numpy as np
import pytest

import hpnn
from hpnn import layers


def sequential(k):
    return k.Sequential(
        [
            k.Input((4,)),
            k.layers.Dense(6, activation="relu"),
            k.layers.BatchNormalization(),
            k.layers.Dense(3, activation="softmax"),
        ]
    )


def functional(k):
    inp = k.Input((4,))
    h = k.layers.Dense(6, activation="relu")(inp)
    h = k.layers.BatchNormalization()(h)
    return k.Model(inp, k.layers.Dense(3, activation="softmax")(h))


def subclassed_class(k):
    class Net(k.Model):
        def __init__(self):
            super().__init__()
            self.hidden = k.layers.Dense(6, activation="relu")
            self.norm = k.layers.BatchNormalization()
            self.head = k.layers.Dense(3, activation="softmax")

        def call(self, x, training=False):
            return self.head(self.norm(self.hidden(x), training=training))

    return Net


def subclassed(k):
    model = subclassed_class(k)()
    model(np.zeros((1, 4), np.float32))
    return model


MAKERS = [sequential, functional, subclassed]


def data(n=30, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)


@pytest.mark.parametrize("make", MAKERS)
def test_variables_lists_follow_keras(keras, make):
    ours, theirs = make(hpnn), make(keras)
    for attr in ("variables", "trainable_variables", "non_trainable_variables"):
        got, want = getattr(ours, attr), getattr(theirs, attr)
        assert [tuple(v.shape) for v in got] == [tuple(v.shape) for v in want], attr
    assert len(ours.variables) == 6 + 2 and len(ours.non_trainable_variables) == 2
    assert [id(v) for v in ours.variables] == [id(v) for v in ours.weights]
    first = next(layer for layer in ours.layers if layer.weights)
    first.trainable = False  # a frozen layer's weights move to non-trainable
    assert len(ours.trainable_variables) == 4 and len(ours.non_trainable_variables) == 4
    dense = layers.Dense(2)
    dense.build((None, 3))
    assert (
        [v.shape for v in dense.variables]
        == [(3, 2), (2,)]
        == [v.shape for v in dense.trainable_variables]
    )
    assert dense.non_trainable_variables == []


def test_summary_of_a_subclassed_model():
    model = subclassed_class(hpnn)()
    lines = []
    model.summary(print_fn=lines.append)
    text = lines[0]
    assert 'Model: "' in text and "dense (Dense)" in text.replace(model.hidden.name, "dense")
    assert text.count("?") == 3 and text.count("0 (unbuilt)") == 3
    model(np.zeros((2, 4), np.float32))
    lines.clear()
    model.summary(print_fn=lines.append)
    text = lines[0]
    rows = {line.split()[0]: line for line in text.splitlines() if "(" in line}
    assert "(None, 6)" in rows[model.hidden.name] and rows[model.hidden.name].endswith("30")
    assert rows[model.norm.name].endswith("24") and rows[model.head.name].endswith("21")
    assert f"Total params: {model.count_params():,}" in text
    assert "Trainable params: 63" in text and "Non-trainable params: 12" in text


@pytest.mark.parametrize("make", MAKERS)
def test_metrics_names_results_and_reset(make):
    hpnn.utils.set_random_seed(0)
    model = make(hpnn)
    assert model.metrics_names == []
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy", hpnn.metrics.SparseCategoricalCrossentropy(name="ce")],
    )
    assert model.metrics_names == ["loss"]
    x, y = data()
    model.fit(x, y, epochs=1, batch_size=10, verbose=0)
    logs = model.evaluate(x, y, batch_size=10, verbose=0, return_dict=True)
    assert model.metrics_names == list(logs)  # the logs' keys, in their order
    assert model.get_metrics_result() == {k: v for k, v in logs.items() if k != "loss"}
    assert model.get_metrics_result()["ce"] == pytest.approx(logs["loss"], rel=1e-5)
    model.reset_metrics()
    assert model.get_metrics_result() == {"accuracy": 0.0, "ce": 0.0}
    values = model.evaluate(x, y, batch_size=10, verbose=0)
    assert dict(zip(model.metrics_names, values, strict=True)) == pytest.approx(logs)


@pytest.mark.parametrize("make", MAKERS)
def test_compile_config_round_trip(make):
    x, y = data()
    runs = []
    for how in ("compile", "from_config"):
        hpnn.utils.set_random_seed(0)
        model = make(hpnn)
        if how == "compile":
            model.compile(
                optimizer=hpnn.optimizers.Lamb(learning_rate=0.02),
                loss=hpnn.losses.SparseCategoricalCrossentropy(),
                metrics=["accuracy", hpnn.metrics.SparseCategoricalCrossentropy(name="ce")],
            )
            config = model.get_compile_config()
        else:
            assert model.get_compile_config() is None  # not compiled
            model.compile_from_config(config)
            assert isinstance(model.optimizer, hpnn.optimizers.Lamb)
            assert model.optimizer.learning_rate == pytest.approx(0.02)
        runs.append(model.fit(x, y, batch_size=10, epochs=2, verbose=0, shuffle=False).history)
    assert runs[0].keys() == runs[1].keys() == {"loss", "accuracy", "ce"}
    for key in runs[0]:
        np.testing.assert_allclose(runs[0][key], runs[1][key], rtol=1e-6, err_msg=key)
    with pytest.raises(
        ValueError, match=r"compile_from_config: expected the dict .* Received: str"
    ):
        model.compile_from_config("adam")


def test_compile_from_a_keras_compile_config(keras):
    theirs = sequential(keras)
    theirs.compile(
        optimizer=keras.optimizers.Adam(0.003),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    ours = sequential(hpnn)
    ours.compile_from_config(theirs.get_compile_config())
    assert isinstance(ours.optimizer, hpnn.optimizers.Adam)
    assert ours.optimizer.learning_rate == pytest.approx(0.003)
    x, y = data()
    logs = ours.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}


def test_build_config_follows_keras(keras):
    assert sequential(hpnn).get_build_config() == sequential(keras).get_build_config()
    # a subclassed model: Keras keeps its first call's batch size (1 here), hpnn None
    ours, theirs = subclassed(hpnn).get_build_config(), subclassed(keras).get_build_config()
    assert ours["input_shape"] == (None, *theirs["input_shape"][1:])
    # (Keras writes None for a functional model, which builds from its graph; hpnn its
    # inputs' shape, which build_from_config takes as a no-op)
    model = functional(hpnn)
    assert model.get_build_config() == {"input_shape": (None, 4)}
    model.build_from_config(model.get_build_config())
    unbuilt = hpnn.Sequential([layers.Dense(3), layers.Dense(1)])
    assert unbuilt.get_build_config() is None
    unbuilt.build_from_config({"input_shape": (None, 5)})
    assert unbuilt.built and unbuilt.count_params() == 5 * 3 + 3 + 3 + 1
    net = subclassed_class(hpnn)()
    net.build_from_config(subclassed(hpnn).get_build_config())
    assert net.built and net.count_params() == 75
    assert net.predict(np.ones((2, 4), np.float32), verbose=0).shape == (2, 3)


def penalty_layer(k):
    class Penalty(k.layers.Layer):
        """Adds ``0.1 * mean(x**2)`` of its input to the loss, passes it through."""

        def call(self, x):
            self.add_loss(k.ops.mean(k.ops.square(x)) * 0.1)
            return x

    return Penalty


def with_penalty(k):
    return k.Sequential([k.Input((4,)), k.layers.Dense(5), penalty_layer(k)(), k.layers.Dense(1)])


def test_add_loss_joins_the_loss_as_in_keras(keras):
    hpnn.utils.set_random_seed(1)
    ours, theirs = with_penalty(hpnn), with_penalty(keras)
    theirs.set_weights(ours.get_weights())
    x, _ = data(16)
    y = x[:, :1] * 2
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss="mse")
    want = theirs.evaluate(x, y, batch_size=16, verbose=0)
    assert ours.evaluate(x, y, batch_size=16, verbose=0) == pytest.approx(want, rel=1e-5)
    ours.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    theirs.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_add_loss_by_hand_in_a_subclassed_model():
    class Shrink(hpnn.Model):
        """Its loss is the compiled loss plus the kernel's squared sum."""

        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(1, use_bias=False)

        def call(self, x):
            out = self.dense(x)
            self.add_loss(hpnn.ops.sum(hpnn.ops.square(self.dense.kernel)))
            self.add_loss(0.5)  # a constant counts too
            return out

    hpnn.utils.set_random_seed(0)
    model = Shrink()
    x = np.ones((4, 2), np.float32)
    out = model(x)
    assert len(model.losses) == 2
    kernel = model.dense.kernel.numpy().copy()  # (the optimizer updates in place)
    assert model.losses[0].item() == pytest.approx(float((kernel**2).sum()), rel=1e-6)
    model(x)
    assert len(model.losses) == 2  # this call's, not the ones before
    model.compile(optimizer=hpnn.optimizers.SGD(0.1), loss="mse")
    y = out.numpy()  # the compiled loss is 0: only the added ones remain
    loss = model.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(float((kernel**2).sum()) + 0.5, rel=1e-5)
    model.train_on_batch(x, y)  # gradient of sum(k^2): 2k, plus mse's (0 at the start)
    np.testing.assert_allclose(model.dense.kernel.numpy(), kernel * (1 - 0.2), rtol=1e-5)


def test_add_loss_is_the_same_whole_and_split(monkeypatch):
    pytest.importorskip("threadpoolctl")
    from hpnn.parallel import split

    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "0")
    monkeypatch.setattr(split, "MIN_PER_PART", 4)
    calls = []
    real = split.run

    def spy(step, kind, plan, slices, *args, **kwargs):
        calls.append(kind)
        return real(step, kind, plan, slices, *args, **kwargs)

    monkeypatch.setattr(split, "run", spy)
    x, _ = data(24)
    y = x[:, :1] * 2
    runs = []
    for setting in ("3", "0"):
        monkeypatch.setenv("HPNN_BATCH_THREADS", setting)
        hpnn.utils.set_random_seed(2)
        model = with_penalty(hpnn)
        model.compile(optimizer="adam", loss="mse")
        runs.append(model.fit(x, y, batch_size=12, epochs=3, verbose=0, shuffle=False))
    assert "train" in calls
    np.testing.assert_allclose(runs[0].history["loss"], runs[1].history["loss"], rtol=1e-5)

"""ConvLSTM2D: against Keras 3 with the same weights, float64 gradients against finite
differences, shapes, configs, training, and its errors."""

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.engine import Tensor
from hpnn.testing import check_grad

CASES = [
    {},
    {"padding": "same", "return_sequences": True},
    {"strides": 2, "go_backwards": True, "return_sequences": True},
    {"dilation_rate": 2, "padding": "same", "unit_forget_bias": False, "activation": "relu"},
    {"kernel_size": (2, 3), "recurrent_activation": "hard_sigmoid", "use_bias": False},
]


def _weights_from(keras, theirs, seed=1):
    """Keras' weights, the bias moved off its initial values (so each gate's is seen)."""
    ws = [keras.ops.convert_to_numpy(w) for w in theirs.weights]
    if len(ws) == 3:
        ws[2] = ws[2] + np.random.default_rng(seed).standard_normal(ws[2].shape).astype(np.float32)
        theirs.set_weights(ws)
    return ws


@pytest.mark.parametrize("kwargs", CASES, ids=str)
def test_matches_keras(kwargs, keras):
    kwargs = {"kernel_size": 3, **kwargs}
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 7, 3)).astype(np.float32)
    theirs = keras.layers.ConvLSTM2D(5, **kwargs)
    theirs(x)
    ws = _weights_from(keras, theirs)
    want = keras.ops.convert_to_numpy(theirs(x))
    ours = layers.ConvLSTM2D(5, **kwargs)
    model = hpnn.Sequential([hpnn.Input((4, 6, 7, 3)), ours])
    ours.set_weights(ws)
    assert model.output_shape[1:] == want.shape[1:]
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)


def test_states_and_initial_state_match_keras(keras):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 5, 5, 2)).astype(np.float32)
    h0, c0 = (rng.standard_normal((2, 5, 5, 4)).astype(np.float32) for _ in range(2))
    theirs = keras.layers.ConvLSTM2D(4, 3, padding="same", return_state=True)
    theirs(x)
    ws = _weights_from(keras, theirs)
    want = [keras.ops.convert_to_numpy(t) for t in theirs(x, initial_state=[h0, c0])]
    ours = layers.ConvLSTM2D(4, 3, padding="same", return_state=True)
    ours.build(x.shape)
    ours.set_weights(ws)
    got = ours(Tensor(x), initial_state=[h0, c0])
    assert len(got) == 3
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.data, w, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got[0].data, got[1].data)  # the output is the last h
    assert ours.compute_output_shape(x.shape) == [(2, 5, 5, 4)] * 3


def test_a_keras_weights_file_loads(keras, tmp_path):
    """Keras keys ConvLSTM2D's weights ``conv_lstm2d`` (its snake case keeps LSTM
    whole), as hpnn's default name does."""
    pytest.importorskip("h5py")
    x = np.random.default_rng(3).standard_normal((2, 3, 5, 5, 2)).astype(np.float32)
    theirs = keras.Sequential(
        [
            keras.Input((3, 5, 5, 2)),
            keras.layers.ConvLSTM2D(4, 3, return_sequences=True),
            keras.layers.ConvLSTM2D(2, 1, padding="same"),
        ]
    )
    _weights_from(keras, theirs.layers[0])
    theirs.save_weights(tmp_path / "c.weights.h5")
    ours = hpnn.Sequential(
        [
            hpnn.Input((3, 5, 5, 2)),
            layers.ConvLSTM2D(4, 3, return_sequences=True),
            layers.ConvLSTM2D(2, 1, padding="same"),
        ]
    )
    assert ours.layers[0].name.startswith("conv_lstm2d")
    ours.load_weights(tmp_path / "c.weights.h5")
    want = keras.ops.convert_to_numpy(theirs(x))
    np.testing.assert_allclose(ours.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)


def test_unit_forget_bias_starts_the_forget_gate_at_one():
    layer = layers.ConvLSTM2D(3, 2)
    layer.build((None, 2, 4, 4, 1))
    np.testing.assert_array_equal(layer.bias.numpy(), [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    assert layer.kernel.shape == (2, 2, 1, 12) and layer.recurrent_kernel.shape == (2, 2, 3, 12)


@pytest.fixture
def float64():
    old = hpnn.backend.floatx()
    hpnn.backend.set_floatx("float64")
    yield
    hpnn.backend.set_floatx(old)


@pytest.mark.parametrize(
    "kwargs",
    [{"return_sequences": True}, {"padding": "same", "strides": 2, "go_backwards": True}],
    ids=str,
)
def test_gradients_are_those_of_finite_differences(float64, kwargs):
    layer = layers.ConvLSTM2D(2, 2, **kwargs)
    layer.build((None, 3, 4, 4, 2))
    layer.bias.assign(np.random.default_rng(3).standard_normal(8))
    x = np.random.default_rng(4).standard_normal((2, 3, 4, 4, 2))
    check_grad(lambda t: layer(t), [x], rtol=1e-5, atol=1e-7)

    def with_weights(kernel, recurrent, bias):
        saved = dict(layer.__dict__)
        layer.__dict__.update(kernel=kernel, recurrent_kernel=recurrent, bias=bias)
        try:
            return layer(Tensor(x))
        finally:
            layer.__dict__.update(saved)

    weights = [w.numpy().copy() for w in (layer.kernel, layer.recurrent_kernel, layer.bias)]
    check_grad(with_weights, weights, rtol=1e-5, atol=1e-7)


def test_trains_saves_and_loads(tmp_path):
    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential(
        [
            hpnn.Input((3, 5, 5, 1)),
            layers.ConvLSTM2D(3, 3, padding="same"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(1),
        ]
    )
    model.compile(optimizer=hpnn.optimizers.Adam(0.01), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3, 5, 5, 1)).astype(np.float32)
    y = x[:, -1].mean(axis=(1, 2)) * 5.0  # the last frame's mean: the state must carry it
    history = model.fit(x, y, epochs=8, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
    model.save(tmp_path / "m.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "m.hpnn")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_config_round_trip_with_keras_keys(keras):
    layer = layers.ConvLSTM2D(
        4,
        (3, 2),
        padding="same",
        recurrent_activation="hard_sigmoid",
        recurrent_regularizer="l2",
        kernel_constraint="non_neg",
        return_sequences=True,
        go_backwards=True,
        name="cl",
    )
    config = layer.get_config()
    assert layers.ConvLSTM2D.from_config(config).get_config() == config
    missing = set(keras.layers.ConvLSTM2D(2, 2).get_config()) - set(config)
    assert missing <= {"activity_regularizer"}, missing  # (kept only when set)
    assert layers.ConvLSTM2D(2, 2).name.startswith("conv_lstm2d")  # Keras' default name


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"kernel_size": (3,)}, ValueError, r"kernel_size.*Received: kernel_size=\(3,\)"),
        ({"kernel_size": 3, "padding": "causal"}, ValueError, r"padding='causal'"),
        ({"kernel_size": 3, "data_format": "channels_first"}, ValueError, r"channels_last"),
        ({"kernel_size": 3, "dropout": 0.2}, NotImplementedError, r"dropout > 0"),
        ({"kernel_size": 3, "recurrent_dropout": 1.5}, ValueError, r"\[0, 1\).*=1.5"),
        ({"kernel_size": 3, "stateful": True}, NotImplementedError, r"stateful"),
        ({"kernel_size": 3, "strides": 2, "dilation_rate": 2}, ValueError, r"combined"),
    ],
)
def test_bad_arguments_say_what_is_wrong(kwargs, error, pattern):
    with pytest.raises(error, match=r"ConvLSTM2D 'q'.*" + pattern):
        layers.ConvLSTM2D(2, name="q", **kwargs)


def test_bad_inputs_name_the_layer():
    with pytest.raises(ValueError, match=r"ConvLSTM2D 'q1'.*rank 5.*Received: shape="):
        layers.ConvLSTM2D(2, 3, name="q1")(np.zeros((2, 5, 5, 1), np.float32))
    with pytest.raises(ValueError, match=r"ConvLSTM2D 'q2'.*smaller than the kernel.*Received"):
        layers.ConvLSTM2D(2, 3, name="q2")(np.zeros((2, 3, 2, 5, 1), np.float32))
    layer = layers.ConvLSTM2D(2, 3, padding="same", name="q3")
    layer(np.zeros((1, 2, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match=r"q3.*size 1.*Received: shape=\(1, 2, 4, 4, 3\)"):
        layer(np.zeros((1, 2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"q3.*initial_state\[1\].*\(1, 4, 4, 2\).*\(1, 4, 4\)"):
        layer(
            Tensor(np.zeros((1, 2, 4, 4, 1), np.float32)),
            initial_state=[np.zeros((1, 4, 4, 2)), np.zeros((1, 4, 4))],
        )

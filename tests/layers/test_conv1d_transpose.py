"""Conv1DTranspose: against Keras 3 (its torch backend) with the same weights, shapes,
gradients in float64, saving, and its errors."""

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.engine import Tensor
from hpnn.testing import check_grad

CASES = [
    {"kernel_size": 3, "strides": 1, "padding": "valid"},
    {"kernel_size": 3, "strides": 2, "padding": "same"},
    {"kernel_size": 4, "strides": 2, "padding": "valid", "output_padding": 1},
    {"kernel_size": 5, "strides": 3, "padding": "same", "output_padding": 2},
]


@pytest.mark.parametrize("kwargs", CASES)
def test_matches_keras(kwargs, keras):
    x = np.random.default_rng(0).standard_normal((2, 7, 3)).astype(np.float32)
    theirs = keras.layers.Conv1DTranspose(4, activation="relu", **kwargs)
    want = keras.ops.convert_to_numpy(theirs(x))
    ours = layers.Conv1DTranspose(4, activation="relu", **kwargs)
    model = hpnn.Sequential([hpnn.Input((7, 3)), ours])
    ours.set_weights([keras.ops.convert_to_numpy(w) for w in theirs.weights])
    got = model.predict(x, verbose=0)
    assert model.output_shape[1:] == want.shape[1:]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs", CASES)
def test_gradients_are_those_of_finite_differences(kwargs):
    hpnn.backend.set_floatx("float64")
    try:
        layer = layers.Conv1DTranspose(2, use_bias=True, **kwargs)
        layer.build((None, 5, 3))
        x = np.random.default_rng(1).standard_normal((2, 5, 3))
        check_grad(lambda t: layer(t), [x])  # the input's gradient, through the layer
        check_grad(lambda k: _with_kernel(layer, k, x), [layer.kernel.data.copy()])
    finally:
        hpnn.backend.set_floatx("float32")


def _with_kernel(layer, kernel, x):
    """The layer's output as a function of its kernel (for the kernel's gradient)."""
    saved = layer.__dict__["kernel"]
    layer.__dict__["kernel"] = kernel
    try:
        return layer(Tensor(x))
    finally:
        layer.__dict__["kernel"] = saved


def test_trains_saves_and_loads(tmp_path):
    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential(
        [hpnn.Input((8, 2)), layers.Conv1DTranspose(3, 3, strides=2, padding="same")]
    )
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).standard_normal((16, 8, 2)).astype(np.float32)
    y = np.zeros((16, 16, 3), np.float32)
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    model.save(tmp_path / "m.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "m.hpnn")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"filters": 0, "kernel_size": 3}, r"filters must be a positive int"),
        ({"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 2}, r"smaller than"),
        ({"filters": 2, "kernel_size": 3, "padding": "causal"}, r"padding"),
    ],
)
def test_bad_arguments_say_what_is_wrong(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        layers.Conv1DTranspose(**kwargs)


def test_a_wrong_input_rank_names_the_layer():
    layer = layers.Conv1DTranspose(2, 3, name="up")
    with pytest.raises(ValueError, match=r"up.*rank 3"):
        hpnn.Sequential([hpnn.Input((4, 4, 2)), layer])

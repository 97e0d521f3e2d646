"""Tests for hpnn.layers.activation: ReLU, LeakyReLU, ELU, Softmax, PReLU (their values
against Keras are in tests/test_keras_reference.py)."""

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.engine import Tensor
from hpnn.parallel import split
from hpnn.testing import check_grad

X = np.random.default_rng(0).uniform(0.1, 2.0, (3, 4, 5)) * np.random.default_rng(1).choice(
    [-1.0, 1.0], (3, 4, 5)
)


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.05),
        lambda: layers.LeakyReLU(0.2),
        lambda: layers.ELU(0.5),
        lambda: layers.Softmax(axis=1),
        lambda: layers.PReLU(alpha_initializer="ones", shared_axes=2),
    ],
    ids=["relu", "leaky", "elu", "softmax", "prelu"],
)
def test_backward_and_config_round_trip(make):
    layer = make()
    x = np.where(np.isclose(np.abs(X), 1.5, atol=1e-3), 1.0, X)  # off ReLU's cap
    check_grad(lambda t: layer(t), [x])
    clone = type(layer).from_config(layer.get_config())
    if layer.weights:
        clone(Tensor(x.astype("float32")))
        clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x.astype("float32")).data, layer(x.astype("float32")).data)


def test_prelu_alpha_gets_its_gradient_and_shares_axes():
    layer = layers.PReLU(alpha_initializer="zeros", shared_axes=[1])
    x = Tensor(X.astype("float32"))
    y = layer(x)
    assert layer.alpha.shape == (1, 5)
    np.testing.assert_array_equal(y.data, np.maximum(X, 0).astype("float32"))  # alpha 0
    y.sum().backward()
    # d(sum)/d(alpha) = -sum of relu(-x) over the batch and the shared axis
    want = -np.maximum(-X, 0).sum(axis=(0, 1), keepdims=True)[0]
    np.testing.assert_allclose(layer.alpha.grad, want, rtol=1e-5)


def test_softmax_mask_gives_masked_entries_zero():
    layer = layers.Softmax()
    x = np.zeros((2, 4), "float32")
    mask = np.array([[True, True, False, False], [True, False, True, True]])
    y = layer(x, mask=mask).data
    np.testing.assert_allclose(y, [[0.5, 0.5, 0, 0], [1 / 3, 0, 1 / 3, 1 / 3]], atol=1e-7)


def test_bad_arguments_name_the_layer():
    with pytest.raises(ValueError, match=r"re_lu.*negative_slope must be >= 0"):
        layers.ReLU(negative_slope=-1)
    with pytest.raises(ValueError, match="max_value must be a number"):
        layers.ReLU(max_value="big")
    with pytest.raises(ValueError, match="axis must be an int"):
        layers.Softmax(axis=(1, 2))
    with pytest.raises(ValueError, match="axis 0 is not a feature axis"):
        layers.Softmax(axis=0)(np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match=r"shared_axes must name axes 1\.\.2"):
        layers.PReLU(shared_axes=[3])(np.zeros((2, 3, 4), "float32"))


def test_a_model_of_them_trains_saves_loads_and_splits(tmp_path, monkeypatch):
    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential(
        [
            hpnn.Input((6, 6, 1)),
            layers.Conv2D(4, 3),
            layers.LeakyReLU(),
            layers.Flatten(),
            layers.Dense(8),
            layers.PReLU(),
            layers.Dense(8, activation="gelu"),
            layers.ReLU(max_value=6.0),
            layers.Dense(3),
            layers.Softmax(),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 6, 6, 1), dtype=np.float32), rng.integers(0, 3, 32)
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    model.save(tmp_path / "m.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "m.hpnn")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    monkeypatch.setenv("HPNN_BATCH_THREADS", "2")
    assert split.parts(model._plans["train"], 2 * split.MIN_PER_PART) is not None

"""Tests for hpnn.layers.reshaping: Reshape, Permute, RepeatVector, TimeDistributed."""

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.testing import check_grad


@pytest.fixture
def float64():
    old = hpnn.backend.floatx()
    hpnn.backend.set_floatx("float64")
    yield
    hpnn.backend.set_floatx(old)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape)


@pytest.mark.parametrize(
    ("target", "out"), [((3, 4), (3, 4)), ((-1, 2), (6, 2)), ((2, -1, 3), (2, 2, 3))]
)
def test_reshape(target, out):
    x = rand(2, 12)
    layer = layers.Reshape(target)
    np.testing.assert_array_equal(layer(x).numpy(), x.reshape(2, *out).astype(np.float32))
    assert layer.compute_output_shape((None, 12)) == (None, *out)
    check_grad(lambda t: layers.Reshape(target)(t), [x])


def test_reshape_errors():
    with pytest.raises(ValueError, match=r"Reshape .*at most one -1. Received: target_shape"):
        layers.Reshape((-1, -1))
    layer = layers.Reshape((5, 2), name="rs")
    with pytest.raises(
        ValueError, match=r"Reshape 'rs': cannot reshape .*Received: shape=\(None, 12\)"
    ):
        layer(np.zeros((2, 12), np.float32))
    with pytest.raises(ValueError, match=r"Received: shape=\(None, 7\)"):
        layers.Reshape((-1, 2))(np.zeros((2, 7), np.float32))


def test_permute():
    x = rand(2, 3, 4, 5)
    layer = layers.Permute((3, 1, 2))
    np.testing.assert_array_equal(layer(x).numpy(), x.transpose(0, 3, 1, 2).astype(np.float32))
    assert layer.compute_output_shape((None, 3, 4, 5)) == (None, 5, 3, 4)
    check_grad(lambda t: layers.Permute((2, 1))(t), [rand(2, 3, 4)])


def test_permute_errors():
    with pytest.raises(ValueError, match=r"permutation of 1..2 .*Received: dims=\(0, 1\)"):
        layers.Permute((0, 1))
    with pytest.raises(ValueError, match=r"Permute 'p': expected input of rank 3.*Received: shape"):
        layers.Permute((2, 1), name="p")(np.zeros((2, 3), np.float32))


def test_repeat_vector():
    x = rand(2, 3)
    y = layers.RepeatVector(4)(x)
    assert y.shape == (2, 4, 3)
    np.testing.assert_array_equal(y.numpy(), np.repeat(x[:, None], 4, axis=1).astype(np.float32))
    check_grad(lambda t: layers.RepeatVector(3)(t), [x])
    with pytest.raises(ValueError, match=r"RepeatVector .*rank 2 \(batch, features\).*Received"):
        layers.RepeatVector(2)(np.zeros((2, 3, 4), np.float32))


def test_time_distributed_dense_matches_per_step(float64):
    dense = layers.Dense(4, bias_initializer="random_normal")
    td = layers.TimeDistributed(dense)
    x = rand(2, 3, 5)
    y = td(x).numpy()
    assert y.shape == (2, 3, 4) and td.weights == dense.weights
    kernel, bias = dense.get_weights()
    np.testing.assert_allclose(y, x @ kernel + bias, rtol=1e-12)
    assert td.compute_output_shape((None, 3, 5)) == (None, 3, 4)

    def fn(xt, k, b):
        dense.kernel, dense.bias = k, b
        return td(xt)

    check_grad(fn, [x, kernel, bias])


def test_time_distributed_conv2d_and_training():
    model = hpnn.Sequential(
        [
            hpnn.Input((3, 6, 6, 1)),
            layers.TimeDistributed(layers.Conv2D(2, 3)),
            layers.TimeDistributed(layers.Flatten()),
            layers.LSTM(4),
            layers.Dense(1),
        ]
    )
    assert model.output_shape == (None, 1)
    assert model.layers[0].output_shape == (None, 3, 4, 4, 2)
    model.compile("adam", "mse")
    model.fit(rand(4, 3, 6, 6, 1), rand(4, 1), epochs=1, verbose=0)


def test_time_distributed_needs_steps():
    with pytest.raises(ValueError, match=r"TimeDistributed 'td': expected input of rank >= 3"):
        layers.TimeDistributed(layers.Dense(2), name="td")(np.zeros((2, 3), np.float32))

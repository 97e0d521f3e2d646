"""Tests for hpnn.layers.normalization: BatchNormalization (training vs inference, moving
statistics, the training flag through fit/evaluate/predict) and LayerNormalization."""

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.engine import Tensor
from hpnn.testing import check_grad


@pytest.fixture
def float64():
    old = hpnn.backend.floatx()
    hpnn.backend.set_floatx("float64")
    yield
    hpnn.backend.set_floatx(old)


def rand(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).uniform(-scale, scale, shape)


def test_batch_norm_weights_in_keras_order():
    bn = layers.BatchNormalization()
    bn(np.zeros((2, 5, 3), np.float32))
    assert [w.name for w in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.name for w in bn.trainable_weights] == ["gamma", "beta"]
    assert [w.name for w in bn.non_trainable_weights] == ["moving_mean", "moving_variance"]
    gamma, beta, mean, var = bn.get_weights()
    np.testing.assert_array_equal(
        np.r_[gamma, beta, mean, var], np.r_[[1] * 3, [0] * 3, [0] * 3, [1] * 3]
    )
    assert bn.momentum == 0.99 and bn.epsilon == 1e-3


def test_training_uses_batch_statistics_and_updates_moving_ones():
    bn = layers.BatchNormalization(momentum=0.9)
    x = (rand(8, 4, 3) * [1.0, 2.0, 3.0] + [0.5, -1.0, 2.0]).astype(np.float32)
    y = bn(x, training=True).numpy()
    flat = y.reshape(-1, 3)
    np.testing.assert_allclose(flat.mean(axis=0), 0, atol=1e-5)
    var = x.reshape(-1, 3).var(axis=0)
    np.testing.assert_allclose(flat.var(axis=0), var / (var + 1e-3), rtol=1e-4)
    _, _, mean, moving_var = bn.get_weights()
    np.testing.assert_allclose(mean, 0.1 * x.reshape(-1, 3).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(moving_var, 0.9 + 0.1 * var, rtol=1e-5)


def test_inference_uses_moving_statistics():
    bn = layers.BatchNormalization(epsilon=0.01, center=False)
    x = rand(4, 2, 3).astype(np.float32)
    bn(x)
    gamma, mean, var = rand(3, seed=1) + 2, rand(3, seed=2), rand(3, seed=3) + 1.5
    bn.set_weights([gamma, mean, var])
    expected = (x - mean) / np.sqrt(var + 0.01) * gamma
    np.testing.assert_allclose(bn(x, training=False).numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.get_weights()[1], mean.astype(np.float32))  # unchanged


def test_frozen_batch_norm_runs_in_inference_mode():
    bn = layers.BatchNormalization(trainable=False)
    x = rand(4, 3).astype(np.float32) + 3
    np.testing.assert_allclose(bn(x, training=True).numpy(), x / np.sqrt(1 + 1e-3), rtol=1e-6)
    assert np.all(bn.get_weights()[2] == 0)


def test_training_flag_through_fit_evaluate_predict():
    hpnn.utils.set_random_seed(1)
    model = hpnn.Sequential(
        [hpnn.Input((4,)), layers.Dense(6), layers.BatchNormalization(), layers.Dense(2)]
    )
    model.compile("sgd", "mse")
    x, y = rand(32, 4).astype(np.float32) + 1, rand(32, 2).astype(np.float32)
    bn = model.layers[1]
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    moving = [w.copy() for w in bn.get_weights()[2:]]
    assert not np.allclose(moving[0], 0) and not np.allclose(moving[1], 1)
    model.evaluate(x, y, verbose=0)
    pred = model.predict(x, verbose=0)
    for before, after in zip(moving, bn.get_weights()[2:], strict=True):
        np.testing.assert_array_equal(before, after)  # inference leaves them alone
    dense1, _, dense2 = model.layers
    h = x @ dense1.get_weights()[0] + dense1.get_weights()[1]
    gamma, beta, mean, var = bn.get_weights()
    h = (h - mean) / np.sqrt(var + 1e-3) * gamma + beta
    expected = h @ dense2.get_weights()[0] + dense2.get_weights()[1]
    np.testing.assert_allclose(pred, expected, rtol=1e-4, atol=1e-5)


def _check(layer, x, training):
    """Finite differences over the input and gamma, beta (swapped in as tensors)."""
    layer(x)
    gamma, beta = rand(*layer.gamma.shape, seed=4) + 1.5, rand(*layer.beta.shape, seed=5)

    def fn(xt, g, b):
        layer.gamma, layer.beta = g, b
        return layer(xt, training=training)

    check_grad(fn, [x, gamma, beta])


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradients(float64, training):
    _check(layers.BatchNormalization(), rand(3, 2, 2, 3), training)


def test_batch_norm_axis_1_gradients(float64):
    _check(layers.BatchNormalization(axis=1), rand(4, 2, 3), True)


def test_layer_norm_normalises_each_sample():
    ln = layers.LayerNormalization()
    x = (rand(3, 4, 8) * 5 + 2).astype(np.float32)
    y = ln(x).numpy()
    np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-5)
    var = x.var(axis=-1)
    np.testing.assert_allclose(y.var(axis=-1), var / (var + 1e-3), rtol=1e-4)
    assert [w.name for w in ln.weights] == ["gamma", "beta"]
    assert ln.epsilon == 1e-3


@pytest.mark.parametrize("axis", [-1, [1, 2]])
def test_layer_norm_gradients(float64, axis):
    _check(layers.LayerNormalization(axis=axis), rand(2, 3, 4), True)


def test_batch_norm_matches_torch():
    torch = pytest.importorskip("torch")
    x = rand(6, 4, 5).astype(np.float32) * 2 + 1
    bn = layers.BatchNormalization(momentum=0.9)
    bn(x)
    gamma, beta = rand(5, seed=1) + 1.5, rand(5, seed=2)
    bn.set_weights([gamma, beta, np.zeros(5), np.ones(5)])
    tbn = torch.nn.BatchNorm1d(5, eps=1e-3, momentum=0.1)  # torch's momentum = 1 - Keras'
    with torch.no_grad():
        tbn.weight.copy_(torch.tensor(gamma))
        tbn.bias.copy_(torch.tensor(beta))
    xt = torch.tensor(x.transpose(0, 2, 1))  # (N, C, L)
    np.testing.assert_allclose(
        bn(x, training=True).numpy(),
        tbn.train()(xt).detach().numpy().transpose(0, 2, 1),
        rtol=1e-5,
        atol=1e-5,
    )
    m = x.shape[0] * x.shape[1]
    _, _, mean, var = bn.get_weights()
    np.testing.assert_allclose(mean, tbn.running_mean.numpy(), rtol=1e-5, atol=1e-7)
    # torch's running variance is unbiased, Keras' is the batch's biased variance
    np.testing.assert_allclose(
        var - 0.9, (tbn.running_var.numpy() - 0.9) * (m - 1) / m, rtol=1e-4, atol=1e-7
    )
    with torch.no_grad():  # inference: the same moving statistics on both sides
        tbn.running_mean.copy_(torch.tensor(mean))
        tbn.running_var.copy_(torch.tensor(var))
    np.testing.assert_allclose(
        bn(x, training=False).numpy(),
        tbn.eval()(xt).detach().numpy().transpose(0, 2, 1),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize(
    ("make", "x_shape", "match"),
    [
        (lambda: layers.BatchNormalization(axis=3), (2, 3), r"axis must name a non-batch axis"),
        (lambda: layers.BatchNormalization(axis=0), (2, 3), r"Received: axis=0"),
        (lambda: layers.LayerNormalization(axis=5), (2, 3, 4), r"Received: axis=5"),
    ],
)
def test_bad_axis(make, x_shape, match):
    with pytest.raises(ValueError, match=match):
        make()(np.zeros(x_shape, np.float32))


def test_rank_and_channels_fixed_after_build():
    bn = layers.BatchNormalization(name="bn")
    bn(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"BatchNormalization 'bn'.*rank 3.*Received: shape"):
        bn(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"BatchNormalization 'bn'.*size 4.*Received: shape"):
        bn(np.zeros((2, 3, 5), np.float32))


def test_group_normalization_per_group_and_gradients():
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 4)) * 2 + 1
    layer = layers.GroupNormalization(groups=2, epsilon=1e-6)
    y = layer(Tensor(x)).data
    g = y.reshape(2, 3, 3, 2, 2)
    np.testing.assert_allclose(g.mean(axis=(1, 2, 4)), 0.0, atol=1e-12)
    np.testing.assert_allclose(g.var(axis=(1, 2, 4)), 1.0, rtol=1e-4)
    layer.set_weights([np.full(4, 2.0), np.full(4, 0.5)])
    check_grad(lambda t: layer(t), [x])
    with pytest.raises(ValueError, match=r"divisible by groups \(3\)"):
        layers.GroupNormalization(groups=3)(np.zeros((1, 2, 4), "float32"))
    with pytest.raises(NotImplementedError, match="only axis=-1"):
        layers.GroupNormalization(axis=1)

"""The Conv2D(relu) + MaxPooling2D fusion gives the layer-by-layer outputs and gradients."""

import numpy as np
import pytest

import hpnn
from hpnn.engine import Tensor
from hpnn.layers import Conv2D, Flatten, MaxPooling2D, fusion


def _model(padding, pool, strides):
    hpnn.utils.set_random_seed(3)
    return hpnn.Sequential(
        [
            hpnn.Input(shape=(9, 8, 2)),
            Conv2D(4, 3, padding=padding, activation="relu", bias_initializer="ones"),
            MaxPooling2D(pool, strides=strides, padding=padding),
            Flatten(),
        ]
    )


def _grads(model, x, layer_by_layer):
    xt = Tensor(x, requires_grad=True)
    if layer_by_layer:
        y = xt
        for layer in model.layers:
            y = layer(y)
    else:
        y = model(xt)
    gy = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
    y.backward(gy)
    out = [y.data, xt.grad] + [w.grad for w in model.weights]
    for w in model.weights:
        w.grad = None
    return out


@pytest.mark.parametrize(
    ("padding", "pool", "strides"),
    [("valid", 2, None), ("same", 2, None), ("valid", 3, 2), ("same", 2, 1)],
)
def test_fused_matches_layer_by_layer(padding, pool, strides):
    model = _model(padding, pool, strides)
    assert not isinstance(model._steps[0], hpnn.layers.Layer), "the fusion did not apply"
    x = np.random.default_rng(1).standard_normal((3, 9, 8, 2)).astype(np.float32)
    x[0] = 0.0  # a blank image: every window ties at relu(bias) > 0
    x[1, :4] = -5.0  # a region where the ReLU is off everywhere
    fused = _grads(model, x, layer_by_layer=False)
    plain = _grads(model, x, layer_by_layer=True)
    for a, b in zip(fused, plain, strict=True):
        np.testing.assert_array_equal(a, b)


def test_no_fusion_for_other_activations_or_pools():
    layers = [Conv2D(2, 3, activation="tanh"), MaxPooling2D(2)]
    m = hpnn.Sequential([hpnn.Input(shape=(6, 6, 1)), *layers])
    assert m._steps == layers
    pair = [Conv2D(2, 3, activation="relu"), hpnn.layers.AveragePooling2D(2)]
    hpnn.Sequential([hpnn.Input(shape=(6, 6, 1)), *pair])
    assert fusion.plan(pair) == pair

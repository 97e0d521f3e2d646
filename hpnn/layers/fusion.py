"""Fusions of adjacent layers that give the same outputs and gradients, cheaper.

``Conv2D(activation="relu")`` followed by ``MaxPooling2D``: max pooling commutes
with ReLU (both are monotone), so ``pool(relu(z)) == relu(pool(z))``, and the
ReLU then runs inside the pooling pass (``max_pool2d(..., relu=True)``), on the
pooled values, a quarter of the size for 2x2 pooling. The
gradients agree too: where the window maximum is positive both route it to the
same (first) maximal tap; where it is <= 0 both are 0.
"""

from __future__ import annotations

from hpnn import activations
from hpnn.engine import ops
from hpnn.layers.conv import Conv2D, MaxPooling2D


def conv_relu_maxpool(conv: Conv2D, pool: MaxPooling2D):
    """Return a function computing ``pool(conv(x))`` with the ReLU after the pooling."""

    def run(x, training=False):
        conv.check_input_shape(x.shape)
        z = ops.conv2d(x, conv.kernel, conv.bias, conv.strides, conv.padding, conv.dilation_rate)
        return ops.max_pool2d(z, pool.pool_size, pool.strides, pool.padding, relu=True)

    return run


def plan(layers) -> list:
    """Group ``layers`` into steps: a fused function where a fusion applies, else the layer."""
    steps, i = [], 0
    while i < len(layers):
        a = layers[i]
        b = layers[i + 1] if i + 1 < len(layers) else None
        if (
            type(a) is Conv2D
            and a.activation is activations.relu
            and a.activity_regularizer is None  # its penalty needs the unpooled output
            and a.built
            and type(b) is MaxPooling2D
        ):
            steps.append(conv_relu_maxpool(a, b))
            i += 2
        else:
            steps.append(a)
            i += 1
    return steps

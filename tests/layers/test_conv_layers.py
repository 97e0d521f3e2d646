"""Tests for hpnn.layers.conv: Conv2D, MaxPooling2D, AveragePooling2D against naive loops."""

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.engine import Tensor, ops
from hpnn.testing import check_grad


@pytest.fixture
def float64():
    """Run the test with floatx() == 'float64' and restore the previous policy."""
    old = hpnn.backend.floatx()
    hpnn.backend.set_floatx("float64")
    yield
    hpnn.backend.set_floatx(old)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def same_pads(n, k, s):
    """TF/Keras 'same' padding on one axis: (before, after), the odd one after."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def pad_input(x, k, s, padding, fill):
    if padding == "valid":
        return x, np.ones(x.shape[1:3], bool)
    (pt, pb), (pl, pr) = same_pads(x.shape[1], k[0], s[0]), same_pads(x.shape[2], k[1], s[1])
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    real = np.pad(np.ones(x.shape[1:3], bool), ((pt, pb), (pl, pr)))
    return xp, real


def naive_conv2d(x, w, b, strides, padding):
    """y[n, i, j, o] = sum_{p, q, c} xpad[n, i*s + p, j*s + q, c] * w[p, q, c, o] + b[o]."""
    kh, kw, c, o = w.shape
    sh, sw = strides
    xp, _ = pad_input(x, (kh, kw), strides, padding, 0.0)
    oh = (xp.shape[1] - kh) // sh + 1
    ow = (xp.shape[2] - kw) // sw + 1
    y = np.zeros((x.shape[0], oh, ow, o))
    for n in range(x.shape[0]):
        for i in range(oh):
            for j in range(ow):
                for oc in range(o):
                    s = 0.0
                    for p in range(kh):
                        for q in range(kw):
                            for ic in range(c):
                                s += xp[n, i * sh + p, j * sw + q, ic] * w[p, q, ic, oc]
                    y[n, i, j, oc] = s + (b[oc] if b is not None else 0.0)
    return y


def naive_pool(x, pool, strides, padding, kind):
    kh, kw = pool
    sh, sw = strides
    xp, real = pad_input(x, pool, strides, padding, -np.inf if kind == "max" else 0.0)
    oh = (xp.shape[1] - kh) // sh + 1
    ow = (xp.shape[2] - kw) // sw + 1
    y = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for i in range(oh):
        for j in range(ow):
            win = xp[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :]
            if kind == "max":
                y[:, i, j, :] = win.max(axis=(1, 2))
            else:  # the mean of the real (unpadded) inputs, as Keras/TF
                n_real = real[i * sh : i * sh + kh, j * sw : j * sw + kw].sum()
                y[:, i, j, :] = win.sum(axis=(1, 2)) / n_real
    return y


CONV_CASES = [
    # (input HW, kernel, strides, padding, expected output HW)
    ((7, 6), (3, 3), (1, 1), "valid", (5, 4)),
    ((7, 6), (3, 3), (1, 1), "same", (7, 6)),
    ((7, 6), (3, 2), (2, 2), "valid", (3, 3)),
    ((7, 6), (3, 2), (2, 2), "same", (4, 3)),
    ((8, 8), (2, 4), (3, 1), "same", (3, 8)),
    ((5, 5), (5, 5), (1, 1), "valid", (1, 1)),
    ((6, 7), (1, 1), (2, 3), "valid", (3, 3)),
]


@pytest.mark.parametrize(("hw", "k", "s", "padding", "out_hw"), CONV_CASES)
def test_conv2d_forward_matches_naive_loop(rng, hw, k, s, padding, out_hw):
    layer = layers.Conv2D(4, k, strides=s, padding=padding, bias_initializer="random_normal")
    x = rng.standard_normal((2, *hw, 3)).astype(np.float32)
    y = layer(x)
    kernel, bias = layer.get_weights()
    assert kernel.shape == (*k, 3, 4)  # Keras layout (kh, kw, in, out)
    assert bias.shape == (4,)
    assert y.shape == (2, *out_hw, 4)
    assert y.dtype == np.float32
    assert layer.compute_output_shape((None, *hw, 3)) == (None, *out_hw, 4)
    expected = naive_conv2d(x.astype(np.float64), kernel, bias, s, padding)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_conv2d_activation_and_no_bias(rng):
    layer = layers.Conv2D(2, 2, activation="relu", use_bias=False)
    x = rng.standard_normal((1, 4, 4, 2)).astype(np.float32)
    y = layer(x).numpy()
    (kernel,) = layer.get_weights()
    assert layer.count_params() == 2 * 2 * 2 * 2
    expected = np.maximum(naive_conv2d(x.astype(np.float64), kernel, None, (1, 1), "valid"), 0)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    assert (y == 0).any() and (y > 0).any()


def test_conv2d_known_kernel():
    """A hand-written kernel: sums each 2x2 window of channel 0, minus channel 1."""
    layer = layers.Conv2D(1, 2)
    x = np.zeros((1, 3, 3, 2), np.float32)
    x[0, :, :, 0] = np.arange(9).reshape(3, 3)
    x[0, :, :, 1] = 1.0
    layer(x)
    kernel = np.zeros((2, 2, 2, 1), np.float32)
    kernel[:, :, 0, 0] = 1.0
    kernel[:, :, 1, 0] = -1.0
    layer.set_weights([kernel, np.array([0.5], np.float32)])
    y = layer(x).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(y, [[8 - 4 + 0.5, 12 - 4 + 0.5], [20 - 4 + 0.5, 24 - 4 + 0.5]])


def test_conv2d_compute_output_shape_unknown_spatial():
    layer = layers.Conv2D(8, 3, strides=2, padding="same")
    assert layer.compute_output_shape((None, None, 9, 1)) == (None, None, 5, 8)


POOL_CASES = [
    ((6, 6), (2, 2), None, "valid", (3, 3)),
    ((7, 5), (2, 2), None, "valid", (3, 2)),
    ((7, 5), (2, 2), None, "same", (4, 3)),
    ((7, 7), (3, 3), (2, 2), "valid", (3, 3)),
    ((7, 7), (3, 3), (2, 2), "same", (4, 4)),
    ((6, 5), (3, 2), (1, 2), "same", (6, 3)),
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(("hw", "pool", "strides", "padding", "out_hw"), POOL_CASES)
def test_pooling_forward_matches_naive_loop(rng, kind, hw, pool, strides, padding, out_hw):
    cls = layers.MaxPooling2D if kind == "max" else layers.AveragePooling2D
    layer = cls(pool, strides=strides, padding=padding)
    x = rng.standard_normal((2, *hw, 3)).astype(np.float32)
    y = layer(x)
    assert y.shape == (2, *out_hw, 3)
    assert y.dtype == np.float32
    assert layer.compute_output_shape((None, *hw, 3)) == (None, *out_hw, 3)
    assert layer.weights == []
    expected = naive_pool(x.astype(np.float64), pool, strides or pool, padding, kind)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_pooling_aliases_and_default_strides():
    assert layers.MaxPool2D is layers.MaxPooling2D
    assert layers.AvgPool2D is layers.AveragePooling2D
    layer = layers.MaxPooling2D(3)
    assert layer.pool_size == (3, 3) and layer.strides == (3, 3)


def test_max_pool_of_all_negative_same_padding_never_returns_padding():
    x = -np.ones((1, 3, 3, 1), np.float32) * 5
    y = layers.MaxPooling2D(2, padding="same")(x).numpy()
    np.testing.assert_array_equal(y, -5 * np.ones((1, 2, 2, 1)))


# -- gradients ----------------------------------------------------------------------


def _build_cnn(float_dtype):
    model = hpnn.Sequential(
        [
            hpnn.Input((6, 5, 2)),
            layers.Conv2D(
                3, 3, padding="same", activation="tanh", bias_initializer="random_normal"
            ),
            layers.MaxPooling2D(2),
            layers.Conv2D(2, (2, 1), strides=(1, 2), bias_initializer="random_normal"),
            layers.AveragePooling2D((2, 1), padding="same"),
            layers.Flatten(),
            layers.Dense(3, activation="softmax", bias_initializer="random_normal"),
        ]
    )
    assert all(w.dtype == float_dtype for w in model.weights)
    return model


def test_cnn_stack_input_gradient_float64(float64, rng):
    model = _build_cnn(np.float64)
    x = rng.standard_normal((2, 6, 5, 2))
    check_grad(lambda t: model(t), [x], rtol=1e-5, atol=1e-7)


def test_cnn_stack_weight_gradients_float64(float64, rng):
    model = _build_cnn(np.float64)
    x = Tensor(rng.standard_normal((2, 6, 5, 2)))
    target = rng.standard_normal((2, 3))

    def loss():
        return ((model(x) - target) ** 2).sum()

    loss().backward()
    eps = 1e-6
    for v in model.weights:
        grad = v.grad
        assert grad is not None and grad.shape == v.shape, v.path
        flat = v.data.reshape(-1)
        numeric = np.empty(flat.size)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            plus = loss().item()
            flat[i] = old - eps
            minus = loss().item()
            flat[i] = old
            numeric[i] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grad.reshape(-1), numeric, rtol=1e-5, atol=1e-7, err_msg=v.path)


# -- errors --------------------------------------------------------------------------


def test_conv2d_fed_rank3_input():
    layer = layers.Conv2D(4, 3, name="conv_a")
    with pytest.raises(ValueError) as e:
        layer(np.zeros((32, 28, 28), np.float32))
    msg = str(e.value)
    assert "Conv2D 'conv_a'" in msg
    assert "rank 4" in msg and "Received" in msg and "28, 28)" in msg


def test_conv2d_fed_other_channels_after_build():
    layer = layers.Conv2D(4, 3, name="conv_b")
    layer(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(
        ValueError, match=r"Conv2D 'conv_b'.*size 3.*Received: shape=\(1, 5, 5, 2\)"
    ):
        layer(np.zeros((1, 5, 5, 2), np.float32))


def test_conv2d_input_smaller_than_kernel():
    layer = layers.Conv2D(4, 5, name="conv_c")
    with pytest.raises(ValueError, match=r"Conv2D 'conv_c'.*smaller than the kernel.*Received"):
        layer(np.zeros((1, 3, 3, 1), np.float32))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"filters": 0, "kernel_size": 3}, r"filters.*Received: filters=0"),
        ({"filters": -2, "kernel_size": 3}, r"filters.*Received: filters=-2"),
        ({"filters": 4, "kernel_size": (3,)}, r"kernel_size.*Received: kernel_size=\(3,\)"),
        ({"filters": 4, "kernel_size": 0}, r"kernel_size.*Received: kernel_size=0"),
        ({"filters": 4, "kernel_size": 3, "strides": (1, 0)}, r"strides.*Received: strides="),
        ({"filters": 4, "kernel_size": 3, "padding": "full"}, r"padding.*Received: padding='full'"),
        (
            {"filters": 4, "kernel_size": 3, "activation": "relux"},
            r"activation.*Received: activation='relux'",
        ),
        (
            {"filters": 4, "kernel_size": 3, "data_format": "channels_first"},
            r"channels_last.*Received: data_format='channels_first'",
        ),
    ],
)
def test_conv2d_bad_constructor_args(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        layers.Conv2D(**kwargs)


def test_conv2d_bad_constructor_args_name_the_layer():
    with pytest.raises(ValueError, match="Conv2D 'c9'"):
        layers.Conv2D(0, 3, name="c9")
    with pytest.raises(ValueError, match="Conv2D 'c9'"):
        layers.Conv2D(4, (3,), name="c9")
    with pytest.raises(ValueError, match="Conv2D 'c9'"):
        layers.Conv2D(4, 3, padding="full", name="c9")


def test_conv2d_unknown_activation_names_the_layer():
    with pytest.raises(ValueError, match="c9"):
        layers.Conv2D(4, 3, activation="relux", name="c9")


@pytest.mark.parametrize("cls", [layers.MaxPooling2D, layers.AveragePooling2D])
def test_pooling_input_smaller_than_pool(cls):
    layer = cls((3, 3), name="pool_z")
    with pytest.raises(ValueError) as e:
        layer(np.zeros((1, 2, 5, 1), np.float32))
    msg = str(e.value)
    assert f"{cls.__name__} 'pool_z'" in msg
    assert "smaller than the pool" in msg and "Received" in msg and "(3, 3)" in msg


@pytest.mark.parametrize("cls", [layers.MaxPooling2D, layers.AveragePooling2D])
def test_pooling_rank_and_args(cls):
    with pytest.raises(ValueError, match=r"rank 4.*Received"):
        cls(2)(np.zeros((4, 4, 1), np.float32))
    with pytest.raises(ValueError, match=r"pool_size.*Received: pool_size=\(2, 0\)"):
        cls((2, 0))
    with pytest.raises(ValueError, match=r"padding.*Received: padding='full'"):
        cls(2, padding="full")


@pytest.mark.parametrize(
    "layer",
    [
        lambda: layers.Conv2D(2, (2, 3), strides=2, padding="same", bias_initializer="ones"),
        lambda: layers.Conv2D(2, (4, 2), strides=(3, 1), padding="same"),
        lambda: layers.MaxPooling2D(3, strides=2),  # overlapping windows
        lambda: layers.MaxPooling2D((2, 3), strides=(1, 2), padding="same"),
        lambda: layers.AveragePooling2D(3, strides=2, padding="same"),
    ],
    ids=["conv-same-s2", "conv-same-s31", "maxpool-overlap", "maxpool-same", "avgpool-same"],
)
def test_single_layer_input_gradient_float64(float64, rng, layer):
    lay = layer()
    check_grad(lambda t: lay(t), [rng.standard_normal((2, 7, 6, 3))], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("padding", "pool", "strides"), [("valid", 2, None), ("same", 3, 2), ("same", 2, 1)]
)
def test_reference_cnn_shape_stack_gradients_float64(float64, rng, padding, pool, strides):
    """Conv2D(relu) + MaxPooling2D, as in the reference CNN (Sequential may fuse the pair)."""
    model = hpnn.Sequential(
        [
            hpnn.Input((7, 6, 2)),
            layers.Conv2D(
                3, 3, padding=padding, activation="relu", bias_initializer="random_normal"
            ),
            layers.MaxPooling2D(pool, strides=strides, padding=padding),
            layers.Flatten(),
            layers.Dense(4, activation="softmax"),
        ]
    )
    x = rng.standard_normal((2, 7, 6, 2))
    check_grad(lambda t: model(t), [x], rtol=1e-5, atol=1e-7)
    # the same stack, one layer at a time
    y = Tensor(x)
    for layer in model.layers:
        y = layer(y)
    np.testing.assert_allclose(model(Tensor(x)).numpy(), y.numpy(), rtol=1e-12)
    xt = Tensor(x)
    target = rng.standard_normal((2, 4))
    for v in model.weights:
        v.grad = None  # check_grad's backward above accumulated into them
    ((model(xt) - target) ** 2).sum().backward()
    eps = 1e-6
    for v in model.weights:
        flat = v.data.reshape(-1)
        for i in range(0, flat.size, max(1, flat.size // 10)):
            old = flat[i]
            flat[i] = old + eps
            plus = ((model(xt) - target) ** 2).sum().item()
            flat[i] = old - eps
            minus = ((model(xt) - target) ** 2).sum().item()
            flat[i] = old
            np.testing.assert_allclose(
                v.grad.reshape(-1)[i],
                (plus - minus) / (2 * eps),
                rtol=1e-5,
                atol=1e-7,
                err_msg=f"{v.path}[{i}]",
            )


# -- Conv2DTranspose ---------------------------------------------------------------------------
# The cases below were also checked against Keras 3 itself (keras.layers.Conv2DTranspose,
# torch backend, same weights): all nine agree to 5e-7.
CT_CASES = [
    (4, 3, 2, "valid", None),
    (4, 3, 2, "same", None),
    (5, 2, 3, "valid", None),  # kernel smaller than the stride: zero rows at the end
    (4, 4, 2, "same", None),
    (3, 3, 1, "same", None),
    (4, 3, 2, "valid", 1),
    (4, 3, 2, "same", 1),
    (5, 5, 3, "same", 2),
    (4, 2, 3, "same", None),
]


@pytest.mark.parametrize(("h", "k", "s", "padding", "output_padding"), CT_CASES)
def test_conv2d_transpose_matches_torch_cropped_as_keras(h, k, s, padding, output_padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, h, h + 1, 3)).astype(np.float32)
    layer = layers.Conv2DTranspose(5, k, strides=s, padding=padding, output_padding=output_padding)
    y = layer(x).data
    w, b = (v.numpy() for v in (layer.kernel, layer.bias))
    b = rng.standard_normal(5).astype(np.float32)
    layer.bias.assign(b)
    y = layer(x).data
    full = (
        torch.nn.functional.conv_transpose2d(
            torch.tensor(x).permute(0, 3, 1, 2), torch.tensor(w.transpose(3, 2, 0, 1)), stride=s
        )
        .permute(0, 2, 3, 1)
        .numpy()
    )
    want = np.zeros((2, *y.shape[1:3], 5), np.float32)
    for axis, n in ((1, h), (2, h + 1)):  # Keras' size, and TF's 'same' offset
        length = y.shape[axis]
        begin = max((n - 1) * s + k - length, 0) // 2 if padding == "same" else 0
        full = np.take(full, range(begin, min(begin + length, full.shape[axis])), axis=axis)
    want[:, : full.shape[1], : full.shape[2]] = full
    np.testing.assert_allclose(y, want + b, rtol=1e-5, atol=1e-5)
    assert layer.compute_output_shape((None, h, h + 1, 3)) == (None, *y.shape[1:])


@pytest.mark.parametrize(("k", "s", "padding", "output_padding"), [(3, 2, "same", None),
                         (2, 3, "valid", None), (3, 2, "same", (1, 0))])  # fmt: skip
def test_conv2d_transpose_gradients(k, s, padding, output_padding):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 3, 4, 2)), rng.standard_normal((k, k, 3, 2)), rng.random(3)
    check_grad(
        lambda xt, wt, bt: ops.conv2d_transpose(xt, wt, bt, (s, s), padding, output_padding),
        [x, w, b],
    )


def test_conv2d_transpose_config_and_errors():
    layer = layers.Conv2DTranspose(4, 3, strides=2, padding="same", output_padding=1)
    again = layers.Conv2DTranspose.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    assert layer.compute_output_shape((None, 5, 5, 2)) == (None, 10, 10, 4)
    with pytest.raises(ValueError, match="output_padding must be smaller than the strides"):
        layers.Conv2DTranspose(4, 3, strides=2, output_padding=2)
    with pytest.raises(NotImplementedError, match="dilation_rate"):
        layers.Conv2DTranspose(4, 3, dilation_rate=2)


# -- dilation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("channels", "dilation", "strides", "padding"),
    [(3, (2, 2), (1, 1), "valid"), (1, (2, 3), (1, 1), "valid"), (5, (1, 2), (1, 1), "same"),
     (4, (3, 1), (2, 2), "valid")],  # (the op takes strides with dilation; the layer does not)
)  # fmt: skip
def test_dilated_convolution_matches_torch_and_its_gradients(channels, dilation, strides, padding):
    torch = pytest.importorskip("torch")
    from hpnn.engine.ops.conv import pad_amounts

    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 11, 12, channels)), rng.standard_normal((3, 3, channels, 4))
    b = rng.standard_normal(4)
    y = ops.conv2d(x, w, b, strides, padding, dilation).data
    xt = torch.tensor(x).permute(0, 3, 1, 2)
    (pt, pb), (pl, pr) = (
        pad_amounts(n, 2 * d + 1, s, padding)
        for n, d, s in zip((11, 12), dilation, strides, strict=True)
    )
    xt = torch.nn.functional.pad(xt, (pl, pr, pt, pb))
    want = torch.nn.functional.conv2d(
        xt, torch.tensor(w).permute(3, 2, 0, 1), torch.tensor(b), stride=strides, dilation=dilation
    )
    np.testing.assert_allclose(y, want.permute(0, 2, 3, 1).numpy(), rtol=1e-10, atol=1e-10)
    small = x[:, :7, :8]
    check_grad(lambda a, k, bb: ops.conv2d(a, k, bb, strides, padding, dilation), [small, w, b])


def test_dilated_conv_relu_pool_fusion_and_layer_rules():
    hpnn.utils.set_random_seed(0)
    conv = layers.Conv2D(3, 3, dilation_rate=2, activation="relu")
    fused = hpnn.Sequential([hpnn.Input((10, 10, 2)), conv, layers.MaxPooling2D()])
    x = np.random.default_rng(1).standard_normal((2, 10, 10, 2)).astype(np.float32)
    alone = layers.MaxPooling2D()(conv(x)).data  # the layers one by one
    np.testing.assert_allclose(fused.predict(x, verbose=0), alone, rtol=1e-6)
    assert conv.compute_output_shape((None, 10, 10, 2)) == (None, 6, 6, 3)
    assert layers.Conv1D(2, 3, padding="causal", dilation_rate=4).compute_output_shape(
        (None, 9, 1)
    ) == (None, 9, 2)
    with pytest.raises(ValueError, match="strides > 1 and dilation_rate > 1"):
        layers.Conv2D(3, 3, strides=2, dilation_rate=2)
    assert layers.Conv2D(3, 3, dilation_rate=2).get_config()["dilation_rate"] == (2, 2)


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", strides=2),
        lambda: layers.DepthwiseConv2D((2, 3), dilation_rate=(1, 2)),
        lambda: layers.SeparableConv2D(3, 2, depth_multiplier=2, activation="tanh"),
    ],
    ids=["depthwise_same_stride2", "depthwise_dilated", "separable"],
)
def test_depthwise_and_separable_gradients_and_config(make):
    layer = make()
    x = np.random.default_rng(0).normal(size=(2, 6, 7, 2))
    layer(Tensor(x))
    rng = np.random.default_rng(1)
    layer.set_weights([rng.normal(size=w.shape) for w in layer.get_weights()])
    check_grad(lambda t: layer(t), [x])  # the input's gradient through the layer
    clone = type(layer).from_config(layer.get_config())
    clone(Tensor(x))
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(Tensor(x)).data, layer(Tensor(x)).data)


def test_depthwise_op_gradients_for_every_input():
    rng = np.random.default_rng(0)
    x, dw = rng.normal(size=(2, 7, 6, 3)), rng.normal(size=(3, 2, 3, 2))
    b, pw = rng.normal(size=6), rng.normal(size=(1, 1, 6, 4))
    for kw in ({}, {"strides": (2, 2), "padding": "same"}, {"dilation": (2, 1)}):
        check_grad(lambda t, k, c, kw=kw: ops.depthwise_conv2d(t, k, c, **kw), [x, dw, b])
    # the separable layer's composition: depthwise, then a 1x1 convolution with the bias
    check_grad(lambda t, k, p: ops.conv2d(ops.depthwise_conv2d(t, k), p), [x, dw, pw])


def test_depthwise_output_channel_order_and_errors():
    x = np.zeros((1, 3, 3, 2), "float32")
    x[..., 1] = 1.0  # only channel 1 is on
    layer = layers.DepthwiseConv2D(1, depth_multiplier=3, use_bias=False)
    layer(x)
    layer.set_weights([np.arange(6, dtype="float32").reshape(1, 1, 2, 3)])
    # outputs c * 3 + m: channel 1's filters are 3, 4, 5 and fill outputs 3, 4, 5
    np.testing.assert_array_equal(layer(x).data[0, 0, 0], [0, 0, 0, 3, 4, 5])
    with pytest.raises(ValueError, match="depth_multiplier"):
        layers.DepthwiseConv2D(3, depth_multiplier=0)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        layers.SeparableConv2D(2, 5)(np.zeros((1, 3, 3, 1), "float32"))

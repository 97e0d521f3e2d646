"""Conv3D and the 3-D pools: the ops against naive loops and PyTorch, their float64
gradients against finite differences, and the layers against Keras 3."""

import itertools

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.engine import Tensor, ops
from hpnn.testing import OpTest, check_grad


def rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape)


def distinct(*shape, seed=0):
    """Tie-free values: a permutation, spaced 1/size apart (far more than the FD step)."""
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(n).reshape(shape) / n - 0.5


def tf_pads(n, k, s, padding):
    """(before, after) padding of one axis under TF rules."""
    if padding == "valid":
        return 0, 0
    total = max((-(-n // s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def padded(x, extents, strides, padding, fill):
    """``x`` padded as TF pads it, and the (padded) mask of its real cells."""
    pads = [
        tf_pads(n, e, s, padding) for n, e, s in zip(x.shape[1:4], extents, strides, strict=True)
    ]
    xpad = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=fill)
    real = np.pad(np.ones(x.shape[1:4], bool), pads)
    out = [(p - e) // s + 1 for p, e, s in zip(xpad.shape[1:4], extents, strides, strict=True)]
    if padding == "same":
        assert out == [-(-n // s) for n, s in zip(x.shape[1:4], strides, strict=True)]
    return xpad, real, out, [p[0] for p in pads]


def windows(out, extents, strides, dilation=(1, 1, 1)):
    """Yield (output position, index of its window in the padded input)."""
    for pos in itertools.product(*(range(o) for o in out)):
        yield (
            pos,
            tuple(
                slice(i * s, i * s + e, d)
                for i, s, e, d in zip(pos, strides, extents, dilation, strict=True)
            ),
        )


def naive_conv3d(x, w, b=None, strides=(1, 1, 1), padding="valid", dilation=(1, 1, 1)):
    """y[n, pos, o] = sum over the window of x * w: a loop over the output positions."""
    extents = [(k - 1) * d + 1 for k, d in zip(w.shape[:3], dilation, strict=True)]
    xpad, _, out, _ = padded(x, extents, strides, padding, 0.0)
    y = np.zeros((x.shape[0], *out, w.shape[-1]))
    for pos, win in windows(out, extents, strides, dilation):
        y[(slice(None), *pos)] = np.tensordot(xpad[(slice(None), *win)], w, axes=4)
    return y if b is None else y + b


def naive_pool3d(x, pool, strides, padding, kind):
    xpad, real, out, _ = padded(x, pool, strides, padding, -np.inf if kind == "max" else 0.0)
    y = np.zeros((x.shape[0], *out, x.shape[-1]))
    for pos, win in windows(out, pool, strides):
        block = xpad[(slice(None), *win)]
        if kind == "max":
            y[(slice(None), *pos)] = block.max(axis=(1, 2, 3))
        else:  # the mean of the real (unpadded) inputs, as Keras/TF
            y[(slice(None), *pos)] = block.sum(axis=(1, 2, 3)) / real[win].sum()
    return y


def naive_max_pool3d_grad(x, gy, pool, strides, padding):
    """All of a window's gradient to its first maximum in row-major window order."""
    xpad, _, out, starts = padded(x, pool, strides, padding, -np.inf)
    g = np.zeros(xpad.shape)
    for pos, win in windows(out, pool, strides):
        for n in range(x.shape[0]):
            for c in range(x.shape[-1]):
                p = np.unravel_index(np.argmax(xpad[(n, *win, c)]), pool)  # argmax: the first
                at = tuple(i * s + q for i, s, q in zip(pos, strides, p, strict=True))
                g[(n, *at, c)] += gy[(n, *pos, c)]
    return g[(slice(None), *(slice(a, a + n) for a, n in zip(starts, x.shape[1:4], strict=True)))]


# -- the ops ------------------------------------------------------------------------------

CONV_CONFIGS = [
    ((1, 1, 1), "valid", (1, 1, 1)),
    ((2, 1, 2), "valid", (1, 1, 1)),
    ((1, 1, 1), "same", (1, 1, 1)),
    ((2, 2, 1), "same", (1, 1, 1)),  # odd padding after, as TF
    ((1, 1, 1), "valid", (2, 1, 2)),
    ((1, 1, 1), "same", (1, 2, 2)),
]


class TestConv3DOp(OpTest):
    cases = [
        (rand(2, 5, 4, 6, 2), rand(3, 2, 3, 2, 3, seed=1), rand(3, seed=2)),  # bias
        (rand(1, 4, 5, 3, 3, seed=3), rand(2, 3, 2, 3, 2, seed=4)),  # no bias
        (rand(2, 3, 4, 5, 1, seed=5), rand(1, 1, 1, 1, 2, seed=6), rand(2, seed=7)),  # 1x1x1
    ]
    forward_atol = 1e-5  # float32 sums of 54 products

    @pytest.fixture(autouse=True, params=CONV_CONFIGS, ids=str)
    def _config(self, request):
        self.strides, self.padding, self.dilation = request.param

    def op(self, x, w, b=None):
        return ops.conv3d(x, w, b, self.strides, self.padding, self.dilation)

    def reference(self, x, w, b=None):
        return naive_conv3d(x, w, b, self.strides, self.padding, self.dilation)


POOL_CONFIGS = [
    ((2, 2, 2), None, "valid"),  # windows that tile the first shape
    ((2, 2, 2), None, "same"),
    ((3, 2, 2), (1, 1, 1), "valid"),  # overlapping windows
    ((3, 3, 2), (2, 1, 2), "same"),
    ((1, 2, 2), (2, 3, 2), "valid"),  # stride > pool: gaps with no gradient
]
POOL_SHAPES = [(2, 4, 4, 6, 2), (1, 5, 3, 4, 3)]


class _Pool3DTest(OpTest):
    @pytest.fixture(autouse=True, params=POOL_CONFIGS, ids=str)
    def _config(self, request):
        self.pool, self.strides, self.padding = request.param

    def reference(self, x):
        return naive_pool3d(x, self.pool, self.strides or self.pool, self.padding, self.kind)


class TestMaxPool3DOp(_Pool3DTest):
    kind = "max"
    cases = [(distinct(*s, seed=i),) for i, s in enumerate(POOL_SHAPES)]

    def op(self, x):
        return ops.max_pool3d(x, self.pool, self.strides, self.padding)


class TestAveragePool3DOp(_Pool3DTest):
    kind = "avg"
    cases = [(rand(*s, seed=i),) for i, s in enumerate(POOL_SHAPES)]

    def op(self, x):
        return ops.average_pool3d(x, self.pool, self.strides, self.padding)


@pytest.mark.parametrize("config", POOL_CONFIGS, ids=str)
def test_max_pool3d_ties_go_to_the_first_tap(config):
    pool, strides, padding = config
    x = np.random.default_rng(0).integers(0, 3, (2, 5, 4, 6, 2)).astype(np.float64)  # many ties
    xt = Tensor(x, requires_grad=True)
    y = ops.max_pool3d(xt, pool, strides, padding)
    gy = rand(*y.shape, seed=1)
    y.backward(gy)
    want = naive_max_pool3d_grad(x, gy, pool, strides or pool, padding)
    np.testing.assert_allclose(xt.grad, want, rtol=1e-12, atol=1e-12)


def test_conv3d_skips_gradients_no_one_needs():
    x = Tensor(rand(1, 3, 3, 3, 2).astype(np.float32))
    w = Tensor(rand(2, 2, 2, 2, 3, seed=1).astype(np.float32), requires_grad=True)
    ops.conv3d(x, w).sum().backward()
    assert x.grad is None and w.grad.shape == w.shape and w.grad.dtype == np.float32
    frozen = Tensor(w.data)  # only the bias learns: its gradient still comes
    b = Tensor(np.zeros(3, np.float32), requires_grad=True)
    y = ops.conv3d(x, frozen, b)
    gy = rand(*y.shape, seed=2).astype(np.float32)
    y.backward(gy)
    np.testing.assert_allclose(b.grad, gy.sum(axis=(0, 1, 2, 3)), rtol=1e-5)


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: ops.conv3d(np.zeros((1, 4, 4, 4)), np.zeros((2, 2, 2, 3, 1))), r"kernel.*w\.sh"),
        (lambda: ops.conv3d(np.zeros((4, 4, 4, 1)), np.zeros((2, 2, 2, 1, 1))), r"x\.shape="),
        (lambda: ops.conv3d(np.zeros((1, 2, 4, 4, 1)), np.zeros((3, 2, 2, 1, 1))), r"smaller"),
        (lambda: ops.conv3d(np.zeros((1, 4, 4, 4, 1)), np.zeros((2, 2, 2, 1, 1)), strides=0), "s"),
        (lambda: ops.max_pool3d(np.zeros((1, 4, 4, 4)), 2), r"max_pool3d.*rank 5"),
        (lambda: ops.average_pool3d(np.zeros((1, 4, 4, 4, 1)), 2, padding="full"), r"'full'"),
    ],
)
def test_the_ops_refuse_bad_arguments(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


# -- against PyTorch ------------------------------------------------------------------------


def _torch_pads(pads):
    """F.pad's order for NCDHW: the last axis first."""
    return [p for pair in reversed(pads) for p in pair]


@pytest.mark.parametrize("config", CONV_CONFIGS, ids=str)
def test_conv3d_matches_torch(config):
    torch = pytest.importorskip("torch")
    fn = torch.nn.functional
    strides, padding, dilation = config
    x, w, b = rand(2, 6, 5, 7, 3), rand(3, 2, 3, 3, 4, seed=1), rand(4, seed=2)
    extents = [(k - 1) * d + 1 for k, d in zip(w.shape[:3], dilation, strict=True)]
    pads = [
        tf_pads(n, e, s, padding) for n, e, s in zip(x.shape[1:4], extents, strides, strict=True)
    ]
    xt = Tensor(x.astype(np.float32))
    got = ops.conv3d(xt, w.astype(np.float32), b.astype(np.float32), strides, padding, dilation)
    tx = fn.pad(torch.tensor(x.transpose(0, 4, 1, 2, 3), dtype=torch.float32), _torch_pads(pads))
    tw = torch.tensor(w.transpose(4, 3, 0, 1, 2), dtype=torch.float32)  # (O, C, KD, KH, KW)
    want = fn.conv3d(
        tx, tw, torch.tensor(b, dtype=torch.float32), stride=strides, dilation=dilation
    )
    want = want.numpy().transpose(0, 2, 3, 4, 1)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.data, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kind", "config"),
    # torch's padded average counts the padding: the naive loop covers 'same' averages
    [("max", c) for c in POOL_CONFIGS] + [("avg", c) for c in POOL_CONFIGS if c[2] == "valid"],
    ids=str,
)
def test_pool3d_matches_torch(kind, config):
    torch = pytest.importorskip("torch")
    fn = torch.nn.functional
    pool, strides, padding = config
    strides = strides or pool
    x = rand(2, 7, 5, 6, 3)
    pads = [tf_pads(n, k, s, padding) for n, k, s in zip(x.shape[1:4], pool, strides, strict=True)]
    ours = ops.max_pool3d if kind == "max" else ops.average_pool3d
    got = ours(Tensor(x.astype(np.float32)), pool, strides, padding)
    tx = torch.tensor(x.transpose(0, 4, 1, 2, 3), dtype=torch.float32)
    tx = fn.pad(tx, _torch_pads(pads), value=-np.inf)
    theirs = fn.max_pool3d if kind == "max" else fn.avg_pool3d
    want = theirs(tx, kernel_size=pool, stride=strides).numpy().transpose(0, 2, 3, 4, 1)
    np.testing.assert_allclose(got.data, want, rtol=1e-6, atol=1e-6)


def test_grouped_conv3d_layer_matches_torch():
    torch = pytest.importorskip("torch")
    x = rand(2, 4, 5, 6, 4).astype(np.float32)
    layer = layers.Conv3D(6, (2, 3, 2), padding="valid", groups=2, bias_initializer="ones")
    got = layer(Tensor(x)).data
    assert layer.kernel.shape == (2, 3, 2, 2, 6)
    tw = torch.tensor(layer.kernel.numpy().transpose(4, 3, 0, 1, 2))
    want = torch.nn.functional.conv3d(
        torch.tensor(x.transpose(0, 4, 1, 2, 3)), tw, torch.tensor(layer.bias.numpy()), groups=2
    )
    np.testing.assert_allclose(got, want.numpy().transpose(0, 2, 3, 4, 1), rtol=1e-5, atol=1e-5)


# -- the layers ---------------------------------------------------------------------------


@pytest.fixture
def float64():
    old = hpnn.backend.floatx()
    hpnn.backend.set_floatx("float64")
    yield
    hpnn.backend.set_floatx(old)


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.Conv3D(3, (2, 3, 2), strides=(2, 1, 2), padding="same", activation="tanh"),
        lambda: layers.Conv3D(4, 2, groups=2, dilation_rate=(1, 2, 1), bias_initializer="ones"),
        lambda: layers.MaxPooling3D((2, 3, 2), strides=1, padding="same"),
        lambda: layers.AveragePooling3D(2, padding="same"),
        lambda: layers.GlobalMaxPooling3D(keepdims=True),
    ],
    ids=["conv-same", "conv-groups-dilated", "maxpool", "avgpool", "globalmax"],
)
def test_layer_input_gradients_float64(float64, make):
    layer = make()
    check_grad(lambda t: layer(t), [distinct(2, 5, 4, 5, 2)], rtol=1e-5, atol=1e-7)


def test_grouped_layer_weight_gradients_float64(float64):
    layer = layers.Conv3D(4, 2, groups=2, bias_initializer="ones")
    layer.build((None, 3, 4, 3, 2))
    x = rand(2, 3, 4, 3, 2)

    def with_weights(kernel, bias):
        saved = layer.__dict__["kernel"], layer.__dict__["bias"]
        layer.__dict__["kernel"], layer.__dict__["bias"] = kernel, bias
        try:
            return layer(Tensor(x))
        finally:
            layer.__dict__["kernel"], layer.__dict__["bias"] = saved

    check_grad(with_weights, [layer.kernel.numpy().copy(), layer.bias.numpy().copy()])


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: layers.Conv3D(5, 3), (2, 4, 2, 5, 5)),
        (lambda: layers.Conv3D(5, 3, strides=2, padding="same"), (2, 3, 2, 4, 5)),
        (lambda: layers.Conv3D(5, 2, dilation_rate=2, use_bias=False), (2, 4, 2, 5, 5)),
        (lambda: layers.MaxPool3D(), (2, 3, 2, 3, 3)),
        (lambda: layers.AvgPool3D((3, 1, 2), strides=(1, 2, 2), padding="same"), (2, 6, 2, 4, 3)),
        (lambda: layers.GlobalAvgPool3D(), (2, 3)),
        (lambda: layers.GlobalMaxPool3D(keepdims=True), (2, 1, 1, 1, 3)),
    ],
)
def test_shapes_and_compute_output_shape(make, expected):
    layer = make()
    y = layer(Tensor(rand(2, 6, 4, 7, 3).astype(np.float32)))
    assert y.shape == expected
    assert layer.compute_output_shape((2, 6, 4, 7, 3)) == expected
    unknown = make().compute_output_shape((None, None, 4, 7, 3))
    assert unknown[0] is None and unknown[2:] == expected[2:]
    if len(expected) == 5 and not isinstance(layer, layers.GlobalMaxPooling3D):
        assert unknown[1] is None


@pytest.mark.parametrize(
    "layer",
    [
        layers.Conv3D(
            6,
            (1, 2, 3),
            strides=(1, 2, 1),
            padding="same",
            groups=3,
            activation="relu",
            use_bias=False,
            kernel_initializer="he_normal",
            kernel_regularizer="l2",
            bias_constraint="non_neg",
            name="c3",
        ),
        layers.MaxPooling3D((1, 2, 2), strides=(1, 1, 2), padding="same", name="mp"),
        layers.AveragePooling3D(3, name="ap"),
        layers.GlobalAveragePooling3D(keepdims=True, name="ga"),
        layers.GlobalMaxPooling3D(name="gm"),
    ],
    ids=lambda lay: type(lay).__name__,
)
def test_config_round_trip_with_keras_keys(layer, keras):
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config
    args = {layers.Conv3D: (2, 2), layers.AveragePooling3D: (2,)}.get(type(layer), ())
    theirs = getattr(keras.layers, type(layer).__name__)(*args).get_config()
    missing = set(theirs) - set(config) - {"activity_regularizer"}  # (kept only when set)
    assert not missing, missing


def test_conv3d_saves_and_trains(tmp_path):
    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential(
        [
            hpnn.Input((4, 6, 6, 2)),
            layers.Conv3D(4, 3, padding="same", activation="relu"),
            layers.MaxPooling3D(2),
            layers.AveragePooling3D((1, 3, 3), padding="same"),
            layers.GlobalAveragePooling3D(),
            layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4, 6, 6, 2)).astype(np.float32)
    y = x[:, :2, :3, :3, :1].mean(axis=(1, 2, 3)) * 3.0
    history = model.fit(x, y, epochs=8, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
    model.save(tmp_path / "m.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "m.hpnn")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def _keras_style_model(lib):
    return lib.Sequential(
        [
            lib.Input((5, 8, 7, 3)),
            lib.layers.Conv3D(4, (2, 3, 3), strides=(1, 2, 1), padding="same", activation="relu"),
            lib.layers.MaxPooling3D((2, 2, 2), padding="same"),
            lib.layers.Conv3D(4, 2, groups=2),
            lib.layers.GlobalAveragePooling3D(),
            lib.layers.Dense(3),
        ]
    )


def test_keras_weights_give_keras_predictions(keras, tmp_path):
    pytest.importorskip("h5py")
    theirs = _keras_style_model(keras)
    x = np.random.default_rng(0).standard_normal((4, 5, 8, 7, 3)).astype(np.float32)
    want = keras.ops.convert_to_numpy(theirs.predict(x, verbose=0))
    ours = _keras_style_model(hpnn)
    assert ours.output_shape == theirs.output_shape
    ours.set_weights([keras.ops.convert_to_numpy(w) for w in theirs.weights])
    np.testing.assert_allclose(ours.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)
    theirs.save_weights(tmp_path / "m.weights.h5")  # and through Keras' weights file
    from_file = _keras_style_model(hpnn)
    from_file.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_allclose(from_file.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)


def test_keras_pools_match(keras):
    x = np.random.default_rng(1).standard_normal((2, 5, 6, 7, 2)).astype(np.float32)
    for cls, kwargs in [
        ("MaxPooling3D", {"pool_size": (3, 2, 2), "strides": (2, 1, 2), "padding": "same"}),
        # 'same' padding even on both sides: Keras' torch backend pads an uneven one by
        # replicating the edge, where TF (and hpnn) averages the real inputs only
        ("AveragePooling3D", {"pool_size": (3, 1, 3), "strides": 1, "padding": "same"}),
        ("AveragePooling3D", {"pool_size": (2, 3, 2), "strides": (1, 2, 2)}),
        ("GlobalMaxPooling3D", {"keepdims": True}),
    ]:
        want = keras.ops.convert_to_numpy(getattr(keras.layers, cls)(**kwargs)(x))
        got = getattr(layers, cls)(**kwargs)(Tensor(x))
        np.testing.assert_allclose(got.data, want, rtol=1e-6, atol=1e-6, err_msg=cls)


# -- errors --------------------------------------------------------------------------------


def test_wrong_rank_names_the_layer_and_the_shapes():
    with pytest.raises(ValueError, match=r"Conv3D 'c1'.*rank 5.*Received: shape=\(\w+, 4, 4, 1\)"):
        layers.Conv3D(2, 2, name="c1")(np.zeros((2, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match=r"MaxPooling3D 'p1'.*rank 5.*Received"):
        layers.MaxPooling3D(name="p1")(np.zeros((2, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match=r"GlobalAveragePooling3D 'g1'.*rank 5.*Received"):
        hpnn.Sequential([hpnn.Input((4, 4, 1)), layers.GlobalAveragePooling3D(name="g1")])


def test_other_channels_after_build_are_refused():
    layer = layers.Conv3D(2, 2, name="c2")
    layer(np.zeros((1, 3, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"Conv3D 'c2'.*size 3.*Received: shape=\(1, 3, 3, 3, 2\)"):
        layer(np.zeros((1, 3, 3, 3, 2), np.float32))


@pytest.mark.parametrize(
    ("make", "shape", "pattern"),
    [
        (lambda: layers.Conv3D(2, (2, 5, 2), name="c3"), (1, 4, 4, 4, 1), r"kernel \(2, 5, 2\)"),
        (lambda: layers.AveragePooling3D(3, name="c3"), (1, 4, 2, 4, 1), r"pool \(3, 3, 3\)"),
        (lambda: layers.Conv3D(4, 2, groups=2, name="c3"), (1, 4, 4, 4, 3), r"multiple of groups"),
    ],
)
def test_inputs_the_layer_cannot_take(make, shape, pattern):
    with pytest.raises(ValueError, match=r"'c3'.*" + pattern + r".*Received: shape="):
        make()(np.zeros(shape, np.float32))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"filters": 0, "kernel_size": 3}, r"filters.*Received: filters=0"),
        ({"filters": 2, "kernel_size": (3, 3)}, r"kernel_size.*3 positive.*kernel_size=\(3, 3\)"),
        ({"filters": 2, "kernel_size": 0}, r"kernel_size.*Received: kernel_size=0"),
        ({"filters": 2, "kernel_size": "big"}, r"kernel_size.*Received: kernel_size='big'"),
        ({"filters": 2, "kernel_size": 2, "padding": "causal"}, r"padding='causal'"),
        ({"filters": 2, "kernel_size": 2, "data_format": "channels_first"}, r"channels_last"),
        ({"filters": 2, "kernel_size": 2, "strides": 2, "dilation_rate": 2}, r"combined"),
        ({"filters": 3, "kernel_size": 2, "groups": 2}, r"multiple of groups"),
        ({"filters": 2, "kernel_size": 2, "activation": "relux"}, r"relux"),
    ],
)
def test_bad_conv3d_arguments_say_what_is_wrong(kwargs, pattern):
    with pytest.raises(ValueError, match=r"Conv3D 'k'.*" + pattern):
        layers.Conv3D(**kwargs, name="k")


@pytest.mark.parametrize("cls", [layers.MaxPooling3D, layers.AveragePooling3D])
def test_bad_pool_arguments_say_what_is_wrong(cls):
    with pytest.raises(ValueError, match=r"pool_size.*Received: pool_size=\(2, 2\)"):
        cls((2, 2))
    with pytest.raises(ValueError, match=r"strides.*Received: strides=\(1, 0, 1\)"):
        cls(2, strides=(1, 0, 1))
    with pytest.raises(ValueError, match=r"channels_last.*Received: data_format='channels_first'"):
        cls(data_format="channels_first")
    with pytest.raises(ValueError, match=r"channels_last"):
        layers.GlobalMaxPooling3D(data_format="channels_first")


def test_onnx_export_refuses_conv3d_clearly():
    pytest.importorskip("onnx")
    from hpnn.export.onnx import to_onnx

    model = hpnn.Sequential([hpnn.Input((4, 4, 4, 1)), layers.Conv3D(2, 3, name="vol")])
    with pytest.raises(ValueError, match=r"layer 'vol' \(Conv3D\) cannot be exported"):
        to_onnx(model)

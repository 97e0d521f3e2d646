"""Tests for hpnn.layers.core: Dense, Flatten, Dropout, Activation, names and errors."""

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.engine import Tensor
from hpnn.testing import check_grad
from hpnn.utils import clear_session


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


def relu(a):
    return np.maximum(a, 0)


def softmax(a):
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


# -- Dense ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("activation", "ref"),
    [
        (None, lambda a: a),
        ("relu", relu),
        ("softmax", softmax),
        ("sigmoid", sigmoid),
        ("tanh", np.tanh),
    ],
)
def test_dense_forward_matches_numpy(rng, activation, ref):
    layer = layers.Dense(5, activation=activation, bias_initializer="random_normal")
    x = rng.standard_normal((7, 3)).astype(np.float32)
    y = layer(x)
    kernel, bias = layer.get_weights()
    assert kernel.shape == (3, 5)  # Keras layout (in, out)
    assert bias.shape == (5,)
    assert np.any(bias != 0)  # the bias really takes part in the check
    expected = ref(x.astype(np.float64) @ kernel + bias)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_dense_on_rank3_input_uses_last_axis(rng):
    layer = layers.Dense(4)
    x = rng.standard_normal((2, 6, 3)).astype(np.float32)
    y = layer(x)
    kernel, bias = layer.get_weights()
    assert y.shape == (2, 6, 4)
    np.testing.assert_allclose(y.numpy(), x @ kernel + bias, rtol=1e-5, atol=1e-6)
    assert layer.compute_output_shape((None, 6, 3)) == (None, 6, 4)


def test_dense_without_bias(rng):
    layer = layers.Dense(3, use_bias=False)
    x = rng.standard_normal((4, 2)).astype(np.float32)
    y = layer(x)
    (kernel,) = layer.get_weights()
    assert kernel.shape == (2, 3)
    assert layer.count_params() == 6
    np.testing.assert_allclose(y.numpy(), x @ kernel, rtol=1e-6)


def test_dense_set_weights_is_used_by_forward():
    layer = layers.Dense(2)
    layer(np.zeros((1, 3), np.float32))
    kernel = np.arange(6, dtype=np.float32).reshape(3, 2)
    bias = np.array([10.0, -10.0], np.float32)
    layer.set_weights([kernel, bias])
    y = layer(np.array([[1.0, 2.0, 3.0]], np.float32)).numpy()
    np.testing.assert_array_equal(y, [[16.0 + 10.0, 22.0 - 10.0]])


def test_dense_compute_output_shape_and_weight_count():
    layer = layers.Dense(7)
    assert layer.compute_output_shape((None, 3)) == (None, 7)
    assert layer.build_for((None, 3)) == (None, 7)
    assert [w.shape for w in layer.weights] == [(3, 7), (7,)]
    assert layer.count_params() == 3 * 7 + 7


# -- Flatten / Activation ------------------------------------------------------------


def test_flatten_forward_and_shape(rng):
    x = rng.standard_normal((3, 4, 5, 2)).astype(np.float32)
    layer = layers.Flatten()
    y = layer(x)
    np.testing.assert_array_equal(y.numpy(), x.reshape(3, -1))
    assert layer.compute_output_shape((None, 4, 5, 2)) == (None, 40)
    assert layer.compute_output_shape((None, None, 5)) == (None, None)


@pytest.mark.parametrize(
    ("name", "ref"), [("relu", relu), ("softmax", softmax), ("sigmoid", sigmoid), ("linear", None)]
)
def test_activation_layer(rng, name, ref):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    y = layers.Activation(name)(x).numpy()
    expected = x if ref is None else ref(x.astype(np.float64))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_activation_layer_accepts_callable(rng):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    y = layers.Activation(lambda t: t * 2.0)(x)
    np.testing.assert_allclose(y.numpy(), 2 * x)


# -- Dropout -------------------------------------------------------------------------


def test_dropout_is_identity_at_inference(rng):
    x = rng.standard_normal((50, 20)).astype(np.float32)
    layer = layers.Dropout(0.5, seed=1)
    np.testing.assert_array_equal(layer(x).numpy(), x)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)


def test_dropout_in_training_drops_and_rescales():
    x = np.ones((200, 100), np.float32)
    y = layers.Dropout(0.25, seed=3)(x, training=True).numpy()
    kept = y != 0
    # survivors are scaled by 1 / (1 - rate) (inverted dropout)
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    assert abs(1 - kept.mean() - 0.25) < 0.02
    assert y.dtype == np.float32


def test_dropout_seeded_reproducibility(rng):
    x = rng.standard_normal((30, 30)).astype(np.float32)
    a = layers.Dropout(0.5, seed=42)(x, training=True).numpy()
    b = layers.Dropout(0.5, seed=42)(x, training=True).numpy()
    c = layers.Dropout(0.5, seed=43)(x, training=True).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # one layer draws a fresh mask per call
    d = layers.Dropout(0.5, seed=42)
    assert not np.array_equal(d(x, training=True).numpy(), d(x, training=True).numpy())


def test_dropout_gradient_uses_the_same_mask():
    x = Tensor(np.ones((10, 10), np.float32), requires_grad=True)
    y = layers.Dropout(0.5, seed=0)(x, training=True)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.numpy())


def test_dropout_rate_zero_is_identity_in_training(rng):
    x = rng.standard_normal((5, 5)).astype(np.float32)
    np.testing.assert_array_equal(layers.Dropout(0.0)(x, training=True).numpy(), x)


# -- names ---------------------------------------------------------------------------


def test_auto_names_and_clear_session():
    clear_session()
    assert layers.Dense(2).name == "dense"
    assert layers.Dense(2).name == "dense_1"
    assert layers.Dropout(0.1).name == "dropout"
    assert layers.Dense(2).name == "dense_2"
    assert layers.Dense(2, name="mine").name == "mine"
    clear_session()
    assert layers.Dense(2).name == "dense"
    assert layers.Flatten().name == "flatten"
    assert layers.Activation("relu").name == "activation"


# -- gradients of a whole stack --------------------------------------------------------


def _loss_of(model, x):
    return (model(x, training=True) ** 2).sum()


def _check_weight_grads(model, x, n_probe=8, eps=1e-6, seed=0):
    """Compare Variable.grad of every weight with central differences on a sample of entries."""
    for v in model.weights:
        v.grad = None
    _loss_of(model, x).backward()
    rng = np.random.default_rng(seed)
    for v in model.weights:
        assert v.dtype == np.float64
        got = v.grad
        assert got is not None, v.path
        flat = v.data.reshape(-1)
        for i in rng.choice(flat.size, size=min(n_probe, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + eps
            plus = _loss_of(model, x).item()
            flat[i] = old - eps
            minus = _loss_of(model, x).item()
            flat[i] = old
            np.testing.assert_allclose(
                got.reshape(-1)[i],
                (plus - minus) / (2 * eps),
                rtol=1e-5,
                atol=1e-7,
                err_msg=f"{v.path}[{i}]",
            )


def test_dense_stack_gradients_float64(float64, rng):
    model = hpnn.Sequential(
        [
            hpnn.Input((5,)),
            layers.Dense(4, activation="tanh", bias_initializer="random_normal"),
            layers.Dense(3, activation="sigmoid", bias_initializer="random_normal"),
            layers.Activation("softmax"),
        ]
    )
    x = rng.standard_normal((3, 5))
    check_grad(lambda t: model(t), [x])
    _check_weight_grads(model, Tensor(x))


def test_dropout_gradient_check_float64(float64, rng):
    layer = layers.Dropout(0.3, seed=5)
    x = rng.standard_normal((4, 6))

    def f(t):
        layer._rng = np.random.default_rng(5)  # the same mask on every evaluation
        return layer(t, training=True)

    check_grad(f, [x])


# -- errors --------------------------------------------------------------------------


def test_dense_fed_other_last_dim_after_build():
    layer = layers.Dense(3, name="head")
    layer(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="Dense 'head'") as e:
        layer(np.zeros((2, 5), np.float32))
    msg = str(e.value)
    assert "size 4" in msg and "Received" in msg and "(2, 5)" in msg


def test_dense_rank1_input():
    with pytest.raises(ValueError, match=r"Dense 'd1'.*rank >= 2.*Received"):
        layers.Dense(3, name="d1")(np.zeros((4,), np.float32))


@pytest.mark.parametrize("units", [0, -1, 2.5, "3", True])
def test_dense_bad_units(units):
    with pytest.raises(ValueError, match=r"units.*Received: units="):
        layers.Dense(units)


def test_unknown_activation_string():
    with pytest.raises(ValueError, match=r"Unknown activation.*Received: activation='relux'"):
        layers.Dense(3, activation="relux")
    with pytest.raises(ValueError, match=r"Received: activation='nope'"):
        layers.Activation("nope")


@pytest.mark.parametrize("rate", [1.5, 1.0, -0.1, "0.5"])
def test_dropout_bad_rate(rate):
    with pytest.raises(ValueError, match=r"Dropout.*\[0, 1\).*Received: rate="):
        layers.Dropout(rate)


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.Dense(0, name="my_layer"),
        lambda: layers.Dense(3, activation="relux", name="my_layer"),
        lambda: layers.Dropout(1.5, name="my_layer"),
    ],
    ids=["dense-units", "dense-activation", "dropout-rate"],
)
def test_constructor_errors_name_the_layer_instance(make):
    with pytest.raises(ValueError, match="my_layer"):
        make()


def test_unexpected_keyword_argument():
    with pytest.raises(TypeError, match=r"Dense.*unexpected keyword"):
        layers.Dense(3, unitz=4)


# -- noise_shape and spatial dropout -----------------------------------------------------------
def test_dropout_noise_shape_drops_whole_axes():
    x = np.ones((4, 5, 6), np.float32)
    y = layers.Dropout(0.5, noise_shape=(None, 1, 6), seed=0)(x, training=True).data
    assert np.all(y == y[:, :1, :])  # the same mask at every step
    assert set(np.unique(y)) <= {0.0, 2.0} and 0 < (y == 0).mean() < 1
    with pytest.raises(ValueError, match="does not broadcast"):
        layers.Dropout(0.5, noise_shape=(None, 2, 6))(x, training=True)
    assert layers.Dropout(0.5, noise_shape=(None, 1, 6)).get_config()["noise_shape"] == (
        None,
        1,
        6,
    )


@pytest.mark.parametrize(
    ("cls", "shape", "axes"),
    [(layers.SpatialDropout1D, (8, 5, 16), (1,)), (layers.SpatialDropout2D, (8, 3, 4, 16), (1, 2))],
)
def test_spatial_dropout_drops_whole_feature_maps(cls, shape, axes):
    x = np.ones(shape, np.float32)
    layer = cls(0.5, seed=1)
    np.testing.assert_array_equal(layer(x).data, x)  # inference: the identity
    y = layer(x, training=True).data
    first = y[(slice(None), *([0] * len(axes)))]  # (N, C) at the first position
    assert np.all(y == first.reshape(shape[0], *([1] * len(axes)), shape[-1]))
    assert 0.3 < (first == 0).mean() < 0.7 and set(np.unique(y)) <= {0.0, 2.0}
    assert cls.from_config(layer.get_config()).rate == 0.5


# -- Lambda ------------------------------------------------------------------------------------
def test_lambda_runs_trains_and_saves_importable_functions(tmp_path):
    from hpnn.engine import ops

    hpnn.utils.set_random_seed(0)
    double = layers.Lambda(lambda t: t * 2.0)
    model = hpnn.Sequential([hpnn.Input((4,)), layers.Lambda(ops.tanh), double, layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    np.testing.assert_allclose(model.layers[1](model.layers[0](x)).data, np.tanh(x) * 2, rtol=1e-6)
    before = model.get_weights()[0].copy()
    model.fit(x, x[:, :1], epochs=1, verbose=0)
    assert not np.allclose(model.get_weights()[0], before)  # gradients pass through
    with pytest.raises(ValueError, match=r"cannot be saved \(a lambda or a closure"):
        model.save(tmp_path / "m.hpnn")
    savable = hpnn.Sequential([hpnn.Input((4,)), layers.Lambda(ops.tanh)])
    again = hpnn.models.model_from_json(savable.to_json())
    assert again.layers[0].function is ops.tanh
    summed = layers.Lambda(lambda t: ops.sum(t, axis=1))(hpnn.Input((3, 4)))
    assert summed.shape == (None, 4)  # found by calling it on zeros
    with pytest.raises(TypeError, match="function must be callable"):
        layers.Lambda(3)


def test_masking_zeroes_masked_steps_and_passes_the_mask():
    x = np.ones((2, 4, 3), "float32")
    x[0, 1:] = 0.0
    layer = layers.Masking()
    y = layer(x)
    np.testing.assert_array_equal(layer.compute_mask(x), [[1, 0, 0, 0], [1, 1, 1, 1]])
    np.testing.assert_array_equal(y.data, x)
    x[1, 2] = -1.0  # equal to mask_value: masked and zeroed
    y = layers.Masking(mask_value=-1.0)(x)
    np.testing.assert_array_equal(y.data[1, 2], 0.0)
    t = Tensor(x, requires_grad=True)
    layers.Masking()(t).sum().backward()  # masked steps take no gradient
    np.testing.assert_array_equal(t.grad, np.broadcast_to((x != 0).any(-1)[..., None], x.shape))
    check_grad(lambda t: layers.Masking()(t), [x + 0.5])  # away from the mask value
    ids = np.array([[0, 1, 2]])
    assert layers.Embedding(5, 2, mask_zero=True).compute_mask(ids).tolist() == [[0, 1, 1]]
    with pytest.raises(ValueError, match="rank >= 3"):
        layers.Masking()(np.ones((2, 3), "float32"))


def test_unit_normalization_and_identity():
    x = np.random.default_rng(0).normal(size=(3, 4)) + 0.1
    y = layers.UnitNormalization()(Tensor(x)).data
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), 1.0, rtol=1e-12)
    check_grad(lambda t: layers.UnitNormalization()(t), [x])
    with pytest.raises(ValueError, match="axis 0 is not a feature axis"):
        layers.UnitNormalization(axis=0)(x)
    assert layers.Identity()(Tensor(x)).data is x or np.array_equal(layers.Identity()(x).data, x)


def test_unit_normalization_of_a_zero_row_has_a_finite_gradient():
    """A zero row (all ReLU outputs off) is left zero, and its gradient is x's scale
    1 / 1e-12 there, not the NaN that sqrt's derivative at 0 would make."""
    x = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]], np.float32)
    t = Tensor(x, requires_grad=True)
    y = layers.UnitNormalization()(t)
    np.testing.assert_allclose(y.data, [[0, 0, 0], [0.6, 0.8, 0]], rtol=1e-6)
    y.backward(np.ones_like(x))
    assert np.isfinite(t.grad).all()
    np.testing.assert_allclose(t.grad[0], 1e12, rtol=1e-5)


def test_gaussian_dropout():
    x = np.ones((400, 50), "float32")
    layer = layers.GaussianDropout(0.2, seed=1)
    np.testing.assert_array_equal(layer(x).data, x)  # inference: identity
    t = Tensor(x, requires_grad=True)
    y = layer(t, training=True)
    assert abs(float(y.data.mean()) - 1.0) < 0.01
    assert abs(float(y.data.std()) - np.sqrt(0.2 / 0.8)) < 0.01
    y.sum().backward()
    np.testing.assert_array_equal(t.grad, y.data)  # d(x * noise)/dx = noise, here x = 1
    again = layers.GaussianDropout(0.2, seed=1)(x, training=True)
    np.testing.assert_array_equal(again.data, y.data)  # seeded
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        layers.GaussianDropout(1.0)

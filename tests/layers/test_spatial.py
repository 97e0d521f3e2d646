"""Rescaling, ZeroPadding2D, Cropping2D and UpSampling2D against NumPy and PyTorch."""

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.engine import ops
from hpnn.testing import check_grad


def images(n=2, h=4, w=5, c=3, seed=0):
    return np.random.default_rng(seed).standard_normal((n, h, w, c))


def test_rescaling():
    x = images()
    np.testing.assert_allclose(layers.Rescaling(1 / 255, offset=-1.0)(x).data, x / 255 - 1, 1e-6)
    with pytest.raises(ValueError, match="scale must be a number"):
        layers.Rescaling("a")


@pytest.mark.parametrize(
    ("padding", "pads"),
    [(1, ((1, 1), (1, 1))), ((2, 0), ((2, 2), (0, 0))), (((0, 1), (2, 3)), ((0, 1), (2, 3)))],
)
def test_zero_padding_matches_numpy_and_its_gradient(padding, pads):
    x = images()
    layer = layers.ZeroPadding2D(padding)
    want = np.pad(x, ((0, 0), *pads, (0, 0)))
    np.testing.assert_array_equal(layer(x).data, want.astype(np.float32))
    assert layer.compute_output_shape((None, 4, 5, 3)) == (None, *want.shape[1:])
    check_grad(lambda t: ops.pad_spatial(t, pads), [x])


def test_cropping_matches_slicing_and_its_gradient():
    x = images(h=6, w=7)
    layer = layers.Cropping2D(((1, 2), (0, 3)))
    np.testing.assert_array_equal(layer(x).data, x[:, 1:4, 0:4].astype(np.float32))
    assert layer.compute_output_shape((None, 6, 7, 3)) == (None, 3, 4, 3)
    check_grad(lambda t: layers.Cropping2D(1)(t), [x])
    with pytest.raises(ValueError, match="leaves nothing"):
        layers.Cropping2D(3)(x)


@pytest.mark.parametrize("size", [2, (2, 3), (1, 1)])
def test_upsampling_matches_torch_and_its_gradient(size):
    torch = pytest.importorskip("torch")
    x = images()
    sh, sw = (size, size) if isinstance(size, int) else size
    got = layers.UpSampling2D(size)(x).data
    want = torch.nn.functional.interpolate(
        torch.tensor(x).permute(0, 3, 1, 2), scale_factor=(sh, sw), mode="nearest"
    ).permute(0, 2, 3, 1)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)
    check_grad(lambda t: ops.upsample(t, (sh, sw)), [x])


def test_configs_round_trip_and_bad_arguments():
    model = hpnn.Sequential(
        [
            hpnn.Input((8, 8, 1)),
            layers.Rescaling(2.0),
            layers.ZeroPadding2D(((1, 0), (0, 2))),
            layers.Cropping2D(1),
            layers.UpSampling2D((2, 1)),
        ]
    )
    again = hpnn.models.model_from_json(model.to_json())
    for a, b in zip(again.layers, model.layers, strict=True):
        assert a.get_config() == b.get_config()
    with pytest.raises(ValueError, match="padding must be an int >= 0"):
        layers.ZeroPadding2D(-1)
    with pytest.raises(NotImplementedError, match="interpolation='nearest' only"):
        layers.UpSampling2D(interpolation="bilinear")
    with pytest.raises(ValueError, match="channels_last"):
        layers.ZeroPadding2D(data_format="channels_first")
    with pytest.raises(ValueError, match="expected input of rank 4"):
        layers.UpSampling2D()(np.zeros((2, 3, 4)))


def test_normalization_given_statistics_adapt_and_save(tmp_path):
    layer = layers.Normalization(mean=[1.0, 2.0], variance=[4.0, 0.0])
    x = np.array([[3.0, 2.0], [1.0, 5.0]], np.float32)
    # a zero variance divides by epsilon (Keras), not by zero
    np.testing.assert_allclose(layer(x).data, [[1.0, 0.0], [0.0, 3e7]], rtol=1e-6)
    data = np.random.default_rng(0).normal(5, 3, (64, 3))
    adapted = layers.Normalization()
    adapted.adapt(b for b in np.split(data, 4))  # batches from a generator
    np.testing.assert_allclose(adapted.mean.numpy(), data.mean(0), rtol=1e-5)
    np.testing.assert_allclose(adapted.variance.numpy(), data.var(0), rtol=1e-5)
    model = hpnn.Sequential([hpnn.Input((3,)), adapted, layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(data, data[:, :1], epochs=1, verbose=0)
    np.testing.assert_allclose(adapted.mean.numpy(), data.mean(0), rtol=1e-5)  # not trained
    model.save(tmp_path / "n.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "n.hpnn")
    np.testing.assert_array_equal(loaded.predict(data, verbose=0), model.predict(data, verbose=0))
    with pytest.raises(ValueError, match="mean and variance must be given together"):
        layers.Normalization(mean=1.0)
    with pytest.raises(ValueError, match="adapt\\(\\) received no data"):
        layers.Normalization().adapt([])


def test_resizing_gradient_identity_and_errors():
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 2))
    for kw in ({"height": 3, "width": 9}, {"height": 4, "width": 4, "crop_to_aspect_ratio": True}):
        check_grad(lambda t, kw=kw: layers.Resizing(**kw)(t), [x])
    same = layers.Resizing(5, 7)(x.astype("float32")).data
    np.testing.assert_allclose(same, x.astype("float32"), rtol=1e-6)  # same size: unchanged
    with pytest.raises(ValueError, match="interpolation must be 'bilinear' or 'nearest'"):
        layers.Resizing(2, 2, interpolation="bicubic")
    with pytest.raises(NotImplementedError, match="smaller than the crop"):
        layers.CenterCrop(8, 2)(np.zeros((1, 5, 7, 1), "float32"))

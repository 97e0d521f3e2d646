"""Tests for hpnn.layers.augmentation (and the resampler in hpnn.layers.image_transform)."""

import numpy as np
import pytest

import hpnn
from hpnn import Input, Sequential, layers
from hpnn.engine.tensor import Tensor
from hpnn.layers import (
    GaussianNoise,
    RandomContrast,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
)
from hpnn.layers.image_transform import fill_index


@pytest.fixture
def images():
    return np.random.default_rng(0).uniform(0, 1, (6, 8, 8, 3)).astype(np.float32)


def run(layer, x, training=True):
    return layer(Tensor(x), training=training).numpy()


ALL = [
    lambda: RandomFlip(seed=1),
    lambda: RandomTranslation(0.2, 0.3, seed=1),
    lambda: RandomRotation(0.1, seed=1),
    lambda: RandomZoom(0.2, seed=1),
    lambda: GaussianNoise(0.1, seed=1),
    lambda: RandomContrast(0.5, seed=1),
]


@pytest.mark.parametrize("make", ALL)
def test_identity_at_inference_and_shape_dtype_seed_in_training(make, images):
    layer = make()
    x = Tensor(images)
    assert layer(x, training=False) is x and layer(x).numpy() is images
    out = run(layer, images)
    assert out.shape == images.shape and out.dtype == np.float32
    assert not np.array_equal(out, images)
    assert layer.weights == [] and layer.count_params() == 0
    np.testing.assert_array_equal(run(make(), images), out)  # same seed, same draws
    assert not np.array_equal(run(layer, images), out)  # the next batch gets new draws
    again = type(layer).from_config(layer.get_config())
    np.testing.assert_array_equal(run(again, images), out)


def test_horizontal_and_vertical_flips_are_exact():
    x = np.random.default_rng(1).uniform(size=(64, 4, 5, 2)).astype(np.float32)
    out = run(RandomFlip("horizontal", seed=0), x)
    h = [np.array_equal(o, a[:, ::-1]) for o, a in zip(out, x, strict=True)]
    same = [np.array_equal(o, a) for o, a in zip(out, x, strict=True)]
    assert all(a != b for a, b in zip(h, same, strict=True)) and 16 < sum(h) < 48
    out = run(RandomFlip("vertical", seed=0), x)
    v = [np.array_equal(o, a[::-1]) for o, a in zip(out, x, strict=True)]
    same = [np.array_equal(o, a) for o, a in zip(out, x, strict=True)]
    assert all(a != b for a, b in zip(v, same, strict=True)) and 16 < sum(v) < 48
    out = run(RandomFlip(seed=0), x)
    kinds = set()
    for o, a in zip(out, x, strict=True):
        variants = [a, a[:, ::-1], a[::-1], a[::-1, ::-1]]
        kinds.add(next(i for i, v in enumerate(variants) if np.array_equal(o, v)))
    assert kinds == {0, 1, 2, 3}


def test_translation_by_whole_pixels_is_exact_for_each_fill_mode(images):
    x = images
    # width 8: 0.25 is 2 pixels to the right; height 8: -0.125 is 1 pixel up
    out = run(RandomTranslation((-0.125, -0.125), (0.25, 0.25), "constant", fill_value=-1.0), x)
    np.testing.assert_array_equal(out[:, :-1, 2:], x[:, 1:, :-2])
    assert (out[:, :, :2] == -1).all() and (out[:, -1] == -1).all()
    out = run(RandomTranslation(0.0, (0.25, 0.25), "wrap"), x)
    np.testing.assert_array_equal(out, np.roll(x, 2, axis=2))
    out = run(RandomTranslation(0.0, (0.25, 0.25), "nearest"), x)
    np.testing.assert_array_equal(out[:, :, :3], np.repeat(x[:, :, :1], 3, axis=2))
    out = run(RandomTranslation(0.0, (0.25, 0.25), "reflect"), x)  # d c b a | a b c d
    np.testing.assert_array_equal(out[:, :, :2], x[:, :, [1, 0]])
    np.testing.assert_array_equal(out[:, :, 2:], x[:, :, :-2])


def test_translation_half_pixel_is_bilinear_and_nearest_rounds():
    ramp = np.tile(np.arange(8, dtype=np.float32), (1, 8, 1))[..., None]  # value = column
    out = run(RandomTranslation(0.0, (1 / 16, 1 / 16), "nearest"), ramp)  # half a pixel right
    np.testing.assert_allclose(out[0, :, 1:, 0], np.tile(np.arange(7) + 0.5, (8, 1)))
    out = run(RandomTranslation(0.0, (1 / 16, 1 / 16), interpolation="nearest"), ramp)
    assert set(np.unique(out)) <= set(range(8))


def test_rotation_by_a_quarter_turn_matches_rot90(images):
    out = run(RandomRotation((0.25, 0.25), fill_mode="constant"), images)
    np.testing.assert_allclose(out, np.rot90(images, k=1, axes=(1, 2)), atol=1e-6)
    out = run(RandomRotation((-0.25, -0.25)), images)  # negative: clockwise
    np.testing.assert_allclose(
        out[:, 1:-1, 1:-1], np.rot90(images, k=-1, axes=(1, 2))[:, 1:-1, 1:-1], atol=1e-6
    )
    x = images[:, :, :6]  # not square: a half turn is still exact
    out = run(RandomRotation((0.5, 0.5)), x)
    np.testing.assert_allclose(out, x[:, ::-1, ::-1], atol=1e-6)


def test_rotation_angles_stay_in_range():
    x = np.zeros((200, 9, 9, 1), np.float32)
    x[:, 4, 8] = 1.0  # a dot on the right edge of the center row
    out = run(RandomRotation(0.1, fill_mode="constant", interpolation="nearest", seed=0), x)
    angles = []
    for o in out[..., 0]:
        r, c = np.unravel_index(np.argmax(o), o.shape)
        angles.append(np.arctan2(4 - r, c - 4))  # counter-clockwise, rows grow downwards
    angles = np.array(angles) / (2 * np.pi)
    assert angles.min() >= -0.1 - 0.02 and angles.max() <= 0.1 + 0.02
    assert angles.min() < -0.05 and angles.max() > 0.05


def test_zoom_on_a_ramp():
    ramp = np.tile(np.arange(9, dtype=np.float32), (2, 9, 1))[..., None]
    out = run(RandomZoom((-0.5, -0.5)), ramp)  # zoom in 2x: slope halves about the center
    np.testing.assert_allclose(out[0, 0, :, 0], 0.5 * np.arange(9) + 2.0, atol=1e-6)
    out = run(RandomZoom(0.0, (1.0, 1.0), fill_mode="constant"), ramp)  # out 2x, width only
    np.testing.assert_allclose(out[0, 0, 2:7, 0], 2 * np.arange(2, 7) - 4.0, atol=1e-6)
    assert (out[0, 0, [0, 1, 7, 8], 0] == 0).all()
    np.testing.assert_array_equal(out[0, 0], out[0, 5])  # the height is not zoomed


def test_gaussian_noise_statistics_and_gradient():
    x = np.zeros((100, 50, 20), np.float32)
    out = run(GaussianNoise(0.3, seed=0), x)
    assert abs(out.mean()) < 0.005 and out.std() == pytest.approx(0.3, rel=0.01)
    t = Tensor(np.ones((4, 3), np.float32), requires_grad=True)
    GaussianNoise(0.5, seed=0)(t, training=True).sum().backward()
    np.testing.assert_array_equal(t.grad, np.ones((4, 3)))


def test_contrast_formula_per_image_and_channel(images):
    x = 100 + images * 100  # stays inside the default value_range (0, 255)
    out = run(RandomContrast((0.5, 0.8), seed=3), x)
    f = np.random.default_rng(3).uniform(0.5, 1.8, size=len(x)).astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(
        out, (x - mean) * f[:, None, None, None] + mean, rtol=1e-5, atol=1e-4
    )
    np.testing.assert_allclose(out.mean(axis=(1, 2)), mean[:, 0, 0], rtol=1e-5)
    out = run(RandomContrast((0.0, 1.0), value_range=(0, 1), seed=0), images)
    assert out.min() >= 0 and out.max() <= 1


def test_bad_arguments_and_inputs_raise_with_received():
    with pytest.raises(ValueError, match="Received: mode='diagonal'"):
        RandomFlip("diagonal")
    with pytest.raises(ValueError, match="Received: fill_mode='mirror'"):
        RandomRotation(0.1, fill_mode="mirror")
    with pytest.raises(ValueError, match=r"\[-1.0, 1.0\]. Received: width_factor=1.5"):
        RandomTranslation(0.1, 1.5)
    with pytest.raises(ValueError, match=r"lower <= upper. Received: factor=\(0.3, 0.1\)"):
        RandomRotation((0.3, 0.1))
    with pytest.raises(ValueError, match=r"Received: height_factor=-1\.5"):
        RandomZoom(-1.5)
    with pytest.raises(ValueError, match=r"Received: factor=-0\.1"):
        RandomContrast(-0.1)
    with pytest.raises(ValueError, match="Received: stddev=-1"):
        GaussianNoise(-1)
    with pytest.raises(ValueError, match=r"rank 4.*Received: shape=\(None, 8, 8\)"):
        RandomFlip()(np.zeros((2, 8, 8), np.float32), training=True)


def test_in_a_model_augments_in_fit_only():
    hpnn.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(size=(32, 8, 8, 1)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 2, 32)
    model = Sequential([
        Input((8, 8, 1)), RandomFlip(seed=0), RandomRotation(0.1, seed=0), RandomZoom(0.1, seed=0),
        layers.Flatten(), layers.Dense(2, activation="softmax"),
    ])  # fmt: skip
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
    assert len(model.weights) == 2


def test_image_layers_refuse_inputs_that_need_a_gradient():
    t = Tensor(np.ones((1, 4, 4, 1), np.float32), requires_grad=True)
    with pytest.raises(ValueError, match="before any layer with weights"):
        RandomRotation(0.1)(t * 2.0, training=True)


def test_fill_index_modes():
    i = np.arange(-5, 9)
    assert fill_index(i, 4, "wrap", np).tolist() == [3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0]
    assert fill_index(i, 4, "reflect", np).tolist() == [3, 3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0, 0]
    assert fill_index(i, 4, "nearest", np).tolist() == [0] * 6 + [1, 2, 3] + [3] * 5

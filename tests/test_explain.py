"""hpnn.explain: saliency, SmoothGrad, integrated gradients, Grad-CAM and occlusion against
finite differences and hand-computed references; the completeness of IG on a trained model."""

from pathlib import Path

import numpy as np
import pytest

import hpnn
from hpnn import Input, Sequential, explain, layers
from hpnn.backend import set_floatx

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def float64():
    """Models built inside compute in float64, so finite differences are exact to ~1e-8."""
    set_floatx("float64")
    try:
        yield
    finally:
        set_floatx("float32")


def smooth_cnn(seed=0):
    """A small model with smooth activations (finite differences need no kinks)."""
    hpnn.utils.set_random_seed(seed)
    return Sequential(
        [
            Input(shape=(6, 5, 2)),
            layers.Conv2D(3, 3, activation="tanh", padding="same", name="conv"),
            layers.AveragePooling2D(2),
            layers.Flatten(),
            layers.Dense(4, activation="softmax"),
        ]
    )


def linear_head(seed=0):
    """Conv (ReLU) then a linear Dense: Grad-CAM's weights are hand-computable."""
    hpnn.utils.set_random_seed(seed)
    return Sequential(
        [
            Input(shape=(6, 6, 2)),
            layers.Conv2D(3, 3, activation="relu", name="conv"),
            layers.Flatten(name="flat"),
            layers.Dense(4, name="head"),
        ]
    )


def linear_model(seed=0):
    hpnn.utils.set_random_seed(seed)
    return Sequential([Input(shape=(4, 4, 1)), layers.Flatten(), layers.Dense(3)])


def rand(*shape, seed=1):
    return np.random.default_rng(seed).random(shape)


def finite_difference(model, x, target, h=1e-5):
    """Central differences of output[i, target[i]] w.r.t. every input entry."""
    grad = np.zeros_like(x)
    flat = grad.reshape(len(x), -1)
    for j in range(flat.shape[1]):
        e = np.zeros(flat.shape[1])
        e[j] = h
        e = e.reshape(x.shape[1:])
        up = model.predict(x + e, verbose=0)[np.arange(len(x)), target]
        down = model.predict(x - e, verbose=0)[np.arange(len(x)), target]
        flat[:, j] = (up - down) / (2 * h)
    return grad


# -- saliency -----------------------------------------------------------------------------
def test_saliency_matches_finite_differences(float64):
    model, x = smooth_cnn(), rand(3, 6, 5, 2)
    target = model.predict(x, verbose=0).argmax(axis=1)
    got = explain.saliency(model, x)
    np.testing.assert_allclose(got, finite_difference(model, x, target), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(explain.saliency(model, x, absolute=True), np.abs(got))
    other = explain.saliency(model, x, target=[1, 2, 3])
    np.testing.assert_allclose(
        other, finite_difference(model, x, np.array([1, 2, 3])), rtol=1e-5, atol=1e-9
    )


def test_saliency_of_a_linear_model_is_its_kernel_column():
    model, x = linear_model(), rand(5, 4, 4, 1).astype(np.float32)
    kernel = model.layers[-1].kernel.numpy()
    got = explain.saliency(model, x, target=2)
    np.testing.assert_allclose(got, np.broadcast_to(kernel[:, 2].reshape(4, 4, 1), x.shape))
    # SmoothGrad averages gradients at noisy points: the same constant for a linear model
    smooth = explain.smoothgrad(model, x, target=2, samples=7, seed=0, batch_size=4)
    np.testing.assert_allclose(smooth, got, rtol=1e-5)


def test_smoothgrad_is_seeded_and_zero_noise_is_the_gradient(float64):
    model, x = smooth_cnn(), rand(2, 6, 5, 2)
    a = explain.smoothgrad(model, x, samples=4, seed=3)
    np.testing.assert_array_equal(a, explain.smoothgrad(model, x, samples=4, seed=3))
    assert not np.allclose(a, explain.saliency(model, x))
    np.testing.assert_allclose(
        explain.smoothgrad(model, x, samples=3, noise_level=0.0),
        explain.saliency(model, x),
        rtol=1e-10,
    )


# -- integrated gradients ---------------------------------------------------------------------
def test_integrated_gradients_of_a_linear_model_are_exact():
    model, x = linear_model(), rand(4, 4, 4, 1).astype(np.float32)
    kernel = model.layers[-1].kernel.numpy()
    base = np.full((4, 4, 1), 0.25, np.float32)
    ig = explain.integrated_gradients(model, x, target=1, baseline=base, steps=3)
    np.testing.assert_allclose(ig.values, (x - base) * kernel[:, 1].reshape(4, 4, 1), rtol=1e-5)
    assert np.all(np.abs(ig.completeness_gap) < 1e-5)
    assert ig.values.shape == x.shape and ig.values.dtype == np.float32


@pytest.mark.parametrize("method", ["trapezoid", "midpoint", "gausslegendre"])
def test_integrated_gradients_converge_with_steps(float64, method):
    model, x = smooth_cnn(), rand(3, 6, 5, 2)
    coarse = explain.integrated_gradients(model, x, steps=2, method=method, batch_size=5)
    fine = explain.integrated_gradients(model, x, steps=64, method=method, batch_size=5)
    assert np.all(fine.relative_gap < 1e-3)
    assert np.abs(fine.completeness_gap).max() < np.abs(coarse.completeness_gap).max()
    np.testing.assert_array_equal(fine.target, model.predict(x, verbose=0).argmax(axis=1))


def _trained_cnn():
    """A small CNN trained briefly on Fashion-MNIST (synthetic stripes if it is missing)."""
    hpnn.utils.set_random_seed(0)
    if FASHION.is_dir():
        from hpnn.cli import load_fashion_mnist

        (x, y), _, (x_test, _) = load_fashion_mnist(validation=0)
        x, y, x_test = x[:4000], y[:4000], x_test[:8].copy()
    else:
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 10, 4008)
        x = rng.random((4008, 28, 28, 1)).astype(np.float32) * 0.3
        for i, c in enumerate(labels):
            x[i, :, 2 * c : 2 * c + 3] += 0.7
        y = hpnn.utils.to_categorical(labels, 10)
        x, y, x_test = x[:4000], y[:4000], x[4000:]
    model = Sequential(
        [
            Input(shape=(28, 28, 1)),
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    return model, x_test


def test_integrated_gradients_completeness_on_a_trained_model():
    model, x = _trained_cnn()
    before = [w.copy() for w in model.get_weights()]
    ig = explain.integrated_gradients(model, x, steps=128)
    delta = np.abs(ig.f_x - ig.f_baseline)
    assert np.all(delta > 1e-3)  # the attributions have something to add up to
    assert np.all(np.abs(ig.completeness_gap) < 0.01 * delta), ig.relative_gap
    np.testing.assert_allclose(ig.f_x, model.predict(x, verbose=0).max(axis=1), rtol=1e-6)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(w.grad is None for w in model.weights)
    assert all(w.requires_grad for w in model.trainable_weights)


# -- Grad-CAM -------------------------------------------------------------------------------
def _conv_valid(x, kernel, bias):
    n, h, w, _ = x.shape
    kh, kw, _, o = kernel.shape
    out = np.zeros((n, h - kh + 1, w - kw + 1, o))
    for i in range(h - kh + 1):
        for j in range(w - kw + 1):
            out[:, i, j] = np.einsum("npqc,pqco->no", x[:, i : i + kh, j : j + kw], kernel)
    return out + bias


def _resize_reference(a, size):
    """Bilinear resize with half-pixel centres, one output pixel at a time."""
    n, h, w = a.shape
    out = np.zeros((n, *size))
    for i in range(size[0]):
        for j in range(size[1]):
            r = min(max((i + 0.5) * h / size[0] - 0.5, 0), h - 1)
            c = min(max((j + 0.5) * w / size[1] - 0.5, 0), w - 1)
            r0, c0 = int(np.floor(r)), int(np.floor(c))
            r1, c1 = min(r0 + 1, h - 1), min(c0 + 1, w - 1)
            fr, fc = r - r0, c - c0
            out[:, i, j] = (1 - fr) * ((1 - fc) * a[:, r0, c0] + fc * a[:, r0, c1]) + fr * (
                (1 - fc) * a[:, r1, c0] + fc * a[:, r1, c1]
            )
    return out


def test_resize_bilinear_matches_the_pixelwise_formula():
    a = rand(2, 3, 4)
    np.testing.assert_allclose(
        explain.resize_bilinear(a, (7, 9)), _resize_reference(a, (7, 9)), rtol=1e-5
    )
    np.testing.assert_allclose(
        explain.resize_bilinear([[[0.0, 1], [2, 3]]], (4, 4))[0, 0], [0, 0.25, 0.75, 1]
    )


def test_grad_cam_matches_the_hand_computed_map(float64):
    model, x = linear_head(), rand(3, 6, 6, 2) - 0.3
    conv, head = model.layers[0], model.layers[-1]
    target = np.array([0, 3, 1])
    acts = np.maximum(_conv_valid(x, conv.kernel.numpy(), conv.bias.numpy()), 0)  # (3, 4, 4, 3)
    # y_t = sum A * W[:, t] + b, so dy_t/dA = W[:, t] laid out like A
    grads = head.kernel.numpy()[:, target].T.reshape(3, 4, 4, 3)
    cam = np.maximum(np.einsum("nhwk,nk->nhw", acts, grads.mean(axis=(1, 2))), 0)
    cam = _resize_reference(cam, (6, 6))
    cam /= cam.max(axis=(1, 2), keepdims=True)
    got = explain.grad_cam(model, x, "conv", target=target)
    assert got.shape == (3, 6, 6)
    np.testing.assert_allclose(got, cam, rtol=1e-6, atol=1e-9)
    # the default layer is the last Conv2D
    np.testing.assert_allclose(explain.grad_cam(model, x, target=target), got)


def test_grad_cam_through_a_fused_conv_pool_model_equals_the_unfused_one():
    hpnn.utils.set_random_seed(2)
    model = Sequential(
        [
            Input(shape=(8, 8, 1)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(3, 2, activation="relu"),
            layers.MaxPooling2D(1),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ]
    )
    x = rand(4, 8, 8, 1).astype(np.float32)
    cam = explain.grad_cam(model, x, model.layers[0].name)
    assert cam.dtype == np.float32 and cam.shape == (4, 8, 8)
    assert cam.min() >= 0 and np.all((cam.max(axis=(1, 2)) == 1) | (cam.max(axis=(1, 2)) == 0))


def test_grad_cam_errors_name_the_layer():
    model, x = linear_head(), rand(1, 6, 6, 2)
    with pytest.raises(ValueError, match=r"no layer named 'nope'. Layers: \['conv', 'flat'"):
        explain.grad_cam(model, x, "nope")
    with pytest.raises(ValueError, match=r"layer 'flat' must output 4-D activations"):
        explain.grad_cam(model, x, "flat")
    with pytest.raises(ValueError, match="has no Conv2D layer"):
        explain.grad_cam(linear_model(), rand(1, 4, 4, 1))


# -- occlusion ------------------------------------------------------------------------------
def test_occlusion_of_a_linear_model_matches_brute_force():
    model, x = linear_model(), rand(2, 4, 4, 1).astype(np.float32)
    w = model.layers[-1].kernel.numpy()[:, 2].reshape(4, 4)
    got = explain.occlusion(model, x, target=2, window=(2, 3), stride=2, fill=0.5, batch_size=3)
    want = np.zeros((2, 4, 4))
    count = np.zeros((4, 4))
    for t in (0, 2):
        for le in (0, 1):  # 0, then the last start flush with the edge
            drop = ((x[..., 0] - 0.5) * w)[:, t : t + 2, le : le + 3].sum(axis=(1, 2))
            want[:, t : t + 2, le : le + 3] += drop[:, None, None]
            count[t : t + 2, le : le + 3] += 1
    np.testing.assert_allclose(got, want / count, rtol=1e-4, atol=1e-6)


# -- arguments ------------------------------------------------------------------------------
def test_bad_arguments_raise_with_received():
    model, x = linear_model(), rand(2, 4, 4, 1)
    with pytest.raises(ValueError, match=r"target must be a class index in \[0, 3\)"):
        explain.saliency(model, x, target=5)
    with pytest.raises(ValueError, match=r"baseline must be None.*Received: shape=\(3,\)"):
        explain.integrated_gradients(model, x, baseline=np.zeros(3))
    with pytest.raises(ValueError, match="method must be one of"):
        explain.integrated_gradients(model, x, method="simpson")
    with pytest.raises(ValueError, match="x must be a batch of model inputs"):
        explain.saliency(model, x[0])
    with pytest.raises(ValueError, match=r"steps must be a positive int\. Received: steps=0"):
        explain.integrated_gradients(model, x, steps=0)


# -- pictures and the command line -------------------------------------------------------------
def test_overlays_and_cli_write_pngs(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    model, x = linear_head(), rand(2, 6, 6, 2).astype(np.float32)
    maps = {"saliency": explain.saliency(model, x)[0], "grad_cam": explain.grad_cam(model, x)[0]}
    for path in (
        explain.save_overlay(x[0], maps["saliency"], tmp_path / "one.png"),
        explain.plot_explanations(x[0], maps, tmp_path / "all.png"),
    ):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = tmp_path / "model.hpnn"
    try:
        model.save(saved)
    except (NotImplementedError, ImportError) as e:
        pytest.skip(f"model.save is not available: {e}")
    np.save(tmp_path / "batch.npy", x)
    out = tmp_path / "pics"
    argv = [
        str(saved),
        "--image",
        str(tmp_path / "batch.npy"),
        "--index",
        "1",
        "--out",
        str(out),
        "--methods",
        "saliency",
        "integrated_gradients",
        "grad_cam",
        "--steps",
        "8",
    ]
    assert explain.cli_main(argv) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == [
        "batch_explain.png",
        "batch_grad_cam.png",
        "batch_integrated_gradients.png",
        "batch_saliency.png",
    ]
    assert explain.cli_main([str(saved), "--image", str(tmp_path / "none.npy")]) == 2
    assert "error" in capsys.readouterr().err

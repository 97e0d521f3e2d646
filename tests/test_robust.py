"""hpnn.robust: FGSM and PGD against hand-computed gradients and a trained Fashion-MNIST CNN,
the robustness report, and adversarial training."""

from pathlib import Path

import numpy as np
import pytest

import hpnn
from hpnn import Input, Sequential, layers, robust
from hpnn.utils import to_categorical

FASHION = Path("/usr/share/datasets/fashion-mnist")


def softmax_regression(seed=0):
    """Dense softmax on flattened 4x4 images: the input gradient of the loss is W (p - y)."""
    hpnn.utils.set_random_seed(seed)
    return Sequential(
        [Input(shape=(4, 4, 1)), layers.Flatten(), layers.Dense(3, activation="softmax")]
    )


def data(n=20, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((n, 4, 4, 1)).astype(np.float32), rng.integers(0, 3, n)


def loss_grad(model, x, y):
    kernel = model.layers[-1].kernel.numpy()
    p = model.predict(x, verbose=0)
    return ((p - to_categorical(y, 3)) @ kernel.T).reshape(x.shape)


# -- attacks on a model with a known gradient ---------------------------------------------------
def test_fgsm_is_the_sign_of_the_hand_computed_gradient():
    model, (x, y) = softmax_regression(), data()
    step = 0.05 * np.sign(loss_grad(model, x, y))
    np.testing.assert_allclose(robust.fgsm(model, x, y, 0.05), np.clip(x + step, 0, 1))
    # one-hot labels, and targeted (descending the loss of the target class)
    np.testing.assert_allclose(
        robust.fgsm(model, x, to_categorical(y, 3), 0.05), np.clip(x + step, 0, 1)
    )
    np.testing.assert_allclose(
        robust.fgsm(model, x, y, 0.05, targeted=True), np.clip(x - step, 0, 1)
    )
    # no clipping: the full step, outside [0, 1] where it goes there
    free = robust.fgsm(model, x, y, 0.05, input_range=None)
    np.testing.assert_allclose(free, x + step)
    assert free.min() < 0 or free.max() > 1


def test_a_compiled_sparse_loss_is_used_with_integer_labels():
    model, (x, y) = softmax_regression(), data()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    step = 0.1 * np.sign(loss_grad(model, x, y))
    np.testing.assert_allclose(robust.fgsm(model, x, y, 0.1), np.clip(x + step, 0, 1))
    np.testing.assert_allclose(
        robust.fgsm(model, x, to_categorical(y, 3), 0.1), np.clip(x + step, 0, 1)
    )


def test_pgd_with_one_full_step_and_no_random_start_is_fgsm():
    model, (x, y) = softmax_regression(), data()
    got = robust.pgd(model, x, y, 0.1, steps=1, step_size=0.1, random_start=False)
    np.testing.assert_allclose(got, robust.fgsm(model, x, y, 0.1))


@pytest.mark.parametrize("norm", ["inf", 2])
def test_pgd_stays_in_the_ball_and_the_input_range(norm):
    model, (x, y) = softmax_regression(), data(50)
    eps = 0.3 if norm == "inf" else 1.0
    adv = robust.pgd(model, x, y, eps, norm=norm, steps=5, seed=0, batch_size=16)
    assert adv.shape == x.shape and adv.dtype == np.float32
    assert adv.min() >= 0 and adv.max() <= 1
    d = (adv - x).reshape(len(x), -1)
    size = np.abs(d).max(axis=1) if norm == "inf" else np.sqrt((d * d).sum(axis=1))
    assert size.max() <= eps * (1 + 1e-5)
    np.testing.assert_array_equal(
        adv, robust.pgd(model, x, y, eps, norm=norm, steps=5, seed=0, batch_size=16)
    )


def test_attacks_leave_the_model_alone():
    model, (x, y) = softmax_regression(), data()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    before = model.get_weights()
    robust.pgd(model, x, y, 0.1, steps=3, seed=0)
    robust.fgsm(model, x, y, 0.1)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(w.grad is None and w.requires_grad for w in model.weights)


def test_bad_arguments_raise_with_received():
    model, (x, y) = softmax_regression(), data()
    with pytest.raises(ValueError, match=r"eps must be a number >= 0\. Received: eps=-0\.1"):
        robust.fgsm(model, x, y, -0.1)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        robust.fgsm(model, x, y + 3, 0.1)
    with pytest.raises(ValueError, match="y must be 20 integer labels"):
        robust.fgsm(model, x, y[:5], 0.1)
    with pytest.raises(ValueError, match=r"norm must be 'inf' or 2\. Received: norm=1"):
        robust.pgd(model, x, y, 0.1, norm=1)
    with pytest.raises(ValueError, match="attacks must be some of"):
        robust.evaluate_robustness(model, x, y, attacks=("cw",))


def test_gaussian_noise_is_seeded_and_clipped():
    x = np.full((100, 4), 0.5, np.float32)
    a = robust.gaussian_noise(x, 0.2, seed=1)
    np.testing.assert_array_equal(a, robust.gaussian_noise(x, 0.2, seed=1))
    assert 0.15 < (a - x).std() < 0.25 and a.min() >= 0 and a.max() <= 1


# -- a trained Fashion-MNIST CNN -----------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_cnn():
    if not FASHION.is_dir():
        pytest.skip(f"Fashion-MNIST is not installed in {FASHION}")
    from hpnn.cli import build_model, load_fashion_mnist

    hpnn.utils.set_random_seed(0)
    (x, y), _, (x_test, y_test) = load_fashion_mnist(validation=0)
    model = build_model("cnn")
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:5000], y[:5000], epochs=1, batch_size=64, verbose=0)
    return model, x_test[:500].copy(), y_test[:500].argmax(axis=1)


def _accuracy(model, x, y):
    return float(np.mean(model.predict(x, verbose=0).argmax(axis=1) == y))


def test_fgsm_and_pgd_break_a_trained_cnn(trained_cnn):
    model, x, y = trained_cnn
    clean = _accuracy(model, x, y)
    assert clean > 0.6
    adv_fgsm = robust.fgsm(model, x, y, 0.1)
    adv_pgd = robust.pgd(model, x, y, 0.1, steps=10, seed=0)
    for adv in (adv_fgsm, adv_pgd):
        assert adv.min() >= 0 and adv.max() <= 1
        assert np.abs(adv - x).max() <= 0.1 + 1e-6
    acc_fgsm, acc_pgd = _accuracy(model, adv_fgsm, y), _accuracy(model, adv_pgd, y)
    # a sharp drop: about 0.74 -> 0.36 for this briefly trained model (0.88 -> 0.04 trained fully)
    assert clean - acc_fgsm > 0.25, (clean, acc_fgsm)
    assert acc_pgd <= acc_fgsm, (acc_fgsm, acc_pgd)


def test_robustness_report_on_the_trained_cnn(trained_cnn, tmp_path):
    model, x, y = trained_cnn
    report = robust.evaluate_robustness(model, x[:200], y[:200], epsilons=[0.02, 0.1], seed=0)
    assert report.epsilons == [0.02, 0.1] and list(report.accuracy) == ["fgsm", "pgd", "noise"]
    fgsm, pgd, noise = (report.accuracy[a] for a in ("fgsm", "pgd", "noise"))
    assert pgd[1] <= fgsm[1] < report.clean and fgsm[0] >= fgsm[1]
    assert noise[1] > fgsm[1]  # random noise of the same size hurts far less
    lines = str(report).splitlines()
    assert lines[0] == "| epsilon | clean | FGSM | PGD | Gaussian noise |" and len(lines) == 4
    assert report.as_dict()["samples"] == 200
    pytest.importorskip("matplotlib")
    assert report.plot(tmp_path / "robust.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_prints_the_table_of_a_saved_model(trained_cnn, tmp_path, capsys):
    model = trained_cnn[0]
    saved = tmp_path / "cnn.hpnn"
    try:
        model.save(saved)
    except (NotImplementedError, ImportError) as e:
        pytest.skip(f"model.save is not available: {e}")
    argv = [
        str(saved),
        "--limit",
        "60",
        "--eps",
        "0.1",
        "--attacks",
        "fgsm",
        "--json",
        str(tmp_path / "r.json"),
    ]
    assert robust.cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "| epsilon | clean | FGSM |" in out and "| 0.1 |" in out
    assert (tmp_path / "r.json").exists()


# -- adversarial training --------------------------------------------------------------------------
def test_adversarial_training_swaps_a_fraction_of_each_batch():
    model, (x, y) = softmax_regression(), data(40)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    callback = robust.AdversarialTraining(0.1, ratio=0.25, seed=0)
    callback.set_model(model)
    out = callback.perturb(x, y)
    changed = np.any(out != x, axis=(1, 2, 3))
    assert changed.sum() <= 10 and changed.sum() >= 5  # 10 attacked; a few may not move
    np.testing.assert_array_equal(out[~changed], x[~changed])
    assert np.abs(out - x).max() <= 0.1 + 1e-6


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_adversarial_training_runs_in_fit_and_restores_train_step(attack):
    model, (x, y) = softmax_regression(), data(64)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    seen = []
    callback = robust.AdversarialTraining(0.2, attack=attack, ratio=1.0, seed=0, steps=2)
    if attack == "fgsm":
        callback = robust.AdversarialTraining(0.2, ratio=1.0, seed=0)
    original = callback.perturb

    def spy(xb, yb):
        out = original(xb, yb)
        seen.append(float(np.abs(out - xb).max()))
        return out

    callback.perturb = spy
    history = model.fit(
        x, to_categorical(y, 3), epochs=2, batch_size=16, verbose=0, callbacks=[callback]
    )
    assert len(history.history["loss"]) == 2 and len(seen) == 8
    assert max(seen) == pytest.approx(0.2, abs=1e-6)
    assert "train_step" not in vars(model)  # the class's own train_step again


def test_adversarial_training_arguments():
    with pytest.raises(ValueError, match=r"ratio must be in \(0, 1\]\. Received: ratio=0"):
        robust.AdversarialTraining(0.1, ratio=0)
    with pytest.raises(ValueError, match="attack must be 'fgsm' or 'pgd'"):
        robust.AdversarialTraining(0.1, attack="cw")

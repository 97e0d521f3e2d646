"""Keras 3's Lamb, Ftrl and Adafactor in hpnn: the same updates as Keras over several
steps (matrices, vectors, a rank-3 variable, a scalar), by hand, in training, and
serialize/deserialize."""

import math

import numpy as np
import pytest

import hpnn
from hpnn import layers, optimizers
from hpnn.engine.variable import Variable

SHAPES = [(3, 4), (4,), (2, 3, 5), (1,)]


def steps_of(ours, theirs, keras, steps=6, seed=0):
    """Both optimizers applied to the same variables and gradients; the variables'
    final values (hpnn's, Keras')."""
    rng = np.random.default_rng(seed)
    start = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    ours_v = [Variable(w.copy()) for w in start]
    theirs_v = [keras.Variable(w.copy()) for w in start]
    for _ in range(steps):
        grads = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
        ours.apply([g.copy() for g in grads], ours_v)
        theirs.apply([keras.ops.convert_to_tensor(g) for g in grads], theirs_v)
    got = [v.numpy() for v in ours_v]
    want = [keras.ops.convert_to_numpy(v) for v in theirs_v]
    assert not np.allclose(got[0], start[0])  # (the steps moved them)
    return got, want


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("Lamb", {}),
        ("Lamb", {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "weight_decay": 0.01}),
        ("Lamb", {"learning_rate": 0.05, "clipnorm": 1.0}),
        ("Ftrl", {}),
        (
            "Ftrl",
            {
                "learning_rate": 0.05,
                "l1_regularization_strength": 0.01,
                "l2_regularization_strength": 0.02,
                "learning_rate_power": -0.6,
                "l2_shrinkage_regularization_strength": 0.01,
                "beta": 0.1,
                "initial_accumulator_value": 0.5,
            },
        ),
        ("Ftrl", {"learning_rate": 0.1, "l1_regularization_strength": 0.5}),  # exact zeros
        ("Adafactor", {}),
        (
            "Adafactor",
            {
                "learning_rate": 0.5,
                "relative_step": False,
                "clip_threshold": 0.5,
                "beta_2_decay": -0.6,
                "epsilon_2": 1e-2,
            },
        ),
        ("Adafactor", {"learning_rate": 0.01, "global_clipnorm": 2.0}),
    ],
)
def test_updates_follow_keras(keras, name, kwargs):
    got, want = steps_of(
        getattr(optimizers, name)(**kwargs), getattr(keras.optimizers, name)(**kwargs), keras
    )
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)


def test_adafactor_with_a_schedule_follows_keras(keras):
    ours = optimizers.Adafactor(hpnn.optimizers.schedules.ExponentialDecay(0.5, 2, 0.5))
    theirs = keras.optimizers.Adafactor(keras.optimizers.schedules.ExponentialDecay(0.5, 2, 0.5))
    got, want = steps_of(ours, theirs, keras)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)


def test_configs_follow_keras(keras):
    for name, kwargs in [
        ("Lamb", {"beta_1": 0.8}),
        ("Ftrl", {"beta": 0.2}),
        ("Adafactor", {"clip_threshold": 2.0}),
    ]:
        ours = getattr(optimizers, name)(**kwargs).get_config()
        theirs = getattr(keras.optimizers, name)(**kwargs).get_config()
        shared = set(ours) & set(theirs)
        assert set(ours) - shared == set(), name  # every hpnn key is one of Keras'
        for key in shared - {"learning_rate", "name"}:  # (Keras numbers its names: lamb_3)
            assert ours[key] == pytest.approx(theirs[key]), (name, key)
        assert ours["learning_rate"] == pytest.approx(float(theirs["learning_rate"]))


def test_updates_by_hand():
    # Lamb, first step: m_hat = g, v_hat = g^2, update = g / (|g| + eps) ~ sign(g); the
    # trust ratio ||w|| / ||update|| makes the step lr * ||w|| along sign(g)
    w = Variable(np.array([3.0, 4.0], np.float32))
    optimizers.Lamb(learning_rate=0.1).apply([np.array([0.5, -2.0], np.float32)], [w])
    step = 0.1 * 5.0 / math.sqrt(2)
    np.testing.assert_allclose(w.numpy(), [3.0 - step, 4.0 + step], rtol=1e-5)
    # Ftrl with L1 above the first gradient's size: the weight is set to exactly 0
    w = Variable(np.array([1.0, -1.0], np.float32))
    optimizers.Ftrl(learning_rate=0.1, l1_regularization_strength=10.0).apply(
        [np.array([0.3, -0.2], np.float32)], [w]
    )
    np.testing.assert_array_equal(w.numpy(), [0.0, 0.0])
    # Ftrl, no penalties, first step from w: linear = g - (sqrt(a + g^2) - sqrt(a)) / lr * w,
    # w_new = -linear / (sqrt(a + g^2) / lr)
    w0, g, a, lr = 0.5, 0.4, 0.1, 0.2
    w = Variable(np.array([w0], np.float32))
    optimizers.Ftrl(learning_rate=lr).apply([np.array([g], np.float32)], [w])
    linear = g - (math.sqrt(a + g * g) - math.sqrt(a)) / lr * w0
    assert w.numpy()[0] == pytest.approx(-linear / (math.sqrt(a + g * g) / lr), rel=1e-5)
    # Adafactor on a vector, first step: decay 1 - 1**-0.8 = 0, so v = g^2 + eps1; the
    # step is g / |g| clipped to rms 1, times max(eps2, rms(w)) * min(lr, 1)
    w = Variable(np.array([0.6, -0.8], np.float32))
    optimizers.Adafactor(learning_rate=0.1).apply([np.array([2.0, 0.5], np.float32)], [w])
    alpha = math.sqrt((0.36 + 0.64) / 2) * 0.1
    np.testing.assert_allclose(w.numpy(), [0.6 - alpha, -0.8 - alpha], rtol=1e-5)


def test_new_optimizers_by_name_train_a_model():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5], [0.0]], np.float32)
    for name in ("lamb", "ftrl", "adafactor"):
        hpnn.utils.set_random_seed(0)
        model = hpnn.Sequential([hpnn.Input((4,)), layers.Dense(1)])
        model.compile(optimizer=name, loss="mse")
        model.optimizer.learning_rate = 0.05
        history = model.fit(x, y, batch_size=16, epochs=8, verbose=0)
        assert type(model.optimizer).__name__.lower() == name
        assert history.history["loss"][-1] < 0.8 * history.history["loss"][0], name
        # optimizer state saves and loads with the model
        state = [s.copy() for s in model.optimizer.variables()]
        assert state and all(np.isfinite(s).all() for s in state)


def test_optimizer_state_round_trips_through_save(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((16, 3)).astype(np.float32), rng.standard_normal((16, 2))
    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential([hpnn.Input((3,)), layers.Dense(4), layers.Dense(2)])
    model.compile(optimizer=optimizers.Adafactor(learning_rate=0.05), loss="mse")
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "m.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "m.hpnn")
    assert isinstance(loaded.optimizer, optimizers.Adafactor)
    for a, b in zip(model.optimizer.variables(), loaded.optimizer.variables(), strict=True):
        np.testing.assert_array_equal(a, b)
    model.fit(x, y, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_serialize_deserialize():
    for opt in (
        optimizers.Lamb(learning_rate=0.02, beta_1=0.8),
        optimizers.Ftrl(l1_regularization_strength=0.1),
        optimizers.Adafactor(relative_step=False, clipnorm=1.0),
        optimizers.Adam(0.003),
    ):
        entry = optimizers.serialize(opt)
        assert entry["module"] == "keras.optimizers"
        back = optimizers.deserialize(entry)
        assert type(back) is type(opt) and back.get_config() == opt.get_config()
    assert isinstance(optimizers.deserialize("lamb"), optimizers.Lamb)


def test_bad_arguments():
    with pytest.raises(
        ValueError,
        match=r"Ftrl: l1_regularization_strength must be >= 0\. "
        r"Received: l1_regularization_strength=-1",
    ):
        optimizers.Ftrl(l1_regularization_strength=-1)
    with pytest.raises(ValueError, match=r"learning_rate_power must be <= 0\. Received"):
        optimizers.Ftrl(learning_rate_power=0.5)
    with pytest.raises(TypeError, match=r"Lamb: unexpected keyword argument\(s\) \['beta'\]"):
        optimizers.Lamb(beta=0.1)

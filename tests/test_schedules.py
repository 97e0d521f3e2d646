"""Tests for hpnn.schedules (keras.optimizers.schedules) and clipping inside fit."""

import math

import numpy as np
import pytest

import hpnn
from hpnn import Input, Sequential, layers, optimizers
from hpnn.engine.variable import Variable
from hpnn.schedules import (
    CosineDecay,
    ExponentialDecay,
    InverseTimeDecay,
    LearningRateSchedule,
    PiecewiseConstantDecay,
    deserialize,
    serialize,
)

STEPS = [0, 1, 5, 99, 100, 101, 250, 1000, 5000]


# Keras 3's closed forms, written out independently of the implementation.
def keras_exponential(step, lr0, ds, rate, staircase):
    p = step / ds
    return lr0 * rate ** (np.floor(p) if staircase else p)


def keras_inverse_time(step, lr0, ds, rate, staircase):
    p = step / ds
    return lr0 / (1 + rate * (np.floor(p) if staircase else p))


def keras_cosine(step, lr0, ds, alpha, target=None, warm=0):
    if target is None:
        s = min(step, ds)
        return lr0 * ((1 - alpha) * 0.5 * (1 + np.cos(np.pi * s / ds)) + alpha)
    s = min(step, ds + warm)
    if s < warm:
        return (target - lr0) * s / warm + lr0
    s -= warm
    return target * ((1 - alpha) * 0.5 * (1 + np.cos(np.pi * s / ds)) + alpha)


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_decay_matches_keras(staircase):
    sched = ExponentialDecay(0.1, decay_steps=100, decay_rate=0.96, staircase=staircase)
    for s in STEPS:
        assert sched(s) == pytest.approx(keras_exponential(s, 0.1, 100, 0.96, staircase), rel=1e-12)
    assert sched(0) == 0.1
    if staircase:
        assert sched(99) == 0.1 and sched(100) == pytest.approx(0.096)


@pytest.mark.parametrize("staircase", [False, True])
def test_inverse_time_decay_matches_keras(staircase):
    sched = InverseTimeDecay(0.5, decay_steps=10, decay_rate=0.5, staircase=staircase)
    for s in STEPS:
        assert sched(s) == pytest.approx(keras_inverse_time(s, 0.5, 10, 0.5, staircase), rel=1e-12)


def test_piecewise_constant_decay_boundaries_are_inclusive_on_the_left_interval():
    sched = PiecewiseConstantDecay([100, 110], [1.0, 0.5, 0.1])
    got = [sched(s) for s in (0, 99, 100, 101, 110, 111, 10_000)]
    assert got == [1.0, 1.0, 1.0, 0.5, 0.5, 0.1, 0.1]


@pytest.mark.parametrize("alpha", [0.0, 0.1])
def test_cosine_decay_matches_keras(alpha):
    sched = CosineDecay(0.2, decay_steps=1000, alpha=alpha)
    for s in STEPS:
        assert sched(s) == pytest.approx(keras_cosine(s, 0.2, 1000, alpha), rel=1e-12, abs=1e-15)
    assert sched(0) == pytest.approx(0.2)
    assert sched(500) == pytest.approx(0.2 * ((1 - alpha) * 0.5 + alpha))
    assert sched(1000) == pytest.approx(0.2 * alpha) and sched(5000) == sched(1000)


def test_cosine_decay_with_linear_warmup_matches_keras():
    sched = CosineDecay(0.0, decay_steps=1000, alpha=0.1, warmup_target=0.1, warmup_steps=100)
    for s in [*STEPS, 50, 1099, 1100, 1200]:
        want = keras_cosine(s, 0.0, 1000, 0.1, target=0.1, warm=100)
        assert sched(s) == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert sched(50) == pytest.approx(0.05)  # halfway up the ramp
    assert sched(100) == pytest.approx(0.1)  # the peak, where the cosine starts
    assert sched(1100) == pytest.approx(0.01) and sched(9999) == pytest.approx(0.01)


def test_bad_arguments_raise_with_received():
    with pytest.raises(ValueError, match="Received: decay_steps=0"):
        ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="1 less than"):
        PiecewiseConstantDecay([10, 20], [1.0, 0.5])
    with pytest.raises(ValueError, match="increasing"):
        PiecewiseConstantDecay([20, 10], [1.0, 0.5, 0.1])
    with pytest.raises(ValueError, match="warmup_steps"):
        CosineDecay(0.1, 10, warmup_target=0.2, warmup_steps=-1)
    with pytest.raises(NotImplementedError):
        LearningRateSchedule()(0)


@pytest.mark.parametrize(
    "sched",
    [
        ExponentialDecay(0.1, 100, 0.9, staircase=True),
        PiecewiseConstantDecay([5], [0.1, 0.01]),
        CosineDecay(0.1, 50, alpha=0.2, warmup_target=0.3, warmup_steps=5),
        InverseTimeDecay(0.1, 10, 2.0),
    ],
)
def test_config_round_trip(sched):
    again = type(sched).from_config(sched.get_config())
    assert [again(s) for s in STEPS] == [sched(s) for s in STEPS]
    again = deserialize(serialize(sched))
    assert type(again) is type(sched) and again.get_config() == sched.get_config()


def test_reachable_as_keras_optimizers_schedules():
    assert hpnn.optimizers.schedules.ExponentialDecay is ExponentialDecay
    assert hpnn.optimizers.schedules.CosineDecay is CosineDecay


def test_sgd_with_a_schedule_uses_the_rate_at_each_iteration():
    sched = PiecewiseConstantDecay([1, 2], [0.5, 0.25, 0.125])
    opt = optimizers.SGD(learning_rate=sched)
    v = Variable(np.array([0.0], np.float32))
    for _ in range(4):
        opt.apply([np.array([1.0], np.float32)], [v])
    # steps 0 and 1 use 0.5 (step <= 1), step 2 uses 0.25, step 3 is past the last boundary
    np.testing.assert_allclose(v.numpy(), [-(0.5 + 0.5 + 0.25 + 0.125)], rtol=1e-6)
    assert opt.learning_rate == 0.125


def test_fit_with_a_schedule_advances_per_batch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5]], np.float32)
    hpnn.utils.set_random_seed(0)
    model = Sequential([Input((3,)), layers.Dense(1)])
    sched = ExponentialDecay(0.05, decay_steps=4, decay_rate=0.5)
    model.compile(optimizer=optimizers.SGD(sched), loss="mse")
    hist = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    assert model.optimizer.iterations == 12
    assert model.optimizer.learning_rate == pytest.approx(0.05 * 0.5**3)
    assert hist.history["loss"][-1] < hist.history["loss"][0]


# -- gradient clipping in a real training step (unit tests are in test_optimizers.py) ----------


@pytest.mark.parametrize(
    ("kwargs", "bound"),
    [
        ({"clipvalue": 1e-3}, "value"),
        ({"clipnorm": 1e-3}, "norm"),
        ({"global_clipnorm": 1e-3}, "g"),
    ],
)
def test_clipping_bounds_each_sgd_update_in_fit(kwargs, bound):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 4)).astype(np.float32) * 10
    y = rng.standard_normal((32, 2)).astype(np.float32) * 10
    hpnn.utils.set_random_seed(1)
    model = Sequential([Input((4,)), layers.Dense(2)])
    model.compile(optimizer=optimizers.SGD(1.0, **kwargs), loss="mse")
    before = model.get_weights()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)  # one step
    deltas = [a - b for a, b in zip(model.get_weights(), before, strict=True)]
    if bound == "value":
        assert max(np.abs(d).max() for d in deltas) <= 1e-3 * (1 + 1e-5)
    elif bound == "norm":
        for d in deltas:
            assert np.linalg.norm(d) == pytest.approx(1e-3, rel=1e-4)  # gradients are large
    else:
        total = math.sqrt(sum(float((d.astype(np.float64) ** 2).sum()) for d in deltas))
        assert total == pytest.approx(1e-3, rel=1e-4)


def test_polynomial_decay_holds_or_cycles():
    from hpnn.schedules import PolynomialDecay

    linear = PolynomialDecay(0.1, decay_steps=10, end_learning_rate=0.0)
    assert [linear(s) for s in (0, 5, 10, 20)] == pytest.approx([0.1, 0.05, 0.0, 0.0])
    square = PolynomialDecay(0.1, 10, end_learning_rate=0.01, power=2.0)
    assert square(5) == pytest.approx(0.09 * 0.25 + 0.01)
    cyc = PolynomialDecay(0.1, 10, end_learning_rate=0.0, cycle=True)
    assert cyc(15) == pytest.approx(0.1 * (1 - 15 / 20))  # the second cycle is 20 steps
    assert PolynomialDecay.from_config(cyc.get_config())(15) == cyc(15)


def test_cosine_decay_restarts_periods():
    from hpnn.schedules import CosineDecayRestarts

    sched = CosineDecayRestarts(1.0, first_decay_steps=4, t_mul=2.0, m_mul=0.5)
    assert sched(0) == pytest.approx(1.0)
    assert sched(2) == pytest.approx(0.5)  # half way down the first period
    assert sched(4) == pytest.approx(0.5)  # the restart: m_mul times the first peak
    assert sched(8) == pytest.approx(0.25)  # half way through the second (8 steps long)
    assert sched(12) == pytest.approx(0.25)  # the third starts at 0.25
    flat = CosineDecayRestarts(1.0, 4, t_mul=1.0, alpha=0.2)
    assert flat(4) == pytest.approx(1.0) and flat(6) == pytest.approx(0.6)
    assert hpnn.optimizers.schedules.deserialize(hpnn.optimizers.schedules.serialize(sched))(
        8
    ) == pytest.approx(0.25)

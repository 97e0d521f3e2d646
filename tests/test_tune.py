"""Tests for hpnn.tune: lr_find (the learning-rate range test) and cross_validate."""

import numpy as np
import pytest

import hpnn
from hpnn import Input, Sequential, layers, optimizers
from hpnn import random as hpnn_random
from hpnn.schedules import CosineDecay
from hpnn.tune import (
    _centered,
    _ema,
    _suggest,
    class_labels,
    cross_validate,
    kfold_indices,
    lr_find,
)


@pytest.fixture
def regression():
    """y = x @ w + noise with x ~ N(0, I): the MSE Hessian is 2I, so plain gradient descent
    converges fastest at lr = 0.5 and diverges above 1."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 4)).astype(np.float32)
    y = (x @ rng.standard_normal((4, 1)) + 0.1 * rng.standard_normal((512, 1))).astype(np.float32)
    return x, y


@pytest.fixture
def blobs():
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((3, 8)) * 2
    y = rng.integers(0, 3, 600)
    return (centers[y] + rng.standard_normal((600, 8))).astype(np.float32), y


def linear(seed=0, lr=0.01):
    hpnn.utils.set_random_seed(seed)
    m = Sequential([Input((4,)), layers.Dense(1)])
    m.compile(optimizer=optimizers.SGD(lr), loss="mse")
    return m


def classifier(seed=0, optimizer="adam", dropout=0.0):
    hpnn.utils.set_random_seed(seed)
    stack = [Input((8,)), layers.Dense(16, activation="relu")]
    if dropout:
        stack.append(layers.Dropout(dropout))
    m = Sequential([*stack, layers.Dense(3, activation="softmax")])
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


# -- lr_find ------------------------------------------------------------------------------


def optimizer_state(opt):
    return opt.iterations, opt._learning_rate, [a.copy() for a in opt.variables()]


def test_lr_find_restores_weights_optimizer_and_rngs_bit_exactly(blobs):
    x, y = blobs

    def run(with_lr_find):
        m = classifier(seed=3, dropout=0.2)
        m.fit(x, y, batch_size=64, epochs=1, verbose=0)
        before_w, before_opt = m.get_weights(), optimizer_state(m.optimizer)
        if with_lr_find:
            lr_find(m, x, y, num_steps=30, seed=0)
            it, lr, arrays = optimizer_state(m.optimizer)
            assert (it, lr) == before_opt[:2]
            assert all(np.array_equal(a, b) for a, b in zip(arrays, before_opt[2], strict=True))
            assert all(np.array_equal(a, b) for a, b in zip(m.get_weights(), before_w, strict=True))
        hpnn_random.set_seed(5)  # the next fit's shuffle
        m.fit(x, y, batch_size=64, epochs=1, verbose=0)
        return m.get_weights()

    # training after lr_find (Adam moments, step count, dropout masks) is the same as without
    for a, b in zip(run(True), run(False), strict=True):
        np.testing.assert_array_equal(a, b)


def test_lr_find_on_a_fresh_optimizer_and_a_schedule(blobs):
    x, y = blobs
    sched = CosineDecay(0.01, 100)
    m = classifier(optimizer=optimizers.Adam(sched))
    w = m.get_weights()
    lr_find(m, x, y, num_steps=20)
    assert m.optimizer._learning_rate is sched and m.optimizer.iterations == 0
    assert m.optimizer.variables() == [] and m.optimizer._order == []
    assert all(np.array_equal(a, b) for a, b in zip(m.get_weights(), w, strict=True))


def test_lr_find_sweep_and_smoothing(regression):
    x, y = regression
    r = lr_find(linear(), x, y, start_lr=1e-5, end_lr=1e-1, num_steps=41, beta=0.9, seed=0)
    assert len(r.lrs) == len(r.losses) == len(r.raw_losses) == 41 and not r.diverged
    np.testing.assert_allclose(r.lrs, np.logspace(-5, -1, 41), rtol=1e-12)
    avg, want = 0.0, []
    for i, loss in enumerate(r.raw_losses):
        avg = 0.9 * avg + 0.1 * loss
        want.append(avg / (1 - 0.9 ** (i + 1)))
    np.testing.assert_allclose(r.losses, want, rtol=1e-12)
    avg, back = 0.0, []  # the zero-lag curve: the same average run backwards over it
    for i, loss in enumerate(want[::-1]):
        avg = 0.9 * avg + 0.1 * loss
        back.append(avg / (1 - 0.9 ** (i + 1)))
    np.testing.assert_allclose(r.centered_losses, back[::-1], rtol=1e-12)
    assert r.losses[0] == pytest.approx(
        r.raw_losses[0], rel=1e-12
    )  # bias correction: no pull towards 0


def test_lr_find_cycles_through_shuffled_data(regression):
    x, y = regression
    r1 = lr_find(linear(), x[:64], y[:64], num_steps=10, batch_size=32, seed=7)
    r2 = lr_find(linear(), x[:64], y[:64], num_steps=10, batch_size=32, seed=7)
    assert r1.raw_losses == r2.raw_losses and len(r1.lrs) == 10  # 2 batches a pass, 5 passes


def test_centered_smoothing_has_no_lag():
    # a noiseless logistic drop around step 60 of 120: smoothing should not move the point
    # of steepest relative descent that the curve itself has
    lrs = np.logspace(-6, 0, 120)
    steps = np.arange(120)
    raw = 0.5 + 2.0 / (1 + np.exp((steps - 60) / 6.0))
    causal = _ema(raw, 0.98)
    centered = _centered(raw, causal, 0.98, 4.0)
    truth = np.searchsorted(lrs, _suggest(lrs, raw)[0])
    assert 60 <= truth <= 70
    assert abs(np.searchsorted(lrs, _suggest(lrs, centered)[0]) - truth) <= 2
    assert np.searchsorted(lrs, _suggest(lrs, causal)[0]) - truth >= 8  # the causal one lags


def test_centered_smoothing_caps_a_blown_up_last_step():
    raw = np.r_[np.linspace(2.0, 1.0, 50), 1e6, np.nan]
    causal = _ema(raw, 0.9)
    centered = _centered(raw, causal, 0.9, 4.0)
    assert np.isnan(centered[-1]) and np.isfinite(centered[:-1]).all()
    # the 1e6 step counts as 4x the best causal value (~1.1), not as 1e6
    assert centered[-2] <= 4.0 * np.nanmin(causal) + 1e-9
    assert centered[:40].max() <= 2.0 + 1e-9


def test_lr_find_stops_when_the_loss_diverges(regression):
    x, y = regression
    r = lr_find(linear(), x, y, end_lr=100.0, num_steps=100, seed=0)
    assert r.diverged and len(r.lrs) < 100
    assert r.lrs[-1] > 1.0  # SGD on this problem diverges above lr = 1
    assert not (r.losses[-1] <= 4.0 * min(r.losses[:-1]))  # the stop rule (NaN counts too)
    assert all(v <= 4.0 * min(r.losses[: i + 1]) for i, v in enumerate(r.losses[:-1]))
    assert "diverged" in str(r)


def test_lr_find_suggestion_is_near_a_known_good_rate(regression, blobs):
    x, y = regression
    r = lr_find(linear(), x, y, seed=0)
    assert r.lrs[0] <= r.suggestion <= r.best_lr <= r.lrs[-1]
    assert 0.5 / 10 <= r.suggestion <= 0.5 * 10  # the optimal plain-GD rate here is 0.5
    x, y = blobs
    r = lr_find(classifier(), x, y, seed=0)
    # Adam's best rate here after one epoch is about 3e-2 (loss 0.22 at 1e-2, 0.038 at 3e-2,
    # 0.12 at 1e-1, 0.61 at 3e-1); lr_find suggests 0.015-0.026 over model seeds 0-2
    assert 3e-2 / 10 <= r.suggestion <= 3e-2 * 10


def test_lr_find_errors(regression):
    x, y = regression
    m = Sequential([Input((4,)), layers.Dense(1)])
    with pytest.raises(RuntimeError, match="compiled"):
        lr_find(m, x, y)
    m = linear()
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        lr_find(m, x, y, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match=r"Received: beta=1\.0"):
        lr_find(m, x, y, beta=1.0)
    with pytest.raises(ValueError, match=r"Received: x\.shape"):
        lr_find(m, x, y[:10])


# -- cross_validate -----------------------------------------------------------------------


def test_kfold_sizes_cover_every_sample_once():
    folds = kfold_indices(23, 5, seed=0)
    assert sorted(len(f) for f in folds) == [4, 4, 5, 5, 5]
    assert np.array_equal(np.sort(np.concatenate(folds)), np.arange(23))


def test_stratified_folds_keep_class_proportions():
    labels = np.repeat([0, 1, 2], [30, 20, 10])
    folds = kfold_indices(60, 5, labels, seed=0)
    assert np.array_equal(np.sort(np.concatenate(folds)), np.arange(60))
    for f in folds:
        assert np.bincount(labels[f], minlength=3).tolist() == [6, 4, 2]
    # uneven counts: per class, fold counts differ by at most one; fold sizes too
    labels = np.repeat([0, 1], [17, 6])
    folds = kfold_indices(23, 4, labels, seed=1)
    counts = np.array([np.bincount(labels[f], minlength=2) for f in folds])
    assert (counts.max(0) - counts.min(0) <= 1).all()
    assert max(map(len, folds)) - min(map(len, folds)) <= 1


def test_class_labels_from_integers_one_hot_and_regression():
    assert class_labels(np.array([2, 0, 1])).tolist() == [2, 0, 1]
    assert class_labels(np.array([[1], [0]])).tolist() == [1, 0]
    assert class_labels(np.eye(3, dtype=np.float32)[[2, 0]]).tolist() == [2, 0]
    assert class_labels(np.array([0.5, 1.2])) is None


def test_cross_validate_stratifies_reports_and_reproduces(blobs):
    x, y = blobs
    keep = np.concatenate([np.flatnonzero(y == c)[:n] for c, n in enumerate((100, 25, 25))])
    x, y = x[keep], y[keep]  # imbalanced: 100 / 25 / 25

    def build():
        return classifier(optimizer=optimizers.Adam(0.01))

    hpnn_random.set_seed(99)
    expected_next = hpnn_random.make_rng().integers(1 << 30)
    hpnn_random.set_seed(99)
    cv = cross_validate(build, x, y, k=5, seed=0, epochs=3, batch_size=32)
    assert hpnn_random.make_rng().integers(1 << 30) == expected_next  # caller's stream kept
    for test in cv.test_indices:
        assert len(test) == 30
        np.testing.assert_array_equal(np.bincount(y[test], minlength=3), [20, 5, 5])
    assert len(cv.folds) == len(cv.histories) == 5
    assert set(cv.folds[0]) == {"loss", "accuracy"}
    assert all(len(h.history["loss"]) == 3 for h in cv.histories)
    for key in ("loss", "accuracy"):
        values = [f[key] for f in cv.folds]
        assert cv.mean[key] == pytest.approx(np.mean(values))
        assert cv.std[key] == pytest.approx(np.std(values))
    assert cv.mean["accuracy"] > 0.8
    again = cross_validate(build, x, y, k=5, seed=0, epochs=3, batch_size=32)
    assert again.folds == cv.folds
    other = cross_validate(build, x, y, k=5, seed=1, epochs=3, batch_size=32)
    assert not np.array_equal(other.test_indices[0], cv.test_indices[0])
    assert "5-fold cross-validation: loss:" in str(cv)


def test_cross_validate_plain_kfold_for_regression_and_one_hot(regression, blobs):
    x, y = regression
    cv = cross_validate(lambda: linear(lr=0.1), x[:100], y[:100], k=4, epochs=2)
    assert [len(t) for t in cv.test_indices] == [25] * 4 and set(cv.mean) == {"loss"}
    x, y = blobs
    onehot = np.eye(3, dtype=np.float32)[y[:90]]

    def build():
        hpnn.utils.set_random_seed(0)
        m = Sequential([Input((8,)), layers.Dense(3, activation="softmax")])
        m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        return m

    cv = cross_validate(build, x[:90], onehot, k=3, epochs=1)
    for test in cv.test_indices:
        counts = np.bincount(y[:90][test], minlength=3)
        assert (np.abs(counts - np.bincount(y[:90]) / 3) <= 1).all()


def test_cross_validate_errors(regression):
    x, y = regression
    with pytest.raises(ValueError, match="Received: k=1"):
        cross_validate(linear, x, y, k=1)
    with pytest.raises(RuntimeError, match="compiled"):
        cross_validate(lambda: Sequential([Input((4,)), layers.Dense(1)]), x, y, k=2)


def test_valley_rate_is_inside_the_longest_falling_stretch():
    from hpnn.tune import _valley

    lrs = np.logspace(-5, 0, 11)
    losses = [2.0, 3.1, 2.9, 2.5, 2.0, 1.5, 1.0, 0.8, 0.9, 2.0, 5.0]
    # longest falling run: 3.1 -> 0.8 (indices 1..7): halfway is index 4
    assert _valley(lrs, losses) == pytest.approx(lrs[4])

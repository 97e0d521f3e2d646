"""``sample_weight`` and ``class_weight`` in fit, evaluate and the on-batch methods,
with Keras 3's rules: the loss is ``sum(w * loss_i) / batch_size`` (not divided by
the weights' sum), metrics are weighted means, class weights become sample
weights through the targets (classes missing from the dict weigh 1)."""

import numpy as np
import pytest

import hpnn
from hpnn import layers


def model(seed=0, lr=0.1, loss="sparse_categorical_crossentropy"):
    hpnn.utils.set_random_seed(seed)
    m = hpnn.Sequential(
        [hpnn.Input((5,)), layers.Dense(6, activation="tanh"), layers.Dense(3, "softmax")]
    )
    m.compile(optimizer=hpnn.optimizers.SGD(lr), loss=loss, metrics=["accuracy"])
    return m


def data(n=24, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5)).astype(np.float32)
    y = rng.integers(0, 3, n)
    w = rng.uniform(0.0, 2.0, n).astype(np.float32)
    return x, y, w


def test_evaluate_weights_the_loss_and_the_metrics():
    x, y, w = data()
    m = model()
    p = m.predict(x, verbose=0).astype(np.float64)
    per_sample = -np.log(p[np.arange(len(y)), y])
    correct = (p.argmax(1) == y).astype(np.float64)
    got = m.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    assert got["loss"] == pytest.approx((w * per_sample).sum() / len(y), rel=1e-5)
    assert got["accuracy"] == pytest.approx((w * correct).sum() / w.sum(), rel=1e-6)
    batched = m.evaluate(x, y, sample_weight=w, batch_size=5, verbose=0, return_dict=True)
    assert batched["loss"] == pytest.approx(got["loss"], rel=1e-5)
    assert batched["accuracy"] == pytest.approx(got["accuracy"], rel=1e-6)
    assert m.test_on_batch(x, y, sample_weight=w)[0] == pytest.approx(got["loss"], rel=1e-5)


def test_a_zero_weight_removes_a_sample_from_the_gradient():
    # SGD on the whole batch with weights 1 (first k) and 0 (the rest) takes the step
    # of the first k samples alone with the learning rate scaled by k / n.
    x, y, _ = data(12)
    k = 8
    w = np.r_[np.ones(k), np.zeros(len(x) - k)].astype(np.float32)
    a, b = model(lr=0.1), model(lr=0.1 * k / len(x))
    a.train_on_batch(x, y, sample_weight=w)
    b.train_on_batch(x[:k], y[:k])
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("one_hot", [False, True])
def test_class_weight_is_the_sample_weight_it_implies(one_hot):
    x, y, _ = data(30)
    class_weight = {0: 3.0, 2: 0.5}  # class 1 is missing: weight 1
    implied = np.array([class_weight.get(int(c), 1.0) for c in y], np.float32)
    loss = "categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy"
    t = np.eye(3, dtype=np.float32)[y] if one_hot else y
    a, b = model(loss=loss), model(loss=loss)
    ha = a.fit(x, t, batch_size=8, epochs=2, class_weight=class_weight, shuffle=False, verbose=0)
    hb = b.fit(x, t, batch_size=8, epochs=2, sample_weight=implied, shuffle=False, verbose=0)
    assert ha.history == hb.history
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    plain = model(loss=loss)
    plain.fit(x, t, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert not np.allclose(plain.get_weights()[0], a.get_weights()[0])


def test_validation_data_and_validation_split_carry_weights():
    x, y, w = data(40)
    xv, yv, wv = data(10, seed=5)
    m = model()
    h = m.fit(x, y, epochs=2, batch_size=16, validation_data=(xv, yv, wv), verbose=0)
    ev = m.evaluate(xv, yv, sample_weight=wv, verbose=0, return_dict=True)
    assert h.history["val_loss"][-1] == pytest.approx(ev["loss"], rel=1e-6)
    assert h.history["val_accuracy"][-1] == pytest.approx(ev["accuracy"], rel=1e-6)
    m = model()
    h = m.fit(x, y, sample_weight=w, epochs=1, validation_split=0.25, verbose=0)
    ev = m.evaluate(x[30:], y[30:], sample_weight=w[30:], verbose=0, return_dict=True)
    assert h.history["val_loss"][-1] == pytest.approx(ev["loss"], rel=1e-6)


def test_the_fit_loss_is_the_mean_of_weighted_batch_losses():
    x, y, w = data(20)
    m = model(lr=0.0)  # no update: every batch sees the same weights
    h = m.fit(x, y, sample_weight=w, batch_size=6, epochs=1, shuffle=False, verbose=0)
    ev = m.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    assert h.history["loss"][0] == pytest.approx(ev["loss"], rel=1e-6)
    assert h.history["accuracy"][0] == pytest.approx(ev["accuracy"], rel=1e-6)


def test_class_weight_with_sequence_targets_is_refused():
    m = hpnn.Sequential([hpnn.Input((4, 2)), layers.Dense(3, activation="softmax")])
    m.compile(optimizer="sgd", loss="categorical_crossentropy")
    x = np.zeros((2, 4, 2), np.float32)
    t = np.zeros((2, 4, 3), np.float32)
    with pytest.raises(ValueError, match="class_weight needs targets of one class"):
        m.fit(x, t, class_weight={0: 2.0}, verbose=0)

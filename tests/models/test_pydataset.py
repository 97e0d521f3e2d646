"""fit/evaluate/predict on data that comes in batches: ``hpnn.utils.PyDataset`` and
generators, as Keras takes them."""

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.utils import PyDataset


class Batches(PyDataset):
    """The rows of arrays in batches; records which batches were read."""

    def __init__(self, x, y=None, w=None, batch_size=8):
        super().__init__()
        self.x, self.y, self.w, self.batch_size = x, y, w, batch_size
        self.read, self.epochs_ended = [], 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        self.read.append(i)
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        if self.y is None:
            return self.x[s]
        return (self.x[s], self.y[s]) if self.w is None else (self.x[s], self.y[s], self.w[s])

    def on_epoch_end(self):
        self.epochs_ended += 1


def model(seed=0):
    hpnn.utils.set_random_seed(seed)
    m = hpnn.Sequential(
        [hpnn.Input((5,)), layers.Dense(8, activation="relu"), layers.Dense(3, "softmax")]
    )
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def data(n=36, seed=1):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((n, 5)).astype(np.float32),
        rng.integers(0, 3, n),
        rng.uniform(0.2, 2.0, n).astype(np.float32),
    )


def assert_same_weights(a, b):
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("weighted", [False, True])
def test_a_pydataset_trains_as_the_arrays_it_serves(weighted):
    x, y, w = data()
    xv, yv, _ = data(12, seed=2)
    a, b = model(), model()
    ds = Batches(x, y, w if weighted else None, batch_size=8)
    ha = a.fit(ds, epochs=3, shuffle=False, validation_data=Batches(xv, yv), verbose=0)
    hb = b.fit(
        x,
        y,
        sample_weight=w if weighted else None,
        batch_size=8,
        epochs=3,
        shuffle=False,
        validation_data=(xv, yv),
        verbose=0,
    )
    assert ha.history.keys() == hb.history.keys()
    for k in hb.history:
        np.testing.assert_allclose(ha.history[k], hb.history[k], rtol=1e-6, err_msg=k)
    assert_same_weights(a, b)
    assert ds.epochs_ended == 3 and ds.read == list(range(5)) * 3
    ev_a, ev_b = a.evaluate(Batches(xv, yv), verbose=0), b.evaluate(xv, yv, verbose=0)
    np.testing.assert_allclose(ev_a, ev_b, rtol=1e-6)
    np.testing.assert_allclose(
        a.predict(Batches(xv, batch_size=5), verbose=0), b.predict(xv, verbose=0), rtol=1e-6
    )


def test_shuffle_visits_every_batch_in_a_new_order_each_epoch():
    x, y, _ = data(80)
    ds = Batches(x, y, batch_size=8)
    model().fit(ds, epochs=3, verbose=0)
    epochs = [ds.read[i * 10 : (i + 1) * 10] for i in range(3)]
    assert all(sorted(e) == list(range(10)) for e in epochs)
    assert len({tuple(e) for e in epochs}) == 3  # three different orders


def test_a_generator_with_steps_per_epoch_and_one_that_runs_out(capsys):
    x, y, _ = data()
    pulled = []

    def forever():
        while True:
            for i in range(0, len(x), 6):
                pulled.append(i)
                yield x[i : i + 6], y[i : i + 6]

    h = model().fit(forever(), steps_per_epoch=4, epochs=3, verbose=0)
    assert len(h.history["loss"]) == 3 and len(pulled) == 12

    def once():
        for i in range(0, len(x), 6):
            yield x[i : i + 6], y[i : i + 6]

    h = model().fit(once(), epochs=3, verbose=0)
    assert len(h.history["loss"]) == 1
    assert "ran out of batches at epoch 2" in capsys.readouterr().err


def test_class_weight_applies_to_every_batch():
    x, y, _ = data()
    class_weight = {0: 2.0, 2: 0.5}
    implied = np.array([class_weight.get(int(c), 1.0) for c in y], np.float32)
    a, b = model(), model()
    a.fit(Batches(x, y), epochs=2, shuffle=False, class_weight=class_weight, verbose=0)
    b.fit(Batches(x, y, implied), epochs=2, shuffle=False, verbose=0)
    assert_same_weights(a, b)


def test_several_inputs_from_a_generator():
    a_in, b_in = hpnn.Input((3,), name="a"), hpnn.Input((2,), name="b")
    out = layers.Dense(1)(layers.concatenate([a_in, b_in]))
    m = hpnn.Model([a_in, b_in], out)
    m.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    xa, xb, t = rng.random((12, 3)), rng.random((12, 2)), rng.random((12, 1))

    def batches():
        for i in range(0, 12, 4):
            yield [xa[i : i + 4], xb[i : i + 4]], t[i : i + 4]

    m.fit(batches(), epochs=1, verbose=0)
    assert m.predict(batches(), verbose=0).shape == (12, 1)


def test_bad_uses_say_what_is_wrong():
    x, y, w = data()
    m = model()
    with pytest.raises(ValueError, match="y must not be passed"):
        m.fit(Batches(x, y), y, verbose=0)
    with pytest.raises(ValueError, match="sample_weight must not be passed"):
        m.fit(Batches(x, y), sample_weight=w, verbose=0)
    with pytest.raises(ValueError, match="validation_split needs arrays"):
        m.fit(Batches(x, y), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="validation_data needs validation_steps"):
        m.fit(Batches(x, y), validation_data=iter([(x, y)]), verbose=0)
    with pytest.raises(NotImplementedError, match="steps_per_epoch is supported with a PyData"):
        m.fit(x, y, steps_per_epoch=2, verbose=0)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        m.fit(Batches(x, y), steps_per_epoch=0, verbose=0)
    with pytest.raises(ValueError, match=r"batch 0 must be x, \(x,\), \(x, y\).*a tuple of 4"):
        m.fit(iter([(x, y, w, w)]), verbose=0)
    with pytest.raises(ValueError, match=r"batch 1: x contains 1 NaN"):
        bad = x.copy()
        bad[10, 0] = np.nan
        m.fit(Batches(bad, y), shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="gave no batch"):
        m.evaluate(iter([]), verbose=0)

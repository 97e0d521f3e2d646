"""hpnn.transfer: the labelled-subset draw, new heads on frozen features, fine-tuning;
and the little-data example's smoke run."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hpnn
from hpnn import layers, transfer

FASHION = Path("/usr/share/datasets/fashion-mnist")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "little_data.py"


def _labels():
    # classes 0, 1, 2 with 12, 20 and 7 samples, shuffled
    y = np.repeat([0, 1, 2], [12, 20, 7])
    return np.random.default_rng(3).permutation(y)


# -- few_labels ----------------------------------------------------------------------------
def test_few_labels_draws_exactly_per_class_and_keeps_the_rest():
    y = _labels()
    x = np.arange(len(y))[:, None].astype("float32")
    (x_few, y_few), x_rest = transfer.few_labels(x, y, per_class=5, seed=0)
    assert np.bincount(y_few).tolist() == [5, 5, 5]
    np.testing.assert_array_equal(y[x_few[:, 0].astype(int)], y_few)  # pairs kept together
    assert len(x_rest) == len(y) - 15
    both = np.concatenate([x_few[:, 0], x_rest[:, 0]])
    assert sorted(both.tolist()) == list(range(len(y)))  # disjoint, nothing lost


def test_few_labels_is_reproducible_by_seed():
    y = _labels()
    a, _ = transfer.few_labels_index(y, 4, seed=7)
    b, _ = transfer.few_labels_index(y, 4, seed=7)
    c, _ = transfer.few_labels_index(y, 4, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    hpnn.utils.set_random_seed(5)  # seed=None: the global seed source
    d, _ = transfer.few_labels_index(y, 4)
    hpnn.utils.set_random_seed(5)
    e, _ = transfer.few_labels_index(y, 4)
    np.testing.assert_array_equal(d, e)


def test_few_labels_takes_one_hot_rows_and_a_class_subset():
    y = _labels()
    onehot = np.eye(3, dtype="float32")[y]
    labelled, rest = transfer.few_labels_index(onehot, 3, seed=0, classes=[0, 1])
    assert np.bincount(y[labelled], minlength=3).tolist() == [3, 3, 0]
    assert set(y[rest].tolist()) == {0, 1}  # class 2 is in neither
    assert len(rest) == 12 + 20 - 6


def test_few_labels_names_the_class_that_is_too_small():
    with pytest.raises(ValueError, match=r"class 2 has 7 samples, fewer than per_class=8"):
        transfer.few_labels_index(_labels(), 8, seed=0)
    with pytest.raises(ValueError, match=r"class 9 has 0 samples"):
        transfer.few_labels_index(_labels(), 1, seed=0, classes=[0, 9])


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_few_labels_rejects_a_bad_per_class(bad):
    with pytest.raises(ValueError, match=r"per_class must be a positive int\. Received: .*"):
        transfer.few_labels_index(_labels(), bad)


def test_few_labels_rejects_mismatched_or_malformed_input():
    y = _labels()
    with pytest.raises(ValueError, match=r"same number of samples.*x of shape \(5, 2\)"):
        transfer.few_labels(np.zeros((5, 2)), y, 1)
    with pytest.raises(ValueError, match=r"y must be class indices.*Received: y of shape"):
        transfer.few_labels_index(np.zeros((4, 2, 2)), 1)
    with pytest.raises(ValueError, match=r"integer class indices\. Received: dtype=float"):
        transfer.few_labels_index(np.array([0.5, 1.0]), 1)


# -- new_head / fine_tune ----------------------------------------------------------------
def _trained_base(seed=0):
    hpnn.utils.set_random_seed(seed)
    base = hpnn.Sequential(
        [
            hpnn.Input(shape=(6,)),
            layers.Dense(8, activation="relu"),
            layers.Dense(8, activation="relu"),
            layers.Dense(4, activation="softmax"),
        ]
    )
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 6)).astype("float32")
    base.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    base.fit(x, rng.integers(0, 4, 64), epochs=2, verbose=0)
    return base, x


def _feature_weights(base):
    return [w.copy() for layer in base.layers[:-1] for w in layer.get_weights()]


def test_the_base_stays_frozen_while_the_head_trains_then_moves_when_fine_tuned():
    base, x = _trained_base()
    y = np.arange(len(x)) % 3
    model = transfer.new_head(base, 3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = _feature_weights(base)
    head_before = model.layers[-1].get_weights()
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    for a, b in zip(before, _feature_weights(base), strict=True):
        np.testing.assert_array_equal(a, b)  # not one bit moved
    assert not np.allclose(head_before[0], model.layers[-1].get_weights()[0])

    transfer.fine_tune(model, learning_rate=1e-3)
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert "accuracy" in history.history  # the metrics of the first compile are kept
    moved = [not np.allclose(a, b) for a, b in zip(before, _feature_weights(base), strict=True)]
    assert all(moved)


def test_new_head_shapes_and_trainable_counts():
    base, x = _trained_base()
    model = transfer.new_head(base, 5, hidden=(7,))
    assert model.predict(x[:3], verbose=0).shape == (3, 5)
    n_head = (8 * 7 + 7) + (7 * 5 + 5)
    assert sum(w.size for w in model.trainable_weights) == n_head
    unfrozen = transfer.new_head(base, 5, freeze=False)
    assert sum(w.size for w in unfrozen.trainable_weights) > 8 * 5 + 5


def test_new_head_cuts_a_functional_model():
    inputs = hpnn.Input(shape=(6,))
    hidden = layers.Dense(8, activation="relu")(inputs)
    outputs = layers.Dense(4, activation="softmax")(hidden)
    base = hpnn.Model(inputs, outputs)
    model = transfer.new_head(base, 2)
    assert model.predict(np.zeros((2, 6), "float32"), verbose=0).shape == (2, 2)
    assert sum(w.size for w in model.trainable_weights) == 8 * 2 + 2


def test_new_head_and_fine_tune_reject_bad_arguments():
    base, _ = _trained_base()
    with pytest.raises(ValueError, match=r"n_classes must be a positive int\. Received: n_cl"):
        transfer.new_head(base, 0)
    with pytest.raises(ValueError, match=r"drop must leave at least one\. Received: drop=3"):
        transfer.new_head(base, 2, drop=3)
    with pytest.raises(ValueError, match=r"drop must be an int >= 1\. Received: drop=0"):
        transfer.new_head(base, 2, drop=0)
    unbuilt = hpnn.Sequential([layers.Dense(3)])
    with pytest.raises(ValueError, match=r"base must be a built Sequential"):
        transfer.new_head(unbuilt, 2)
    model = transfer.new_head(base, 2)
    with pytest.raises(ValueError, match=r"model must be compiled.*Received: an uncompiled"):
        transfer.fine_tune(model)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"learning_rate must be a positive number.*=-1"):
        transfer.fine_tune(model, learning_rate=-1)


# -- the example ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason=f"Fashion-MNIST is not installed in {FASHION}")
def test_little_data_example_quick_run_prints_its_table():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HPNN_DATA": str(FASHION.parent)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--quick", "--data", str(FASHION)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "labels/class" in out
    for method in ("scratch", "head only", "fine-tuned", "mean teacher"):
        assert method in out
    rows = [line for line in out.splitlines() if line.strip().startswith(("2 |", "5 |"))]
    assert len(rows) == 2
    for row in rows:
        accuracies = [float(v) for v in row.split("|")[1:5]]
        assert all(0.0 <= a <= 1.0 for a in accuracies)

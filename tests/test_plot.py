"""Tests for hpnn.plot: learning curves and the lr_find plot as PNG files."""

import sys

import numpy as np
import pytest

import hpnn
from hpnn import Input, Sequential, layers, optimizers
from hpnn.plot import plot_history
from hpnn.tune import lr_find

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small_run():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    hpnn.utils.set_random_seed(0)
    model = Sequential([Input((4,)), layers.Dense(2, activation="softmax")])
    model.compile(optimizers.Adam(0.05), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, x, y


def test_plot_history_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    model, x, y = small_run()
    hist = model.fit(x, y, epochs=3, validation_split=0.25, verbose=0)
    path = tmp_path / "curves.png"
    assert plot_history(hist, path, title="run") == path
    assert path.read_bytes()[:8] == PNG_MAGIC
    plot_history({"loss": [1.0, 0.5], "learning_rate": [0.1, 0.01]}, tmp_path / "d.png")
    assert (tmp_path / "d.png").read_bytes()[:8] == PNG_MAGIC


def test_lr_find_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    model, x, y = small_run()
    result = lr_find(model, x, y, num_steps=30, batch_size=16, seed=0)
    path = tmp_path / "lr.png"
    result.plot(path)
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_bad_history_and_missing_matplotlib(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="Received: list"):
        plot_history([1, 2], tmp_path / "x.png")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_history({"loss": [1.0, 0.5]}, tmp_path / "x.png")

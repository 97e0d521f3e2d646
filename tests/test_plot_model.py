"""keras.utils.plot_model / model_to_dot: the graph of a model, as DOT text or a picture."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import hpnn
from hpnn import layers


def functional():
    enc_in = hpnn.Input((5, 3), name="encoder_in")
    _, h, c = layers.LSTM(4, return_state=True, name="encoder")(enc_in)
    dec_in = hpnn.Input((6, 2), name="decoder_in")
    seq = layers.LSTM(4, return_sequences=True, name="decoder")(dec_in, initial_state=[h, c])
    return hpnn.Model([enc_in, dec_in], layers.Dense(2, name="head")(seq))


def test_functional_graph_has_every_layer_once_and_every_call():
    dot = hpnn.utils.model_to_dot(functional(), show_shapes=True)
    for name in ("encoder_in", "decoder_in", "encoder (LSTM)", "decoder (LSTM)", "head (Dense)"):
        assert dot.count(name) == 1, name
    assert "output: (None, 6, 2)" in dot
    assert "output: [(None, 4), (None, 4), (None, 4)]" in dot  # the encoder's three
    # the encoder's three outputs are one node; the decoder reads its input and the states
    assert dot.count(" -> ") == 4
    assert dot.startswith('digraph "') and dot.rstrip().endswith("}")


def test_sequential_is_a_chain_and_the_dot_file_needs_nothing(tmp_path):
    model = hpnn.Sequential(
        [hpnn.Input((4,)), layers.Dense(3, name="a"), layers.Dense(2, name="b")]
    )
    path = hpnn.utils.plot_model(model, to_file=tmp_path / "m.dot", rankdir="LR")
    text = Path(path).read_text()
    assert "rankdir=LR" in text and text.count(" -> ") == 1 and "a (Dense)" in text


def test_without_graphviz_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pydot", None)  # (import pydot fails)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ImportError, match=r"apt-get install graphviz.*to_file='model.dot'"):
        hpnn.utils.plot_model(functional(), to_file=tmp_path / "m.png")


def test_a_picture_where_graphviz_is_installed(tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    path = hpnn.utils.plot_model(functional(), to_file=tmp_path / "m.png", show_shapes=True)
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_rankdir():
    with pytest.raises(ValueError, match=r"rankdir must be"):
        hpnn.utils.model_to_dot(functional(), rankdir="up")


def test_the_model_still_runs():  # (the graph walk changes nothing)
    model = functional()
    hpnn.utils.model_to_dot(model)
    x = [np.zeros((2, 5, 3), np.float32), np.zeros((2, 6, 2), np.float32)]
    assert model.predict(x, verbose=0).shape == (2, 6, 2)

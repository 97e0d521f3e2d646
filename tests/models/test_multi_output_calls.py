"""Layers with several outputs in functional models (LSTM/GRU return_state), and
symbolic tensors as keyword arguments (a decoder's initial_state): the seq2seq shape
of Keras' examples, against Keras 3 itself, saved and loaded."""

import numpy as np
import pytest

import hpnn
from hpnn import layers


def seq2seq(lib, cell="LSTM"):
    """An encoder whose final states start a decoder (Keras' character-level seq2seq)."""
    enc_in = lib.Input((5, 3))
    _, *states = getattr(lib.layers, cell)(4, return_state=True)(enc_in)
    dec_in = lib.Input((6, 2))
    seq = getattr(lib.layers, cell)(4, return_sequences=True)(dec_in, initial_state=states)
    out = lib.layers.Dense(2, activation="softmax")(seq)
    return lib.Model([enc_in, dec_in], out)


def data():
    rng = np.random.default_rng(0)
    return [rng.random((3, 5, 3), dtype=np.float32), rng.random((3, 6, 2), dtype=np.float32)]


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_seq2seq_matches_keras(cell, keras):
    theirs = seq2seq(keras, cell)
    ours = seq2seq(hpnn, cell)
    ours.set_weights([keras.ops.convert_to_numpy(w) for w in theirs.weights])
    x = data()
    want = keras.ops.convert_to_numpy(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(ours.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)


def test_return_state_outputs_run_once_train_save_and_load(tmp_path):
    hpnn.utils.set_random_seed(0)
    model = seq2seq(hpnn)
    (encoder,) = [la for la in model.layers if getattr(la, "return_state", False)]
    calls = []
    real = type(encoder).call

    def counted(self, *args, **kwargs):
        calls.append(self.name)
        return real(self, *args, **kwargs)

    type(encoder).call = counted
    try:
        model.predict(data(), verbose=0)
    finally:
        type(encoder).call = real
    assert calls.count(encoder.name) == 1  # three outputs, one call
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    y = np.eye(2, dtype=np.float32)[np.arange(18).reshape(3, 6) % 2]
    history = model.fit(data(), y, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    model.save(tmp_path / "m.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "m.hpnn")
    np.testing.assert_array_equal(
        loaded.predict(data(), verbose=0), model.predict(data(), verbose=0)
    )


def test_the_states_are_tensors_of_their_own_shape():
    inp = hpnn.Input((5, 3))
    out, h, c = layers.LSTM(4, return_sequences=True, return_state=True)(inp)
    assert (out.shape, h.shape, c.shape) == ((None, 5, 4), (None, 4), (None, 4))
    model = hpnn.Model(inp, [out, h, c])
    got = model.predict(data()[0], verbose=0)
    assert [a.shape for a in got] == [(3, 5, 4), (3, 4), (3, 4)]
    np.testing.assert_allclose(got[0][:, -1], got[1], rtol=1e-6)  # h is the last output


def test_onnx_export_says_it_does_not_convert_them_yet(tmp_path):
    pytest.importorskip("onnx")
    from hpnn.export import to_onnx

    with pytest.raises(NotImplementedError, match=r"several outputs .*return_state"):
        to_onnx(seq2seq(hpnn), tmp_path / "m.onnx")


def attention_model(lib):
    """A MultiHeadAttention returning its scores, with a symbolic attention mask."""
    q, v, mask = lib.Input((5, 8)), lib.Input((7, 8)), lib.Input((5, 7))
    out, scores = lib.layers.MultiHeadAttention(2, 4)(
        q, v, attention_mask=mask, return_attention_scores=True
    )
    return lib.Model([q, v, mask], [out, scores])


def attention_data():
    rng = np.random.default_rng(0)
    mask = (rng.random((3, 5, 7)) > 0.3).astype(np.float32)
    mask[:, :, 0] = 1  # every query sees a value
    return [rng.random((3, 5, 8), dtype=np.float32), rng.random((3, 7, 8), dtype=np.float32), mask]


def test_attention_scores_and_a_symbolic_mask_match_keras(tmp_path, keras):
    theirs, ours = attention_model(keras), attention_model(hpnn)
    ours.set_weights([keras.ops.convert_to_numpy(w) for w in theirs.weights])
    x = attention_data()
    want = [keras.ops.convert_to_numpy(a) for a in theirs.predict(x, verbose=0)]
    got = ours.predict(x, verbose=0)
    assert [a.shape for a in got] == [(3, 5, 8), (3, 2, 5, 7)]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    ours.save(tmp_path / "m.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "m.hpnn")
    for a, b in zip(loaded.predict(x, verbose=0), got, strict=True):
        np.testing.assert_array_equal(a, b)

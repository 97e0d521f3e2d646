"""The TensorBoard callback: event files with Keras' tags, readable by TensorBoard."""

import glob
import os
import struct
from pathlib import Path

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.callbacks import TensorBoard
from hpnn.io import tfevents


def small_fit(tmp_path, epochs=3, **kwargs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential([hpnn.Input((5,)), layers.Dense(4, activation="relu"),
                             layers.Dense(1, activation="sigmoid")])  # fmt: skip
    model.compile(optimizer=hpnn.optimizers.Adam(0.01), loss="binary_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
    tb = TensorBoard(log_dir=tmp_path / "logs", **kwargs)
    hist = model.fit(x, y, epochs=epochs, batch_size=16, validation_split=0.25, verbose=0,
                     callbacks=[tb])  # fmt: skip
    return model, hist


def events(tmp_path, which):
    (path,) = glob.glob(str(tmp_path / "logs" / which / "events.out.tfevents.*"))
    return tfevents.read_events(path)


def series(evs, tag):
    return [(e["step"], e["values"][tag]) for e in evs if tag in e["values"]]


def test_crc32c_known_answer():
    # the check value of CRC-32C (RFC 3720, appendix B.4)
    assert tfevents.crc32c(b"123456789") == 0xE3069283
    assert tfevents.crc32c(b"") == 0


def test_epoch_scalars_are_the_history(tmp_path):
    _, hist = small_fit(tmp_path)
    train, val = events(tmp_path, "train"), events(tmp_path, "validation")
    assert train[0]["file_version"] == "brain.Event:2"
    for name in ("loss", "accuracy"):
        got = series(train, f"epoch_{name}")
        assert [s for s, _ in got] == [0, 1, 2]
        np.testing.assert_allclose([v for _, v in got], hist.history[name], rtol=1e-6)
        got = series(val, f"epoch_{name}")
        np.testing.assert_allclose([v for _, v in got], hist.history[f"val_{name}"], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in series(train, "epoch_learning_rate")], [0.01] * 3)
    # after each validation: step = optimizer iterations (48 training samples / 16)
    steps = [s for s, _ in series(val, "evaluation_loss_vs_iterations")]
    assert steps == [3, 6, 9]


def test_batch_logging_every_n_batches(tmp_path):
    small_fit(tmp_path, epochs=2, update_freq=2, write_steps_per_second=True)
    train = events(tmp_path, "train")
    assert [s for s, _ in series(train, "batch_loss")] == [2, 4, 6]  # 3 batches an epoch
    assert all(v > 0 for _, v in series(train, "batch_steps_per_second"))
    assert len(series(train, "epoch_steps_per_second")) == 2


def test_weight_histograms(tmp_path):
    model, _ = small_fit(tmp_path, epochs=2, histogram_freq=2)
    train = events(tmp_path, "train")
    hists = [e for e in train if any(t.endswith("/histogram") for t in e["values"])]
    assert [e["step"] for e in hists] == [0], "histogram_freq=2: epoch 0 only"
    values = hists[0]["values"]
    assert len(values) == len(model.weights)
    kernel = values[f"{model.weights[0].path}/histogram"]
    assert kernel["num"] == model.weights[0].value.size
    assert sum(kernel["bucket"]) == kernel["num"]
    # written at epoch 0's end: the weights have moved since, so only check its range
    assert kernel["min"] <= kernel["max"]


def test_tensorboard_itself_reads_the_files(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, hist = small_fit(tmp_path, histogram_freq=1)
    acc = EventAccumulator(str(tmp_path / "logs" / "train"))
    acc.Reload()
    tags = acc.Tags()
    assert "epoch_loss" in tags["scalars"]
    got = [e.value for e in acc.Scalars("epoch_loss")]
    np.testing.assert_allclose(got, hist.history["loss"], rtol=1e-6)
    assert any(t.endswith("/histogram") for t in tags["histograms"])


def test_a_corrupted_file_is_refused(tmp_path):
    small_fit(tmp_path, epochs=1)
    (path,) = glob.glob(str(tmp_path / "logs" / "train" / "events.*"))
    data = bytearray(Path(path).read_bytes())
    (n,) = struct.unpack_from("<Q", data, 0)
    data[12 + n // 2] ^= 0xFF  # flip a byte inside the first payload
    bad = tmp_path / "bad"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="CRC"):
        tfevents.read_events(bad)
    bad.write_bytes(bytes(data[: len(data) - 3]))
    with pytest.raises(ValueError, match=r"corrupted|ends inside"):
        tfevents.read_events(bad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"update_freq": "sometimes"}, "update_freq"),
        ({"update_freq": 0}, "update_freq"),
        ({"histogram_freq": -1}, "histogram_freq"),
        ({"histogram_freq": 1.5}, "histogram_freq"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TensorBoard(**kwargs)


def test_unsupported_options_say_so():
    for name in ("write_images", "profile_batch", "embeddings_freq"):
        with pytest.raises(NotImplementedError, match=name):
            TensorBoard(**{name: 1})


def test_nothing_is_written_without_training(tmp_path):
    TensorBoard(log_dir=tmp_path / "logs")
    assert not os.path.exists(tmp_path / "logs")

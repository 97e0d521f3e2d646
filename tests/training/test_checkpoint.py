"""ModelCheckpoint and BackupAndRestore: atomic files, best-only logic, crash and resume."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.callbacks import BackupAndRestore, ModelCheckpoint
from hpnn.io import archive

WORKER = Path(__file__).parent / "resume_worker.py"


def small_model(seed=0):
    hpnn.utils.set_random_seed(seed)
    model = hpnn.Sequential(
        [
            hpnn.Input(shape=(4,)),
            layers.Dense(8, activation="relu"),
            layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 150)
    x = rng.standard_normal((150, 4)).astype("float32") + y[:, None]
    return x, y


def test_checkpoint_every_epoch_with_template(tmp_path, blobs):
    x, y = blobs
    path = str(tmp_path / "ck-{epoch:02d}-{loss:.2f}.hpnn")
    model = small_model()
    hist = model.fit(x, y, epochs=3, verbose=0, callbacks=[ModelCheckpoint(path)])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [n[:5] for n in names] == ["ck-01", "ck-02", "ck-03"]
    assert names[2] == f"ck-03-{hist.history['loss'][2]:.2f}.hpnn"
    restored = hpnn.models.load_model(tmp_path / names[2])
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))


def test_save_best_only_keeps_the_best_epoch(tmp_path, blobs):
    x, y = blobs
    path = tmp_path / "best.weights.hpnn"
    model = small_model()
    seen = []
    record = hpnn.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: seen.append((logs["val_loss"], model.get_weights()))
    )
    ck = ModelCheckpoint(path, monitor="val_loss", save_best_only=True, save_weights_only=True)
    model.fit(x, y, epochs=4, validation_data=(x[:50], y[:50]), verbose=0, callbacks=[ck, record])
    best_weights = min(seen, key=lambda t: t[0])[1]
    fresh = small_model(seed=5)
    fresh.load_weights(path)
    for a, b in zip(fresh.get_weights(), best_weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_unknown_monitor_and_template_key_raise(tmp_path, blobs):
    x, y = blobs
    with pytest.raises(ValueError, match="monitor='val_acc'"):
        small_model().fit(
            x,
            y,
            verbose=0,
            callbacks=[
                ModelCheckpoint(tmp_path / "a.hpnn", monitor="val_acc", save_best_only=True)
            ],
        )
    with pytest.raises(ValueError, match="val_loss"):
        small_model().fit(
            x, y, verbose=0, callbacks=[ModelCheckpoint(str(tmp_path / "{val_loss}.hpnn"))]
        )


def test_crash_mid_write_leaves_the_previous_file_intact(tmp_path, blobs, monkeypatch):
    x, y = blobs
    path = tmp_path / "model.hpnn"
    model = small_model()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[ModelCheckpoint(path)])
    before = path.read_bytes()

    real = archive._npy_bytes
    calls = {"n": 0}

    def failing(a):  # dies after part of the archive has been written
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real(a)

    monkeypatch.setattr(archive, "_npy_bytes", failing)
    with pytest.raises(OSError, match="simulated"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[ModelCheckpoint(path)])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.hpnn"], "a temp file was left"


def test_crash_inside_the_file_write_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "w.hpnn"
    real_replace = os.replace

    def no_rename(src, dst):
        raise KeyboardInterrupt  # killed between writing and renaming

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(KeyboardInterrupt):
        archive.write_archive(path, {"a": 1}, {"x": np.ones(3)})
    monkeypatch.setattr(os, "replace", real_replace)
    assert list(tmp_path.iterdir()) == []


def test_archive_keeps_every_shape_and_dtype_scalars_included(tmp_path):
    arrays = {
        "scalar": np.asarray(3.5, np.float32),
        "count": np.asarray(7, np.int64),
        "empty": np.zeros((0, 4), np.float32),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    }
    archive.write_archive(tmp_path / "a.hpnn", {"k": 1}, arrays)
    document, back = archive.read_archive(tmp_path / "a.hpnn")
    assert document == {"k": 1}
    for name, a in arrays.items():
        assert back[name].shape == a.shape and back[name].dtype == a.dtype, name
        np.testing.assert_array_equal(back[name], a)


def _run(args, **kw):
    env = dict(os.environ, PYTHONPATH=str(Path(hpnn.__file__).parent.parent))
    return subprocess.Popen([sys.executable, str(WORKER), *args], env=env, **kw)


def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights(tmp_path):
    full = tmp_path / "full.npz"
    assert _run([str(tmp_path / "a"), str(full)]).wait(timeout=300) == 0

    backup, out = tmp_path / "b", tmp_path / "resumed.npz"
    backup.mkdir()
    proc = _run([str(backup), str(out), "3"])
    deadline = time.monotonic() + 300
    while not (backup / "paused").exists():
        assert proc.poll() is None, "the worker ended before reaching the pause"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # in the middle of epoch 4 (index 3)
    proc.wait(timeout=60)
    assert (backup / "backup.hpnn").exists() and not out.exists()
    assert _run([str(backup), str(out)]).wait(timeout=300) == 0
    assert not (backup / "backup.hpnn").exists(), "the backup is removed after a finished run"
    a, b = np.load(full), np.load(out)
    assert len(a.files) == len(b.files) == 4
    for k in a.files:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-6, atol=1e-7)


def test_backup_without_interruption_changes_nothing(tmp_path, blobs):
    x, y = blobs
    plain = small_model()
    plain.fit(x, y, epochs=3, verbose=0)
    backed = small_model()
    backed.fit(x, y, epochs=3, verbose=0, callbacks=[BackupAndRestore(tmp_path)])
    for a, b in zip(plain.get_weights(), backed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

"""Tests for the ``hpnn`` command line (hpnn.cli)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hpnn import cli

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_data = pytest.mark.skipif(
    not FASHION.is_dir(), reason=f"Fashion-MNIST is not installed in {FASHION}"
)
REPO = Path(__file__).resolve().parents[1]


def _accuracy(out):
    m = re.search(r"Test accuracy: ([0-9.]+)", out)
    assert m, out
    return float(m.group(1))


@needs_data
@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_train_prints_test_accuracy(capsys, model):
    argv = ["train", "--epochs", "1", "--limit", "2000", "--validation", "500", "--verbose", "0"]
    if model != "cnn":
        argv += ["--model", model]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "Training time:" in out and "Test loss:" in out
    # 2,000 images and one epoch give about 0.65-0.75; chance is 0.10
    assert _accuracy(out) > 0.4


@needs_data
def test_train_with_the_range_test_writes_its_plot_and_uses_the_suggestion(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "lr.png"
    argv = [
        "train",
        "--epochs",
        "1",
        "--limit",
        "2000",
        "--validation",
        "500",
        "--lr",
        "auto",
        "--lr-find",
        str(png),
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    m = re.search(r"Training with the suggested learning rate ([0-9.e+-]+)", out)
    assert m, out
    assert 1e-4 <= float(m.group(1)) <= 1e-1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _accuracy(out) > 0.4


@pytest.mark.parametrize("bad", ["0", "-1", "fast", "nan"])
def test_bad_learning_rate_is_a_usage_error(capsys, bad):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--lr", bad])
    assert e.value.code == 2
    assert "expected a positive number or 'auto'" in capsys.readouterr().err


def test_train_reports_missing_data_as_an_error(tmp_path, capsys):
    code = cli.main(["train", "--data", str(tmp_path), "--verbose", "0"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("hpnn: error:")


def test_build_model_names():
    assert cli.build_model("cnn").count_params() == 17_578
    assert cli.build_model("mlp").count_params() == 784 * 512 + 512 + 512 * 512 + 512 + 5130
    with pytest.raises(ValueError, match=r"Unknown model.*Received: 'rnn'"):
        cli.build_model("rnn")


def test_bad_arguments_exit_with_usage(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--model", "rnn"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_python_m_hpnn_train_help():
    proc = subprocess.run(
        [sys.executable, "-m", "hpnn", "train", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    for option in ("--epochs", "--model", "--batch-size", "--limit", "--validation"):
        assert option in proc.stdout


def test_a_missing_matplotlib_fails_before_training(monkeypatch, tmp_path, capsys):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    # an empty data directory: had training started, the error would be about the data
    code = cli.main(["train", "--data", str(tmp_path), "--plot", str(tmp_path / "c.png")])
    assert code == 2
    assert "Plotting needs matplotlib" in capsys.readouterr().err

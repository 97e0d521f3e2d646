"""Keras 3 tutorial programs run unchanged with ``import hpnn as keras`` and give the
same results structure (history keys, output shapes) as Keras itself."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import hpnn

PROGRAM = Path(__file__).parent / "keras_programs" / "tutorial_models.py"


def run(framework):
    env = dict(os.environ, PYTHONPATH=str(Path(hpnn.__file__).parent.parent))
    env.setdefault("KERAS_BACKEND", "torch")
    out = subprocess.run(
        [sys.executable, str(PROGRAM), framework],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()


def test_the_programs_run_with_hpnn_as_keras():
    lines = run("hpnn")
    assert [line.split()[0] for line in lines] == [
        "mlp", "text", "autoencoder", "regression", "heads", "lstm", "transformer",
        "subclassed", "features", "ops_layer",
    ]  # fmt: skip


def test_they_print_what_keras_prints():
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    assert run("hpnn") == run("keras")

"""Keras 3 tutorial programs run unchanged with ``import hpnn as keras`` and give the
same results structure (history keys, output shapes) as Keras itself."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import hpnn

PROGRAMS = Path(__file__).parent / "keras_programs"
SECTIONS = {
    "tutorial_models.py": [
        "mlp", "text", "autoencoder", "regression", "heads", "lstm", "transformer",
        "subclassed", "features", "ops_layer",
    ],
    "advanced_programs.py": [
        "distill", "seq2seq", "transformer", "conv1d_ae", "imbalanced", "attention", "ops",
    ],
}  # fmt: skip


def run(framework, program):
    env = dict(os.environ, PYTHONPATH=str(Path(hpnn.__file__).parent.parent))
    env.setdefault("KERAS_BACKEND", "torch")
    out = subprocess.run(
        [sys.executable, str(PROGRAMS / program), framework],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()


@pytest.mark.parametrize("program", sorted(SECTIONS))
def test_the_programs_run_with_hpnn_as_keras(program):
    lines = run("hpnn", program)
    assert [line.split()[0] for line in lines] == SECTIONS[program]


@pytest.mark.parametrize("program", sorted(SECTIONS))
def test_they_print_what_keras_prints(program, keras):
    assert run("hpnn", program) == run("keras", program)

"""Tests for hpnn.allocator: freed array memory is reused instead of faulted in again."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpnn import allocator

REPO = Path(__file__).resolve().parents[1]
glibc_only = pytest.mark.skipif(not allocator._glibc(), reason="glibc malloc only")

# A training step in miniature: fill eight 4 MiB arrays that live together, free them all;
# print the minor page faults per round (8,192 pages are written each round).
PROBE = """
import resource, numpy as np, hpnn
def step():
    return [np.ones(1 << 20, np.float32) for _ in range(8)]
for _ in range(5):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(hpnn.allocator.state(), (after - before) / 20)
"""


def probe(**env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "HPNN_MALLOC"))}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    state, faults = proc.stdout.rsplit(" ", 1)
    return state, float(faults)


@glibc_only
def test_a_freed_block_is_reused_without_page_faults():
    state, faults = probe()
    assert state == "tuned"
    assert faults < 50


@glibc_only
def test_opting_out_leaves_malloc_as_it_was():
    state, faults = probe(HPNN_MALLOC="system")
    assert state == "system (HPNN_MALLOC=system)"
    assert faults > 2000  # glibc returns the memory each round and faults it in again
    state, _ = probe(MALLOC_TRIM_THRESHOLD_="1000000")
    assert state == "system (glibc MALLOC_*_ variables set)"


def test_a_bad_setting_names_the_variable():
    proc = subprocess.run(
        [sys.executable, "-c", "import hpnn"],
        env={**os.environ, "PYTHONPATH": str(REPO), "HPNN_MALLOC": "fast"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "HPNN_MALLOC: expected 'tuned' or 'system'. Received: 'fast'" in proc.stderr

"""Data-parallel training: one-rank communicator here, and real ``mpiexec -n 2`` runs."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import hpnn
from hpnn.distributed import SingleProcessComm, data_parallel

sys.path.insert(0, str(Path(__file__).parent))
import mpi_worker

WORKER = Path(__file__).parent / "mpi_worker.py"


@pytest.fixture
def one_rank():
    hpnn.distributed.init(SingleProcessComm())
    yield
    hpnn.distributed.shutdown()


def test_one_rank_communicator_matches_plain_training(one_rank):
    with_comm = mpi_worker.train(16)
    hpnn.distributed.shutdown()
    plain = mpi_worker.train(16)
    assert with_comm.keys() == plain.keys()
    for k in plain:
        np.testing.assert_allclose(with_comm[k], plain[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize(("n", "size"), [(10, 3), (2, 4), (7, 1), (0, 2)])
def test_shards_cover_everything_once(n, size):
    even = [data_parallel.even_shard(n, r, size) for r in range(size)]
    assert sorted(i for s in even for i in range(n)[s]) == list(range(n))
    per_rank = max(1, -(-n // size))
    batch = [data_parallel.local_slice(n, r, size, per_rank) for r in range(size)]
    assert sorted(i for s in batch for i in range(n)[s]) == list(range(n))


def test_launch_detection(monkeypatch):
    for var in hpnn.distributed._LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)
    assert not hpnn.distributed.launched_under_mpi()
    monkeypatch.setenv("PMI_SIZE", "1")
    assert not hpnn.distributed.launched_under_mpi()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert hpnn.distributed.launched_under_mpi()


def test_no_mpi_import_without_launch():
    code = (
        "import sys, numpy as np, hpnn; m = hpnn.Sequential([hpnn.Input(shape=(2,)), "
        "hpnn.layers.Dense(1)]); m.compile(loss='mse'); m.fit(np.ones((4, 2)), np.ones(4), "
        "verbose=0); sys.exit('mpi4py' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k not in hpnn.distributed._LAUNCH_VARS}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode == 0


def _mpiexec():
    exe = shutil.which("mpiexec")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        exe = None
    if exe is None:
        pytest.skip("mpiexec/mpi4py not installed (pip install 'hpnn[mpi]')")
    return exe


def _run(mode, out, timeout):
    env = dict(os.environ, PYTHONPATH=str(Path(hpnn.__file__).parent.parent))
    cmd = [_mpiexec(), "-n", "2", sys.executable, "-m", "mpi4py", str(WORKER), mode, str(out)]
    return subprocess.run(cmd, env=env, timeout=timeout, capture_output=True, text=True)


@pytest.mark.parametrize("mode", ["train", "weighted"])
def test_two_ranks_equal_one_process_with_double_batch(tmp_path, mode):
    out = tmp_path / "result.npz"
    proc = _run(mode, out, timeout=300)
    assert proc.returncode == 0, proc.stderr
    two = dict(np.load(out))
    # one process, batch 2 x 8, same data and seed
    one = mpi_worker.train(16, weighted=mode == "weighted")
    assert two.keys() == one.keys()
    for k in one:
        if k.startswith("w"):
            np.testing.assert_allclose(two[k], one[k], rtol=1e-4, atol=1e-5, err_msg=k)
        else:  # losses and metrics: exact sums over all samples, no duplicates
            np.testing.assert_allclose(two[k], one[k], rtol=1e-4, atol=1e-6, err_msg=k)


def test_failing_rank_aborts_the_job_quickly(tmp_path):
    start = time.monotonic()
    proc = _run("raise", tmp_path / "unused", timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "deliberate failure on rank 1" in proc.stderr, proc.stdout + proc.stderr
    assert elapsed < 60, f"the job took {elapsed:.0f} s to end"

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
    # the venv's own (pip's mpich) when its bin/ is not on PATH
    exe = shutil.which("mpiexec") or shutil.which("mpiexec", path=str(Path(sys.executable).parent))
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        exe = None
    if exe is None:
        pytest.skip("mpiexec/mpi4py not installed (pip install 'hpnn[mpi]')")
    return exe


def _run(mode, out, timeout, ranks=2, **env):
    env = dict(os.environ, PYTHONPATH=str(Path(hpnn.__file__).parent.parent), **env)
    cmd = [_mpiexec(), "-n", str(ranks), sys.executable, "-m", "mpi4py", str(WORKER), mode]
    cmd.append(str(out))
    return subprocess.run(cmd, env=env, timeout=timeout, capture_output=True, text=True)


# How the ranks sum their gradients: one shared copy of the weights per node (the
# default where ranks share a node), one Allreduce of everything (HPNN_MPI_SHM=0),
# "nodes" of one rank each (a shared-memory sum within, then between the nodes) and
# three ranks on one node, and two "nodes" of two ranks (shared weights on each,
# owners' sums between them).
PATHS = {
    "shared-weights": (2, {}),
    "allreduce": (2, {"HPNN_MPI_SHM": "0"}),
    "two-nodes": (2, {"HPNN_TEST_NODE_SIZE": "1"}),
    "3-shared-weights": (3, {}),
    "2x2-shared-weights": (4, {"HPNN_TEST_NODE_SIZE": "2"}),
}


@pytest.mark.parametrize(
    ("mode", "path"),
    [
        ("train", "shared-weights"),
        ("weighted", "shared-weights"),
        ("freeze", "shared-weights"),
        ("clipped", "shared-weights"),  # falls back to a shared-memory sum of the gradients
        ("clipnorm", "shared-weights"),  # whole variables to each rank
        ("freeze+clipnorm", "3-shared-weights"),  # at the end, ranks that own nothing
        ("constrained", "3-shared-weights"),  # a kernel constraint: whole variables too
        ("train", "allreduce"),
        ("train", "two-nodes"),
        ("train", "3-shared-weights"),
        ("train", "2x2-shared-weights"),
    ],
)
def test_ranks_equal_one_process_with_the_global_batch(tmp_path, mode, path):
    ranks, env = PATHS[path]
    out = tmp_path / "result.npz"
    proc = _run(mode, out, timeout=300, ranks=ranks, **env)
    assert proc.returncode == 0, proc.stderr
    many = dict(np.load(out))
    # every rank ends in the same state, and its weights are its own again after fit
    assert many.pop("agree"), "the ranks ended with different weights or optimizer state"
    assert many.pop("private"), "a change to rank 1's weights showed on another rank"
    # the checkpoint rank 0 wrote at the last epoch's end holds the final state whole
    ckpt = hpnn.models.load_model(f"{out}.ckpt.hpnn", custom_objects={"Scale": mpi_worker.Scale})
    assert ckpt.optimizer.iterations == int(many["iterations"])
    for i, w in enumerate(ckpt.get_weights()):
        np.testing.assert_array_equal(w, many[f"w{i}"])
    for i, s in enumerate(ckpt.optimizer.variables()):
        np.testing.assert_array_equal(s, many[f"s{i}"])
    # one process, batch ranks x 8, same data and seed
    one = mpi_worker.train(8 * ranks, **mpi_worker.flags(mode))
    assert many.keys() == one.keys()
    assert int(many["iterations"]) == int(one["iterations"])
    for k in one:
        if k[0] in "ws":  # weights and optimizer state
            np.testing.assert_allclose(many[k], one[k], rtol=1e-4, atol=1e-5, err_msg=k)
        else:  # losses and metrics: exact sums over all samples, no duplicates
            np.testing.assert_allclose(many[k], one[k], rtol=1e-4, atol=1e-6, err_msg=k)


def _coupled_in_process(monkeypatch, threads, subclass=False):
    monkeypatch.setenv("HPNN_BATCH_THREADS", threads)
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "0")
    from hpnn.parallel import split

    monkeypatch.setattr(split, "MIN_PER_PART", 4)
    mpi_worker.HalfStep.calls = 0
    return mpi_worker.coupled(16, subclass=subclass)


@pytest.mark.parametrize("mode", ["coupled", "subclass"])
def test_coupled_samples_train_alike_in_every_placement(tmp_path, monkeypatch, mode):
    """BatchNormalization, Dropout and a custom layer (and a subclass's own train_step):
    one process, the batch split across threads, two MPI ranks and two ranks each
    splitting their shard give the same weights and losses."""
    pytest.importorskip("threadpoolctl")
    subclass = mode == "subclass"
    whole = _coupled_in_process(monkeypatch, "0", subclass)
    split_ = _coupled_in_process(monkeypatch, "2", subclass)
    if subclass:  # the override ran for every batch (of 26), in each part when split
        assert whole["calls"] == 26
        assert split_["calls"] > 40
    runs = {"one process, split": split_}
    for threads in ("0", "2"):
        out = tmp_path / f"{mode}-{threads}.npz"
        proc = _run(mode, out, timeout=300, HPNN_BATCH_THREADS=threads)
        assert proc.returncode == 0, proc.stderr
        many = dict(np.load(out))
        if subclass:  # on each rank: once a step, or once a part
            calls = (many.pop("calls"), many.pop("calls_rank1"))
            assert all(c == 26 if threads == "0" else c > 40 for c in calls), calls
        else:
            many.pop("calls"), many.pop("calls_rank1")
        runs[f"2 ranks, HPNN_BATCH_THREADS={threads}"] = many
    whole.pop("calls")
    for name, run in runs.items():
        run.pop("calls", None)
        assert run.keys() == whole.keys(), name
        for k in whole:
            np.testing.assert_allclose(run[k], whole[k], rtol=1e-4, atol=1e-5, err_msg=name + k)


def test_metrics_sized_by_the_data_with_more_ranks_than_samples(tmp_path):
    out = tmp_path / "tiny.npz"
    proc = _run("tiny", out, timeout=120, ranks=3)
    assert proc.returncode == 0, proc.stderr
    many, one = dict(np.load(out)), mpi_worker.tiny(ranks=3)
    assert many.keys() == one.keys() and many["f1_score"].shape == (2, 2)
    for k in one:
        np.testing.assert_allclose(many[k], one[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_failing_rank_aborts_the_job_quickly(tmp_path):
    start = time.monotonic()
    proc = _run("raise", tmp_path / "unused", timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "deliberate failure on rank 1" in proc.stderr, proc.stdout + proc.stderr
    assert elapsed < 60, f"the job took {elapsed:.0f} s to end"


def test_owners_go_largest_first_to_the_least_loaded_rank():
    from hpnn.distributed.shared import owners

    assert owners([10, 400, 5, 260], 2) == [1, 0, 1, 1]
    assert owners([7], 3) == [0]  # ranks 1 and 2 own nothing
    sizes = list(np.random.default_rng(0).integers(1, 1000, 50))
    load = np.bincount(owners(sizes, 4), weights=sizes, minlength=4)
    assert load.max() - load.min() <= max(sizes)


def test_row_shares_cut_all_variables_into_equal_parts_at_rows():
    from hpnn.distributed.shared import row_shares

    shapes = [(784, 512), (512,), (512, 512), (512,), (512, 10), (10,), ()]
    for ranks in (1, 2, 3, 5):
        shares = row_shares(shapes, ranks)
        load = [0] * ranks
        for shape, pieces in zip(shapes, shares, strict=True):
            rows = shape[0] if shape else 1
            # contiguous pieces that cover every row once, ranks in order
            assert [a for _, a, _ in pieces] == [0, *[b for _, _, b in pieces[:-1]]]
            assert pieces[-1][2] == rows
            for r, a, b in pieces:
                load[r] += (b - a) * (int(np.prod(shape)) // rows)
        total = sum(int(np.prod(s)) for s in shapes)
        assert max(load) - min(load) <= 2 * 512, (ranks, load)
        assert sum(load) == total


def test_one_rank_keeps_its_own_weights(one_rank):
    model = mpi_worker.build()
    before = [id(v.data) for v in model.trainable_weights]
    with data_parallel.node_shared_weights(model, hpnn.distributed.get_comm()):
        assert "_dp_shared" not in model.__dict__
    assert [id(v.data) for v in model.trainable_weights] == before

"""Data-parallel training over MPI.

Run the same script under ``mpiexec -n N python -m mpi4py train.py`` (or
``srun``): hpnn notices the MPI launch on the first ``fit`` and trains with
every rank on a disjoint shard of each global batch of ``batch_size * N``
samples, gradients summed over the ranks every step (ranks of one node share
one copy of the weights in memory: ``hpnn.distributed.shared``). Without an MPI
launch nothing changes and mpi4py is never imported.
"""

from __future__ import annotations

import os

from hpnn.distributed.comm import Communicator, MPIComm, SingleProcessComm

_comm: Communicator | None = None

# Variables that MPI launchers set in every rank's environment.
_LAUNCH_VARS = (
    "PMI_SIZE",
    "OMPI_COMM_WORLD_SIZE",
    "PMIX_SIZE",
    "MPI_LOCALNRANKS",
    "SLURM_STEP_NUM_TASKS",
)


def launched_under_mpi() -> bool:
    """Whether this process was started by an MPI launcher with more than one rank."""
    for var in _LAUNCH_VARS:
        try:
            if int(os.environ.get(var, "1")) > 1:
                return True
        except ValueError:
            continue
    return False


def init(comm: Communicator | None = None, blas_threads: int | None = None) -> Communicator:
    """Start data-parallel training; returns the communicator.

    Args:
        comm: a Communicator; default ``MPIComm()`` over ``MPI.COMM_WORLD``.
        blas_threads: BLAS threads for this rank; default the usable cores divided
            by the ranks on this node, so ranks do not fight over cores.
    """
    global _comm
    if comm is None:
        try:
            comm = MPIComm()
        except ImportError as e:
            raise ImportError(
                "hpnn.distributed needs mpi4py and an MPI library: pip install 'hpnn[mpi]'. "
                f"Received: ImportError({e})"
            ) from e
    _comm = comm
    _limit_blas_threads(comm, blas_threads)
    return comm


def _limit_blas_threads(comm: Communicator, threads: int | None) -> None:
    if comm.size == 1 and threads is None:
        return
    if threads is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        threads = max(1, (cores or 1) // max(comm.local_size, 1))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=threads, user_api="blas")


def get_comm() -> Communicator | None:
    """The active communicator: initialised here on an MPI launch, else None."""
    if _comm is None and launched_under_mpi():
        init()
    return _comm


def shutdown() -> None:
    """Forget the communicator (back to single-process training)."""
    global _comm
    _comm = None


def rank() -> int:
    c = get_comm()
    return c.rank if c is not None else 0


def size() -> int:
    c = get_comm()
    return c.size if c is not None else 1


def is_chief() -> bool:
    """True on rank 0 (or without MPI): the rank that prints and writes files."""
    return rank() == 0


__all__ = [
    "Communicator",
    "MPIComm",
    "SingleProcessComm",
    "get_comm",
    "init",
    "is_chief",
    "launched_under_mpi",
    "rank",
    "shutdown",
    "size",
]

"""Communicators: the few collectives data-parallel training needs.

``SingleProcessComm`` is the one-rank communicator (every collective is the
identity), so the data-parallel code path runs and is tested in one process.
``MPIComm`` wraps an mpi4py communicator; it is the only place mpi4py is used.
"""

from __future__ import annotations

import numpy as np


class Communicator:
    """Interface: rank, size and the collectives used by ``hpnn.distributed``."""

    rank = 0
    size = 1
    local_size = 1

    def allreduce_(self, buf: np.ndarray) -> np.ndarray:
        """Sum ``buf`` over all ranks, in place; returns it."""
        raise NotImplementedError

    def bcast_(self, buf: np.ndarray, root: int = 0) -> np.ndarray:
        """Overwrite ``buf`` on every rank with root's ``buf``; returns it."""
        raise NotImplementedError

    def bcast_obj(self, obj, root: int = 0):
        """Return root's picklable ``obj`` on every rank."""
        raise NotImplementedError

    def barrier(self) -> None:
        raise NotImplementedError

    def abort(self, code: int = 1) -> None:
        raise SystemExit(code)


class SingleProcessComm(Communicator):
    """One rank: every collective returns its input."""

    def allreduce_(self, buf):
        return buf

    def bcast_(self, buf, root=0):
        return buf

    def bcast_obj(self, obj, root=0):
        return obj

    def barrier(self):
        return None


class MPIComm(Communicator):
    """Collectives over an mpi4py communicator (``MPI.COMM_WORLD`` by default)."""

    def __init__(self, comm=None):
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.local_size = self.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()

    def allreduce_(self, buf):
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        return buf

    def bcast_(self, buf, root=0):
        self.comm.Bcast(buf, root=root)
        return buf

    def bcast_obj(self, obj, root=0):
        return self.comm.bcast(obj, root=root)

    def barrier(self):
        self.comm.Barrier()

    def abort(self, code=1):
        self.comm.Abort(code)

"""Communicators: the few collectives data-parallel training needs.

``SingleProcessComm`` is the one-rank communicator (every collective is the
identity), so the data-parallel code path runs and is tested in one process.
``MPIComm`` wraps an mpi4py communicator; it and ``hpnn.distributed.shared``
are the only places mpi4py is used.

Gradients are summed through a ``GradientSum``: the step writes its flat
gradient into ``slot`` and ``reduce()`` returns the sum over all ranks. Over MPI,
ranks that share a node sum through one MPI-3 shared-memory window
(``hpnn.distributed.shared.SharedSum``).
"""

from __future__ import annotations

import os

import numpy as np


class GradientSum:
    """A buffer of ``n`` values that every rank fills; ``reduce()`` sums it over ranks.

    This one is a private array summed by ``comm.allreduce_`` (the identity on one rank).
    """

    def __init__(self, comm: Communicator, n: int, dtype) -> None:
        self.comm = comm
        self.slot = np.empty(n, dtype=dtype)

    def reduce(self) -> np.ndarray:
        """The sum over ranks of every rank's ``slot``; valid until the next ``reduce()``."""
        return self.comm.allreduce_(self.slot)


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

    def gradient_sum(self, n: int, dtype) -> GradientSum:
        """The (cached) ``GradientSum`` for ``n`` values of ``dtype``; every rank asks
        for the same ones in the same order."""
        cache = self.__dict__.setdefault("_gradient_sums", {})
        key = (n, np.dtype(dtype).str)
        if key not in cache:
            cache[key] = self._new_gradient_sum(n, np.dtype(dtype))
        return cache[key]

    def _new_gradient_sum(self, n, dtype) -> GradientSum:
        return GradientSum(self, n, dtype)


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
    """Collectives over an mpi4py communicator (``MPI.COMM_WORLD`` by default).

    Args:
        comm: the mpi4py communicator.
        node_comm: the ranks that share memory with this one; default
            ``comm.Split_type(COMM_TYPE_SHARED)`` (the ranks on this node).
        shared_memory: sum gradients through a shared-memory window on each node
            (default: on, unless ``HPNN_MPI_SHM=0``); off, one ``Allreduce`` of
            the whole buffer does it.
    """

    def __init__(self, comm=None, node_comm=None, shared_memory: bool | None = None):
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        if node_comm is None:
            node_comm = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.node = node_comm
        self.local_rank = node_comm.Get_rank()
        self.local_size = node_comm.Get_size()
        if shared_memory is None:
            shared_memory = os.environ.get("HPNN_MPI_SHM", "1") != "0"
        # The node sums are allreduced chunk by chunk between the ranks with the same
        # local rank, so every node must hold as many ranks; else the plain Allreduce.
        sizes = self.comm.allgather(self.local_size)
        self.shared_memory = bool(shared_memory) and len(set(sizes)) == 1
        self.cross = self.comm.Split(self.local_rank, self.rank) if self.shared_memory else None

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

    def _new_gradient_sum(self, n, dtype):
        if self.shared_memory and self.size > 1:
            from hpnn.distributed.shared import SharedSum

            return SharedSum(self, n, dtype)
        return GradientSum(self, n, dtype)

"""Ranks on one node train one copy of the weights, in shared memory.

Plain data parallelism has every rank keep its own weights and optimizer state,
sum all gradients with an allreduce and repeat the whole optimizer step. On a
node whose ranks share memory that repeats work and copies: with
``SharedTraining``, for the length of a ``fit``, the trainable weights and the
optimizer's state live once per node in MPI-3 shared-memory windows, and each
rank of the node owns a share of them: the variables laid end to end, cut into
equal parts at row boundaries (whole variables, largest first to the least
loaded rank, where the update needs a variable's whole gradient: ``clipnorm``).
A step:

1. every rank back-propagates its shard, then writes the gradients of the
   variables it does not own into its slot of a shared gradient window;
2. barrier; each owner adds the other ranks' slots to its own gradients (with
   several nodes, allreduces those sums with the same owner on the other nodes)
   and runs the optimizer on its rows only, in the shared weights and state;
3. barrier: every update is in place before anyone's next forward pass.

The result is the same update as the allreduce path (the same sums; two ranks
add in the same order), with 1/n of the optimizer's work and copies per rank.
At the end of ``fit`` every rank copies the weights and state back into its
own arrays, and the windows are freed.
"""

from __future__ import annotations

import itertools

import numpy as np

from hpnn.distributed.comm import GradientSum
from hpnn.engine.tensor import no_grad
from hpnn.engine.variable import Variable

_ALIGN = 64  # bytes: each array starts on a cache line


def row_shares(shapes, ranks: int) -> list[list[tuple[int, int, int]]]:
    """Per variable, its ``(rank, first row, end row)`` pieces: all variables end to end,
    cut into ``ranks`` nearly equal contiguous parts at row boundaries."""
    rows = [shape[0] if shape else 1 for shape in shapes]
    sizes = [int(np.prod(shape, dtype=np.int64)) for shape in shapes]
    total, start, out = max(sum(sizes), 1), 0, []
    for n, size in zip(rows, sizes, strict=True):
        step = size // n if n else 0
        rank = np.minimum((start + np.arange(n) * step) * ranks // total, ranks - 1)
        cuts = [0, *(np.flatnonzero(np.diff(rank)) + 1).tolist(), n]
        out.append([(int(rank[a]), a, b) for a, b in itertools.pairwise(cuts) if b > a])
        start += size
    return out


def owners(sizes, ranks: int) -> list[int]:
    """The rank that owns each variable: largest first, to the least loaded rank."""
    load = [0] * ranks
    owner = [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        r = min(range(ranks), key=lambda r: (load[r], r))
        owner[i] = r
        load[r] += sizes[i]
    return owner


class NodeArrays:
    """``copies`` sets of arrays (shapes and dtypes given) in one shared-memory window
    that every rank of ``comm``'s node maps; ``arrays[c][i]`` is array ``i`` of copy ``c``."""

    def __init__(self, comm, specs, copies: int = 1) -> None:
        MPI = comm.MPI
        offsets, total = [], 0
        for shape, dtype in specs:
            offsets.append(total)
            nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            total += -(-nbytes // _ALIGN) * _ALIGN
        total = max(total, _ALIGN)
        size = total * copies if comm.local_rank == 0 else 0
        self.win = MPI.Win.Allocate_shared(size, 1, comm=comm.node)
        mem, _ = self.win.Shared_query(0)
        raw = np.frombuffer(mem, dtype=np.uint8, count=total * copies)
        self.arrays = [
            [
                raw[c * total + off : c * total + off + int(np.prod(shape)) * np.dtype(dt).itemsize]
                .view(dt)
                .reshape(shape)
                for off, (shape, dt) in zip(offsets, specs, strict=True)
            ]
            for c in range(copies)
        ]
        self.win.Lock_all(MPI.MODE_NOCHECK)

    def free(self) -> None:
        self.arrays = []
        self.win.Unlock_all()
        self.win.Free()


def fence(comm, node_arrays) -> None:
    """A barrier of the node's ranks that also orders their reads and writes of the
    shared windows (``MPI_Win_sync`` on each side)."""
    for a in node_arrays:
        a.win.Sync()
    comm.node.Barrier()
    for a in node_arrays:
        a.win.Sync()


def _sum_into(out, parts):
    """``out = parts[0] + parts[1] + ...``, added in that order; returns ``out``."""
    if len(parts) == 1:
        out[...] = parts[0]
        return out
    np.add(parts[0], parts[1], out=out)
    for p in parts[2:]:
        out += p
    return out


class SharedSum(GradientSum):
    """A gradient sum over ranks through a shared-memory window per node (for when
    every rank keeps its own weights: ``global_clipnorm``, one rank per node).

    The window holds one slot per local rank and the result. ``reduce()``: a
    barrier (every slot written), local rank ``r`` adds up chunk ``r`` of all slots
    into the result and, with several nodes, allreduces that chunk with the
    ranks of the same local rank on the other nodes; a second barrier, and every
    rank reads the whole result. The barrier at the next ``reduce()`` keeps the
    result until every rank has used it.
    """

    def __init__(self, comm, n: int, dtype) -> None:
        self.comm = comm
        local, size = comm.local_rank, comm.local_size
        self.table = NodeArrays(comm, [((n,), dtype)], copies=size + 1)
        rows = [arrays[0] for arrays in self.table.arrays]
        self.slots, self.result, self.slot = rows[:size], rows[size], rows[local]
        self.chunk = slice(local * n // size, (local + 1) * n // size)

    def reduce(self) -> np.ndarray:
        comm, c = self.comm, self.chunk
        fence(comm, [self.table])
        out = _sum_into(self.result[c], [s[c] for s in self.slots])
        if comm.cross.Get_size() > 1:
            comm.cross.Allreduce(comm.MPI.IN_PLACE, out, op=comm.MPI.SUM)
        fence(comm, [self.table])
        return self.result


def usable(model, comm) -> bool:
    """Whether ``fit`` can share this model's weights among the node's ranks."""
    from hpnn.backend import xp_default

    opt = model.optimizer
    return (
        getattr(comm, "shared_memory", False)
        and comm.local_size > 1
        and xp_default() is np  # the weights must be host arrays
        and opt is not None
        and opt.global_clipnorm is None  # needs every gradient at once
        and bool(model.trainable_weights)
    )


class SharedTraining:
    """The shared weights, state and gradient slots of one ``fit`` (see the module)."""

    def __init__(self, model, comm) -> None:
        self.comm = comm
        self.tails: dict[int, NodeArrays] = {}  # per length: each rank's loss/metric sums
        self.optimizer = opt = model.optimizer
        self.variables = variables = list(model.trainable_weights)
        opt.build(variables)
        self.ids = [id(v) for v in variables]
        me = comm.local_rank
        # the optimizer's state arrays ("_" names are scratch and stay private)
        state = [
            (i, name)
            for i, v in enumerate(variables)
            for name in sorted(opt._slots[id(v)])
            if not name.startswith("_")
        ]
        self.state_keys = state
        spec = [(v.shape, v.dtype) for v in variables]
        state_arrays = [opt._slots[self.ids[i]][n] for i, n in state]
        self.weights = NodeArrays(comm, spec)
        self.state = NodeArrays(comm, [(a.shape, a.dtype) for a in state_arrays])
        self.grads = NodeArrays(comm, spec, copies=comm.local_size)
        if me == 0:
            for dst, v in zip(self.weights.arrays[0], variables, strict=True):
                dst[...] = v.data
            for dst, a in zip(self.state.arrays[0], state_arrays, strict=True):
                dst[...] = a
        self._fence()
        for v, a in zip(variables, self.weights.arrays[0], strict=True):
            v.data = a
        for a, (i, n) in zip(self.state.arrays[0], state, strict=True):
            opt._slots[self.ids[i]][n] = a
        # Who updates what: rows where the update is elementwise (every optimizer here,
        # unless clipnorm or a constraint works on a variable's whole norm, or a state array is not
        # shaped like its variable), else whole variables.
        elementwise = (
            opt.clipnorm is None
            and all(v.constraint is None for v in variables)  # a norm over a whole variable
            and all(opt._slots[self.ids[i]][n].shape == variables[i].shape for i, n in state)
        )
        if elementwise:
            shares = row_shares([v.shape for v in variables], comm.local_size)
        else:
            who = owners([v.size for v in variables], comm.local_size)
            shares = [
                [(o, 0, v.shape[0] if v.ndim else 1)] for o, v in zip(who, variables, strict=True)
            ]
        # this rank's pieces (variable, rows) and the rows it owns in each variable
        self.mine = [(i, a, b) for i, sh in enumerate(shares) for r, a, b in sh if r == me]
        self.own_rows = [(0, 0)] * len(variables)
        for i, a, b in self.mine:
            self.own_rows[i] = (a, b)
        # each piece as a variable of its own, on the shared rows, with its own slots
        # in the optimizer: the shared state's rows and private scratch
        self.pieces = []
        for i, a, b in self.mine:
            v = variables[i]
            piece = Variable(_rows(v.data, a, b), name=v.name, path=f"{v.path}[{a}:{b}]")
            if v.constraint is not None:  # (then each piece is a whole variable)
                assert (a, b) == (0, v.shape[0] if v.ndim else 1), "a constraint on rows"
                piece.constraint = v.constraint
            slots = opt._build_slots(piece)
            for n in slots:
                if not n.startswith("_"):
                    slots[n] = _rows(opt._slots[self.ids[i]][n], a, b)
            opt._slots[id(piece)] = slots
            self.pieces.append(piece)
        # the owned rows' summed gradients, packed for the allreduce between nodes
        self.packed = [np.empty(p.shape, p.dtype) for p in self.pieces]

    def _fence(self) -> None:
        fence(self.comm, [self.weights, self.state, self.grads, *self.tails.values()])

    def matches(self, variables) -> bool:
        return [id(v) for v in variables] == self.ids

    def reduce_and_apply(self, tail: np.ndarray, grads) -> np.ndarray:
        """Steps 1-3 of the module's step, after this rank's backward pass (``grads``:
        this rank's gradient of each variable, or None). ``tail``
        (float64: the loss and metric sums) rides along; returns its sum over all ranks,
        added in the same order on every rank."""
        comm, me = self.comm, self.comm.local_rank
        if len(tail) not in self.tails:  # (the first step: every rank at once)
            self.tails[len(tail)] = NodeArrays(comm, [(tail.shape, np.float64)], comm.local_size)
        tails = [t[0] for t in self.tails[len(tail)].arrays]
        tails[me][...] = tail
        slots = self.grads.arrays
        for i, v in enumerate(self.variables):
            a, b = self.own_rows[i]
            dst = slots[me][i]
            if v.ndim == 0:  # a scalar: whole, owned or not
                if a == b:
                    dst[...] = 0 if grads[i] is None else grads[i]
                continue
            for lo, hi in ((0, a), (b, v.shape[0])):  # the rows others own
                if hi > lo:
                    dst[lo:hi] = 0 if grads[i] is None else grads[i][lo:hi]
        self._fence()
        others = [slots[k] for k in range(comm.local_size) if k != me]
        cross = comm.cross
        many_nodes = cross is not None and cross.Get_size() > 1
        owned = []
        for (i, a, b), out in zip(self.mine, self.packed, strict=True):
            g = grads[i]
            theirs = [_rows(other[i], a, b) for other in others]
            parts = theirs if g is None else [_rows(g, a, b), *theirs]
            if len(parts) == 2 and not many_nodes:
                owned.append(tuple(parts))  # the optimizer adds them (Adam: as it updates)
            else:
                owned.append(_sum_into(out, parts))
        total = _sum_into(np.empty_like(tail), tails)
        if many_nodes:
            for out in [*self.packed, total]:
                cross.Allreduce(comm.MPI.IN_PLACE, out, op=comm.MPI.SUM)
        if self.pieces:
            with no_grad():
                self.optimizer.apply(owned, self.pieces)
        else:  # nothing owned: the step still counts (schedules, bias correction)
            self.optimizer.iterations += 1
        self._fence()
        return total

    def close(self) -> None:
        """Every rank takes its own copy of the weights and state; the windows are freed."""
        opt = self.optimizer
        for piece in self.pieces:
            del opt._slots[id(piece)]
        self.pieces = []
        for v in self.variables:
            v.data = np.array(v.data)
        for i, n in self.state_keys:
            slots = opt._slots[self.ids[i]]
            slots[n] = np.array(slots[n])
        self._fence()
        for arrays in (*self.tails.values(), self.grads, self.state, self.weights):
            arrays.free()
        self.tails = {}


def _rows(a, first: int, end: int):
    """Rows ``first:end`` of ``a`` (a view); a 0-d array whole."""
    return a if a.ndim == 0 else a[first:end]

"""Running one step as parts of its batch: the contexts, the exchange, the sums.

A placement cuts a step's batch into slices and runs the step's function on each
(``fn(x, y, sample_weight)``: the model's ``train_step``, ``test_step`` or
``predict_step``, whatever a subclass made of them) inside a :class:`PartContext`
(``hpnn.engine.step_context``). What comes back is added up as the whole batch
would have had it: each part's loss and gradients weighted by its share of the
batch, its metric updates (made on a copy of each metric) added to the metrics'
states. Nothing here knows of models or layers: a step is a function, its state a
few lists of objects with the metric and optimizer protocols.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field

import numpy as np

from hpnn.engine import step_context
from hpnn.engine.tensor import Tensor


class Exchange:
    """A sum across the parts that run at once on this process's threads (and, through
    ``outer``, across processes): every part gives its array and gets the total, added
    in part order, so the result never depends on which thread came first."""

    def __init__(self, parts: int, outer=None):
        self.barrier = threading.Barrier(parts)
        self.slots = [None] * parts
        self.totals = [None, None]  # double-buffered: call k writes totals[k % 2]
        self.calls = [0] * parts
        self.outer = outer

    def sum(self, index: int, array):
        if len(self.slots) == 1:
            return array if self.outer is None else self.outer(array)
        k = self.calls[index]
        self.calls[index] = k + 1
        self.slots[index] = array
        self.barrier.wait()
        if index == 0:
            total = self.slots[0].copy()
            for part in self.slots[1:]:
                total += part
            self.totals[k % 2] = total if self.outer is None else self.outer(total)
        self.barrier.wait()
        return self.totals[k % 2]

    def abort(self) -> None:
        self.barrier.abort()


class StepShared:
    """What the parts of one step on this process share: the whole batch's random
    draws (made once, by whichever part asks first) and the exchange."""

    def __init__(self, total: int, exchange: Exchange | None):
        self.total = total
        self.exchange = exchange
        self.lock = threading.Lock()
        self.draws: dict = {}

    def draw(self, rng, k: int, fn):
        key = (id(rng), k)
        with self.lock:
            if key not in self.draws:
                self.draws[key] = fn(rng, self.total)
            return self.draws[key]


class PartContext(step_context.StepContext):
    """One part of a step's batch (see ``hpnn.engine.step_context``)."""

    def __init__(self, shared: StepShared, index: int, offset: int, n: int, copies, metrics):
        self.shared, self.index = shared, index
        self.offset, self.total, self.n = offset, shared.total, n
        self.share = n / shared.total if shared.total else 1.0
        self.leader = index == 0  # (one part a process: the first)
        self.grads = {}
        self.metrics_map = copies.for_part(index, metrics).get
        self.collected = None
        self.dummy = False  # an MPI rank with no sample of the batch runs one of zeros
        self._draws: dict = {}

    def batch_sum(self, array):
        if self.shared.exchange is None:
            raise RuntimeError(
                "a layer summed over the batch (batch normalisation or a custom layer using "
                "hpnn.engine.step_context.batch_sum) in a step whose first run did not, so "
                "its parts are not run in step. Set HPNN_BATCH_THREADS=0 for this model."
            )
        if self.dummy:  # a rank without samples: nothing of its own to add
            array = array * 0
        return self.shared.exchange.sum(self.index, array)

    def random(self, rng, draw, n, axis):
        k = self._draws.get(id(rng), 0)
        self._draws[id(rng)] = k + 1
        whole = self.shared.draw(rng, k, draw)
        index = [slice(None)] * whole.ndim
        index[axis] = slice(self.offset, self.offset + n)
        return whole[tuple(index)]

    def collect(self, optimizer, grads, variables) -> bool:
        if self.collected is not None:
            raise RuntimeError(
                "the training step applied gradients twice (two optimizer.apply calls), which "
                "a split batch cannot run in parts: set HPNN_BATCH_THREADS=0 for this model."
            )
        # the part's loss is its own mean: its share of the batch makes it the whole's
        share = self.share
        scaled = []
        for g in grads:
            if g is not None:
                g = (g.data if isinstance(g, Tensor) else g) * share
            scaled.append(g)
        self.collected = (optimizer, list(variables), scaled)
        return True


@dataclass
class PartResult:
    """What one part gives back: its loss (or outputs), gradients, metric states."""

    value: object
    optimizer: object = None
    variables: list = field(default_factory=list)
    grads: list = field(default_factory=list)
    metric_states: list = field(default_factory=list)


class MetricCopies:
    """Each part's own copy of each metric, reset at the start of every part."""

    def __init__(self):
        self.copies: dict = {}

    def for_part(self, index: int, metrics) -> dict:
        out = {}
        for m in metrics:
            key = (index, id(m))
            c = self.copies.get(key)
            if c is None:
                c = self.copies[key] = copy.deepcopy(m)
            c.reset_state()
            out[id(m)] = c
        return _ById(out)


class _ById(dict):
    def get(self, m):
        return dict.get(self, id(m), m)


def call(fn, kind, x, y=None, w=None):
    """A step function called as the trainer calls it: ``fn(x)`` to predict, else
    ``fn(x, y)`` or, with sample weights, ``fn(x, y, w)`` (so a subclass's
    ``train_step(x, y)`` without weights still works)."""
    if kind == "predict":
        return fn(x)
    return fn(x, y) if w is None else fn(x, y, w)


def run_part(fn, kind, x, y, w, ctx: PartContext, metrics, outer=None) -> PartResult:
    """``fn`` on one part inside ``ctx`` (or ``outer``, a context wrapping it); its
    result with ``share``-weighted loss."""
    with step_context.use(outer if outer is not None else ctx):
        value = call(fn, kind, x, y, w)
    if kind == "predict":
        return PartResult(value)
    result = PartResult(float(value) * ctx.share)
    if ctx.collected is not None:
        result.optimizer, result.variables, result.grads = ctx.collected
    result.metric_states = [ctx.metrics_map(m).state_vector() for m in metrics]
    return result


def combine(results: list[PartResult]):
    """The parts' weighted losses added, and their gradients (per variable, in part order;
    None where no part had one): ``(loss, optimizer, variables, grads)``."""
    loss = sum(r.value for r in results)
    first = next((r for r in results if r.optimizer is not None), None)
    if first is None:
        return loss, None, [], []
    variables = first.variables
    applied = [r for r in results if len(r.grads) == len(variables)]
    totals = []
    for i in range(len(variables)):
        parts = [r.grads[i] for r in applied if r.grads[i] is not None]
        if not parts:
            totals.append(None)
            continue
        total = parts[0].copy() if len(parts) > 1 else parts[0]
        for g in parts[1:]:
            total += g
        totals.append(total)
    return loss, first.optimizer, variables, totals


def merge_metrics(metrics, results: list[PartResult]) -> None:
    """Add each part's metric updates into the metrics' own states."""
    for i, m in enumerate(metrics):
        states = [r.metric_states[i] for r in results if r.metric_states]
        if not states:
            continue
        state = np.array(m.state_vector(), dtype=np.float64)
        for s in states:
            if len(s) != len(state) and not state.any():
                state = np.zeros(len(s))  # a metric that sizes its state from the data
            state = state + s
        m.set_state_vector(state)

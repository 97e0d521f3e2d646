"""A batch split across the cores: data parallelism inside one process, on the CPU.

BLAS runs the matrix multiplies on every core, but every other pass of a step
(im2col, pooling, normalisation, the gate arithmetic, the loss) runs on one. With
the batch split each core runs the forward and backward pass of a part of the
batch with single-threaded BLAS, so all cores work through the whole step; the
parts' gradients are added and the optimizer steps once (``hpnn.parallel.parts``).

It applies to any step, whatever its layers: what couples the samples of a batch
goes through ``hpnn.engine.step_context``, so batch normalisation takes the whole
batch's statistics and dropout the whole batch's masks, and the result does not
depend on the number of parts (up to float32 rounding in the sums).

When: numpy arrays, numpy's BLAS set to 2-4 threads (``threadpoolctl``), at least
``MIN_PER_PART`` samples a part, a loss that is a batch mean, and the first run's
measure (``hpnn.parallel.census``) saying that the work off BLAS is worth it.
Without a sum over the batch a part holds at most ``MAX_PER_PART`` samples (a larger
batch is cut into more parts, several per core run in turn, so that a part's arrays
stay in cache); with one (batch normalisation in training) every part runs at once,
one per core. ``HPNN_BATCH_THREADS=0`` (or 1) turns it off; ``HPNN_BATCH_THREADS=N``
splits every step that can be into N parts.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading

import numpy as np

from hpnn.engine.tensor import grad_mode, is_grad_enabled
from hpnn.parallel import census as census_mod
from hpnn.parallel import parts as parts_mod

MIN_PER_PART = 16
# Convolution-like steps on one core: 10,400 samples/s of the reference CNN in parts of
# 32, 8,300 in parts of 64 (the parts' arrays stay in cache).
MAX_PER_PART = 32
MAX_AUTO_THREADS = 4

_lock = threading.Lock()
_pool = None  # (pid, ThreadPoolExecutor)
_blas = None  # threadpoolctl's controllers of numpy's BLAS, or () without threadpoolctl


def setting() -> int | None:
    """``HPNN_BATCH_THREADS``: None for auto, else the number of threads asked for."""
    raw = os.environ.get("HPNN_BATCH_THREADS", "auto").strip().lower()
    if raw in ("", "auto"):
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(
            "HPNN_BATCH_THREADS: expected 'auto' or a non-negative number of threads. "
            f"Received: {os.environ['HPNN_BATCH_THREADS']!r}"
        )
    return value


def _blas_controllers():
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _blas = ()
        else:
            _blas = tuple(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _blas


def blas_threads() -> int:
    """numpy's BLAS threads now (0 when they cannot be controlled)."""
    libs = _blas_controllers()
    return max((lib.get_num_threads() or 1 for lib in libs), default=0)


@contextlib.contextmanager
def single_threaded_blas():
    """BLAS on one thread inside the block (each part's thread calls it on its own)."""
    libs = _blas_controllers()
    before = [lib.get_num_threads() for lib in libs]
    for lib in libs:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(libs, before, strict=True):
            lib.set_num_threads(n)


class Plan:
    """How a kind of step (train, test or predict) of one model runs: from its census."""

    def __init__(self, census: census_mod.Census, weight_bytes: int, training: bool):
        self.census = census
        self.lockstep = census.sums > 0
        self.splittable = census.applies <= 1
        self.weight_bytes = weight_bytes
        self.training = training
        self.copies = parts_mod.MetricCopies()

    def threads(self, n: int, asked: int | None) -> int:
        """How many threads a batch of ``n`` samples runs on (below 2: whole)."""
        if not self.splittable:
            return 0
        if asked is None:
            k = blas_threads()
            if not 2 <= k <= MAX_AUTO_THREADS:
                return 0
            if not census_mod.worth_splitting(self.census, k, self.weight_bytes, self.training):
                return 0
        else:
            k = asked if _blas_controllers() else 0
        return min(k, n // MIN_PER_PART)


class Parts(list):
    """The slices of a split batch (a list), ``threads`` (how many run at once) and
    ``lockstep`` (every part at once: one part a thread)."""

    threads: int
    lockstep: bool


def parts(plan: Plan, n: int) -> Parts | None:
    """The slices to split a batch of ``n`` samples into, or None to run it whole."""
    asked = setting()
    if asked is not None and asked <= 1:
        return None
    threads = plan.threads(n, asked)
    if threads < 2:
        return None
    count = threads if plan.lockstep else max(threads, -(-n // MAX_PER_PART))
    bounds = [n * i // count for i in range(count + 1)]
    out = Parts(slice(a, b) for a, b in itertools.pairwise(bounds))
    out.threads, out.lockstep = threads, plan.lockstep
    return out


def runs(slices) -> list[list[slice]]:
    """The slices cut into ``slices.threads`` runs of consecutive slices: what each
    thread (or worker process) runs in turn."""
    threads = min(getattr(slices, "threads", len(slices)), len(slices))
    edges = [len(slices) * i // threads for i in range(threads + 1)]
    return [list(slices[a:b]) for a, b in itertools.pairwise(edges)]


def _executor(workers: int):
    global _pool
    from concurrent.futures import ThreadPoolExecutor

    with _lock:
        pid = os.getpid()  # a forked child has none of its parent's threads
        if _pool is None or _pool[0] != pid or _pool[1]._max_workers < workers:
            _pool = (pid, ThreadPoolExecutor(workers, thread_name_prefix="hpnn-batch"))
        return _pool[1]


def on_threads(part, slices, on_error=None):
    """``[part(i, s) for i, s in enumerate(slices)]`` on ``slices.threads`` threads, each
    running a run of consecutive slices in turn: the first run on this thread, the
    others on workers, with single-threaded BLAS and this thread's graph recording.
    Every part finishes before this returns or raises; ``on_error()`` runs first when
    this thread fails (it releases parts waiting for this one's sums)."""
    runs_ = runs(slices)
    starts = list(itertools.accumulate((len(r) for r in runs_), initial=0))
    pool = _executor(len(runs_) - 1)
    recording = is_grad_enabled()

    def worker(first, run_):
        with grad_mode(recording):
            return [part(first + j, sl) for j, sl in enumerate(run_)]

    with single_threaded_blas():
        futures = []
        try:
            for s, r in zip(starts[1:-1], runs_[1:], strict=True):
                futures.append(pool.submit(worker, s, r))
            first = worker(0, runs_[0])
        except BaseException:
            if on_error is not None:
                on_error()
            raise
        finally:
            rest = [f.exception() or f.result() for f in futures]  # wait for all
    errors = [r for r in rest if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return first + [r for results in rest for r in results]


def run(step, kind, plan, slices, x, y=None, w=None, where=None):
    """The step's parts on threads: a list of ``PartResult``, in part order.

    ``where``: ``(offset, total, outer_sum)`` of this process's batch within the whole
    batch (MPI ranks), or None for a batch that is the whole.
    """
    offset, total, outer = where if where is not None else (0, len(x), None)
    exchange = parts_mod.Exchange(len(slices), outer) if slices.lockstep else None
    shared = parts_mod.StepShared(total, exchange)
    metrics = step.metrics()

    def part(i, sl):
        n = sl.stop - sl.start
        ctx = parts_mod.PartContext(shared, i, offset + sl.start, n, plan.copies, metrics)
        try:
            return parts_mod.run_part(step.fn(kind), kind, *_slice(sl, x, y, w, kind), ctx, metrics)
        except BaseException:
            if exchange is not None:
                exchange.abort()  # the other parts wait for this one's sums: release them
            raise

    return on_threads(part, slices, None if exchange is None else exchange.abort)


def _slice(sl, x, y, w, kind):
    xs = x[sl]
    if kind == "predict":
        return (xs, None, None)
    return (xs, y[sl] if y is not None else None, None if w is None else w[sl])


def join_outputs(results):
    """The outputs of a split predict step, joined (one array or a list per output)."""
    outs = [r.value for r in results]
    if isinstance(outs[0], (list, tuple)):
        return [np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))]
    return np.concatenate(outs)

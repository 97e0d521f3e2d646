"""The batch split's parts in worker processes instead of threads.

Threads share one interpreter, and the Python side of every part's forward and
backward pass (building the graph, calling each op) holds the GIL: two parts of 16
samples of the reference CNN take 2.7 ms a step in two threads against 1.8 ms for
one part alone and 1.85 ms in two processes (``benchmarks/split_contention.py``). So
once a model has run ``WARM_STEPS`` split steps (training, evaluation and predict
together: one pool a model), hpnn forks ``threads - 1`` worker processes, each a copy
of this process that serves parts of batches (the model, its loss and the compiled
kernels are already there: nothing is rebuilt or loaded, and pages stay shared until
written). In each step this process writes the current weights, the random
generators' states and each worker's parts into shared memory, runs its own first
parts while the workers run theirs, and reads back their losses, gradients, metric
updates or outputs, which are added in the same order as the threads' are. Parts
that sum over the batch (batch normalisation in training) run one a process and
send their sums through the pipes in the middle of the pass (``_summed_with``).

The workers run the same code on the same parts, so a step gives the same numbers
bit for bit whether its parts ran on threads or in processes. Each worker has one
BLAS thread and ignores Ctrl-C (this process handles it); it exits when its pipe
closes: when the model is collected, recompiled or changed (a layer frozen), or
when this process ends.

When (``HPNN_BATCH_PROCESSES``, default ``1``): a step that the batch split
(``hpnn.parallel.split``) cuts into parts, on one input array, on Linux (fork; on
other systems the parts stay on threads), not under MPI; ``0`` keeps them on
threads. A worker that fails is reported once as a warning, the step runs again on
threads from the same weights and random states, and the parts stay there.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import signal
import sys
import tempfile
import time
import traceback
import warnings
import weakref
from multiprocessing.connection import Connection

import numpy as np

from hpnn.parallel import parts as parts_mod
from hpnn.parallel import split

WARM_STEPS = 20  # split steps before the workers start: a short run never pays for them
_CAN_FORK = sys.platform.startswith("linux") and hasattr(os, "fork")


def enabled() -> bool:
    raw = os.environ.get("HPNN_BATCH_PROCESSES", "1").strip().lower()
    if raw in ("1", "on", "true", "yes"):
        return True
    if raw in ("0", "off", "false", "no"):
        return False
    raise ValueError(
        f"HPNN_BATCH_PROCESSES: expected 1 or 0. Received: {os.environ['HPNN_BATCH_PROCESSES']!r}"
    )


# -- arrays through shared memory ---------------------------------------------------------
# Arrays cross between the processes through a memory-mapped file that the sender writes
# and the receiver maps (the pipes carry only where they lie): weights and parts' data
# one way, gradients and outputs the other. The receiver unlinks the file once mapped.
_ALIGN = 64


def _shm_dir() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") else None


def _view(mm, views, desc):
    """The array ``desc`` = (offset, shape, dtype) in ``mm``, made once and cached."""
    view = views.get(desc)
    if view is None:
        if len(views) > 256:  # batch shapes that keep changing: start over
            views.clear()
        off, shape, dtype = desc
        count = int(np.prod(shape))
        view = views[desc] = np.frombuffer(mm, dtype=dtype, count=count, offset=off).reshape(shape)
    return view


class Outbox:
    """A growing shared-memory file this process writes arrays into."""

    def __init__(self):
        self.mm, self.size, self.views, self.path = None, 0, {}, None

    def put(self, arrays):
        """Write ``arrays`` (None kept as None); returns (their descriptions, the path of
        a new file to map or None)."""
        need, descs = 0, []
        for a in arrays:
            if a is None:
                descs.append(None)
                continue
            descs.append((need, a.shape, a.dtype.str))
            need += -(-a.nbytes // _ALIGN) * _ALIGN
        path = None
        if need > self.size:
            size = max(need, 2 * self.size, 1 << 16)
            fd, path = tempfile.mkstemp(prefix="hpnn-parts-", dir=_shm_dir())
            try:
                os.ftruncate(fd, size)
                # (an old map is dropped, not closed: it closes when no view is left)
                self.mm, self.size, self.views = mmap.mmap(fd, size), size, {}
            finally:
                os.close(fd)
            self.path = path  # the receiver unlinks it once mapped; close() if it could not
        for a, desc in zip(arrays, descs, strict=True):
            if a is not None:
                _view(self.mm, self.views, desc)[...] = a
        return descs, path

    def close(self):
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self.mm, self.views, self.path = None, {}, None


class Inbox:
    """The other process's Outbox, mapped here."""

    def __init__(self):
        self.mm, self.views = None, {}

    def remap(self, path) -> None:
        if path is None:
            return
        fd = os.open(path, os.O_RDWR)
        try:
            self.mm, self.views = mmap.mmap(fd, os.fstat(fd).st_size), {}
        finally:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def get(self, desc):
        """A view of an array written by the other side (valid until its next write)."""
        return None if desc is None else _view(self.mm, self.views, desc)


CLOSE_WAIT = 5.0  # seconds a worker has to exit on its closed pipe before it is killed


def _close_fds_but(*keep: int) -> None:
    start = 3
    for fd in sorted(keep):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536)


def _reap(pid: int, wait: float):
    """The exit code of child ``pid`` (negative: the signal that ended it), killed after
    ``wait`` seconds; None if it was reaped elsewhere."""
    deadline = time.monotonic() + wait
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            time.sleep(0.005)
    except ChildProcessError:
        return None


class _Worker:
    """One forked worker process and its two pipes."""

    def __init__(self, step):
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        with warnings.catch_warnings():
            # Python 3.12+ (and JAX, when loaded) warn that a threaded process's child
            # may deadlock on another thread's lock: the child uses none of those
            # threads' libraries (it waits for no compile, pool or JAX thread).
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            pid = os.fork()
        if pid == 0:  # the worker: serve until the pipe closes, never return
            code = 1
            try:
                # Every descriptor but the standard three and its two pipe ends came
                # along with the fork: keeping them would hold other pipes open (another
                # worker's, a subprocess's stdin), which then never report their end.
                _close_fds_but(requests_r, replies_w)
                code = _serve(step, requests_r, replies_w)
            finally:
                os._exit(code)
        os.close(requests_r)
        os.close(replies_w)
        self.pid = pid
        self.send_conn = Connection(requests_w, readable=False)
        self.recv_conn = Connection(replies_r, writable=False)
        self.outbox, self.inbox = Outbox(), Inbox()
        self.ready = False
        self.exitcode = None

    def poll_ready(self) -> bool:
        if not self.ready and self.recv_conn.poll(0):
            self.ready = self._reply("ready") == "ready"
        return self.ready

    def send_parts(self, kind, weights, states, total, parts, lockstep=False) -> None:
        """Ask for ``parts`` of a ``kind`` ("train", "test" or "predict") step, each
        ``(index, offset, arrays)`` (x, y, sample weights or None; x alone to predict),
        after setting the weights and the random generators' ``states``; ``lockstep``:
        one part that exchanges its sums over the batch with this process."""
        arrays = list(weights)
        for _, _, data in parts:
            arrays += data
        descs, path = self.outbox.put(arrays)
        k = len(weights)
        specs = [(index, offset, len(data)) for index, offset, data in parts]
        self.weight_descs = descs[:k]  # (what ``_restore`` reads back after a failure)
        message = (kind, path, descs[:k], descs[k:], states, total, specs, lockstep)
        self.send_conn.send(message)

    def _reply(self, expected):
        kind, payload = self.recv_conn.recv()
        if kind == "error":
            raise RuntimeError(f"hpnn part worker (pid {self.pid}) failed:\n{payload}")
        if kind != expected:
            raise RuntimeError(f"hpnn part worker: expected {expected!r}, got {kind!r}")
        return payload if expected != "ready" else kind

    def result(self, kind):
        """The parts' ``PartResult``s, their arrays copied out of shared memory."""
        path, parts = self._reply("parts")
        self.inbox.remap(path)
        out = []
        for value, descs, states in parts:
            arrays = [None if d is None else self.inbox.get(d).copy() for d in descs]
            if kind == "predict":
                value = arrays[0] if len(arrays) == 1 else arrays
                out.append(parts_mod.PartResult(value))
            else:
                out.append(parts_mod.PartResult(value, grads=arrays, metric_states=states))
        return out

    def close(self) -> None:
        for conn in (self.send_conn, self.recv_conn):
            conn.close()
        self.outbox.close()
        self.exitcode = _reap(self.pid, CLOSE_WAIT)


class PoolSlot:
    """Where a model's one pool lives, shared by the plans of its kinds of step: the
    workers serve training, evaluation and predict alike."""

    pool = None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        self.pool = None


class Pool:
    """A step's worker processes, once started, and its count of split steps."""

    def __init__(self, step):
        self.step = step
        self.steps = 0
        self.workers: list[_Worker] = []
        self.failed = False
        self._finalizer = None

    def start(self, count: int) -> None:
        from hpnn.engine import kernels

        kernels.finish_loading()  # no compile in flight while forking
        self._finalizer = weakref.finalize(self, _close_all, self.workers)
        try:
            for _ in range(count):
                self.workers.append(_Worker(self.step))
        except OSError as e:
            self._fail(e)

    def ready(self, count: int) -> bool:
        if self.failed or len(self.workers) < count:
            return False
        try:
            return all(w.poll_ready() for w in self.workers[:count])
        except (RuntimeError, EOFError, OSError) as e:
            self._fail(e)
            return False

    def run(self, kind, plan, slices, x, y, w):
        """The parts' ``PartResult``s: the first run here, each further run in a
        worker; None (the workers stopped: run the parts on threads) on failure."""
        step = self.step
        runs = split.runs(slices)
        starts = list(itertools.accumulate((len(r) for r in runs), initial=0))

        def data(sl):
            if kind == "predict":
                return [x[sl]]
            return [x[sl], np.asarray(y[sl]), None if w is None else np.asarray(w[sl])]

        weights = [v.data for v in step.variables()]
        states = [g.bit_generator.state for g in step.generators()]
        total = len(x)
        asked = []
        try:
            for worker, first, run in zip(self.workers, starts[1:], runs[1:], strict=False):
                specs = [(first + j, sl.start, data(sl)) for j, sl in enumerate(run)]
                worker.send_parts(kind, weights, states, total, specs, slices.lockstep)
                asked.append(worker)
        except (OSError, ValueError) as e:
            self._fail(e, asked, kind)
            return None
        # parts that sum over the batch (one a process) add their sums through the pipes
        exchange = parts_mod.Exchange(1, _summed_with(asked)) if slices.lockstep else None
        error = None
        try:
            with split.single_threaded_blas():
                here = [(j, sl.start, data(sl)) for j, sl in enumerate(runs[0])]
                first = _run_here(step, kind, plan.copies, here, total, exchange)
        except _LostWorkerError as e:  # a worker failed in the middle of the step
            error = e
        except BaseException:
            if slices.lockstep:  # the workers wait for sums that will not come: end them
                self._kill()
                asked = []
            raise
        finally:  # every worker's answer is read, whatever happens here
            rest = []
            for worker in asked:
                try:
                    rest.append(worker.result(kind))
                except (RuntimeError, EOFError, OSError) as e:
                    error = error or e
            if error is not None:
                _restore(step, asked, states)
                self._fail(error, (), kind)
        if error is not None:
            return None
        return first + [r for results in rest for r in results]

    def _kill(self) -> None:
        """End the workers now, reading nothing (they wait in the middle of a step);
        later steps start new ones after ``WARM_STEPS``."""
        for w in self.workers:
            with contextlib.suppress(OSError):
                os.kill(w.pid, signal.SIGKILL)
        self.close()
        self.steps = 0

    def _fail(self, error, asked=(), kind="train") -> None:
        for worker in asked:  # read what was asked of the others before they are closed
            with contextlib.suppress(RuntimeError, EOFError, OSError):
                worker.result(kind)
        if not self.failed:
            warnings.warn(
                f"hpnn: the batch split's worker processes stopped ({error}); the parts run "
                "on threads from now on (HPNN_BATCH_PROCESSES=0 skips the workers).",
                RuntimeWarning,
                stacklevel=4,
            )
        self.failed = True
        self.close()

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self.workers = []


class _LostWorkerError(RuntimeError):
    """A worker failed while the parts exchanged their sums."""


def _summed_with(workers):
    """This process's sum over its part, plus each worker's, in part order: the
    ``outer`` of the parent's exchange (the workers' side is ``_from_parent``)."""

    def outer(array):
        total = array.copy()
        try:
            for w in workers:
                kind, payload = w.recv_conn.recv()
                if kind != "sum":
                    raise _LostWorkerError(
                        payload if kind == "error" else f"expected a sum, got {kind!r}"
                    )
                total += payload
            for w in workers:
                w.send_conn.send(("total", total))
        except (EOFError, OSError) as e:
            raise _LostWorkerError(e) from e
        return total

    return outer


def _from_parent(requests, replies):
    """A worker's ``outer``: its part's sum to the parent, the whole batch's back."""

    def outer(array):
        replies.send(("sum", array))
        kind, total = requests.recv()
        if kind != "total":
            raise ValueError(f"expected the batch's sum, got {kind!r}")
        return total

    return outer


def _restore(step, workers, states) -> None:
    """The weights and random states as they were before a step that did not finish (a
    worker failed), so that the step runs again on threads from the same start."""
    sent = next((w for w in workers if w.outbox.mm is not None), None)
    if sent is not None:
        for v, desc in zip(step.variables(), sent.weight_descs, strict=True):
            v.data[...] = _view(sent.outbox.mm, sent.outbox.views, desc)
    for g, state in zip(step.generators(), states, strict=True):
        g.bit_generator.state = state


def _run_here(step, kind, copies, parts, total, exchange=None):
    """``parts`` (index, offset, arrays) of a step run in turn on this thread; with an
    ``exchange`` (one part a process, summing over the batch) there is one."""
    shared = parts_mod.StepShared(total, exchange)
    metrics = step.metrics() if kind != "predict" else []
    out = []
    for index, offset, data in parts:
        ctx = parts_mod.PartContext(shared, index, offset, len(data[0]), copies, metrics)
        args = (*data, None, None)[:3]
        out.append(parts_mod.run_part(step.fn(kind), kind, *args, ctx, metrics))
    return out


def _close_all(workers) -> None:
    for w in workers:
        w.close()


def pool_for(step, plan, x, slices):
    """The step's worker pool if it is ready to take this step's runs of parts, else None
    (the parts run on threads); counts the step and starts the workers at ``WARM_STEPS``.
    Steps that sum over the batch (batch normalisation) run one part a process, which
    exchange their sums through the pipes in the middle of the pass."""
    if not _CAN_FORK or not enabled() or not isinstance(x, np.ndarray) or slices.threads < 2:
        return None
    if "mpi4py.MPI" in sys.modules:  # no forking an MPI process
        return None
    slot = plan.slot
    pool = slot.pool
    if pool is None:
        pool = slot.pool = Pool(step)
    pool.steps += 1
    if pool.steps == WARM_STEPS:
        pool.start(slices.threads - 1)
    return pool if pool.ready(slices.threads - 1) else None


def run(step, kind, plan, slices, x, y=None, w=None):
    """The parts of a split step: in the step's worker processes once they are up (the
    same results), else on threads (``split.run``)."""
    results = None
    pool = pool_for(step, plan, x, slices)
    if pool is not None:
        results = pool.run(kind, plan, slices, x, y, w)
    return results if results is not None else split.run(step, kind, plan, slices, x, y, w)


# -- the worker's side --------------------------------------------------------------------
def _serve(step, requests_fd: int, replies_fd: int) -> int:
    """The worker's loop (in the forked child): parts in, results out, until EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    os.environ["HPNN_BATCH_THREADS"] = "0"
    for lib in split._blas_controllers():
        lib.set_num_threads(1)
    requests = Connection(requests_fd, writable=False)
    replies = Connection(replies_fd, readable=False)
    inbox, outbox = Inbox(), Outbox()
    copies = parts_mod.MetricCopies()
    try:
        replies.send(("ready", None))
        while True:
            message = requests.recv()
            kind, path, weight_descs, data_descs, states, total, specs, lockstep = message
            if kind not in ("train", "test", "predict"):
                raise ValueError(f"unknown message {kind!r}")
            inbox.remap(path)
            for v, desc in zip(step.variables(), weight_descs, strict=True):
                v.data[...] = inbox.get(desc)
            for g, state in zip(step.generators(), states, strict=True):
                g.bit_generator.state = state
            parts, at = [], 0
            for index, offset, count in specs:
                parts.append((index, offset, [inbox.get(d) for d in data_descs[at : at + count]]))
                at += count
            exchange = parts_mod.Exchange(1, _from_parent(requests, replies)) if lockstep else None
            results = _run_here(step, kind, copies, parts, total, exchange)
            arrays = []
            for r in results:
                arrays += _arrays_of(r, kind)
            descs, out_path = outbox.put(arrays)
            answer, at = [], 0
            for r in results:
                k = len(_arrays_of(r, kind))
                value = None if kind == "predict" else r.value
                answer.append((value, descs[at : at + k], r.metric_states))
                at += k
            replies.send(("parts", (out_path, answer)))
    except EOFError:  # the parent closed the pipe: done
        return 0
    except BaseException:
        with contextlib.suppress(OSError):
            replies.send(("error", traceback.format_exc()))
        return 1


def _arrays_of(result, kind) -> list:
    """The arrays a part's result sends through shared memory: outputs or gradients."""
    if kind == "predict":
        value = result.value
        return list(value) if isinstance(value, (list, tuple)) else [value]
    return list(result.grads)

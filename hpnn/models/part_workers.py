"""The batch split's parts in worker processes instead of threads.

Threads share one interpreter, and the Python side of every part's forward and
backward pass (building the graph, calling each op) holds the GIL: two parts of 16
samples of the reference CNN take 2.7 ms a step in two threads against 1.8 ms for
one part alone and 1.85 ms in two processes (``benchmarks/split_contention.py``). So
once a model has run ``WARM_STEPS`` split steps (of any kind), hpnn forks ``threads - 1``
worker processes, each a copy of this process that serves parts of batches (the
model, its loss and the compiled kernels are already there: nothing is rebuilt or
loaded, and pages stay shared until written). In each step this process writes the
current weights and each worker's parts into shared memory, runs its own first parts
while the workers run theirs, and reads back their losses, outputs and gradients,
which are summed in the same order as the threads' are.

The workers run the same code on the same parts, so a step gives the same numbers
bit for bit whether its parts ran on threads or in processes. Each worker has one
BLAS thread and ignores Ctrl-C (this process handles it); it exits when its pipe
closes: when the model is collected, recompiled or changed (a layer frozen), or
when this process ends.

When (``HPNN_BATCH_PROCESSES``, default ``1``): a training, evaluation (``evaluate``,
validation) or ``predict`` batch that the batch split cuts into parts
(``hpnn.models.batch_split``) on one input array, on Linux (fork; on other systems
the parts stay on threads); ``0`` keeps them on threads. A worker that
fails is reported once as a warning and the parts go back to threads.
"""

from __future__ import annotations

import contextlib
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


def _signature(model) -> tuple:
    """What the workers' copy of the model depends on: its loss and its weights (which
    ones, and which train). A change (a new compile, a layer frozen) restarts them."""
    return (
        id(model.loss),
        getattr(model, "_loss_scale", 1.0),
        tuple((id(v), v.requires_grad) for v in model.weights),
    )


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

    def __init__(self, model):
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
                code = _serve(model, requests_r, replies_w)
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

    def send_parts(self, kind, weights, parts) -> None:
        """Ask for ``parts`` of a ``kind`` ("train" or "predict") step: (arrays, share)
        each, the arrays (x, y, sample weights or None) for training, (x,) to predict."""
        arrays = list(weights)
        for data, _ in parts:
            arrays += data
        descs, path = self.outbox.put(arrays)
        k = len(weights)
        shares = [share for _, share in parts]
        self.send_conn.send((kind, path, descs[:k], descs[k:], shares))

    def _reply(self, expected):
        kind, payload = self.recv_conn.recv()
        if kind == "error":
            raise RuntimeError(f"hpnn part worker (pid {self.pid}) failed:\n{payload}")
        if kind != expected:
            raise RuntimeError(f"hpnn part worker: expected {expected!r}, got {kind!r}")
        return payload if expected != "ready" else kind

    def result(self):
        """The parts' (loss, outputs, gradients), copied out of shared memory."""
        path, parts = self._reply("parts")
        self.inbox.remap(path)
        out = []
        for loss, y_desc, g_descs in parts:
            grads = [None if d is None else self.inbox.get(d).copy() for d in g_descs]
            out.append((loss, self.inbox.get(y_desc).copy(), grads))
        return out

    def close(self) -> None:
        for conn in (self.send_conn, self.recv_conn):
            conn.close()
        self.outbox.close()
        self.exitcode = _reap(self.pid, CLOSE_WAIT)


class Pool:
    """A model's worker processes, once started, and its count of split steps."""

    def __init__(self, signature):
        self.signature = signature
        self.steps = 0
        self.workers: list[_Worker] = []
        self.failed = False
        self._finalizer = None

    def start(self, model, count: int) -> None:
        from hpnn.engine import kernels

        kernels.finish_loading()  # no compile in flight while forking
        self._finalizer = weakref.finalize(self, _close_all, self.workers)
        try:
            for _ in range(count):
                self.workers.append(_Worker(model))
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

    def run(self, kind, model, part, xb, yb, sample_weight, runs):
        """The parts' results, as ``part`` gives them: ``runs[0]`` here, each further run
        in a worker; None (the workers stopped, the parts must run on threads) on
        failure. ``kind``: "train", "test" or "predict" (``yb``, ``sample_weight``
        unused)."""
        from hpnn.models import batch_split

        n = len(xb)

        def data(sl):
            """The part's arrays for a worker, and its share of the batch."""
            if kind == "predict":
                return (xb[sl],), None
            w = None if sample_weight is None else np.asarray(sample_weight[sl])
            return (xb[sl], np.asarray(yb[sl]), w), (sl.stop - sl.start) / n

        weights = [v.data for v in model.weights]
        asked = []
        try:
            for worker, run in zip(self.workers, runs[1:], strict=False):
                worker.send_parts(kind, weights, [data(sl) for sl in run])
                asked.append(worker)
        except (OSError, ValueError) as e:
            self._fail(e, asked)
            return None
        try:
            with batch_split.single_threaded_blas():
                first = [part(sl) for sl in runs[0]]
        finally:  # every worker's answer is read, whatever happens here
            rest, error = [], None
            for w in asked:
                try:
                    rest.append(w.result())
                except (RuntimeError, EOFError, OSError) as e:
                    error = error or e
            if error is not None:
                self._fail(error)
        if error is not None:
            return None
        # a worker answers (loss, outputs, gradients) whatever the kind: keep what
        # ``part`` itself returns
        unpack = {"train": lambda r: r, "test": lambda r: r[:2], "predict": lambda r: r[1]}
        return first + [unpack[kind](r) for results in rest for r in results]

    def _fail(self, error, asked=()) -> None:
        for w in asked:  # read what was asked of the others before they are closed
            with contextlib.suppress(RuntimeError, EOFError, OSError):
                w.result()
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


def _close_all(workers) -> None:
    for w in workers:
        w.close()


def pool_for(model, xb, slices):
    """The model's worker pool if it is ready to take this step's runs of parts, else
    None (the parts run on threads); counts the step and starts the workers at
    ``WARM_STEPS``."""
    if not _CAN_FORK or not enabled() or not isinstance(xb, np.ndarray) or slices.threads < 2:
        return None
    if "mpi4py.MPI" in sys.modules:  # no forking an MPI process
        return None
    pool = model.__dict__.get("_part_pool")
    signature = _signature(model)
    if pool is None or pool.signature != signature:
        if pool is not None:
            pool.close()
        pool = model.__dict__["_part_pool"] = Pool(signature)
    pool.steps += 1
    if pool.steps == WARM_STEPS:
        pool.start(model, slices.threads - 1)
    return pool if pool.ready(slices.threads - 1) else None


def run_parts(model, kind, part, slices, xb, yb=None, sample_weight=None):
    """``[part(sl) for sl in slices]`` for a split batch of ``kind`` ("train", "test"
    or "predict"): in the model's worker processes once they are up (the same results),
    else on threads (``batch_split.run``)."""
    from hpnn.models import batch_split

    results = None
    pool = pool_for(model, xb, slices)
    if pool is not None:
        results = pool.run(kind, model, part, xb, yb, sample_weight, batch_split.runs(slices))
    return results if results is not None else batch_split.run(part, slices)


# -- the worker's side --------------------------------------------------------------------
def _serve(model, requests_fd: int, replies_fd: int) -> int:
    """The worker's loop (in the forked child): parts in, results out, until EOF."""
    from hpnn.models import batch_split

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    os.environ["HPNN_BATCH_THREADS"] = "0"
    for lib in batch_split._blas_controllers():
        lib.set_num_threads(1)
    requests = Connection(requests_fd, writable=False)
    replies = Connection(replies_fd, readable=False)
    inbox, outbox = Inbox(), Outbox()
    try:
        replies.send(("ready", None))
        while True:
            kind, path, weight_descs, data_descs, shares = requests.recv()
            if kind not in ("train", "test", "predict"):
                raise ValueError(f"unknown message {kind!r}")
            inbox.remap(path)
            for v, desc in zip(model.weights, weight_descs, strict=True):
                v.data[...] = inbox.get(desc)
            results = []
            per = 1 if kind == "predict" else 3
            for i, share in enumerate(shares):
                arrays = [inbox.get(d) for d in data_descs[per * i : per * i + per]]
                if kind == "train":
                    results.append(model._train_part(*arrays, share))
                elif kind == "test":
                    results.append((*model._test_part(*arrays, share), []))
                else:
                    results.append((None, model._predict_part(arrays[0]), []))
            arrays = []
            for _, y_pred, grads in results:
                arrays += [y_pred, *grads]
            descs, out_path = outbox.put(arrays)
            parts, at = [], 0
            for loss, _, grads in results:
                parts.append((loss, descs[at], descs[at + 1 : at + 1 + len(grads)]))
                at += 1 + len(grads)
            replies.send(("parts", (out_path, parts)))
    except EOFError:  # the parent closed the pipe: done
        return 0
    except BaseException:
        with contextlib.suppress(OSError):
            replies.send(("error", traceback.format_exc()))
        return 1

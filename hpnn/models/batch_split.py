"""A batch split across threads: data parallelism inside one process, on the CPU.

BLAS runs the matrix multiplies on every core, but every other pass of a step
(im2col, col2im, pooling, the LSTM's gate arithmetic, the loss) runs on one. With
the batch split instead, each thread runs the forward and backward pass of its
part with single-threaded BLAS, so all cores work through the whole step; the
parts' gradients are added and the optimizer steps once. NumPy and the compiled
kernels release the GIL, so the threads run in parallel.

When it applies (``HPNN_BATCH_THREADS=auto``, the default): a ``Sequential`` (or a
functional model with one output) of hpnn's own layers containing a convolution,
pooling or recurrent layer (a stack of ``Dense`` layers is BLAS-bound and runs
faster on threaded BLAS), NumPy arrays,
numpy's BLAS set to 2-4 threads (it then runs one thread per part), and at least
``MIN_PER_THREAD`` samples per part (``MIN_PER_THREAD_RECURRENT`` with a recurrent or
attention layer, whose many small per-time-step operations make small parts lose).
Without a recurrent or attention layer a batch of more than ``MAX_PER_PART`` samples
per thread is cut into more parts, which each thread runs in turn.
Training additionally needs every layer to be deterministic and stateless in
training (no Dropout, noise, augmentation or BatchNormalization) and a loss
reduced by ``sum_over_batch_size`` (the default).
``HPNN_BATCH_THREADS=0`` (or 1) turns it off; ``HPNN_BATCH_THREADS=N`` asks for N
threads wherever the model qualifies. Controlling BLAS threads needs
``threadpoolctl`` (in ``hpnn[jit]``); without it nothing is split.

Results: the same up to float32 rounding as the unsplit step (the parts' gradients
are summed in a fixed order, so runs repeat exactly). Under MPI each rank has one
BLAS thread by default, so nothing is split there.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import threading

import numpy as np

MIN_PER_THREAD = 16  # convolution/pooling: the reference CNN gains from 2 parts of 16
MIN_PER_THREAD_RECURRENT = 64  # LSTM/GRU parts of 32 lose to twice the Python work
# Convolution/pooling: larger batches run as several parts per thread, one after the
# other, so that a part's arrays stay in the core's cache (the reference CNN on one
# core: 10,400 samples/s in parts of 32, 8,300 in parts of 64).
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


# -- which models --------------------------------------------------------------------
# Where a split pays: passes that BLAS does not parallelise.
_WORTH = (
    "Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling1D", "MaxPooling2D",
    "AveragePooling1D",
    "AveragePooling2D", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "TimeDistributed",
    "MultiHeadAttention",
)  # fmt: skip
# Worth a split only with larger parts: many small operations per sample (time steps).
_STEPPED = ("SimpleRNN", "LSTM", "GRU", "Bidirectional", "MultiHeadAttention")
# Exact types (a subclass may keep state): sample by sample and deterministic in training.
_TRAIN = (
    *_WORTH, "InputLayer", "Dense", "Flatten", "Activation", "GlobalAveragePooling1D",
    "Add", "Subtract", "Multiply", "Divide", "Average", "Maximum", "Minimum", "Concatenate",
    "Dot",
    "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "Reshape",
    "Permute", "RepeatVector", "LayerNormalization", "Embedding", "ActivityRegularization",
    "Rescaling", "ZeroPadding2D", "Cropping2D", "UpSampling2D", "Conv2DTranspose",
    "Normalization", "ReLU", "LeakyReLU", "ELU", "Softmax", "PReLU", "Identity",
    "Masking", "UnitNormalization", "GroupNormalization", "Attention", "AdditiveAttention",
    "Resizing", "CenterCrop",
)  # fmt: skip
# Random or stateful in training only; sample by sample in inference.
_INFER = (
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "BatchNormalization", "GaussianNoise",
    "GaussianDropout",
    "RandomFlip", "RandomTranslation",
    "RandomRotation", "RandomZoom", "RandomContrast",
)  # fmt: skip


@functools.cache
def _layer_kinds():
    """The sets of layer classes: (splittable in training, in inference, worth a split,
    worth it only in larger parts)."""
    from hpnn import layers

    names = (_TRAIN, _INFER, _WORTH, _STEPPED)
    train, infer, worth, stepped = ({getattr(layers, n) for n in ns} for ns in names)
    return train, train | infer, worth, stepped


def _inner(layer):
    """The layers a wrapper runs (Bidirectional, TimeDistributed, a nested Sequential)."""
    from hpnn.models.sequential import Sequential

    if isinstance(layer, Sequential):
        return layer.layers
    inner = [getattr(layer, a, None) for a in ("forward_layer", "backward_layer", "layer")]
    return [x for x in inner if x is not None]


def _min_part(model, training: bool) -> tuple[int, bool] | None:
    """The fewest samples a part of a split batch may have, and whether the model has
    recurrent or attention layers; None where the model does not qualify for a split."""
    from hpnn.models.functional import Functional
    from hpnn.models.sequential import Sequential

    if not model.built:
        return None
    if type(model) is Functional:
        if model._multi_out:
            return None  # each output's latest loss is kept on the shared loss object
    elif type(model) is not Sequential:
        return None
    train, infer, worth, stepped = _layer_kinds()
    allowed = train if training else infer
    found_worth = found_stepped = False
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        if type(layer) is Sequential:
            stack.extend(layer.layers)
            continue
        if type(layer) not in allowed:
            return None
        if training and (getattr(layer, "dropout", 0) or getattr(layer, "recurrent_dropout", 0)):
            return None  # recurrent dropout draws random masks
        found_worth = found_worth or type(layer) in worth
        found_stepped = found_stepped or type(layer) in stepped
        stack.extend(_inner(layer))
    if training and getattr(model.loss, "reduction", None) != "sum_over_batch_size":
        return None  # the parts' losses are combined as batch means
    if not found_worth:
        return None
    return (MIN_PER_THREAD_RECURRENT if found_stepped else MIN_PER_THREAD), found_stepped


class Parts(list):
    """The slices of a split batch (a list), and ``threads``: how many threads run them."""

    threads: int


def parts(model, n: int, training: bool) -> Parts | None:
    """The slices to split a batch of ``n`` samples into, or None to run it whole."""
    asked = setting()
    if asked is not None and asked <= 1:
        return None
    weights = model.weights
    if not weights or not isinstance(weights[0].data, np.ndarray):
        return None  # CuPy: the GPU runs the whole batch
    found = _min_part(model, training)
    if found is None:
        return None
    least, stepped = found
    if asked is None:
        k = blas_threads()
        if not 2 <= k <= MAX_AUTO_THREADS:
            return None
    else:
        k = asked if _blas_controllers() else 0
    threads = min(k, n // least)
    if threads < 2:
        return None
    count = threads if stepped else max(threads, -(-n // MAX_PER_PART))
    bounds = [n * i // count for i in range(count + 1)]
    out = Parts(slice(a, b) for a, b in itertools.pairwise(bounds))
    out.threads = threads
    return out


# -- running the parts -----------------------------------------------------------------
def _executor(workers: int):
    global _pool
    from concurrent.futures import ThreadPoolExecutor

    with _lock:
        pid = os.getpid()  # a forked child has none of its parent's threads
        if _pool is None or _pool[0] != pid or _pool[1]._max_workers < workers:
            _pool = (pid, ThreadPoolExecutor(workers, thread_name_prefix="hpnn-batch"))
        return _pool[1]


def runs(slices) -> list[list[slice]]:
    """The slices cut into ``slices.threads`` runs of consecutive slices (one slice a
    run for a plain list): what each thread (or worker process) runs in turn."""
    threads = min(getattr(slices, "threads", len(slices)), len(slices))
    edges = [len(slices) * i // threads for i in range(threads + 1)]
    return [list(slices[a:b]) for a, b in itertools.pairwise(edges)]


def run(fn, slices):
    """``[fn(s) for s in slices]`` on ``slices.threads`` threads (one per slice for a
    plain list), each running a run of consecutive slices in turn: the first run on
    this thread, the others on workers, with single-threaded BLAS and this thread's
    graph recording (on or off; it is per thread). Every part finishes before this
    returns or raises."""
    from hpnn.engine.tensor import grad_mode, is_grad_enabled

    runs_ = runs(slices)
    pool = _executor(len(runs_) - 1)
    recording = is_grad_enabled()

    def worker(run_):
        with grad_mode(recording):
            return [fn(sl) for sl in run_]

    with single_threaded_blas():
        futures = [pool.submit(worker, r) for r in runs_[1:]]
        try:
            first = [fn(sl) for sl in runs_[0]]
        finally:
            rest = [f.exception() or f.result() for f in futures]  # wait for all
    errors = [r for r in rest if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return first + [r for results in rest for r in results]

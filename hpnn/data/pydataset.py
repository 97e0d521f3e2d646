"""Data that comes in batches: ``PyDataset`` (Keras' ``keras.utils.PyDataset``) and
Python generators or iterators, for ``fit``, ``evaluate`` and ``predict``.

A ``PyDataset`` knows its number of batches (``__len__``) and returns batch ``i``
from ``__getitem__(i)``, so data that does not fit in memory is read batch by
batch; ``fit(shuffle=True)`` visits the batches in a new order each epoch, and
``on_epoch_end()`` is called after each. A generator yields batches until it is
exhausted (or ``steps_per_epoch`` batches an epoch). A batch is ``x``,
``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``.
"""

from __future__ import annotations

import itertools

import numpy as np


class PyDataset:
    """Base class of datasets that build each batch on request (Keras' PyDataset).

    Subclasses implement ``__len__`` (the number of batches) and ``__getitem__(index)``
    (batch ``index`` as ``(x, y)`` or ``(x, y, sample_weight)``, or ``x`` alone for
    ``predict``), and may implement ``on_epoch_end()``. ``workers``,
    ``use_multiprocessing`` and ``max_queue_size`` are accepted for Keras
    compatibility; hpnn reads the batches in the training thread, one at a time.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def on_epoch_end(self) -> None:
        """Called after every epoch of ``fit`` (reshuffle files, augment anew...)."""

    @property
    def num_batches(self) -> int:
        return len(self)


Sequence = PyDataset  # Keras 2's name


def is_batched(x) -> bool:
    """Whether ``x`` yields batches (a PyDataset, a generator or an iterator)."""
    return isinstance(x, PyDataset) or (hasattr(x, "__next__") and hasattr(x, "__iter__"))


def steps_of(source, steps):
    """Batches an epoch: ``steps`` when given, else the PyDataset's length (None for a
    generator: until it is exhausted)."""
    if steps is not None:
        if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps <= 0:
            raise ValueError(f"steps must be a positive int. Received: {steps!r}")
        return int(steps)
    if isinstance(source, PyDataset):
        n = len(source)
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(
                f"{type(source).__name__}.__len__ must return the number of batches. "
                f"Received: {n!r}"
            )
        return int(n)
    return None


def epoch_batches(source, steps, order_rng=None):
    """The raw batches of one epoch. A PyDataset's indices are shuffled with
    ``order_rng`` when given; more ``steps`` than it has wrap around."""
    if isinstance(source, PyDataset):
        n = len(source)
        if n == 0:
            return
        order = np.arange(n) if order_rng is None else order_rng.permutation(n)
        count = n if steps is None else steps
        for k in range(count):
            yield source[int(order[k % n])]
        return
    yield from itertools.islice(source, steps) if steps is not None else source


def unpack(batch, step: int, where: str):
    """``(x, y, sample_weight)`` from a batch (missing parts None), with a clear error."""
    if isinstance(batch, tuple) and 1 <= len(batch) <= 3:
        x, y, w = (*batch, None, None)[:3]
        return x, y, w
    if isinstance(batch, tuple) or batch is None:
        got = f"a tuple of {len(batch)}" if isinstance(batch, tuple) else "None"
        raise ValueError(
            f"{where}: batch {step} must be x, (x,), (x, y) or (x, y, sample_weight). "
            f"Received: {got}"
        )
    return batch, None, None

"""Which part of a batch this thread computes: the one hook placements give the engine.

A training step may run whole, or its batch may be cut into parts that run on
several threads, worker processes or MPI ranks (``hpnn.parallel``,
``hpnn.distributed``). The step's code is the same either way; the few things that
look across the samples of a batch ask the current :class:`StepContext` instead
of assuming they see the whole batch:

- :func:`batch_sum`: a sum over the whole batch (batch normalisation's statistics
  and their gradients): the parts' partial sums added together;
- :func:`batch_random`: a random draw with one row per sample (dropout masks,
  noise, augmentation): drawn for the whole batch, this part's rows returned, so the
  masks do not depend on how the batch was cut;
- :func:`batch_size`: the whole batch's size;
- :func:`is_leader`: whether this part updates per-batch state (moving statistics)
  that every part computes alike: exactly one part per process does;
- gradients: ``Optimizer.apply`` hands a part's gradients to the context instead of
  updating (:func:`collector`), and ``Variable.grad`` is kept per part
  (:func:`grad_sink`), so two threads back-propagating through the same weights do
  not mix their sums. The placement adds the parts' gradients and updates once.

Outside a placement the context is the whole batch and all of this is the identity.
"""

from __future__ import annotations

import contextlib
import threading

_local = threading.local()


class StepContext:
    """The whole batch, on this thread: the default (every hook is the identity).

    A placement subclasses it for one part of a batch: ``offset`` (the part's first
    sample in the whole batch), ``total`` (the whole batch's size), ``share``
    (the part's samples over ``total``) and the hooks below.
    """

    offset = 0
    total: int | None = None  # None: the batch this thread sees is the whole batch
    share = 1.0
    leader = True
    grads: dict | None = None  # a part's own .grad of each Variable, by id
    metrics_map = None  # a part's own copy of each metric (by id), or None

    def batch_sum(self, array):
        return array

    def random(self, rng, draw, n, axis):
        return draw(rng, n)

    def collect(self, optimizer, grads, variables) -> bool:
        """Take the gradients of ``optimizer.apply``; False: apply them now."""
        return False


_WHOLE = StepContext()


def current() -> StepContext:
    return getattr(_local, "ctx", _WHOLE)


@contextlib.contextmanager
def use(ctx: StepContext):
    """Run the block as the part ``ctx`` describes (per thread)."""
    before = getattr(_local, "ctx", _WHOLE)
    _local.ctx = ctx
    try:
        yield ctx
    finally:
        _local.ctx = before


def batch_sum(array):
    """``array`` (this part's sum over its samples) summed over every part of the batch."""
    return current().batch_sum(array)


def batch_size(n_local: int) -> int:
    """The whole batch's size, for a part of ``n_local`` samples."""
    total = current().total
    return n_local if total is None else total


def batch_random(rng, draw, n: int, axis: int = 0):
    """``draw(rng, n)``: an array with ``n`` entries (one per sample) along ``axis``.

    Under a split step the draw is made for the whole batch and this part's entries
    are returned, so every part sees the masks the whole batch would have had.

    >>> mask = batch_random(rng, lambda r, m: r.random((m, 10)) < 0.5, len(x))
    """
    return current().random(rng, draw, n, axis)


def is_leader() -> bool:
    return current().leader


def grad_sink() -> dict | None:
    return current().grads


def collector():
    """The context when it collects gradients (a part of a split step), else None."""
    ctx = current()
    return ctx if ctx is not _WHOLE and type(ctx).collect is not StepContext.collect else None


def metric(m):
    """The object that takes ``m``'s updates in this part (``m`` itself when whole)."""
    mapping = current().metrics_map
    return m if mapping is None else mapping(m)

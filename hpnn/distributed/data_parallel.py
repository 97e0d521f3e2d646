"""The data-parallel training step: shard, local backward, sum the gradients, update.

Every rank takes its slice of each global batch. Its loss is the local mean
scaled by ``n_local / n_global``, so the summed gradient over ranks is exactly
the gradient of the global batch mean, whatever the shard sizes (a rank with no
sample contributes zeros and still joins the sum, so nobody hangs). The batch
loss and the metric sums are summed over the ranks in the same step, so the logs
every rank sees — and every callback decides on — are global and equal.

How the gradients are summed: ``hpnn.distributed.shared`` (ranks of a node train
one shared copy of the weights) inside ``fit``, else ``Communicator.gradient_sum``
(a shared-memory sum per node, or one allreduce) and the whole optimizer step on
every rank.
"""

from __future__ import annotations

import contextlib

import numpy as np

from hpnn.backend import get_xp, to_numpy, xp_default
from hpnn.distributed import shared
from hpnn.engine.tensor import no_grad
from hpnn.parallel import parts, split


def local_slice(n_global: int, rank: int, size: int, per_rank: int) -> slice:
    """This rank's part of a global batch of ``n_global`` (<= per_rank * size) samples."""
    start = min(rank * per_rank, n_global)
    return slice(start, min(start + per_rank, n_global))


def even_shard(n: int, rank: int, size: int) -> slice:
    """A contiguous 1/size of ``range(n)`` (sizes differ by at most one)."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def broadcast_state(model, comm, generators=()) -> None:
    """Copy rank 0's weights, optimizer state (slots, iterations) and the states of the
    random ``generators`` (dropout and noise layers') to every rank: each rank then
    draws the whole global batch's masks alike and takes its own rows."""
    for g in generators:
        g.bit_generator.state = comm.bcast_obj(g.bit_generator.state)
    variables = model.weights
    if model.optimizer is not None:
        model.optimizer.build(model.trainable_weights)
    arrays = [v.data for v in variables]
    if model.optimizer is not None:
        arrays += model.optimizer.variables()
    for a in arrays:
        host = np.ascontiguousarray(to_numpy(a))
        comm.bcast_(host)
        a[...] = get_xp(a).asarray(host)
    if model.optimizer is not None:
        model.optimizer.iterations = comm.bcast_obj(model.optimizer.iterations)


def prime_metrics(model) -> None:
    """Size the state of metrics that learn their class count from the first batch
    (F1Score, R2Score), so every rank's state vector has one length even if its shard is
    empty. Once per fit and evaluation: such a metric keeps its size through reset_state."""
    shape = model.output_shape
    if not isinstance(shape, tuple) or not isinstance(shape[-1], int):
        return  # several outputs: their wrapped metrics learn it from the data
    for m in model.metrics:
        prime = getattr(m, "prime", None)
        if prime is not None:
            prime(shape[-1])


def run(step, kind, plan, comm, offset: int, total: int, x, y=None, w=None, census=None):
    """One synchronous step on this rank's shard (``x``: samples ``offset`` to
    ``offset + len(x)`` of a global batch of ``total``); returns the global batch's
    loss. The step is whatever the model's ``train_step`` is: its gradients, handed to
    ``optimizer.apply``, are summed over the ranks (and over the rank's own parts when
    ``plan`` splits it across the cores) and applied once on every rank.

    ``census``: the first step's measure (``hpnn.parallel.census``), which then runs
    it whole on this rank.
    """
    n = len(x)
    metrics = step.metrics()

    def outer(array):  # a sum over the batch (batch normalisation): over every rank
        host = np.array(to_numpy(array), dtype=np.float64)
        comm.allreduce_(host)
        return get_xp(array).asarray(host.astype(array.dtype))

    slices = split.parts(plan, n) if plan is not None and n and census is None else None
    if slices is not None and kind == "train":
        results = split.run(step, kind, plan, slices, x, y, w, where=(offset, total, outer))
    else:
        dummy = n == 0  # no sample here: take part in every sum with zeros
        if dummy:
            x, y, w = _placeholder(x), _placeholder(y), None if w is None else _placeholder(w)
        shared = parts.StepShared(total, parts.Exchange(1, outer))
        copies = plan.copies if plan is not None else parts.MetricCopies()
        ctx = parts.PartContext(shared, 0, offset, n, copies, metrics)
        ctx.dummy = dummy
        if census is not None:
            census.inner = ctx
        results = [parts.run_part(step.fn(kind), kind, x, y, w, ctx, metrics, census)]
        if dummy:
            results[0].metric_states = []
    if kind != "train":
        return results  # (evaluation runs each rank's shard on its own: ``evaluate``)
    loss, optimizer, variables, grads = parts.combine(results)
    states = [np.zeros(len(m.state_vector())) for m in metrics]
    for r in results:
        for i, s in enumerate(r.metric_states):
            states[i] = states[i] + s if len(s) == len(states[i]) else s
    tail = np.asarray([loss * total, *(v for s in states for v in s)], dtype=np.float64)
    if optimizer is None:  # no weight trains: the loss and metrics are still summed
        comm.allreduce_(tail)
    else:
        tail = _reduce_and_apply(step, comm, optimizer, variables, grads, tail)
    at = 1
    for m, s in zip(metrics, states, strict=True):
        m.set_state_vector(np.asarray(m.state_vector(), np.float64) + tail[at : at + len(s)])
        at += len(s)
    return float(tail[0]) / total


def _placeholder(a):
    """One sample of zeros shaped like the samples of ``a`` (a rank with none)."""
    if a is None:
        return None
    if hasattr(a, "arrays"):  # several inputs
        return type(a)([np.zeros((1, *b.shape[1:]), b.dtype) for b in a.arrays])
    return np.zeros((1, *a.shape[1:]), a.dtype)


def _reduce_and_apply(step, comm, optimizer, variables, grads, tail):
    """The gradients summed over the ranks and applied; ``tail`` (the loss and metric
    sums, float64) summed along with them."""
    model = step.model
    node = model.__dict__.get("_dp_shared")
    if node is not None and not node.matches(variables):  # the trainable set changed
        node.close()
        node = shared.SharedTraining(model, comm) if shared.usable(model, comm) else None
        model.__dict__["_dp_shared"] = node
    if node is not None:
        return node.reduce_and_apply(tail, grads)
    comm.allreduce_(tail)
    _allreduce_and_apply(optimizer, comm, variables, grads)
    return tail


def _allreduce_and_apply(optimizer, comm, variables, grads) -> None:
    """Sum the flat gradients over all ranks; every rank runs the whole optimizer step."""
    sizes = [v.size for v in variables]
    gsum = comm.gradient_sum(sum(sizes), np.float64 if _any64(variables) else np.float32)
    buf = gsum.slot
    offset = 0
    for g, n in zip(grads, sizes, strict=True):
        if g is not None:
            buf[offset : offset + n] = to_numpy(g).ravel()
        else:
            buf[offset : offset + n] = 0
        offset += n
    total = gsum.reduce()
    out, offset = [], 0
    xp = xp_default()
    for v, n in zip(variables, sizes, strict=True):
        out.append(xp.asarray(total[offset : offset + n].reshape(v.shape)))
        offset += n
    with no_grad():
        optimizer.apply(out, variables)


@contextlib.contextmanager
def node_shared_weights(model, comm):
    """For the length of the block (a ``fit``'s epochs), the ranks of each node train one
    shared copy of the weights and optimizer state (``hpnn.distributed.shared``) where
    they can; each rank has its own copy again afterwards."""
    if comm is None or comm.size == 1 or not shared.usable(model, comm):
        yield
        return
    model.__dict__["_dp_shared"] = shared.SharedTraining(model, comm)
    try:
        yield
    except BaseException:
        # no collective here: the failing rank is about to abort the job
        model.__dict__.pop("_dp_shared", None)
        raise
    node = model.__dict__.pop("_dp_shared")
    if node is not None:
        node.close()


def _any64(variables) -> bool:
    return any(v.dtype == np.float64 for v in variables)


def evaluate(model, comm, x, y, batch_size: int, cb=None, w=None) -> dict:
    """Loss and metrics over ``(x, y)``, each rank on a contiguous shard; exact totals.

    ``cb`` gets ``on_test_batch_begin/end`` for this rank's batches (local logs).
    """
    for m in model.metrics:
        m.reset_state()
    prime_metrics(model)
    shard = even_shard(len(x), comm.rank, comm.size)
    xs, ys = x[shard], y[shard]
    ws = None if w is None else w[shard]
    total = 0.0
    for step, start in enumerate(range(0, len(xs), batch_size)):
        xb, yb = xs[start : start + batch_size], ys[start : start + batch_size]
        if cb is not None:
            cb.on_test_batch_begin(step)
        wb = () if ws is None else (ws[start : start + batch_size],)
        total += model._run_step("test", xb, yb, *wb) * len(xb)
        if cb is not None:
            cb.on_test_batch_end(step, {"loss": total / (start + len(xb))})
    buf = np.array([total, *[v for m in model.metrics for v in m.state_vector()]], np.float64)
    comm.allreduce_(buf)
    offset = 1
    for m in model.metrics:
        n = len(m.state_vector())
        m.set_state_vector(buf[offset : offset + n])
        offset += n
    return {"loss": float(buf[0]) / max(len(x), 1), **{m.name: m.result() for m in model.metrics}}

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
import functools
import operator

import numpy as np

from hpnn.backend import get_xp, to_numpy, xp_default
from hpnn.distributed import shared
from hpnn.engine.tensor import no_grad
from hpnn.layers.base import collect_activity_penalties


def local_slice(n_global: int, rank: int, size: int, per_rank: int) -> slice:
    """This rank's part of a global batch of ``n_global`` (<= per_rank * size) samples."""
    start = min(rank * per_rank, n_global)
    return slice(start, min(start + per_rank, n_global))


def even_shard(n: int, rank: int, size: int) -> slice:
    """A contiguous 1/size of ``range(n)`` (sizes differ by at most one)."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def broadcast_state(model, comm) -> None:
    """Copy rank 0's weights and optimizer state (slots, iterations) to every rank."""
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


def train_step(model, comm, xb, yb, n_global: int, wb=None) -> float:
    """One synchronous step on this rank's shard (``wb``: its sample weights, or None);
    returns the global batch mean loss."""
    from hpnn.models.model import outputs_data  # (the models package imports this one)

    variables = model.trainable_weights
    n_local = len(xb)
    scale = n_local / n_global
    metric_before = [m.state_vector() for m in model.metrics]
    loss_value = 0.0
    for v in variables:
        v.grad = None
    if n_local:
        with collect_activity_penalties() as activity:
            y_pred = model(model._to_input(xb), training=True)
        # activity penalties are batch means, like the data loss: scaled the same way
        data_loss = functools.reduce(operator.add, activity, model._data_loss(yb, y_pred, wb))
        loss = data_loss * scale
        loss_value = float(data_loss.item()) * n_local
        for m in model.metrics:
            m.update_state(yb, outputs_data(y_pred), wb)
    else:
        loss = None
    penalties = model._weight_penalties()
    if penalties:
        # Each rank adds 1/size of the penalty: the sum over ranks counts it once.
        share = sum(penalties[1:], penalties[0]) * (1.0 / comm.size)
        loss_value += float(share.item()) * n_global
        loss = share if loss is None else loss + share
    if loss is not None and loss.requires_grad:  # (not when no weight it reaches trains)
        loss.backward()
    sizes = [v.size for v in variables]
    # each metric's running sums (a total and a count, or AUC's confusion counts) grew
    # by this rank's batch: those increments are summed over the ranks
    extras = [
        loss_value,
        *(
            x
            for m, b in zip(model.metrics, metric_before, strict=True)
            for x in m.state_vector() - b
        ),
    ]
    # the loss and metric sums, in float64
    tail = np.asarray(extras, dtype=np.float64)
    node = model.__dict__.get("_dp_shared")
    if node is not None and not node.matches(variables):  # the trainable set changed
        node.close()
        node = shared.SharedTraining(model, comm) if shared.usable(model, comm) else None
        model.__dict__["_dp_shared"] = node
    if node is not None:
        tail = node.reduce_and_apply(tail)
    else:
        comm.allreduce_(tail)
        _allreduce_and_apply(model, comm, variables, sizes)
    for v in variables:
        v.grad = None
    offset = 1
    for m, before in zip(model.metrics, metric_before, strict=True):
        m.set_state_vector(before + tail[offset : offset + len(before)])
        offset += len(before)
    return float(tail[0]) / n_global


def _allreduce_and_apply(model, comm, variables, sizes) -> None:
    """Sum the flat gradients over all ranks; every rank runs the whole optimizer step."""
    gsum = comm.gradient_sum(sum(sizes), np.float64 if _any64(variables) else np.float32)
    buf = gsum.slot
    offset = 0
    for v, n in zip(variables, sizes, strict=True):
        if v.grad is not None:
            buf[offset : offset + n] = to_numpy(v.grad).ravel()
        else:
            buf[offset : offset + n] = 0
        offset += n
    total = gsum.reduce()
    grads, offset = [], 0
    xp = xp_default()
    for v, n in zip(variables, sizes, strict=True):
        grads.append(xp.asarray(total[offset : offset + n].reshape(v.shape)))
        offset += n
    with no_grad():
        model.optimizer.apply(grads, variables)


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
        total += model.test_step(xb, yb, *wb) * len(xb)
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

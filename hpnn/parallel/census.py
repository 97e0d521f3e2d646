"""The measure of a step, taken once on its first run: what decides how it is placed.

The first step of each kind (train, test, predict) runs whole, under a
:class:`Census` that counts what the step did, from the engine's side and
whatever its layers are:

- the multiply-adds of its BLAS-bound ops (those that define ``flops``: matmul,
  dense, convolution, the recurrent cells), the elements every op writes (the
  memory traffic of elementwise work, im2col, pooling, normalisation...) and the
  number of ops;
- whether it summed over the batch (``step_context.batch_sum``: batch
  normalisation in training): then its parts must run in step, one per core;
- how many times it applied gradients (a step that updates twice, as a GAN's does,
  cannot be cut into parts).

:func:`worth_splitting` turns the counts into the decision: a split step costs a
fixed price (handing out the parts, gathering them, the weights' round trip to the
worker processes), and it pays where the step's work per core is several times that
price. Measured on the reference machine (2 cores) over the three bench models and
the six families of ``benchmarks/families.py``, BLAS's own threads gain little on
the small matrices of a step (the recurrent cells' per-step products, a part of a
convolution), so the split wins wherever the step is long enough: the MLP (0.8 ms a
step whole at batch 128, 1.6 ms split) stays whole, the reference CNN at batch 32
(3.6 ms whole, 2.4 split) and everything larger is split. The counts depend only on
the model and the batch shape, so the decision (and with it every result) repeats
from run to run.
"""

from __future__ import annotations

from hpnn.engine import step_context, tensor

# One core of the reference machine (2 cores, numpy's OpenBLAS, float32).
FLOPS_PER_S = 100e9  # a BLAS-bound op
ELEMENT_S = 1e-9  # one element an op writes (forward): the NumPy passes around it
OP_S = 10e-6  # the interpreter's share of one op (forward)
PASSES = 3.0  # forward and backward: about three forward passes' work
STEP_S = 250e-6  # a split step's fixed cost: handing out the parts, gathering them
BYTES_S = 4e9  # copying the weights out and the gradients back
MARGIN = 3.0  # split where the work per core is at least this many times the cost


class Census(step_context.StepContext):
    """A step that counts its ops (on the thread that runs it); the rest of what a
    context does comes from ``inner`` (the whole batch, or an MPI rank's part)."""

    def __init__(self, inner: step_context.StepContext | None = None):
        self.inner = inner if inner is not None else step_context.StepContext()
        self.flops = 0
        self.elements = 0
        self.ops = 0
        self.sums = 0
        self.applies = 0

    def __call__(self, f, inputs, y):
        self.ops += 1
        cost = getattr(f, "flops", None)
        if cost is not None:
            self.flops += cost([t.data for t in inputs], y)
        self.elements += getattr(y, "size", 1)

    offset = property(lambda self: self.inner.offset)
    total = property(lambda self: self.inner.total)
    share = property(lambda self: self.inner.share)
    leader = property(lambda self: self.inner.leader)
    grads = property(lambda self: self.inner.grads)
    metrics_map = property(lambda self: self.inner.metrics_map)

    def batch_sum(self, array):
        self.sums += 1
        return self.inner.batch_sum(array)

    def random(self, rng, draw, n, axis):
        return self.inner.random(rng, draw, n, axis)

    def collect(self, optimizer, grads, variables) -> bool:
        self.applies += 1
        return self.inner.collect(optimizer, grads, variables)  # whole: False, apply now

    def run(self, fn, *args):
        """``fn(*args)`` counted."""
        before = tensor.census
        tensor.census = self
        try:
            with step_context.use(self):
                return fn(*args)
        finally:
            tensor.census = before


def estimate(census: Census, cores: int, weight_bytes: int, training: bool):
    """Seconds: the step's work per core, and what splitting it costs."""
    passes = PASSES if training else 1.0
    work = census.flops / FLOPS_PER_S + census.elements * ELEMENT_S + census.ops * OP_S
    cost = STEP_S + weight_bytes * (2 if training else 1) / BYTES_S
    return work * passes / cores, cost


def worth_splitting(census: Census, cores: int, weight_bytes: int, training: bool) -> bool:
    per_core, cost = estimate(census, cores, weight_bytes, training)
    return per_core >= MARGIN * cost

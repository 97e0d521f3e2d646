"""Run under ``mpiexec -n N python -m mpi4py mpi_worker.py MODE OUT``.

MODE ``train``: fit a small CNN on seeded random data with per-rank batch 8 and
write (rank 0) the final weights, optimizer state, history and evaluate() results
to OUT (.npz). ``weighted``: the same with class and sample weights; ``freeze``:
fewer variables train from the second epoch on (see ``Freeze``); ``clipped``:
Adam with a global_clipnorm; ``clipnorm``: with a clipnorm; ``constrained``: the last
kernel under a MaxNorm constraint.
MODE ``raise``: rank 1 raises during the third batch; the job must end, not hang.

With ``HPNN_TEST_NODE_SIZE=k`` the ranks are grouped into "nodes" of k ranks
(shared memory within, messages between), so one machine runs the multi-node path.
"""

import os
import sys

import numpy as np

import hpnn
from hpnn import layers


def data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8, 8, 1)).astype("float32")
    y = (x[:, :4].sum(axis=(1, 2, 3)) > 0).astype("int64") + (x[:, :, :4].mean((1, 2, 3)) > 0)
    return x, hpnn.utils.to_categorical(y, 3)  # one-hot: precision, recall and AUC read it


class Scale(layers.Layer):
    """Multiplies by one learned number: a 0-d weight."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

    def call(self, x):
        return x * self.scale


def build(constrained=False, **adam):
    hpnn.utils.set_random_seed(7)
    # a max-norm on a kernel's columns works on the whole variable (no rows shared out)
    bound = hpnn.constraints.MaxNorm(0.5) if constrained else None
    model = hpnn.Sequential(
        [
            hpnn.Input(shape=(8, 8, 1)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            Scale(),
            layers.Dense(
                8,
                activation="tanh",
                kernel_constraint=bound,  # (36, 8): its rows span the ranks' shares
                kernel_regularizer=hpnn.regularizers.L2(1e-3),
                activity_regularizer=hpnn.regularizers.L1(1e-2),
            ),
            layers.Dense(3, activation="softmax", kernel_constraint=bound),
        ]
    )
    model.compile(
        optimizer=hpnn.optimizers.Adam(0.01, **adam),
        loss="categorical_crossentropy",
        # running sums of every kind, added up over the ranks
        metrics=[
            "accuracy",
            hpnn.metrics.Precision(class_id=1, name="precision_1"),
            hpnn.metrics.Recall(top_k=2, name="recall_top2"),
            hpnn.metrics.AUC(num_thresholds=50),
            hpnn.metrics.F1Score(average="macro", name="f1_macro"),
            hpnn.metrics.F1Score(),  # one score per class: an array in the logs
            hpnn.metrics.R2Score(),  # (of the probabilities: a running-sums metric more)
        ],
    )
    return model


class Freeze(hpnn.callbacks.Callback):
    """Epoch 2 trains all but the first layer; epoch 3 only the last kernel (one
    variable: a rank of a node owns nothing)."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            self.model.layers[0].trainable = False
        if epoch == 2:
            for layer in self.model.layers[:-1]:
                layer.trainable = False
            self.model.layers[-1].bias.trainable = False


def train(
    batch_size,
    out=None,
    weighted=False,
    freeze=False,
    clipped=False,
    clipnorm=False,
    constrained=False,
):
    x, y = data(203, 0)  # 203: the last global batch is uneven across ranks
    xv, yv = data(101, 1)  # 101: the validation shards are uneven too
    # a global norm needs all gradients on every rank: no shared weights then; a
    # variable's norm needs its whole gradient: the ranks of a node share whole variables
    model = build(
        constrained=constrained,
        global_clipnorm=0.5 if clipped else None,
        clipnorm=0.5 if clipnorm else None,
    )
    fit_kw, val, ev_kw = {}, (xv, yv), {}
    if weighted:  # class weights in training, sample weights in validation
        wv = np.random.default_rng(2).uniform(0.0, 2.0, len(xv)).astype("float32")
        fit_kw, val, ev_kw = {"class_weight": {0: 0.5, 2: 3.0}}, (xv, yv, wv), {"sample_weight": wv}
    fit_kw["callbacks"] = [Freeze()] if freeze else []
    if out is not None:  # rank 0 writes the model and optimizer state each epoch
        fit_kw["callbacks"].append(hpnn.callbacks.ModelCheckpoint(f"{out}.ckpt.hpnn"))
    hist = model.fit(
        x, y, batch_size=batch_size, epochs=3, validation_data=val, verbose=0, **fit_kw
    )
    ev = model.evaluate(xv, yv, verbose=0, return_dict=True, **ev_kw)
    result = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    result.update({f"s{i}": s for i, s in enumerate(model.optimizer.variables())})
    result["iterations"] = np.array(model.optimizer.iterations)
    result.update({f"h_{k}": np.array(v) for k, v in hist.history.items()})
    result.update({f"e_{k}": np.array(v) for k, v in ev.items()})
    if out is not None:
        result["agree"] = np.array(ranks_agree(model))
        result["private"] = np.array(weights_are_private(model))
        if hpnn.distributed.is_chief():
            np.savez(out, **result)
    return result


def ranks_agree(model) -> bool:
    """Every rank ends with the same weights, optimizer state and step count."""
    comm = hpnn.distributed.get_comm()
    if comm is None or comm.size == 1:
        return True
    mine = [model.optimizer.iterations, *model.get_weights(), *model.optimizer.variables()]
    first = comm.bcast_obj(mine)
    same = first[0] == mine[0] and all(
        np.array_equal(a, b) for a, b in zip(first[1:], mine[1:], strict=True)
    )
    return bool(comm.comm.allreduce(int(same)) == comm.size)


def weights_are_private(model) -> bool:
    """After fit, a change to one rank's weights must not show on another rank."""
    comm = hpnn.distributed.get_comm()
    if comm is None or comm.size == 1:
        return True
    before = model.get_weights()
    if comm.rank == 1:
        for v in model.trainable_weights:
            v.data += 1
    comm.barrier()
    same = all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    comm.barrier()
    if comm.rank == 1:
        for v in model.trainable_weights:
            v.data -= 1
    # rank 1 sees its own change; every other rank must not
    ok = same != (comm.rank == 1)
    return bool(comm.comm.allreduce(int(ok)) == comm.size)


def tiny(ranks=None):
    """Two samples, per-rank batch 1 (or, in one process, ``ranks``): F1 (per class) and
    R2, whose state is sized by the first batch: a rank with an empty shard must still
    send state of the same length."""
    hpnn.utils.set_random_seed(3)
    model = hpnn.Sequential([hpnn.Input((3,)), layers.Dense(2, activation="softmax")])
    model.compile(
        optimizer="sgd",
        loss="categorical_crossentropy",
        metrics=[hpnn.metrics.F1Score(), hpnn.metrics.R2Score()],
    )
    x = np.random.default_rng(0).random((2, 3), dtype=np.float32)
    y = np.eye(2, dtype=np.float32)
    batch = 1 if ranks is None else ranks
    hist = model.fit(x, y, batch_size=batch, epochs=2, verbose=0, validation_data=(x, y))
    return {k: np.array(v) for k, v in hist.history.items()}


TRAIN_MODES = ("weighted", "freeze", "clipped", "clipnorm", "constrained")


class HalfStep(hpnn.Sequential):
    """A user's own train_step, written with the engine: half the gradient, and a count
    of its calls (it must run on every rank and in every part of a split batch)."""

    calls = 0

    def train_step(self, x, y, sample_weight=None):
        type(self).calls += 1
        y_pred = self(x, training=True)
        loss = self.compute_loss(x, y, y_pred, sample_weight)
        variables = self.trainable_weights
        for v in variables:
            v.grad = None
        loss.backward()
        grads = [None if v.grad is None else v.grad * 0.5 for v in variables]
        self.optimizer.apply(grads, variables)
        self.compute_metrics(x, y, y_pred, sample_weight)
        return float(loss.item())


def coupled(batch_size, out=None, subclass=False):
    """Batch normalisation, dropout and a custom layer (and, with ``subclass``, a custom
    train_step): the samples of a batch are coupled, yet one process, a split batch,
    MPI ranks and a split on every rank must all train to the same weights."""
    from hpnn.parallel import split

    split.MIN_PER_PART = 4  # (so that batches of 8 split into parts here)
    hpnn.utils.set_random_seed(3)
    cls = HalfStep if subclass else hpnn.Sequential
    model = cls(
        [
            hpnn.Input(shape=(8, 8, 1)),
            # no bias before the normalisation: its true gradient is 0, so Adam would
            # walk it by the rounding noise alone, differently in each placement
            layers.Conv2D(4, 3, use_bias=False),
            layers.BatchNormalization(momentum=0.8),
            layers.ReLU(),
            Scale(),
            layers.Flatten(),
            layers.Dropout(0.3),
            layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=hpnn.optimizers.Adam(0.01), loss="categorical_crossentropy", metrics=["accuracy"]
    )
    x, y = data(203, 0)
    hist = model.fit(x, y, batch_size=batch_size, epochs=2, verbose=0)
    result = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    result.update({f"h_{k}": np.array(v) for k, v in hist.history.items()})
    result["calls"] = np.array(HalfStep.calls)
    if out is not None:
        calls = hpnn.distributed.get_comm().bcast_obj(HalfStep.calls, root=1)
        result["calls_rank1"] = np.array(calls)
        if hpnn.distributed.is_chief():
            np.savez(out, **result)
    return result


def flags(mode):
    """``train(**flags(mode))``: ``"freeze+clipnorm"`` -> ``freeze=True, clipnorm=True``."""
    return {} if mode == "train" else dict.fromkeys(mode.split("+"), True)


class FailOnRank1(hpnn.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if hpnn.distributed.rank() == 1 and batch == 2:
            raise RuntimeError("deliberate failure on rank 1")


if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    if "HPNN_TEST_NODE_SIZE" in os.environ:
        from mpi4py import MPI

        world, k = MPI.COMM_WORLD, int(os.environ["HPNN_TEST_NODE_SIZE"])
        node = world.Split(world.Get_rank() // k, world.Get_rank())
        hpnn.distributed.init(hpnn.distributed.MPIComm(node_comm=node))
    if mode == "train" or mode.split("+")[0] in TRAIN_MODES:
        train(8, out, **flags(mode))
    elif mode in ("coupled", "subclass"):
        coupled(8, out, subclass=mode == "subclass")
    elif mode == "tiny":  # fewer samples than ranks: a rank with nothing to do
        np.savez(out, **tiny())
    elif mode == "raise":
        x, y = data(203, 0)
        build().fit(x, y, batch_size=8, epochs=50, verbose=0, callbacks=[FailOnRank1()])

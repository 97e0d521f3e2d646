"""Run under ``mpiexec -n N python -m mpi4py mpi_worker.py MODE OUT``.

MODE ``train``: fit a small CNN on seeded random data with per-rank batch 8 and
write (rank 0) the final weights, history and evaluate() results to OUT (.npz).
MODE ``raise``: rank 1 raises during the third batch; the job must end, not hang.
"""

import sys

import numpy as np

import hpnn
from hpnn import layers


def data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8, 8, 1)).astype("float32")
    y = (x[:, :4].sum(axis=(1, 2, 3)) > 0).astype("int64") + (x[:, :, :4].mean((1, 2, 3)) > 0)
    return x, hpnn.utils.to_categorical(y, 3)  # one-hot: precision, recall and AUC read it


def build():
    hpnn.utils.set_random_seed(7)
    model = hpnn.Sequential(
        [
            hpnn.Input(shape=(8, 8, 1)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(
                8,
                activation="tanh",
                kernel_regularizer=hpnn.regularizers.L2(1e-3),
                activity_regularizer=hpnn.regularizers.L1(1e-2),
            ),
            layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=hpnn.optimizers.Adam(0.01),
        loss="categorical_crossentropy",
        # running sums of every kind, added up over the ranks
        metrics=[
            "accuracy",
            hpnn.metrics.Precision(class_id=1, name="precision_1"),
            hpnn.metrics.Recall(top_k=2, name="recall_top2"),
            hpnn.metrics.AUC(num_thresholds=50),
        ],
    )
    return model


def train(batch_size, out=None, weighted=False):
    x, y = data(203, 0)  # 203: the last global batch is uneven across ranks
    xv, yv = data(101, 1)  # 101: the validation shards are uneven too
    model = build()
    fit_kw, val, ev_kw = {}, (xv, yv), {}
    if weighted:  # class weights in training, sample weights in validation
        wv = np.random.default_rng(2).uniform(0.0, 2.0, len(xv)).astype("float32")
        fit_kw, val, ev_kw = {"class_weight": {0: 0.5, 2: 3.0}}, (xv, yv, wv), {"sample_weight": wv}
    hist = model.fit(
        x, y, batch_size=batch_size, epochs=3, validation_data=val, verbose=0, **fit_kw
    )
    ev = model.evaluate(xv, yv, verbose=0, return_dict=True, **ev_kw)
    result = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    result.update({f"h_{k}": np.array(v) for k, v in hist.history.items()})
    result.update({f"e_{k}": np.array(v) for k, v in ev.items()})
    if out is not None and hpnn.distributed.is_chief():
        np.savez(out, **result)
    return result


class FailOnRank1(hpnn.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if hpnn.distributed.rank() == 1 and batch == 2:
            raise RuntimeError("deliberate failure on rank 1")


if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    if mode in ("train", "weighted"):
        train(8, out, weighted=mode == "weighted")
    elif mode == "raise":
        x, y = data(203, 0)
        build().fit(x, y, batch_size=8, epochs=50, verbose=0, callbacks=[FailOnRank1()])

"""``python resume_worker.py BACKUP_DIR OUT.npz [PAUSE_AT_EPOCH]``: a seeded run with
BackupAndRestore. With PAUSE_AT_EPOCH it writes BACKUP_DIR/paused in the middle of
that epoch and sleeps, to be killed there."""

import os
import sys
import time

import numpy as np

import hpnn
from hpnn import layers


class PauseMidEpoch(hpnn.callbacks.Callback):
    def __init__(self, epoch, marker):
        super().__init__()
        self.pause_epoch, self.marker, self.epoch = epoch, marker, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == self.pause_epoch and batch == 3:
            open(self.marker, "w").close()
            time.sleep(600)


def main(backup_dir, out, pause_epoch=None):
    hpnn.utils.set_random_seed(11)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((240, 6, 6, 1)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0).astype("int64")
    model = hpnn.Sequential(
        [
            hpnn.Input(shape=(6, 6, 1)),
            layers.Conv2D(3, 3, activation="relu"),
            layers.Flatten(),
            layers.Dropout(0.3),  # its random state must be restored too
            layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    cbs = [hpnn.callbacks.BackupAndRestore(backup_dir)]
    if pause_epoch is not None:
        cbs.append(PauseMidEpoch(pause_epoch, os.path.join(backup_dir, "paused")))
    model.fit(x, y, epochs=5, batch_size=16, callbacks=cbs, verbose=0)
    np.savez(out, *model.get_weights())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None)

"""More Keras 3 callbacks: ReduceLROnPlateau, LearningRateScheduler, TerminateOnNaN, CSVLogger.

The learning-rate callbacks write ``logs["learning_rate"]`` at the end of each epoch
(the rate the epoch trained with), as Keras 3 does, so History, CSVLogger or any
callback after them in the list sees it.
"""

from __future__ import annotations

import collections.abc
import csv
import inspect
import math
import numbers
import os
import warnings

import numpy as np

from hpnn.distributed import is_chief
from hpnn.training.callbacks import Callback


def _say(text: str) -> None:
    if is_chief():  # one message per job under MPI, like the progress bar
        print(text, flush=True)


def _settable_optimizer(owner: str, model):
    """The model's optimizer, checked to have a plain (settable) learning rate."""
    opt = getattr(model, "optimizer", None)
    if opt is None or not hasattr(opt, "learning_rate"):
        raise ValueError(f"{owner}: the optimizer must have a `learning_rate` attribute.")
    if callable(getattr(opt, "_learning_rate", None)):
        # Keras refuses too: setting a float would silently drop the schedule.
        raise TypeError(
            f"{owner}: this optimizer was created with a learning-rate schedule as its "
            "`learning_rate`, hence its learning rate is not settable. Use a float "
            f"learning_rate with {owner}, or the schedule alone. "
            f"Received: learning_rate={opt._learning_rate!r}"
        )
    return opt


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving.

    After ``patience`` epochs without an improvement of more than ``min_delta``, the
    rate becomes ``max(lr * factor, min_lr)``; then ``cooldown`` epochs pass before
    waiting starts again. Refuses optimizers whose learning rate is a schedule.

    Args:
        monitor: the logs key to watch, e.g. ``"val_loss"``.
        factor: the multiplier, in [0, 1).
        patience: epochs without improvement before a reduction.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (max for keys containing ``acc``).
        min_delta: how much better than the best counts as an improvement.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: the floor of the rate.
    """

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
    ):
        super().__init__()
        if not 0 <= factor < 1:
            raise ValueError(
                f"ReduceLROnPlateau does not support a factor >= 1.0 (or < 0). "
                f"Received: factor={factor}"
            )
        if mode not in ("auto", "min", "max"):
            raise ValueError(
                f"ReduceLROnPlateau: mode must be auto, min or max. Received: mode={mode!r}"
            )
        self.monitor, self.factor, self.patience, self.verbose = monitor, factor, patience, verbose
        self.mode, self.min_delta, self.cooldown, self.min_lr = mode, min_delta, cooldown, min_lr
        self._reset()

    def _reset(self):
        if self.mode == "min" or (self.mode == "auto" and "acc" not in self.monitor):
            self.monitor_op = lambda a, b: a < b - self.min_delta
            self.best = math.inf
        else:
            self.monitor_op = lambda a, b: a > b + self.min_delta
            self.best = -math.inf
        self.cooldown_counter = 0
        self.wait = 0

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_train_begin(self, logs=None):
        _settable_optimizer("ReduceLROnPlateau", self.model)
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        opt = self.model.optimizer
        logs["learning_rate"] = float(opt.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"ReduceLROnPlateau: learning rate reduction is conditioned on "
                f"{self.monitor!r}, which is not in the logs. Available: "
                f"{', '.join(sorted(logs))}",
                stacklevel=2,
            )
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor_op(current, self.best):
            self.best, self.wait = current, 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(opt.learning_rate)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    opt.learning_rate = new_lr
                    if self.verbose > 0:
                        _say(
                            f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                            f"to {new_lr}."
                        )
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


def _takes_two_args(fn) -> bool:
    try:
        inspect.signature(fn).bind(0, 0.0)
    except TypeError:
        return False
    except ValueError:  # no signature (some builtins): assume Keras' current form
        return True
    return True


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch from ``schedule(epoch, lr)``.

    Args:
        schedule: ``f(epoch, lr) -> new_lr`` (epoch from 0, lr the current rate);
            the older form ``f(epoch) -> new_lr`` is accepted too.
        verbose: 1 prints each new rate.

    >>> cb = LearningRateScheduler(lambda epoch, lr: lr if epoch < 10 else lr * 0.9)
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(
                f"LearningRateScheduler: schedule must be callable. Received: schedule={schedule!r}"
            )
        self.schedule, self.verbose = schedule, verbose
        self._two_args = _takes_two_args(schedule)

    def on_train_begin(self, logs=None):
        _settable_optimizer("LearningRateScheduler", self.model)

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        lr = float(opt.learning_rate)
        new_lr = self.schedule(epoch, lr) if self._two_args else self.schedule(epoch)
        if isinstance(new_lr, (np.ndarray, np.generic)) and np.ndim(new_lr) == 0:
            new_lr = new_lr.item()
        if not isinstance(new_lr, numbers.Real) or isinstance(new_lr, bool):
            raise ValueError(
                "LearningRateScheduler: the output of the schedule function should be a float. "
                f"Received: {new_lr!r}"
            )
        opt.learning_rate = float(new_lr)
        if self.verbose > 0:
            _say(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {new_lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch gives a NaN or infinite loss."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            _say(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


def _csv_value(v):
    if isinstance(v, str):
        return v
    if isinstance(v, collections.abc.Iterable) and not (isinstance(v, np.ndarray) and v.ndim == 0):
        return f'"[{", ".join(map(str, v))}]"'
    return v


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` then the logs' keys, sorted.

    The columns come from the first epoch's logs (plus ``val_`` twins when the first
    epoch has no validation keys, as Keras does, so a later validation fits the header);
    missing values are written as ``NA``. The file stays open during training and is
    flushed after every row. Only rank 0 writes under MPI.

    Args:
        filename: path of the CSV file.
        separator: the field delimiter.
        append: append to an existing file (no second header) instead of overwriting.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep, self.append = separator, append
        self.keys = None
        self.writer = None
        self.csv_file = None
        self.append_header = True

    def on_train_begin(self, logs=None):
        if not is_chief():
            return
        mode = "w"
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, encoding="utf-8") as f:
                    self.append_header = not f.readline()
            mode = "a"
        self._close()
        self.csv_file = open(self.filename, mode, newline="", encoding="utf-8")  # noqa: SIM115
        self.writer, self.keys = None, None

    def on_epoch_end(self, epoch, logs=None):
        if self.csv_file is None:
            return
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self.writer is None:
            self.writer = csv.DictWriter(
                self.csv_file, fieldnames=["epoch", *self.keys], delimiter=self.sep
            )
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch, **{k: _csv_value(logs.get(k, "NA")) for k in self.keys}}
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        self._close()
        self.writer = None

    def _close(self):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = None


__all__ = ["CSVLogger", "LearningRateScheduler", "ReduceLROnPlateau", "TerminateOnNaN"]

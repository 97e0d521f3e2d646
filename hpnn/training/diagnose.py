"""Read a run's learning curves and say whether the model over- or underfits.

``diagnose(history)`` (to become ``History.diagnose()``) applies these rules, in order,
to ``loss`` and ``val_loss`` (and ``accuracy``/``val_accuracy`` when logged). Epochs
are counted from 1, as the progress bar prints them.

0. A ``loss`` that became NaN or infinite means training diverged: **underfitting**.
1. **not enough data**: fewer than ``MIN_EPOCHS`` (3) epochs, or no ``loss``: a curve
   of one or two points says nothing about its trend. Without a validation curve,
   overfitting cannot be judged: the verdict is "not enough data" unless rule 3 finds
   underfitting from the training curve alone.
2. **overfitting**, when any of:
   - *val_loss rose*: its last value is more than ``RISE`` (10%) above its minimum,
     the minimum came before the last epoch, and ``loss`` kept falling after it;
   - *loss gap*: at the end ``val_loss > GAP_RATIO * loss`` (2x) and the gap
     ``val_loss - loss`` exceeds ``GAP_FLOOR`` (10%) of the first epoch's loss;
   - *accuracy gap*: ``accuracy - val_accuracy > ACC_GAP`` (0.10) at the end.
3. **underfitting**, when any of:
   - *high plateau*: the last ``loss`` is still above ``HIGH`` (50%) of the first
     epoch's loss: the model learned little;
   - *still falling*: over the last three epochs ``loss`` fell by more than ``FALLING``
     (5%) per epoch and ``val_loss`` (when present) is at its minimum: more epochs
     (or a larger learning rate) would help.
4. **good fit** otherwise: the loss fell well below its start, flattened out, and the
   validation loss stayed near the training loss without rising.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

MIN_EPOCHS = 3
RISE = 0.10
GAP_RATIO = 2.0
GAP_FLOOR = 0.10
ACC_GAP = 0.10
HIGH = 0.50
FALLING = 0.05

_ADVICE = {
    "overfitting": "try more data or augmentation, Dropout or weight regularizers, a smaller "
    "model, or EarlyStopping(restore_best_weights=True).",
    "underfitting": "train longer, raise the learning rate (hpnn.tune.lr_find), or use a "
    "larger model.",
    "good fit": "nothing stands out in the curves.",
    "not enough data": "train for at least 3 epochs with validation_split or validation_data.",
}


@dataclasses.dataclass
class Diagnosis:
    """The verdict on a run: one of ``"overfitting"``, ``"underfitting"``, ``"good fit"``,
    ``"not enough data"``, and the reasons, which cite the numbers."""

    verdict: str
    reasons: list

    def __str__(self) -> str:
        lines = [f"Diagnosis: {self.verdict}"]
        lines += [f"  - {r}" for r in self.reasons]
        lines.append(f"  Advice: {_ADVICE[self.verdict]}")
        return "\n".join(lines)


def _f(v) -> str:
    v = float(v)
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


class _Curves:
    """The curves of a History with their 1-based epoch numbers."""

    def __init__(self, history):
        logs = getattr(history, "history", history)
        if not isinstance(logs, dict):
            raise TypeError(
                "diagnose expects a History (what fit() returns) or a dict of per-epoch lists. "
                f"Received: {type(history).__name__}"
            )
        self.logs = {  # (array-valued curves, such as F1Score's per class, are left out)
            k: [float(v) for v in vs] for k, vs in logs.items() if all(np.ndim(v) == 0 for v in vs)
        }
        n = len(self.logs.get("loss", []))
        first = (getattr(history, "epoch", None) or [0])[0]  # 0-based; > 0 after initial_epoch
        self.epochs = [first + i + 1 for i in range(n)]

    def get(self, key):
        """``(values, epochs)`` of ``key``; a sparser val_ curve (validation_freq) is spread
        evenly over the training epochs."""
        values = self.logs.get(key)
        if not values:
            return None, None
        n = len(self.epochs)
        if len(values) == n:
            return values, self.epochs
        freq = max(n // len(values), 1)
        return values, [self.epochs[min((j + 1) * freq, n) - 1] for j in range(len(values))]

    def loss_at(self, epoch) -> float:
        return self.logs["loss"][self.epochs.index(epoch)]


def _overfitting(c: _Curves) -> list:
    reasons = []
    loss, _ = c.get("loss")
    val, vep = c.get("val_loss")
    if val is not None and len(val) >= 2:
        i_min = min(range(len(val)), key=val.__getitem__)
        vmin, vend = val[i_min], val[-1]
        train_then, train_end = c.loss_at(vep[i_min]), loss[-1]
        if i_min < len(val) - 1 and vend > vmin * (1 + RISE) and train_end < train_then:
            reasons.append(
                f"val_loss rose from {_f(vmin)} (epoch {vep[i_min]}, its minimum) to "
                f"{_f(vend)} (epoch {vep[-1]}) while loss kept falling "
                f"({_f(train_then)} -> {_f(train_end)})"
            )
        lend = c.loss_at(vep[-1])
        if vend > GAP_RATIO * lend and vend - lend > GAP_FLOOR * loss[0]:
            reasons.append(
                f"val_loss {_f(vend)} is {vend / max(lend, 1e-12):.1f}x the training loss "
                f"{_f(lend)} at epoch {vep[-1]}"
            )
    acc_key = next((k for k in ("accuracy", "acc") if k in c.logs and f"val_{k}" in c.logs), None)
    if acc_key:
        vacc, vaep = c.get(f"val_{acc_key}")
        tacc = c.logs[acc_key][c.epochs.index(vaep[-1])]
        if tacc - vacc[-1] > ACC_GAP:
            reasons.append(
                f"{acc_key} {_f(tacc)} on training vs {_f(vacc[-1])} on validation at epoch "
                f"{vaep[-1]} (a gap of {100 * (tacc - vacc[-1]):.0f} points)"
            )
    return reasons


def _underfitting(c: _Curves) -> list:
    reasons = []
    loss, ep = c.get("loss")
    l0, lend = loss[0], loss[-1]
    if l0 > 0 and lend > HIGH * l0:
        reasons.append(
            f"loss only fell from {_f(l0)} (epoch {ep[0]}) to {_f(lend)} (epoch {ep[-1]}), "
            f"{100 * lend / l0:.0f}% of its initial value"
        )
    prev = loss[-3]
    per_epoch = (prev - lend) / abs(prev) / 2 if prev else 0.0
    val, _ = c.get("val_loss")
    val_at_min = val is None or val[-1] <= min(val)
    if per_epoch > FALLING and val_at_min:
        where = "" if val is None else f", and val_loss is at its minimum {_f(val[-1])}"
        reasons.append(
            f"loss was still falling {100 * per_epoch:.1f}% per epoch over the last 3 epochs "
            f"({_f(prev)} -> {_f(lend)}){where}: training stopped early"
        )
    return reasons


def diagnose(history) -> Diagnosis:
    """Judge a run's learning curves; see the module docstring for the rules.

    Args:
        history: a ``History`` (what ``fit`` returns) or a dict such as
            ``{"loss": [...], "val_loss": [...]}``, one value per epoch.

    Returns:
        A :class:`Diagnosis` with ``.verdict`` and ``.reasons``; ``print()`` it.

    >>> print(diagnose(model.fit(x, y, validation_split=0.2, epochs=20, verbose=0)))
    """
    c = _Curves(history)
    n = len(c.epochs)
    if n < MIN_EPOCHS:
        got = "no 'loss' curve" if n == 0 else f"only {n} epoch(s)"
        return Diagnosis(
            "not enough data", [f"{got}; at least {MIN_EPOCHS} are needed to read a trend"]
        )
    loss, _ = c.get("loss")
    bad = next((i for i, v in enumerate(loss) if not math.isfinite(v)), None)
    if bad is not None:
        return Diagnosis(
            "underfitting",
            [
                f"loss became {loss[bad]} at epoch {c.epochs[bad]}: training diverged "
                "(lower the learning rate, or clip gradients with clipnorm)"
            ],
        )
    over = _overfitting(c)
    if over:
        return Diagnosis("overfitting", over)
    under = _underfitting(c)
    if under:
        return Diagnosis("underfitting", under)
    val, vep = c.get("val_loss")
    if val is None:
        return Diagnosis(
            "not enough data",
            [
                f"loss fell from {_f(loss[0])} to {_f(loss[-1])} and levelled off, but there is "
                "no val_loss curve to judge overfitting (use validation_split or "
                "validation_data)"
            ],
        )
    return Diagnosis(
        "good fit",
        [
            f"loss fell from {_f(loss[0])} to {_f(loss[-1])} and levelled off",
            f"val_loss ended at {_f(val[-1])} (epoch {vep[-1]}), within "
            f"{100 * (val[-1] / min(val) - 1):.0f}% of its minimum {_f(min(val))}, close to "
            f"the training loss {_f(c.loss_at(vep[-1]))}",
        ],
    )


__all__ = ["Diagnosis", "diagnose"]

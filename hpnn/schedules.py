"""Learning-rate schedules with Keras 3 names and formulas (``keras.optimizers.schedules``).

A schedule is a callable ``schedule(step) -> float`` evaluated by the optimizer at
``optimizer.iterations`` (0 on the first update), so it is reachable as
``hpnn.optimizers.schedules.ExponentialDecay`` and passed as ``learning_rate``:

>>> lr = ExponentialDecay(0.1, decay_steps=100, decay_rate=0.5)
>>> opt = hpnn.optimizers.SGD(learning_rate=lr)
>>> lr(100)
0.05
"""

from __future__ import annotations

import itertools
import math


def _positive(owner: str, name: str, value):
    if not (float(value) > 0 and math.isfinite(float(value))):
        raise ValueError(f"{owner}: {name} must be > 0. Received: {name}={value}")
    return value


def _step(step) -> float:
    return float(step)


class LearningRateSchedule:
    """Base class: subclasses implement ``__call__(step)`` and ``get_config()``."""

    def __call__(self, step) -> float:
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `__call__(self, step)`."
        )

    def get_config(self) -> dict:
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `get_config()`."
        )

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class _RateDecay(LearningRateSchedule):
    """Shared by the decays of ``initial_learning_rate`` by ``decay_rate`` per
    ``decay_steps`` (optionally in whole steps: ``staircase``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = _positive(type(self).__name__, "decay_steps", decay_steps)
        self.decay_rate = float(decay_rate)
        self.staircase = bool(staircase)
        self.name = name or type(self).__name__

    def _progress(self, step) -> float:
        p = _step(step) / self.decay_steps
        return math.floor(p) if self.staircase else p

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class ExponentialDecay(_RateDecay):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: steps over which the rate is multiplied by ``decay_rate`` (> 0).
        decay_rate: the multiplier per ``decay_steps``.
        staircase: use ``floor(step / decay_steps)``: the rate drops in discrete steps.
    """

    def __call__(self, step) -> float:
        return self.initial_learning_rate * self.decay_rate ** self._progress(step)


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary.

    Args:
        boundaries: increasing step numbers, ``len(values) - 1`` of them.
        values: the rates, one per interval.
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "PiecewiseConstantDecay: the length of boundaries should be 1 less than the "
                f"length of values. Received: boundaries={boundaries} of length "
                f"{len(boundaries)}, and values={values} of length {len(values)}."
            )
        if any(b >= a for b, a in itertools.pairwise(boundaries)):
            raise ValueError(
                f"PiecewiseConstantDecay: boundaries must be strictly increasing. "
                f"Received: boundaries={boundaries}"
            )
        self.boundaries, self.values, self.name = boundaries, [float(v) for v in values], name

    def __call__(self, step) -> float:
        step = _step(step)
        for b, v in zip(self.boundaries, self.values, strict=False):
            if step <= b:
                return v
        return self.values[-1]

    def get_config(self) -> dict:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Optional linear warm-up, then a cosine decay (Keras 3, after SGDR).

    Without ``warmup_target``: ``lr = initial * ((1 - alpha) * c + alpha)`` with
    ``c = 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps))``.

    With ``warmup_target``: for ``step < warmup_steps`` the rate rises linearly from
    ``initial_learning_rate`` to ``warmup_target``; after it, the cosine decay above
    runs from ``warmup_target`` over the next ``decay_steps`` steps.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: length of the cosine decay, in steps (> 0).
        alpha: the final rate as a fraction of the decay's starting rate.
        warmup_target: the rate reached at the end of the warm-up; None: no warm-up.
        warmup_steps: length of the warm-up, in steps.
    """

    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        alpha=0.0,
        name="CosineDecay",
        warmup_target=None,
        warmup_steps=0,
    ):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = _positive(type(self).__name__, "decay_steps", decay_steps)
        self.alpha = float(alpha)
        self.name = name
        self.warmup_target = None if warmup_target is None else float(warmup_target)
        self.warmup_steps = warmup_steps
        if warmup_steps < 0:
            raise ValueError(
                f"CosineDecay: warmup_steps must be >= 0. Received: warmup_steps={warmup_steps}"
            )

    def _decay(self, step, start_lr) -> float:
        c = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return start_lr * ((1.0 - self.alpha) * c + self.alpha)

    def __call__(self, step) -> float:
        step = _step(step)
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return self.initial_learning_rate + delta * step / self.warmup_steps
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class InverseTimeDecay(_RateDecay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: steps per unit of decay (> 0).
        decay_rate: how fast the rate falls.
        staircase: use ``floor(step / decay_steps)``.
    """

    def __call__(self, step) -> float:
        return self.initial_learning_rate / (1.0 + self.decay_rate * self._progress(step))


class PolynomialDecay(LearningRateSchedule):
    """``(initial - end) * (1 - step / decay_steps) ** power + end``, held at ``end``
    after ``decay_steps``; with ``cycle`` the decay restarts over a ``decay_steps``
    multiple that covers ``step``.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: length of the decay, in steps (> 0).
        end_learning_rate: the final rate.
        power: the polynomial's power (1: linear).
        cycle: restart instead of holding at ``end_learning_rate``.
    """

    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        end_learning_rate=0.0001,
        power=1.0,
        cycle=False,
        name="PolynomialDecay",
    ):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = _positive(type(self).__name__, "decay_steps", decay_steps)
        self.end_learning_rate = float(end_learning_rate)
        self.power, self.cycle, self.name = float(power), bool(cycle), name

    def __call__(self, step) -> float:
        step, steps = _step(step), float(self.decay_steps)
        if self.cycle:
            steps *= 1.0 if step == 0 else math.ceil(step / steps)
        else:
            step = min(step, steps)
        span = self.initial_learning_rate - self.end_learning_rate
        return span * (1.0 - step / steps) ** self.power + self.end_learning_rate

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decays with warm restarts (SGDR, as Keras 3): the first lasts
    ``first_decay_steps``, each next one ``t_mul`` times longer and starting from
    ``m_mul`` times the previous peak; each ends at ``alpha`` times its peak.

    Args:
        initial_learning_rate: the rate at step 0.
        first_decay_steps: length of the first decay, in steps (> 0).
        t_mul: growth of each period's length.
        m_mul: scale of each period's starting rate.
        alpha: the rate each period decays to, as a fraction of the initial one.
    """

    def __init__(
        self,
        initial_learning_rate,
        first_decay_steps,
        t_mul=2.0,
        m_mul=1.0,
        alpha=0.0,
        name="SGDRDecay",
    ):
        self.initial_learning_rate = float(initial_learning_rate)
        self.first_decay_steps = _positive(
            type(self).__name__, "first_decay_steps", first_decay_steps
        )
        self.t_mul, self.m_mul, self.alpha, self.name = float(t_mul), float(m_mul), alpha, name

    def __call__(self, step) -> float:
        done = _step(step) / self.first_decay_steps
        if self.t_mul != 1.0:  # periods growing geometrically
            i = math.floor(math.log(1.0 - done * (1.0 - self.t_mul)) / math.log(self.t_mul))
            before = (1.0 - self.t_mul**i) / (1.0 - self.t_mul)
            done = (done - before) / self.t_mul**i
        else:
            i = math.floor(done)
            done -= i
        cosine = 0.5 * self.m_mul**i * (1.0 + math.cos(math.pi * done))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps,
            "t_mul": self.t_mul,
            "m_mul": self.m_mul,
            "alpha": self.alpha,
            "name": self.name,
        }


_ALL = (
    LearningRateSchedule,
    ExponentialDecay,
    PiecewiseConstantDecay,
    CosineDecay,
    InverseTimeDecay,
    PolynomialDecay,
    CosineDecayRestarts,
)


def serialize(schedule: LearningRateSchedule) -> dict:
    """``{"class_name": ..., "config": ...}`` as ``keras.optimizers.schedules.serialize``."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: dict) -> LearningRateSchedule:
    """The inverse of :func:`serialize`."""
    by_name = {c.__name__: c for c in _ALL[1:]}
    name = config.get("class_name") if isinstance(config, dict) else None
    if name not in by_name:
        raise ValueError(
            f"Unknown learning rate schedule: expected one of {sorted(by_name)}. "
            f"Received: {config!r}"
        )
    return by_name[name].from_config(config.get("config", {}))


__all__ = [c.__name__ for c in _ALL] + ["deserialize", "serialize"]

"""Keras 3's ``Lamb``, ``Ftrl`` and ``Adafactor``, by its update rules and defaults
(re-exported from ``hpnn.optimizers``). Their steps are whole-array NumPy expressions:
these optimizers hold norms over each variable, so an in-place compiled pass buys
little here."""

from __future__ import annotations

import math

from hpnn.backend import get_xp
from hpnn.optimizers import Optimizer, _zeros


class Lamb(Optimizer):
    """LAMB (You et al. 2019) as ``keras.optimizers.Lamb``: Adam's bias-corrected step
    ``u = m_hat / (sqrt(v_hat) + epsilon)``, scaled per variable by the trust ratio
    ``||w|| / ||u||`` (1 where either norm is 0): ``w -= lr * ratio * u``."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def _build_slots(self, v):
        return {"momentum": _zeros(v), "velocity": _zeros(v)}

    def _update(self, w, g, s, lr):
        xp, f = get_xp(w), w.dtype.type
        step = self.iterations
        m, v = s["momentum"], s["velocity"]
        m += (g - m) * f(1 - self.beta_1)
        v += (g * g - v) * f(1 - self.beta_2)
        m_hat = m * f(1 / (1 - self.beta_1**step))
        update = m_hat / (xp.sqrt(v * f(1 / (1 - self.beta_2**step))) + f(self.epsilon))
        w_norm = float(xp.sqrt((w * w).sum()))
        u_norm = float(xp.sqrt((update * update).sum()))
        ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
        w -= update * f(ratio * lr)

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }


def _at_least_zero(owner, **values) -> None:
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"{owner}: {name} must be >= 0. Received: {name}={value!r}")


class Ftrl(Optimizer):
    """FTRL-proximal (McMahan et al. 2013) as ``keras.optimizers.Ftrl``: per-coordinate
    rates from the accumulated squared gradients (``learning_rate_power``, -0.5: their
    square root), L1 and L2 penalties applied in closed form (L1 makes exact zeros),
    ``l2_shrinkage_regularization_strength`` added to the gradient, and ``beta`` (Keras'
    name for the extra L2 term ``beta / (2 lr)``)."""

    def __init__(
        self,
        learning_rate=0.001,
        learning_rate_power=-0.5,
        initial_accumulator_value=0.1,
        l1_regularization_strength=0.0,
        l2_regularization_strength=0.0,
        l2_shrinkage_regularization_strength=0.0,
        beta=0.0,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        _at_least_zero(
            "Ftrl",
            initial_accumulator_value=initial_accumulator_value,
            l1_regularization_strength=l1_regularization_strength,
            l2_regularization_strength=l2_regularization_strength,
            l2_shrinkage_regularization_strength=l2_shrinkage_regularization_strength,
        )
        if learning_rate_power > 0:
            raise ValueError(
                f"Ftrl: learning_rate_power must be <= 0. Received: "
                f"learning_rate_power={learning_rate_power!r}"
            )
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1_regularization_strength = l1_regularization_strength
        self.l2_regularization_strength = l2_regularization_strength
        self.l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength
        self.beta = beta

    def _build_slots(self, v):
        acc = _zeros(v)
        acc += acc.dtype.type(self.initial_accumulator_value)
        return {"accumulator": acc, "linear": _zeros(v)}

    def _update(self, w, g, s, lr):
        xp, f = get_xp(w), w.dtype.type
        acc, linear = s["accumulator"], s["linear"]
        power = f(-self.learning_rate_power)
        l1 = f(self.l1_regularization_strength)
        l2 = self.l2_regularization_strength + self.beta / (2.0 * lr)
        shrunk = g + w * f(2 * self.l2_shrinkage_regularization_strength)
        new_acc = acc + g * g
        linear += shrunk - (new_acc**power - acc**power) * f(1 / lr) * w
        quadratic = new_acc**power * f(1 / lr) + f(2 * l2)
        w[...] = (xp.clip(linear, -l1, l1) - linear) / quadratic
        acc[...] = new_acc

    def get_config(self):
        return {
            **super().get_config(),
            "learning_rate_power": self.learning_rate_power,
            "initial_accumulator_value": self.initial_accumulator_value,
            "l1_regularization_strength": self.l1_regularization_strength,
            "l2_regularization_strength": self.l2_regularization_strength,
            "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
            "beta": self.beta,
        }


class Adafactor(Optimizer):
    """Adafactor (Shazeer & Stern 2018) as ``keras.optimizers.Adafactor``: the second
    moment of a matrix (or higher-rank) variable kept factored, as row and column means
    over its last two axes; a vector's kept whole. The step is the gradient over the
    moment's square root, clipped to an RMS of ``clip_threshold``, scaled by
    ``max(epsilon_2, rms(w)) * min(lr, 1 / sqrt(t))``; with ``relative_step`` (and a
    constant rate) the rate itself is capped at ``1 / sqrt(t)``. The moment decays by
    ``1 - t ** beta_2_decay``."""

    def __init__(
        self,
        learning_rate=0.001,
        beta_2_decay=-0.8,
        epsilon_1=1e-30,
        epsilon_2=1e-3,
        clip_threshold=1.0,
        relative_step=True,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_2_decay, self.epsilon_1, self.epsilon_2 = beta_2_decay, epsilon_1, epsilon_2
        self.clip_threshold, self.relative_step = clip_threshold, relative_step

    def _build_slots(self, v):
        xp, shape = get_xp(v.data), v.data.shape
        if len(shape) < 2:
            return {"velocity": _zeros(v)}
        return {
            "r": xp.zeros(shape[:-1], v.data.dtype),
            "c": xp.zeros(shape[:-2] + shape[-1:], v.data.dtype),
            "velocity": _zeros(v),
        }

    def _update(self, w, g, s, lr):
        xp, f = get_xp(w), w.dtype.type
        step = float(self.iterations)
        if not callable(self._learning_rate) and self.relative_step:
            lr = min(lr, 1 / math.sqrt(step))
        rho = min(lr, 1 / math.sqrt(step))
        alpha = max(self.epsilon_2, float(xp.sqrt((w * w).mean()))) * rho
        g2 = g * g + f(self.epsilon_1)
        decay = f(1 - step**self.beta_2_decay)
        v = s["velocity"]
        if w.ndim >= 2:
            r, c = s["r"], s["c"]
            r[...] = decay * r + (1 - decay) * g2.mean(axis=-1)
            c[...] = decay * c + (1 - decay) * g2.mean(axis=-2)
            v[...] = (r / r.mean(axis=-1, keepdims=True))[..., None] * c[..., None, :]
        else:
            v[...] = decay * v + (1 - decay) * g2
        u = g / xp.sqrt(v)
        u_rms = float(xp.sqrt((u * u).mean()))
        w -= u * f(alpha / max(1.0, u_rms / self.clip_threshold))

    def get_config(self):
        return {
            **super().get_config(),
            "beta_2_decay": self.beta_2_decay,
            "epsilon_1": self.epsilon_1,
            "epsilon_2": self.epsilon_2,
            "clip_threshold": self.clip_threshold,
            "relative_step": self.relative_step,
        }

"""Optimizers with Keras 3 names, defaults and update rules, updating in place.

Gradients handed to an optimizer are never modified (they may alias each other);
state and weights are updated in place with one scratch buffer per variable.
"""

from __future__ import annotations

import math

from hpnn import schedules  # noqa: F401  (keras.optimizers.schedules)
from hpnn.backend import get_xp
from hpnn.engine import kernels, step_context
from hpnn.engine.tensor import Tensor


class Optimizer:
    """Base class. Subclasses implement ``_build_slots(var)`` and ``_update(...)``.

    Args:
        learning_rate: a float, or a schedule ``f(iterations) -> float``.
        clipnorm: clip each gradient to this L2 norm.
        clipvalue: clip each gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: clip all gradients together to this global L2 norm.
    """

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        name=None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}: unexpected keyword argument(s) {sorted(kwargs)}"
            )
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of clipnorm, clipvalue and global_clipnorm can be set.")
        if not callable(learning_rate):
            learning_rate = float(learning_rate)
            if not (learning_rate >= 0 and math.isfinite(learning_rate)):
                raise ValueError(
                    f"learning_rate must be a finite number >= 0. "
                    f"Received: learning_rate={learning_rate}"
                )
        self._learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self._slots: dict[int, dict] = {}
        self._order: list = []

    # -- learning rate ------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The current learning rate (a schedule evaluated at ``iterations``)."""
        lr = self._learning_rate
        return float(lr(self.iterations)) if callable(lr) else lr

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        self._learning_rate = value if callable(value) else float(value)

    # -- state --------------------------------------------------------------------
    def build(self, variables) -> None:
        """Create the state slots for ``variables`` (done on the first update)."""
        for v in variables:
            if id(v) not in self._slots:
                self._slots[id(v)] = self._build_slots(v)
                self._order.append(v)

    def _build_slots(self, var) -> dict:
        return {}

    def variables(self) -> list:
        """State arrays in a fixed order (for saving): per variable, its slots by name."""
        return [
            s
            for v in self._order
            for _, s in sorted(self._slots[id(v)].items())
            if not _.startswith("_")
        ]

    def state_variables(self, variables) -> list[int]:
        """The positions in ``variables`` of the variables that hold state, in the order
        ``variables()`` lists their slots (for saving; ``build`` takes them back)."""
        where = {id(v): i for i, v in enumerate(variables)}
        return [where[id(v)] for v in self._order if id(v) in where]

    def set_state(self, iterations: int, arrays) -> None:
        arrays = list(arrays)
        mine = self.variables()
        if len(arrays) != len(mine):
            raise ValueError(
                f"{type(self).__name__}: expected {len(mine)} state arrays. Received: {len(arrays)}"
            )
        for dst, src in zip(mine, arrays, strict=True):
            if dst.shape != tuple(src.shape):
                raise ValueError(
                    f"{type(self).__name__}: state shape mismatch: expected "
                    f"{dst.shape}. Received: {tuple(src.shape)}"
                )
            dst[...] = src
        self.iterations = int(iterations)

    # -- updates ------------------------------------------------------------------
    def _clip(self, grads):
        if self.clipvalue is not None:
            c = self.clipvalue
            return [get_xp(g).clip(g, -c, c) for g in grads]
        if self.clipnorm is not None:
            out = []
            for g in grads:
                n = float(get_xp(g).sqrt((g * g).sum()))
                out.append(g * g.dtype.type(self.clipnorm / n) if n > self.clipnorm else g)
            return out
        if self.global_clipnorm is not None:
            n = math.sqrt(sum(float((g * g).sum()) for g in grads))
            if n > self.global_clipnorm:
                return [g * g.dtype.type(self.global_clipnorm / n) for g in grads]
        return grads

    def apply(self, grads, variables) -> None:
        """Update ``variables`` in place from ``grads`` (arrays or Tensors). A gradient
        may also be a pair of arrays whose sum it is (added first, in that order, unless
        the update can add them as it goes: Adam's compiled step).

        In a part of a split step (``hpnn.engine.step_context``) the gradients go to
        the placement, which adds every part's and then calls this once more."""
        ctx = step_context.collector()
        if ctx is not None and ctx.collect(self, grads, variables):
            return
        pairs = [(g, v) for g, v in zip(grads, variables, strict=True) if g is not None]
        if not pairs:
            return
        grads = [g.data if isinstance(g, Tensor) else g for g, _ in pairs]
        if self.clipnorm is not None or self.clipvalue is not None or self.global_clipnorm:
            grads = [get_xp(g[0]).add(*g) if isinstance(g, tuple) else g for g in grads]
        grads = self._clip(grads)
        variables = [v for _, v in pairs]
        self.build(variables)
        lr = self.learning_rate
        self.iterations += 1
        for g, v in zip(grads, variables, strict=True):
            if isinstance(g, tuple) and not self._adds_pairs(v.data, g):
                g = get_xp(g[0]).add(*g)
            if not isinstance(g, tuple) and g.dtype != v.dtype:
                g = g.astype(v.dtype)
            if self.weight_decay:
                v.data *= v.dtype.type(1.0 - lr * self.weight_decay)
            self._update(v.data, g, self._slots[id(v)], lr)
            constraint = getattr(v, "constraint", None)
            if constraint is not None:  # as Keras: after the update
                v.data[...] = constraint(v.data)

    def apply_gradients(self, grads_and_vars) -> None:
        """Keras' form: ``apply_gradients(zip(grads, vars))``."""
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [v for _, v in pairs])

    def _adds_pairs(self, w, pair) -> bool:
        """Whether ``_update`` takes this gradient as a pair ``(g1, g2)`` to add itself."""
        return False

    def _update(self, w, g, slots, lr) -> None:
        raise NotImplementedError

    def get_config(self) -> dict:
        lr = self._learning_rate
        return {
            "name": self.name,
            "learning_rate": lr if not callable(lr) else None,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }


def _zeros(v):
    return get_xp(v.data).zeros_like(v.data)


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum, as ``keras.optimizers.SGD``."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"SGD: momentum must be in [0, 1]. Received: momentum={momentum}")
        self.momentum, self.nesterov = float(momentum), nesterov

    def _build_slots(self, v):
        return {"momentum": _zeros(v), "_tmp": _zeros(v)} if self.momentum else {"_tmp": _zeros(v)}

    def _update(self, w, g, s, lr):
        t = s["_tmp"]
        f = w.dtype.type
        if not self.momentum:
            get_xp(w).multiply(g, f(lr), out=t)
            w -= t
            return
        m = s["momentum"]
        # m = momentum * m - lr * g
        m *= f(self.momentum)
        get_xp(w).multiply(g, f(lr), out=t)
        m -= t
        if self.nesterov:
            get_xp(w).multiply(m, f(self.momentum), out=t)
            t -= get_xp(w).multiply(g, f(lr))
            w += t
        else:
            w += m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """RMSprop as ``keras.optimizers.RMSprop`` (epsilon inside the square root)."""

    def __init__(
        self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered

    def _build_slots(self, v):
        s = {"velocity": _zeros(v), "_tmp": _zeros(v)}
        if self.momentum:
            s["momentum"] = _zeros(v)
        if self.centered:
            s["average_gradient"] = _zeros(v)
        return s

    def _update(self, w, g, s, lr):
        xp = get_xp(w)
        f = w.dtype.type
        vel, t = s["velocity"], s["_tmp"]
        xp.multiply(g, g, out=t)
        # vel = rho * vel + (1 - rho) * g^2, written as vel += (g^2 - vel) * (1 - rho)
        t -= vel
        t *= f(1 - self.rho)
        vel += t
        if self.centered:
            a = s["average_gradient"]
            a -= g
            a *= f(self.rho)
            a += g
            xp.multiply(a, a, out=t)
            xp.subtract(vel, t, out=t)
        else:
            t[...] = vel
        t += f(self.epsilon)
        xp.sqrt(t, out=t)
        xp.divide(g, t, out=t)
        t *= f(lr)
        if self.momentum:
            m = s["momentum"]
            m *= f(self.momentum)
            m += t
            w -= m
        else:
            w -= t

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }


class Adam(Optimizer):
    """Adam as ``keras.optimizers.Adam`` (bias correction folded into the step size)."""

    def __init__(
        self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, amsgrad

    def _build_slots(self, v):
        s = {"m": _zeros(v), "v": _zeros(v), "_tmp": _zeros(v)}
        if self.amsgrad:
            s["vhat"] = _zeros(v)
        return s

    def _adds_pairs(self, w, pair) -> bool:
        kern = None if self.amsgrad else kernels.optimizer(w, *pair)
        return kern is not None and all(
            a.flags.c_contiguous and a.dtype == w.dtype for a in (w, *pair)
        )

    def _update(self, w, g, s, lr):
        xp = get_xp(w)
        f = w.dtype.type
        step = self.iterations  # already incremented: 1 on the first update
        b1, b2 = self.beta_1, self.beta_2
        lr_t = lr * math.sqrt(1 - b2**step) / (1 - b1**step)
        m, v, t = s["m"], s["v"], s["_tmp"]
        if isinstance(g, tuple):  # (g1, g2), checked by _adds_pairs: one compiled pass
            g1, g2 = (a.reshape(-1) for a in g)
            kernels.optimizer(w, g1, g2).adam_update_sum(
                w.reshape(-1), g1, g2, m.reshape(-1), v.reshape(-1),
                f(b1), f(1 - b2), f(self.epsilon), f(lr_t),
            )  # fmt: skip
            return
        kern = None if self.amsgrad else kernels.optimizer(w, g, m, v)
        if kern is not None and w.flags.c_contiguous and g.flags.c_contiguous:
            # the same arithmetic in one compiled pass (hpnn.engine.kernels.optim)
            kern.adam_update(
                w.reshape(-1),
                g.reshape(-1),
                m.reshape(-1),
                v.reshape(-1),
                f(b1),
                f(1 - b2),
                f(self.epsilon),
                f(lr_t),
            )
            return
        # m = b1 * m + (1 - b1) * g, as m = b1 * (m - g) + g: in place, no temporaries
        m -= g
        m *= f(b1)
        m += g
        xp.multiply(g, g, out=t)
        t -= v
        t *= f(1 - b2)
        v += t
        denom = v
        if self.amsgrad:
            xp.maximum(s["vhat"], v, out=s["vhat"])
            denom = s["vhat"]
        xp.sqrt(denom, out=t)
        t += f(self.epsilon)
        xp.divide(m, t, out=t)
        t *= f(lr_t)
        w -= t

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }


class AdamW(Adam):
    """Adam with decoupled weight decay (``w -= lr * weight_decay * w`` each step)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, **kwargs)


class Adagrad(Optimizer):
    """Adagrad as ``keras.optimizers.Adagrad``: ``acc += g**2``,
    ``w -= lr * g / sqrt(acc + epsilon)``."""

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def _build_slots(self, v):
        acc = _zeros(v)
        acc += acc.dtype.type(self.initial_accumulator_value)
        return {"accumulator": acc, "_tmp": _zeros(v)}

    def _update(self, w, g, s, lr):
        xp, f = get_xp(w), w.dtype.type
        acc, t = s["accumulator"], s["_tmp"]
        xp.multiply(g, g, out=t)
        acc += t
        xp.add(acc, f(self.epsilon), out=t)
        xp.sqrt(t, out=t)
        xp.divide(g, t, out=t)
        t *= f(lr)
        w -= t

    def get_config(self):
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


class Adamax(Optimizer):
    """Adamax as ``keras.optimizers.Adamax``: Adam with the infinity norm,
    ``u = max(beta_2 * u, |g|)``, ``w -= lr * m / ((1 - beta_1**t) * (u + epsilon))``."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def _build_slots(self, v):
        return {"m": _zeros(v), "u": _zeros(v), "_tmp": _zeros(v)}

    def _update(self, w, g, s, lr):
        xp, f = get_xp(w), w.dtype.type
        m, u, t = s["m"], s["u"], s["_tmp"]
        xp.subtract(g, m, out=t)
        t *= f(1 - self.beta_1)
        m += t
        u *= f(self.beta_2)
        xp.maximum(u, xp.abs(g, out=t), out=u)
        xp.add(u, f(self.epsilon), out=t)
        xp.divide(m, t, out=t)
        t *= f(lr / (1 - self.beta_1**self.iterations))
        w -= t

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }


class Nadam(Optimizer):
    """Nadam as ``keras.optimizers.Nadam``: Adam with Nesterov momentum and Dozat's
    momentum schedule ``u_t = beta_1 * (1 - 0.5 * 0.96**t)``."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self._u_product = (0, 1.0)  # (step, product of u_1..u_step)

    def _mu(self, step):
        return self.beta_1 * (1.0 - 0.5 * 0.96**step)

    def _product(self, step):
        """``u_1 * ... * u_step``, carried from step to step (recomputed after a jump,
        such as a restored optimizer)."""
        done, value = self._u_product
        if done > step:
            done, value = 0, 1.0
        for k in range(done + 1, step + 1):
            value *= self._mu(k)
        self._u_product = (step, value)
        return value

    def _build_slots(self, v):
        return {"m": _zeros(v), "v": _zeros(v), "_tmp": _zeros(v)}

    def _update(self, w, g, s, lr):
        xp, f = get_xp(w), w.dtype.type
        step = self.iterations
        u_t, u_next = self._mu(step), self._mu(step + 1)
        prod_t = self._product(step)
        prod_next = prod_t * u_next
        m, v, t = s["m"], s["v"], s["_tmp"]
        xp.subtract(g, m, out=t)
        t *= f(1 - self.beta_1)
        m += t
        xp.multiply(g, g, out=t)
        t -= v
        t *= f(1 - self.beta_2)
        v += t
        # w -= lr * m_hat / (sqrt(v / (1 - beta_2**t)) + epsilon)
        xp.multiply(v, f(1 / (1 - self.beta_2**step)), out=t)
        xp.sqrt(t, out=t)
        t += f(self.epsilon)
        m_hat = m * f(u_next / (1 - prod_next)) + g * f((1 - u_t) / (1 - prod_t))
        xp.divide(m_hat, t, out=t)
        t *= f(lr)
        w -= t

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }


class Adadelta(Optimizer):
    """Adadelta as ``keras.optimizers.Adadelta`` (epsilon inside both square roots)."""

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho, self.epsilon = rho, epsilon

    def _build_slots(self, v):
        return {"accumulated_grad": _zeros(v), "accumulated_delta": _zeros(v), "_tmp": _zeros(v)}

    def _update(self, w, g, s, lr):
        xp, f = get_xp(w), w.dtype.type
        rho, eps = f(self.rho), f(self.epsilon)
        ag, ad, t = s["accumulated_grad"], s["accumulated_delta"], s["_tmp"]
        ag *= rho
        ag += (1 - rho) * g * g
        # delta = -sqrt(ad + eps) * g / sqrt(ag + eps)
        delta = xp.sqrt(ad + eps) * g / xp.sqrt(ag + eps)
        ad *= rho
        ad += (1 - rho) * delta * delta
        xp.multiply(delta, f(lr), out=t)
        w -= t

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Lion(Optimizer):
    """Lion as ``keras.optimizers.Lion``: ``w -= lr * sign(b1 * m + (1 - b1) * g)``, then
    ``m = b2 * m + (1 - b2) * g`` (a smaller learning rate than Adam's is usual)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if not 0 <= beta_1 <= 1 or not 0 <= beta_2 <= 1:
            raise ValueError(
                f"Lion: beta_1 and beta_2 must be in [0, 1]. Received: beta_1={beta_1}, "
                f"beta_2={beta_2}"
            )
        self.beta_1, self.beta_2 = beta_1, beta_2

    def _build_slots(self, v):
        return {"m": _zeros(v)}

    def _update(self, w, g, s, lr):
        xp, f, m = get_xp(w), w.dtype.type, s["m"]
        w -= xp.sign(m * f(self.beta_1) + g * f(1 - self.beta_1)) * f(lr)
        m *= f(self.beta_2)
        m += g * f(1 - self.beta_2)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}


_BY_NAME = {
    "sgd": SGD,
    "rmsprop": RMSprop,
    "adam": Adam,
    "adamw": AdamW,
    "adagrad": Adagrad,
    "adamax": Adamax,
    "nadam": Nadam,
    "adadelta": Adadelta,
    "lion": Lion,
}

from hpnn.optimizers_extra import Adafactor, Ftrl, Lamb  # noqa: E402  (they build on Optimizer)

_BY_NAME.update({"lamb": Lamb, "ftrl": Ftrl, "adafactor": Adafactor})


def serialize(optimizer):
    """An Optimizer as Keras' ``{"module", "class_name", "config", ...}`` entry."""
    from hpnn.saving import serialize_keras_object

    return serialize_keras_object(optimizer)


def deserialize(config, custom_objects=None):
    """An Optimizer from ``serialize``'s entry (or a name, as ``get``)."""
    from hpnn.saving import deserialize_keras_object

    if isinstance(config, str):
        return get(config)
    return deserialize_keras_object(config, custom_objects, module_objects=_BY_NAME)


def get(identifier) -> Optimizer:
    """Return an optimizer from a name (``"adam"``), a class, or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(
        f"Unknown optimizer: expected one of {sorted(_BY_NAME)} or an Optimizer. "
        f"Received: optimizer={identifier!r}"
    )

"""Normalisation layers: BatchNormalization and LayerNormalization (Keras semantics)."""

from __future__ import annotations

from hpnn import constraints, regularizers
from hpnn.engine import ops, step_context
from hpnn.layers.base import Layer


def _check_axes(layer, axes, shape):
    ndim = len(shape)
    out = []
    for a in axes:
        if not isinstance(a, int) or not -ndim <= a < ndim or a % ndim == 0:
            raise ValueError(
                f"{layer._where()}: axis must name a non-batch axis of the input "
                f"(rank {ndim}). Received: axis={layer.axis!r}, shape={tuple(shape)}"
            )
        if shape[a] is None:
            raise ValueError(
                f"{layer._where()}: the normalised axis {a} must be known. "
                f"Received: shape={tuple(shape)}"
            )
        out.append(a % ndim)
    return out


def _add_gamma_beta(layer, shape) -> None:
    """The learned scale (``gamma``, if ``scale``) and offset (``beta``, if ``center``)."""
    layer.gamma = (
        layer.add_weight(
            shape,
            layer.gamma_initializer,
            "gamma",
            regularizer=layer.gamma_regularizer,
            constraint=getattr(layer, "gamma_constraint", None),
        )
        if layer.scale
        else None
    )
    layer.beta = (
        layer.add_weight(
            shape,
            layer.beta_initializer,
            "beta",
            regularizer=layer.beta_regularizer,
            constraint=getattr(layer, "beta_constraint", None),
        )
        if layer.center
        else None
    )


def _gamma_beta_config(layer) -> dict:
    """The regularizers and constraints of gamma and beta, serialized."""
    return {
        "beta_regularizer": regularizers.serialize(regularizers.get(layer.beta_regularizer)),
        "gamma_regularizer": regularizers.serialize(regularizers.get(layer.gamma_regularizer)),
        "beta_constraint": constraints.serialize(constraints.get(layer.beta_constraint)),
        "gamma_constraint": constraints.serialize(constraints.get(layer.gamma_constraint)),
    }


class BatchNormalization(Layer):
    """Normalise each channel with batch statistics in training, moving ones in inference.

    Args:
        axis: the channel axis (default -1): input ``(N, ..., C)``, weights ``(C,)``
            in the order gamma, beta, moving_mean, moving_variance (the last two
            non-trainable), as Keras stores them.
        momentum: ``moving = moving * momentum + batch * (1 - momentum)`` (0.99).
        epsilon: added to the variance (1e-3).

    ``training=True`` (``fit``) normalises with the batch mean and biased variance
    and updates the moving statistics; ``training=False`` (``evaluate``,
    ``predict``) uses the moving ones. A layer with ``trainable=False`` always runs
    in inference mode, as in Keras. A mask is passed on but not used in the moments.
    """

    min_ndim = 2
    supports_masking = True

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(axis, int):
            raise ValueError(f"{self._where()}: axis must be an int. Received: axis={axis!r}")
        if synchronized:
            raise NotImplementedError(f"{self._where()}: synchronized=True is not supported yet.")
        self.beta_constraint, self.gamma_constraint = beta_constraint, gamma_constraint
        self.axis, self.momentum, self.epsilon = axis, float(momentum), float(epsilon)
        self.center, self.scale = center, scale
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer
        self.moving_mean_initializer = moving_mean_initializer
        self.moving_variance_initializer = moving_variance_initializer
        self.beta_regularizer, self.gamma_regularizer = beta_regularizer, gamma_regularizer

    def build(self, input_shape):
        (axis,) = _check_axes(self, [self.axis], input_shape)
        shape = (input_shape[axis],)
        _add_gamma_beta(self, shape)
        self.moving_mean = self.add_weight(
            shape, self.moving_mean_initializer, "moving_mean", trainable=False
        )
        self.moving_variance = self.add_weight(
            shape, self.moving_variance_initializer, "moving_variance", trainable=False
        )
        # Keras' input spec: the rank and the channel size are fixed from here on
        self.input_ndim, self._fixed_dims = len(input_shape), {self.axis: shape[0]}
        self.built = True

    def call(self, x, training=False):
        if not (training and self.trainable):
            return ops.batch_norm(
                x,
                self.gamma,
                self.beta,
                self.axis,
                self.epsilon,
                mean=self.moving_mean.data,
                variance=self.moving_variance.data,
            )
        y, mean, var = ops.batch_norm(
            x, self.gamma, self.beta, self.axis, self.epsilon, return_stats=True
        )
        if not step_context.is_leader():
            return y  # the whole batch's statistics: one part of a split step updates
        rest = 1.0 - self.momentum
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, var)):
            moving.data *= self.momentum
            moving.data += batch * rest
        return y

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            **_gamma_beta_config(self),
        }


class LayerNormalization(Layer):
    """Normalise each sample over ``axis`` (default the last), then scale and shift.

    Args:
        axis: int or list of ints: the axes normalised together; gamma and beta
            have those axes' sizes (``(F,)`` for input ``(N, ..., F)``), in the order
            gamma, beta.
        epsilon: added to the variance (1e-3, as Keras).
    """

    min_ndim = 2
    supports_masking = True

    def __init__(
        self,
        axis=-1,
        epsilon=1e-3,
        center=True,
        scale=True,
        rms_scaling=False,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if rms_scaling:
            raise NotImplementedError(f"{self._where()}: rms_scaling is not supported yet.")
        self.beta_constraint, self.gamma_constraint = beta_constraint, gamma_constraint
        self.axis = axis
        self.epsilon = float(epsilon)
        self.center, self.scale = center, scale
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer
        self.beta_regularizer, self.gamma_regularizer = beta_regularizer, gamma_regularizer

    def build(self, input_shape):
        axes = [self.axis] if isinstance(self.axis, int) else list(self.axis)
        self._axes = tuple(_check_axes(self, axes, input_shape))
        shape = tuple(input_shape[a] for a in self._axes)
        _add_gamma_beta(self, shape)
        self.input_ndim = len(input_shape)
        self._fixed_dims = {a: input_shape[a] for a in self._axes}
        self.built = True

    def call(self, x, training=False):
        return ops.layer_norm(x, self.gamma, self.beta, self._axes, self.epsilon)

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            **_gamma_beta_config(self),
        }


class UnitNormalization(Layer):
    """Scale each sample to unit L2 norm along ``axis`` (an int or a list of ints),
    ``x / max(||x||, 1e-12)``, as Keras' ``UnitNormalization``."""

    supports_masking = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = [int(a) for a in axis] if isinstance(axis, (list, tuple)) else int(axis)

    def build(self, input_shape):
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        n = len(input_shape)
        if any(not -n <= a < n or a % n == 0 for a in axes):
            raise ValueError(
                f"{self._where()}: axis {self.axis} is not a feature axis of inputs of shape "
                f"{tuple(input_shape)}"
            )
        self.built = True

    def call(self, x, training=False):
        axis = tuple(self.axis) if isinstance(self.axis, list) else self.axis
        # x / max(||x||, 1e-12), with the floor under the square: sqrt's derivative at a
        # zero row (after a ReLU) would be inf, and inf * 0 a NaN gradient
        return x / ops.sqrt(ops.maximum(ops.sum(x * x, axis=axis, keepdims=True), 1e-24))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class GroupNormalization(Layer):
    """Normalise each sample over groups of channels: the ``C`` channels (last axis)
    in ``groups`` groups of ``C / groups``, each group's mean and variance taken over
    its channels and every other non-batch axis; then scale and shift per channel
    (``gamma``, ``beta`` of shape ``(C,)``). Independent of the batch, as Keras'
    ``GroupNormalization`` (channels-last: ``axis=-1`` only)."""

    min_ndim = 2
    supports_masking = True

    def __init__(
        self,
        groups=32,
        axis=-1,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if axis not in (-1,):
            raise NotImplementedError(
                f"{self._where()}: only axis=-1 (channels last) is supported. Received: "
                f"axis={axis!r}"
            )
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"{self._where()}: groups must be an int >= 1. Received: {groups!r}")
        self.groups, self.axis, self.epsilon = groups, axis, float(epsilon)
        self.center, self.scale = center, scale
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer
        self.beta_regularizer, self.gamma_regularizer = beta_regularizer, gamma_regularizer
        self.beta_constraint, self.gamma_constraint = beta_constraint, gamma_constraint

    def build(self, input_shape):
        c = input_shape[-1]
        if c is None or c % self.groups:
            raise ValueError(
                f"{self._where()}: the channels ({c}) must be known and divisible by "
                f"groups ({self.groups}). Received: shape={tuple(input_shape)}"
            )
        _add_gamma_beta(self, (c,))
        self._fixed_dims = {-1: c}
        self.built = True

    def call(self, x, training=False):
        shape = x.shape
        g = ops.reshape(x, (*shape[:-1], self.groups, shape[-1] // self.groups))
        axes = (*range(1, g.ndim - 2), g.ndim - 1)  # all but the batch and the group
        centred = g - ops.mean(g, axis=axes, keepdims=True)
        var = ops.mean(centred * centred, axis=axes, keepdims=True)
        y = ops.reshape(centred / ops.sqrt(var + self.epsilon), shape)
        if self.gamma is not None:
            y = y * self.gamma
        if self.beta is not None:
            y = y + self.beta
        return y

    def get_config(self):
        return {
            **super().get_config(),
            "groups": self.groups,
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            **_gamma_beta_config(self),
        }

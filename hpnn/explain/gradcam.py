"""Grad-CAM (Selvaraju et al. 2017): where a convolutional layer's features drive a class."""

from __future__ import annotations

import numpy as np

from hpnn.backend import floatx, to_numpy, xp_default
from hpnn.engine.tensor import Tensor, no_grad
from hpnn.explain.gradients import (
    as_input,
    check_positive_int,
    class_outputs,
    class_score,
    forward,
    frozen,
    resolve_target,
)
from hpnn.models.sequential import Sequential


def _split(model, layer, where):
    """The layers up to and including the named one, and the rest."""
    layers = model.layers if isinstance(model, Sequential) else None
    if not layers:
        raise ValueError(
            f"{where}: needs a Sequential model (it runs the layers one by one). "
            f"Received: {type(model).__name__}"
        )
    names = [lay.name for lay in layers]
    if layer is None:
        four_d = [
            i
            for i, lay in enumerate(layers)
            if lay.output_shape is not None
            and len(lay.output_shape) == 4
            and type(lay).__name__ == "Conv2D"
        ]
        if not four_d:
            raise ValueError(
                f"{where}: the model has no Conv2D layer; pass layer= the name of a layer "
                f"with a 4-D output. Layers: {names}"
            )
        idx = four_d[-1]
    elif layer in names:
        idx = names.index(layer)
    else:
        raise ValueError(f"{where}: no layer named {layer!r}. Layers: {names}")
    return layers[: idx + 1], layers[idx + 1 :], layers[idx].name


def grad_cam(model, x, layer=None, target=None, *, batch_size=256):
    """Class activation maps from the gradients at a convolutional layer.

    For activations ``A`` ``(h, w, K)`` of ``layer``: ``alpha_k = mean_{i,j} dy/dA_ijk``,
    ``cam = relu(sum_k alpha_k A_k)``, upsampled bilinearly to the input's ``(H, W)``
    and divided by its maximum (all zeros where the map is zero everywhere).

    Args:
        model: a Sequential model with ``(N, classes)`` output.
        x: images ``(N, H, W, C)``.
        layer: name of a layer with a 4-D output (``layer.name``, e.g. ``"conv2d_1"``);
            default the last Conv2D.
        target: None (the predicted class), an int, or ``(N,)`` ints.

    Returns:
        float32 ``(N, H, W)`` in [0, 1].
    """
    where = "grad_cam"
    x = as_input(model, x, where)
    if x.ndim != 4:
        raise ValueError(f"{where}: x must be images (N, H, W, C). Received: shape={x.shape}")
    batch_size = check_positive_int(batch_size, "batch_size", where)
    head, tail, name = _split(model, layer, where)
    targets = resolve_target(target, class_outputs(forward(model, x, batch_size), where), where)
    cams = []
    for start in range(0, len(x), batch_size):
        rows = slice(start, min(start + batch_size, len(x)))
        acts, grads = _activation_grads(model, head, tail, x[rows], targets[rows], name, where)
        weights = grads.mean(axis=(1, 2))  # (B, K)
        cams.append(np.maximum(np.einsum("nhwk,nk->nhw", acts, weights), 0))
    cam = resize_bilinear(np.concatenate(cams), x.shape[1:3])
    top = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(top > 0, cam / np.where(top > 0, top, 1), 0).astype(floatx())


def _activation_grads(model, head, tail, xb, targets, name, where):
    """The activations of the last layer of ``head`` and the target's gradient w.r.t. them."""
    with no_grad():
        a = Tensor(xp_default().asarray(xb))
        for lay in head:
            a = lay(a, training=False)
    if a.ndim != 4:
        raise ValueError(
            f"{where}: layer {name!r} must output 4-D activations (N, h, w, channels). "
            f"Received: shape={tuple(a.shape)}"
        )
    with frozen(model):
        leaf = Tensor(a.data, requires_grad=True)
        out = leaf
        for lay in tail:
            out = lay(out, training=False)
        rows = slice(0, len(xb))
        class_score(targets)(out, rows).sum().backward()
    return to_numpy(a.data), to_numpy(leaf.grad)


def resize_bilinear(a, size) -> np.ndarray:
    """Resize ``(N, h, w)`` maps to ``(N, H, W)``, half-pixel centres (TF2, PyTorch default)."""
    a = np.asarray(a, dtype=floatx())
    (h, w), (big_h, big_w) = a.shape[1:3], size

    def taps(n_in, n_out):
        c = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        i0 = np.floor(c).astype(np.int64)
        return i0, np.minimum(i0 + 1, n_in - 1), (c - i0).astype(floatx())

    r0, r1, fr = taps(h, big_h)
    c0, c1, fc = taps(w, big_w)
    rows = a[:, r0] * (1 - fr)[:, None] + a[:, r1] * fr[:, None]  # (N, H, w)
    return rows[:, :, c0] * (1 - fc) + rows[:, :, c1] * fc

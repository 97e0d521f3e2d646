"""Transfer learning with few labels: draw a labelled subset, put a new head on a
trained model, then fine-tune the whole at a low learning rate.

The recipe (Keras' "transfer learning and fine-tuning" guide, in three calls):

>>> (x_few, y_few), x_rest = few_labels(x, y, per_class=100, seed=0)
>>> model = new_head(source_model, n_classes=5)      # its base frozen
>>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
...               metrics=["accuracy"])
>>> model.fit(x_few, y_few, epochs=20)               # the head alone
>>> fine_tune(model, learning_rate=1e-4)             # everything, recompiled
>>> model.fit(x_few, y_few, epochs=10)
"""

from __future__ import annotations

import numpy as np

from hpnn import layers as layers_mod
from hpnn import optimizers
from hpnn.layers.core import Input
from hpnn.models import Model, Sequential
from hpnn.random import make_rng

__all__ = ["feature_extractor", "few_labels", "few_labels_index", "fine_tune", "new_head"]


def _class_ids(y, name: str = "y") -> np.ndarray:
    """Class indices of ``y``: ``(N,)`` integer labels or ``(N, C)`` one-hot rows."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=1)
    if y.ndim == 2:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"few_labels: {name} must be class indices of shape (N,) or one-hot rows of shape "
            f"(N, C). Received: {name} of shape {y.shape}"
        )
    if y.dtype.kind not in "biu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise ValueError(
            f"few_labels: {name} must hold integer class indices. Received: dtype={y.dtype}"
        )
    return y.astype(np.int64)


def few_labels_index(y, per_class, seed=None, classes=None):
    """The indices of exactly ``per_class`` samples of each class, and of the rest.

    Args:
        y: ``(N,)`` class indices or ``(N, C)`` one-hot rows.
        per_class: how many labelled samples to keep of each class (a positive int).
        seed: int or ``numpy.random.Generator`` (None: hpnn's global seed source).
        classes: the classes to draw from (default: every class present in ``y``);
            samples of other classes are in neither output.

    Returns:
        ``(labelled, rest)``: sorted ``int64`` index arrays into ``y``; ``rest`` holds
        the samples of ``classes`` not drawn.

    Raises:
        ValueError: if ``per_class`` is not a positive int, or a class has fewer than
            ``per_class`` samples (the error names the class).
    """
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)):
        raise ValueError(f"few_labels: per_class must be a positive int. Received: {per_class!r}")
    if per_class <= 0:
        raise ValueError(
            f"few_labels: per_class must be a positive int. Received: per_class={per_class}"
        )
    ids = _class_ids(y)
    wanted = np.unique(ids) if classes is None else np.asarray(list(classes), dtype=np.int64)
    if wanted.size == 0:
        raise ValueError(f"few_labels: no class to draw from. Received: classes={classes!r}")
    rng = make_rng(seed)
    picked = []
    for c in wanted:
        members = np.flatnonzero(ids == c)
        if len(members) < per_class:
            raise ValueError(
                f"few_labels: class {int(c)} has {len(members)} samples, fewer than "
                f"per_class={per_class}. Received: per_class={per_class}"
            )
        picked.append(rng.permutation(members)[:per_class])
    labelled = np.sort(np.concatenate(picked))
    pool = np.flatnonzero(np.isin(ids, wanted))
    rest = np.setdiff1d(pool, labelled, assume_unique=True)
    return labelled, rest


def few_labels(x, y, per_class, seed=None, classes=None):
    """A labelled subset of ``per_class`` samples a class; the rest as unlabelled inputs.

    Args:
        x: inputs ``(N, ...)``.
        y: ``(N,)`` class indices or ``(N, C)`` one-hot rows.
        per_class, seed, classes: as :func:`few_labels_index`.

    Returns:
        ``(x_few, y_few), x_rest``, in the order of ``x``.

    >>> (x_few, y_few), x_rest = few_labels(x_train, y_train, per_class=10, seed=0)
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or len(x) != len(y):
        raise ValueError(
            "few_labels: x and y must have the same number of samples. Received: "
            f"x of shape {x.shape}, y of shape {y.shape}"
        )
    labelled, rest = few_labels_index(y, per_class, seed, classes)
    return (x[labelled], y[labelled]), x[rest]


def feature_extractor(base, drop=1, name=None) -> Model:
    """``base`` without its last ``drop`` layers, as a model that shares their weights
    (training or freezing one trains or freezes the other).

    Args:
        base: a built ``Sequential`` or functional model (one input).
        drop: how many layers to cut from the end (the old head; >= 1).
    """
    if isinstance(drop, bool) or not isinstance(drop, (int, np.integer)) or drop < 1:
        raise ValueError(f"new_head: drop must be an int >= 1. Received: drop={drop!r}")
    if not isinstance(base, Model) or not getattr(base, "built", False):
        raise ValueError(
            "new_head: base must be a built Sequential or functional model (give it an "
            f"Input, or fit it first). Received: base={base!r}"
        )
    kept = [layer for layer in base.layers if type(layer).__name__ != "InputLayer"]
    if drop >= len(kept):
        raise ValueError(
            f"new_head: base '{base.name}' has {len(kept)} layers; drop must leave at least "
            f"one. Received: drop={drop}"
        )
    name = name or f"{base.name}_features"
    if isinstance(base, Sequential):  # (its layers may be models: cut the list, not a graph)
        return Sequential([Input(shape=tuple(base.input_shape)[1:]), *kept[:-drop]], name=name)
    try:
        inputs, outputs = base.inputs, kept[-drop - 1].output
    except (AttributeError, RuntimeError, ValueError) as e:
        raise ValueError(
            f"new_head: cannot cut model '{base.name}' (a Sequential or a functional model "
            f"is needed): {e}"
        ) from None
    return Model(inputs, outputs, name=name)


def new_head(
    base,
    n_classes,
    drop=1,
    hidden=(),
    activation="softmax",
    freeze=True,
    name=None,
) -> Sequential:
    """A new classifier on the features of a trained model: ``base`` less its last
    ``drop`` layers (frozen when ``freeze``), then ``hidden`` ReLU ``Dense`` layers,
    then ``Dense(n_classes, activation)``. The result is uncompiled.

    Args:
        base: the trained model (``Sequential`` with an ``Input``, or functional).
        n_classes: units of the new output layer (a positive int).
        drop: how many of ``base``'s last layers the head replaces.
        hidden: units of hidden ``Dense`` layers between features and output.
        freeze: whether the features start frozen (``trainable = False``).

    >>> model = new_head(source, 5)          # Flatten's 800 features -> Dense(5)
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)):
        raise ValueError(f"new_head: n_classes must be a positive int. Received: {n_classes!r}")
    if n_classes <= 0:
        raise ValueError(
            f"new_head: n_classes must be a positive int. Received: n_classes={n_classes}"
        )
    features = feature_extractor(base, drop)
    features.trainable = not freeze
    head = [layers_mod.Dense(int(units), activation="relu") for units in hidden]
    head.append(layers_mod.Dense(int(n_classes), activation=activation))
    stack = [features, *head]
    if features.input_shape is not None:  # built now, as base was
        stack.insert(0, Input(shape=tuple(features.input_shape)[1:]))
    return Sequential(stack, name=name)


def fine_tune(model, learning_rate=1e-4, optimizer=None, loss=None, metrics=None) -> Model:
    """Unfreeze every layer of ``model`` and compile it again at a low learning rate.

    The loss and metrics stay those of the last ``compile`` unless given. Call it
    after training the head: the optimizer state starts fresh, as in Keras' recipe.

    Args:
        model: a compiled model (the head trained, its base frozen).
        learning_rate: Adam's learning rate when ``optimizer`` is None.
        optimizer: an optimizer (or name) to use instead of ``Adam(learning_rate)``.
    """
    if not getattr(model, "compiled", False):
        raise ValueError(
            "fine_tune: model must be compiled (compile it and train the new head first). "
            f"Received: an uncompiled model '{getattr(model, 'name', model)}'"
        )
    if optimizer is None:
        if not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
            raise ValueError(
                "fine_tune: learning_rate must be a positive number. "
                f"Received: learning_rate={learning_rate!r}"
            )
        optimizer = optimizers.Adam(learning_rate=float(learning_rate))
    loss = model.loss if loss is None else loss
    metrics = list(getattr(model, "_metric_specs", [])) if metrics is None else metrics
    model.trainable = True
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    return model

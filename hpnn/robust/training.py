"""Adversarial training as a callback: ``fit`` trains on attacked batches."""

from __future__ import annotations

import numpy as np

from hpnn.random import make_rng
from hpnn.robust.attacks import fgsm, pgd
from hpnn.training.callbacks import Callback


class AdversarialTraining(Callback):
    """Replace a fraction of every training batch by adversarial examples of itself.

    Before each step the batch is attacked against the current weights (in
    inference mode) and ``ratio`` of its samples, drawn at random, are swapped
    for their adversarial versions (Goodfellow et al. 2015 with ``ratio=0.5``;
    Madry et al. 2018 with ``attack="pgd", ratio=1.0``). The labels stay the
    same. Evaluation and validation see clean data.

    Args:
        eps: perturbation size (L-inf for FGSM, PGD's ``norm`` otherwise).
        attack: ``"fgsm"`` or ``"pgd"``.
        ratio: fraction of each batch replaced, in (0, 1].
        seed: int or Generator for the choice of samples and PGD's random start.
        **attack_kwargs: passed to :func:`hpnn.robust.fgsm` / :func:`hpnn.robust.pgd`
            (``steps``, ``norm``, ``input_range``...).

    Single-process ``fit`` only (the MPI step does not go through ``train_step``).

    >>> model.fit(x, y, epochs=3, callbacks=[AdversarialTraining(eps=0.1)])  # doctest: +SKIP
    """

    def __init__(self, eps, attack="fgsm", ratio=0.5, seed=None, **attack_kwargs):
        super().__init__()
        if attack not in ("fgsm", "pgd"):
            raise ValueError(
                f"AdversarialTraining: attack must be 'fgsm' or 'pgd'. Received: attack={attack!r}"
            )
        if not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
            raise ValueError(
                f"AdversarialTraining: ratio must be in (0, 1]. Received: ratio={ratio!r}"
            )
        if not isinstance(eps, (int, float)) or eps < 0:
            raise ValueError(f"AdversarialTraining: eps must be a number >= 0. Received: {eps!r}")
        self.eps, self.attack, self.ratio = float(eps), attack, float(ratio)
        self.attack_kwargs = attack_kwargs
        self._rng = make_rng(seed)

    def perturb(self, xb, yb):
        """The batch with ``ratio`` of its samples replaced by adversarial ones."""
        n = len(xb)
        k = max(1, round(self.ratio * n))
        rows = np.sort(self._rng.choice(n, size=k, replace=False)) if k < n else np.arange(n)
        yb = np.asarray(yb)
        if self.attack == "fgsm":
            adv = fgsm(self.model, xb[rows], yb[rows], self.eps, **self.attack_kwargs)
        else:
            kwargs = {"seed": self._rng, **self.attack_kwargs}
            adv = pgd(self.model, xb[rows], yb[rows], self.eps, **kwargs)
        out = np.array(xb, dtype=adv.dtype, copy=True)
        out[rows] = adv
        return out

    def on_train_begin(self, logs=None):
        from hpnn.distributed import get_comm

        comm = get_comm()
        if comm is not None and comm.size > 1:
            raise NotImplementedError(
                "AdversarialTraining: runs in single-process fit only. "
                f"Received: an MPI job of {comm.size} ranks"
            )
        model = self.model
        step = type(model).train_step.__get__(model)  # the class's: never wrap a wrapper

        def train_step(xb, yb, sample_weight=None):
            return step(self.perturb(xb, yb), yb, sample_weight)

        model.train_step = train_step

    def on_train_end(self, logs=None):
        self.model.__dict__.pop("train_step", None)

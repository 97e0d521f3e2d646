"""Accuracy under attack: clean, FGSM, PGD and Gaussian noise at several epsilons."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hpnn.explain.gradients import as_input, class_outputs, forward
from hpnn.random import make_rng
from hpnn.robust.attacks import fgsm, gaussian_noise, labels_of, pgd

ATTACKS = ("fgsm", "pgd", "noise")


@dataclass
class RobustnessReport:
    """Accuracies of one model: ``clean`` and ``accuracy[attack][i]`` at ``epsilons[i]``.

    ``str(report)`` (or :meth:`table`) is a Markdown table; :meth:`plot` writes a PNG.
    """

    epsilons: list
    clean: float
    accuracy: dict = field(default_factory=dict)
    samples: int = 0
    settings: dict = field(default_factory=dict)

    def table(self) -> str:
        names = {"fgsm": "FGSM", "pgd": "PGD", "noise": "Gaussian noise"}
        head = "| epsilon | clean | " + " | ".join(names.get(a, a) for a in self.accuracy) + " |"
        rule = "|---" * (2 + len(self.accuracy)) + "|"
        rows = [
            f"| {eps:g} | {self.clean:.4f} | "
            + " | ".join(f"{acc[i]:.4f}" for acc in self.accuracy.values())
            + " |"
            for i, eps in enumerate(self.epsilons)
        ]
        return "\n".join([head, rule, *rows])

    __str__ = table

    def as_dict(self) -> dict:
        return {
            "epsilons": list(self.epsilons),
            "clean": self.clean,
            "accuracy": {k: list(v) for k, v in self.accuracy.items()},
            "samples": self.samples,
            "settings": dict(self.settings),
        }

    def plot(self, path, *, title=None, dpi=100):
        """Write accuracy against epsilon, one line per attack, as a PNG (``plot`` extra)."""
        from hpnn.explain.plot import figure

        fig = figure(figsize=(5, 3.5))
        ax = fig.add_subplot(1, 1, 1)
        eps = [0.0, *self.epsilons]
        for name, acc in self.accuracy.items():
            ax.plot(eps, [self.clean, *acc], marker="o", label=name)
        ax.set_xlabel("epsilon")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(title or f"robustness ({self.samples} samples)", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
        return Path(path)


def _accuracy(model, x, labels, batch_size):
    out = forward(model, x, batch_size)
    pred = out.argmax(axis=1) if out.shape[1] > 1 else (out[:, 0] > 0.5).astype(np.int64)
    return float(np.mean(pred == labels))


def evaluate_robustness(
    model,
    x,
    y,
    epsilons=(0.01, 0.05, 0.1),
    *,
    attacks=ATTACKS,
    norm="inf",
    pgd_steps=10,
    pgd_step_size=None,
    seed=0,
    input_range=(0.0, 1.0),
    batch_size=256,
):
    """Accuracy on ``(x, y)``: clean, and under each attack at each epsilon.

    Args:
        x: inputs ``(N, ...)`` in ``input_range``.
        y: labels ``(N,)`` or one-hot ``(N, classes)``.
        epsilons: perturbation sizes (the L-inf or L2 radius; the noise's sigma).
        attacks: any of ``"fgsm"``, ``"pgd"``, ``"noise"``.
        norm: PGD's norm, ``"inf"`` or 2 (FGSM is always L-inf).
        pgd_steps, pgd_step_size: PGD's steps and step (default ``2.5 * eps / steps``).
        seed: seeds PGD's random start and the noise.

    Returns:
        :class:`RobustnessReport`.

    >>> print(evaluate_robustness(model, x_test[:1000], y_test[:1000]))  # doctest: +SKIP
    """
    where = "evaluate_robustness"
    x = as_input(model, x, where)
    classes = class_outputs(forward(model, x[:1], 1), where).shape[1]
    labels = labels_of(y, len(x), classes, where)
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks:
        raise ValueError(f"{where}: attacks must be some of {ATTACKS}. Received: {attacks!r}")
    epsilons = [float(e) for e in epsilons]
    rng = make_rng(seed)
    report = RobustnessReport(
        epsilons,
        _accuracy(model, x, labels, batch_size),
        {a: [] for a in attacks},
        len(x),
        {"norm": norm, "pgd_steps": pgd_steps, "pgd_step_size": pgd_step_size, "seed": seed},
    )
    common = {"input_range": input_range, "batch_size": batch_size}
    for eps in epsilons:
        for a in attacks:
            if a == "fgsm":
                adv = fgsm(model, x, labels, eps, **common)
            elif a == "pgd":
                adv = pgd(
                    model,
                    x,
                    labels,
                    eps,
                    norm=norm,
                    steps=pgd_steps,
                    step_size=pgd_step_size,
                    seed=rng,
                    **common,
                )
            else:
                adv = gaussian_noise(x, eps, seed=rng, input_range=input_range)
            report.accuracy[a].append(_accuracy(model, adv, labels, batch_size))
    return report


def plot_robustness(report: RobustnessReport, path, **kwargs):
    """``report.plot(path)``."""
    return report.plot(path, **kwargs)

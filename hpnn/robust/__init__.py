"""Robustness: adversarial attacks (FGSM, PGD), noise, evaluation, adversarial training.

>>> x_adv = hpnn.robust.pgd(model, x_test[:500], y_test[:500], eps=0.05)         # doctest: +SKIP
>>> print(hpnn.robust.evaluate_robustness(model, x_test[:1000], y_test[:1000]))  # doctest: +SKIP
>>> model.fit(x, y, callbacks=[hpnn.robust.AdversarialTraining(eps=0.1)])        # doctest: +SKIP
"""

from hpnn.robust.attacks import fgsm, gaussian_noise, loss_gradient, pgd
from hpnn.robust.cli import cli_main
from hpnn.robust.evaluate import RobustnessReport, evaluate_robustness, plot_robustness
from hpnn.robust.training import AdversarialTraining

__all__ = [
    "AdversarialTraining",
    "RobustnessReport",
    "cli_main",
    "evaluate_robustness",
    "fgsm",
    "gaussian_noise",
    "loss_gradient",
    "pgd",
    "plot_robustness",
]

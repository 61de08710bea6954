"""Adversarial evaluation of one-score binary and multi-class models, built on foolbox 3.

A model returns one score per image (shape (n,) or (n, 1); ``s > 0`` is class 1,
labels in {-1, +1} or {0, 1}) or class logits (shape (n, C), C >= 2; decision
``argmax``, labels in {0, ..., C-1}); every function here reads the kind from the
model's output.

* :mod:`~lowrank.attacks.adapter`: :class:`LogitAdapter` (the logit view
  ``[-s/2, s/2] / c`` of a one-score model, ``z / c`` of class logits; scale-free
  with :func:`score_scale`; :class:`TwoLogitAdapter` is its former name) and the
  helpers every attack shares.
* :mod:`~lowrank.attacks.min_norm`: :func:`min_norm_attack` (per image, the smallest
  adversarial perturbation over several attacks and which attack found it; by
  default DDN in L2 or FMN in L-infinity, then PGD with bisection),
  :func:`min_norm_perturbations` (its norms only) and :func:`adversarial_share`
  (norms -> share-below-eps curve).
* :mod:`~lowrank.attacks.fixed_eps`: PGD with a budget per image,
  :class:`PGDBisection` (a minimum-norm search by bisection on that budget) and the
  foolbox PGD cross-check :func:`pgd_success`.
* :mod:`~lowrank.attacks.exact`: :func:`linear_min_norm`, the exact answer for a
  linear model that the attacks are tested against.

Another attack is passed as an object, foolbox style::

    import foolbox as fb
    min_norm_attack(model, x, y, "l2", attacks=[fb.attacks.L2FMNAttack(steps=200), PGDBisection()])
"""

from .adapter import ATTACK_NORMS, LogitAdapter, TwoLogitAdapter, score_scale
from .exact import linear_min_norm
from .fixed_eps import PGDBisection, pgd_attack, pgd_success
from .min_norm import (
    MinNormResult,
    adversarial_share,
    default_attacks,
    min_norm_attack,
    min_norm_perturbations,
)

__all__ = ["ATTACK_NORMS", "LogitAdapter", "TwoLogitAdapter", "score_scale", "linear_min_norm",
           "PGDBisection", "pgd_attack", "pgd_success", "MinNormResult", "adversarial_share",
           "default_attacks", "min_norm_attack", "min_norm_perturbations"]

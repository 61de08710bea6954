"""Minimum-norm adversarial evaluation: per image, the smallest adversarial perturbation any of
several attacks finds, which attack found it, and the share-below-eps curve.

:func:`min_norm_attack` runs a sequence of attacks on each batch -- foolbox
minimum-norm attack objects (``foolbox.attacks.DDNAttack()``,
``foolbox.attacks.LInfFMNAttack()``, ...) and :class:`~lowrank.attacks.PGDBisection`
-- shrinks every adversarial example along its direction, and keeps per image the
smallest norm over all of them. The default is DDN (L2) or FMN (L-infinity), then
PGD with bisection on the budget, which searches below what the first attack found
and is the fall-back where it found nothing (for more than two class logits it is
multi-targeted, see :class:`~lowrank.attacks.PGDBisection`). The model returns one
score per image (``s > 0`` is class 1) or class logits (n, C) with C >= 2 (decision
``argmax``); the attacks see it through :class:`~lowrank.attacks.LogitAdapter`.

Why the fall-back: FMN can stop on the decision boundary without ever crossing it.
Before its first adversarial iterate, FMN sets its radius to
``||delta|| + |logit difference| / ||gradient||_1``, the linearised distance to the
boundary. For a linear model that estimate is exact, so the iterate lands *on* the
boundary, where the float32 score is 0 (or so small that the correction leaves the
float32 radius unchanged). A score of exactly 0 is class 0 (the tie goes to the
first logit; a tie between class logits likewise goes to the lower index), so an
image of class 0 is not adversarial there; the correction is
``0 / ||gradient||_1 = 0``, the radius and the iterate stay fixed, FMN's ``(1 +
gamma)`` growth of the radius only starts after a first success, and after the last
step FMN returns the clean image. Which points land exactly on 0 depends on float32
rounding (the CPU's and BLAS's order of summation), so it differs between machines.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._validation import check_same_length
from .adapter import (
    LogitAdapter,
    check_norm,
    class_labels,
    is_adversarial,
    n_outputs,
    perturbation_norms,
    score_scale,
    shrink_towards,
)
from .fixed_eps import PGDBisection, _check_positive_int

__all__ = ["MinNormResult", "default_attacks", "min_norm_attack", "min_norm_perturbations",
           "adversarial_share"]

_SHORT_NAMES = {"DDNAttack": "ddn", "L2FMNAttack": "fmn", "LInfFMNAttack": "fmn"}


def _attack_norm(attack) -> str | None:
    p = getattr(getattr(attack, "distance", None), "p", None)
    return {2: "l2", math.inf: "linf"}.get(p)


def _check_attack_norm(attack, norm: str) -> None:
    found = _attack_norm(attack)
    if found != norm:
        raise ValueError(f"attack {type(attack).__name__} minimises the {found or 'unknown'} norm, "
                         f"which does not match norm={norm!r}")


def default_attacks(norm: str, steps: int = 100, bounds: tuple[float, float] = (0.0, 1.0)) -> tuple:
    """The attacks :func:`min_norm_attack` runs when none are given.

    L2: foolbox's DDN (Rony et al. 2019; initial epsilon 1); L-infinity: foolbox's FMN
    (Pintor et al. 2021; initial step ``0.1 * (hi - lo)``); each with ``steps``
    iterations, followed by :class:`~lowrank.attacks.PGDBisection` with its defaults
    (for a model with ``C > 2`` class logits it tries every other class as a target,
    about ``C`` times the cost of its untargeted search; ``PGDBisection(targets=k)``
    limits that to the ``k`` classes with the largest clean logits). DDN exists only in L2.

    Parameters
    ----------
    norm : {"l2", "linf"}
    steps : int
        Iterations of the foolbox attack.
    bounds : (float, float)
        Input range (sets FMN's initial step).

    Returns
    -------
    tuple
        The foolbox attack object and a :class:`~lowrank.attacks.PGDBisection`.

    Examples
    --------
    >>> [type(a).__name__ for a in default_attacks("linf", steps=10)]
    ['LInfFMNAttack', 'PGDBisection']
    """
    import foolbox as fb

    check_norm(norm)
    steps = _check_positive_int(steps, "steps")
    if norm == "l2":
        first = fb.attacks.DDNAttack(init_epsilon=1.0, steps=steps)
    else:
        first = fb.attacks.LInfFMNAttack(steps=steps, max_stepsize=0.1 * (bounds[1] - bounds[0]))
    return (first, PGDBisection())


def _names(attacks) -> list[str]:
    names, seen = [], Counter()
    for a in attacks:
        base = getattr(a, "name", None) if isinstance(a, PGDBisection) else None
        base = base or _SHORT_NAMES.get(type(a).__name__, type(a).__name__.lower())
        seen[base] += 1
        names.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return names


@dataclass(frozen=True)
class MinNormResult:
    """Per-image result of :func:`min_norm_attack`.

    Attributes
    ----------
    norms : torch.Tensor, shape (n,), float64
        Smallest perturbation norm over all attacks; 0 where the clean image is
        misclassified; ``inf`` where no attack found an adversarial example.
    method : tuple of str, length n
        Which attack gave each norm (its name in ``per_method``), ``"clean"`` for
        images misclassified clean, ``"none"`` where nothing was found.
    per_method : dict of str to torch.Tensor
        Each attack's own norms (``inf`` where it found nothing), in the order run.
    adversarials : torch.Tensor, shape of the images, optional
        The adversarial example whose norm is reported, per image (the clean image
        where the norm is 0 or ``inf``); set by :func:`min_norm_attack`.

    Examples
    --------
    >>> inf = float("inf")
    >>> r = MinNormResult(torch.tensor([0.0, 0.2, inf]), ("clean", "pgd", "none"),
    ...                   {"fmn": torch.tensor([inf, 0.3, inf]), "pgd": torch.tensor([inf, 0.2, inf])})
    >>> r.counts(), r.failed.tolist()
    ({'clean': 1, 'pgd': 1, 'none': 1}, [2])
    """

    norms: torch.Tensor
    method: tuple[str, ...]
    per_method: dict[str, torch.Tensor]
    adversarials: torch.Tensor | None = None

    @property
    def failed(self) -> torch.Tensor:
        """Indices of the images where no adversarial example was found."""
        return torch.nonzero(~torch.isfinite(self.norms)).flatten()

    @property
    def n_failed(self) -> int:
        """Number of images where no adversarial example was found."""
        return int((~torch.isfinite(self.norms)).sum())

    def counts(self) -> dict[str, int]:
        """How many images each method (and ``"clean"``, ``"none"``) accounts for."""
        c = Counter(self.method)
        return {k: c[k] for k in ("clean", *self.per_method, "none") if c[k]}


def min_norm_attack(model: nn.Module, x: torch.Tensor, y, norm: str = "l2", attacks=None,
                    steps: int = 100, batch_size: int = 500, refine_steps: int = 30,
                    bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0, quiet: bool = True,
                    warn: bool = True) -> MinNormResult:
    """Smallest adversarial perturbation per image over several attacks, and which found it.

    Parameters
    ----------
    model : nn.Module
        Put in eval mode. Either a one-score model (output (n,) or (n, 1); ``s > 0``
        means label +1) or a multi-class model returning class logits (n, C), C >= 2
        (decision ``argmax``, ties to the lower index). The kind is read from the
        model's output on ``x[:1]``.
    x : torch.Tensor, shape (n, ...)
        Images within ``bounds``; every result stays on ``x``'s device.
    y : array-like, shape (n,)
        True labels: in {-1, +1} or {0, 1} for a one-score model, integers in
        {0, ..., C-1} for class logits.
    norm : {"l2", "linf"}
        Threat model.
    attacks : attack or sequence of attacks, optional
        foolbox minimum-norm attack objects (``foolbox.attacks.MinimizationAttack``,
        whose ``distance`` matches ``norm``) and/or :class:`PGDBisection`, run in
        order; a :class:`PGDBisection` searches below the best norm found before it.
        Default: :func:`default_attacks` (DDN or FMN with ``steps`` iterations, then
        PGD with bisection).
    steps : int
        Iterations of the default foolbox attack.
    batch_size : int
        Images per attack call.
    refine_steps : int
        Bisection steps along each found perturbation (the smallest ``t in [0, 1]``
        with ``x + t * delta`` still adversarial); 0: none.
    bounds : (float, float)
        Valid input range (perturbed images are clipped to it).
    seed : int
        Seeds torch's global generator before attacking (for attacks with random starts).
    quiet : bool
        Hide the progress bar.
    warn : bool
        Emit a ``RuntimeWarning`` naming the images where no adversarial example was found.

    Returns
    -------
    MinNormResult
        The attacks see the model through :class:`LogitAdapter` scaled by
        :func:`score_scale` (margin +-1 at each clean image), so multiplying the
        model's output by a positive constant does not change the result beyond the
        attacks' tolerance.

    Raises
    ------
    ValueError
        For an unknown ``norm``, an attack for another norm, mismatched lengths, labels
        outside the model's classes, or a model output that is neither one score nor
        class logits per image.
    TypeError
        For an attack that is neither a foolbox minimisation attack nor a :class:`PGDBisection`.

    Examples
    --------
    >>> lin = nn.Linear(3, 1)
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[1.0, 2.0, 2.0]])); _ = lin.bias.fill_(-2.5)
    >>> x = torch.full((2, 3), 0.6)                   # f(x) = 0.5
    >>> r = min_norm_attack(lin, x, [-1, 1], "l2", bounds=(-5.0, 5.0))
    >>> r.method, abs(float(r.norms[1]) - 0.5 / 3) < 2e-3     # |f| / ||w||_2 = 0.5 / 3
    (('clean', 'ddn'), True)

    A 3-class linear model ``z = W x``; the exact L2 distance of ``x`` (class 0) is
    ``min_{k != 0} (z_0 - z_k) / ||w_0 - w_k||_2 = min(1 / 1, 1.5 / sqrt(2))``:

    >>> lin3 = nn.Linear(2, 3, bias=False)
    >>> with torch.no_grad():
    ...     _ = lin3.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]))
    >>> x3 = torch.tensor([[1.0, -0.5]])                # z = (1, 0, -0.5)
    >>> r3 = min_norm_attack(lin3, x3, [0], "l2", bounds=(-5.0, 5.0))
    >>> r3.n_failed, abs(float(r3.norms[0]) - 1.0) < 2e-3
    (0, True)
    """
    import foolbox as fb

    from ..progress import progress

    check_norm(norm)
    cls = class_labels(y, n_outputs(model, x), x.device)
    check_same_length(x, cls, "x", "y")
    batch_size = _check_positive_int(batch_size, "batch_size")
    if attacks is None:
        attacks = default_attacks(norm, steps, bounds)
    elif not isinstance(attacks, Sequence):
        attacks = (attacks,)
    if not attacks:
        raise ValueError("attacks must hold at least one attack")
    for a in attacks:
        if isinstance(a, fb.attacks.base.MinimizationAttack):
            _check_attack_norm(a, norm)
        elif not isinstance(a, PGDBisection):
            raise TypeError(f"attacks must be foolbox MinimizationAttack objects or PGDBisection, "
                            f"got {type(a).__name__}")
    names = _names(attacks)
    model.eval()
    torch.manual_seed(seed)
    per = {name: torch.full((len(x),), math.inf, dtype=torch.float64, device=x.device) for name in names}
    best = torch.full((len(x),), math.inf, dtype=torch.float64, device=x.device)
    best_x = x.detach().clone()
    source = torch.full((len(x),), -1, dtype=torch.int64, device=x.device)
    clean_wrong = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    starts = range(0, len(x), batch_size)
    desc = "+".join(names) + f" {norm}"
    for i in progress(starts, desc=desc, total=len(starts), quiet=quiet):
        sl = slice(i, i + batch_size)
        xb, cb = x[sl].detach(), cls[sl]
        clean_wrong[sl] = is_adversarial(model, xb, cb)  # scored in the same batch shape as the attacks
        fmodel = fb.PyTorchModel(LogitAdapter(model, score_scale(model, xb, cb)).eval(),
                                 bounds=bounds, device=x.device)
        for j, (name, attack) in enumerate(zip(names, attacks)):
            if isinstance(attack, PGDBisection):
                adv = attack.run(model, xb, cb, norm, bounds, upper=best[sl], refine_steps=refine_steps)
            else:
                with torch.enable_grad():
                    _, adv, _ = attack(fmodel, xb, cb, epsilons=None)
                adv = adv.detach()
                if refine_steps:
                    adv = shrink_towards(model, xb, adv, cb, bounds, refine_steps)
            ok = is_adversarial(model, adv, cb)  # the very points whose norm is reported
            size = torch.where(ok, perturbation_norms(adv - xb, norm).to(torch.float64),
                               torch.full_like(best[sl], math.inf))
            per[name][sl] = size
            better = size < best[sl]
            best[sl] = torch.where(better, size, best[sl])
            best_x[sl] = torch.where(better.view((-1,) + (1,) * (x.ndim - 1)), adv, best_x[sl])
            source[sl] = torch.where(better, j, source[sl])
    best = torch.where(clean_wrong, torch.zeros_like(best), best)
    labels = [*names, "none", "clean"]
    code = torch.where(clean_wrong, len(names) + 1, torch.where(source < 0, len(names), source))
    best_x[clean_wrong] = x.detach()[clean_wrong]
    result = MinNormResult(best, tuple(labels[k] for k in code.tolist()), per, best_x)
    if warn and result.n_failed:
        idx = result.failed.tolist()
        warnings.warn(f"no adversarial example found for {len(idx)} of {len(x)} images "
                      f"(indices {idx[:10]}{' ...' if len(idx) > 10 else ''}); their norm is inf",
                      RuntimeWarning, stacklevel=2)
    return result


def min_norm_perturbations(model: nn.Module, x: torch.Tensor, y, norm: str = "l2", attacks=None,
                           steps: int = 100, batch_size: int = 500, refine_steps: int = 30,
                           bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0,
                           quiet: bool = True) -> torch.Tensor:
    """Norm of the smallest adversarial perturbation found, per image (``min_norm_attack(...).norms``).

    Same arguments as :func:`min_norm_attack` (one-score or class-logit models); use
    that function to also see which attack found each perturbation. Images where
    nothing was found (norm ``inf``) are named in a ``RuntimeWarning``.

    Parameters
    ----------
    model, x, y, norm, attacks, steps, batch_size, refine_steps, bounds, seed, quiet
        As in :func:`min_norm_attack`.

    Returns
    -------
    torch.Tensor, shape (n,), float64, on ``x``'s device
        0 where the model already misclassifies the clean image; ``inf`` where no
        adversarial example was found.

    Examples
    --------
    >>> lin = nn.Linear(3, 1)
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[1.0, 2.0, 2.0]])); _ = lin.bias.fill_(-2.5)
    >>> x = torch.full((1, 3), 0.6)                   # f(x) = 0.5
    >>> d = min_norm_perturbations(lin, x, [1], "linf", bounds=(-5.0, 5.0))
    >>> abs(float(d[0]) - 0.5 / 5) < 1e-3             # |f| / ||w||_1 = 0.5 / 5
    True
    """
    return min_norm_attack(model, x, y, norm, attacks=attacks, steps=steps, batch_size=batch_size,
                           refine_steps=refine_steps, bounds=bounds, seed=seed, quiet=quiet).norms


def adversarial_share(norms, eps) -> np.ndarray:
    """Share of images with an adversarial example within each ``eps``.

    Parameters
    ----------
    norms : array-like, shape (n,)
        Per-image minimal perturbation norms (``inf`` = none found); tensors on any device.
    eps : array-like, shape (m,)
        Budgets.

    Returns
    -------
    numpy.ndarray, shape (m,)
        ``mean(norms <= eps_k)`` for each ``k``.

    Raises
    ------
    ValueError
        If ``norms`` is empty.

    Examples
    --------
    >>> adversarial_share([0.0, 0.5, float("inf")], [0.0, 0.5, 10.0]).tolist()
    [0.3333333333333333, 0.6666666666666666, 0.6666666666666666]
    """
    if isinstance(norms, torch.Tensor):
        norms = norms.detach().cpu()
    d = np.asarray(torch.as_tensor(norms, dtype=torch.float64), dtype=np.float64).ravel()
    e = np.asarray(eps, dtype=np.float64).ravel()
    if d.size == 0:
        raise ValueError("norms must not be empty")
    return (d[None, :] <= e[:, None]).mean(axis=1)

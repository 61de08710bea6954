"""Fixed-budget attacks: PGD with a budget per image, a minimum-norm search by bisection on that
budget, and the foolbox PGD cross-check at one budget.

:func:`pgd_attack` is projected gradient descent on the model's own score
(the direction is the sign of the gradient in L-infinity and the unit gradient in
L2, so the scale of the score does not matter) with a separate budget for each
image. :class:`PGDBisection` turns it into a minimum-norm attack: per image, it
bisects the budget between 0 and the smallest norm found so far (or the largest
perturbation the box allows), keeping every adversarial example PGD finds,
shrunk along its direction. :func:`pgd_success` is the independent fixed-budget
check with foolbox's own PGD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .._validation import check_same_length, signed_labels
from .adapter import (
    TwoLogitAdapter,
    check_norm,
    class_labels,
    is_adversarial,
    perturbation_norms,
    score_scale,
    scores,
    shrink_towards,
    worst_case_norms,
)

__all__ = ["pgd_attack", "PGDBisection", "pgd_success"]

_ROUND_REFINE_STEPS = 12  # shrink steps after each bisection round (relative precision 2**-12)


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def pgd_attack(model: nn.Module, x: torch.Tensor, cls: torch.Tensor, eps: torch.Tensor,
                      norm: str = "linf", steps: int = 20, rel_stepsize: float | None = None,
                      bounds: tuple[float, float] = (0.0, 1.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """PGD with budget ``eps[i]`` for image ``i``; the first adversarial iterate per image.

    Starts at the clean image (no random start, so the result is deterministic) and
    takes ``steps`` steps of ``rel_stepsize * eps`` (default ``2.5 / steps``, enough
    travel to cross the ball) that lower the model's margin ``(2 cls - 1) * s``,
    projecting onto the ball and the box after each.

    Parameters
    ----------
    model : nn.Module
        One-score model (``s > 0`` means class 1).
    x : torch.Tensor, shape (n, ...)
        Images within ``bounds``.
    cls : torch.Tensor of int64, shape (n,)
        True classes (1 for label +1, 0 for label -1), on ``x``'s device.
    eps : torch.Tensor, shape (n,)
        Budget per image.
    norm : {"l2", "linf"}
    steps : int
    rel_stepsize : float, optional
    bounds : (float, float)

    Returns
    -------
    x_adv : torch.Tensor, shape of ``x``
        The first adversarial iterate per image (``x`` where none was found), exactly
        the tensor whose score was checked; an image stops moving once it is adversarial.
    found : torch.Tensor of bool, shape (n,)
        Whether an adversarial iterate was found.

    Examples
    --------
    >>> lin = nn.Linear(2, 1)
    >>> _ = lin.weight.data.copy_(torch.tensor([[1.0, 1.0]])); _ = lin.bias.data.fill_(-1.0)
    >>> x = torch.tensor([[0.6, 0.6]])                  # s = 0.2, exact L-inf distance 0.1
    >>> xa, ok = pgd_attack(lin, x, torch.tensor([1]), torch.tensor([0.12]), "linf")
    >>> bool(ok[0]), 0.1 <= float((xa - x).abs().max()) <= 0.12   # first adversarial iterate
    (True, True)
    """
    check_norm(norm)
    steps = _check_positive_int(steps, "steps")
    check_same_length(x, cls, "x", "cls")
    eps = torch.as_tensor(eps)
    if eps.shape != (len(x),) or not bool((eps >= 0).all()):
        raise ValueError(f"eps must hold one non-negative budget per image, shape ({len(x)},); "
                         f"got shape {tuple(eps.shape)}")
    rel = 2.5 / steps if rel_stepsize is None else float(rel_stepsize)
    shape = (-1,) + (1,) * (x.ndim - 1)
    x = x.detach()
    e = eps.to(device=x.device, dtype=x.dtype).view(shape)
    direction = (2 * cls - 1).to(x.dtype)  # lower (2 cls - 1) * s: push the score across 0
    best_x = x.clone()
    found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    todo = torch.arange(len(x), device=x.device)  # images not adversarial yet
    delta = torch.zeros_like(x)
    for k in range(steps + 1):
        xa = (x[todo] + delta).requires_grad_(True)
        with torch.enable_grad():
            s = scores(model, xa)
            grad = None if k == steps else torch.autograd.grad((direction[todo] * s).sum(), xa)[0]
        adv = (s.detach() > 0).to(torch.int64) != cls[todo]
        best_x[todo[adv]] = xa.detach()[adv]  # the first adversarial iterate, as scored
        found[todo[adv]] = True
        keep = ~adv
        todo, delta = todo[keep], delta[keep]
        if grad is None or not len(todo):
            break
        grad, xs, et = grad[keep], x[todo], e[todo]
        if norm == "linf":
            delta = (delta - rel * et * grad.sign()).clamp(-et, et)
        else:
            g = grad.flatten(1).norm(dim=1).clamp_min(1e-30).view(shape)
            delta = delta - rel * et * grad / g
            n = delta.flatten(1).norm(dim=1).view(shape)
            delta = delta * torch.clamp(et / n.clamp_min(1e-30), max=1.0)
        delta = (xs + delta).clamp(*bounds) - xs
    return best_x, found


@dataclass(frozen=True)
class PGDBisection:
    """Minimum-norm search with PGD: bisection on each image's budget.

    Used after (or instead of) the foolbox minimum-norm attacks by
    :func:`~lowrank.attacks.min_norm_attack`: it searches below the smallest norm
    found so far and is the fall-back where the other attacks found nothing.

    Parameters
    ----------
    steps : int
        PGD steps per budget.
    bisection_steps : int
        Budgets tried per image (at most); resolution ``2**-bisection_steps`` of the
        starting upper bound.
    rel_stepsize : float, optional
        PGD step as a fraction of the budget (default ``2.5 / steps``).
    rtol : float
        Stop an image's bisection once ``lo >= (1 - rtol) * hi``.

    Examples
    --------
    >>> PGDBisection(steps=10).name
    'pgd'
    """

    steps: int = 20
    bisection_steps: int = 8
    rel_stepsize: float | None = None
    rtol: float = 1e-3
    name: str = "pgd"

    def __post_init__(self) -> None:
        _check_positive_int(self.steps, "steps")
        _check_positive_int(self.bisection_steps, "bisection_steps")
        if not 0 <= self.rtol < 1:
            raise ValueError(f"rtol must be in [0, 1), got {self.rtol!r}")

    def run(self, model: nn.Module, x: torch.Tensor, cls: torch.Tensor, norm: str,
            bounds: tuple[float, float], upper: torch.Tensor | None = None,
            refine_steps: int = 30) -> torch.Tensor:
        """The smallest adversarial example found per image.

        Parameters
        ----------
        model, x, cls, norm, bounds
            As in :func:`pgd_attack`.
        upper : torch.Tensor, shape (n,), optional
            Smallest norm already known per image (``inf``: none); the search starts below it.
        refine_steps : int
            Bisection steps along each adversarial example found (see
            ``shrink_towards`` in :mod:`~lowrank.attacks.adapter`): at most 12 after each
            round, then all of them on the final point.

        Returns
        -------
        torch.Tensor, shape of ``x``
            ``x`` itself for images where PGD found no adversarial example below ``upper``.
        """
        check_norm(norm)
        n = len(x)
        shape = (-1,) + (1,) * (x.ndim - 1)
        worst = worst_case_norms(x, norm, bounds).to(torch.float64)
        upper = torch.full_like(worst, math.inf) if upper is None else upper.to(worst)
        best = torch.full_like(worst, math.inf)
        best_x = x.detach().clone()
        lo = torch.zeros_like(worst)
        hi = torch.minimum(upper, worst)

        # Each round's points are shrunk and checked on the whole batch, so that every
        # decision is scored with the same batch shape as the final check: at the
        # boundary, float32 scores can change sign between batch shapes.
        fresh = ~torch.isfinite(upper)  # nothing found yet: first try the whole box
        alive = torch.ones(n, dtype=torch.bool, device=x.device)
        for r in range(self.bisection_steps + int(bool(fresh.any()))):
            first = fresh & (r == 0)
            active = alive & (first | (lo < (1 - self.rtol) * hi))
            if not bool(active.any()):
                break
            eps = torch.where(first, worst, torch.where(active, (lo + hi) / 2, hi))
            xa, ok = pgd_attack(model, x, cls, eps, norm, self.steps, self.rel_stepsize, bounds)
            if refine_steps:  # coarse here; the final shrink below has the full precision
                xa = shrink_towards(model, x, xa, cls, bounds, min(refine_steps, _ROUND_REFINE_STEPS))
            ok = ok & is_adversarial(model, xa, cls)
            size = torch.where(ok, perturbation_norms(xa - x, norm).to(torch.float64),
                               torch.full_like(best, math.inf))
            better = size < best
            best = torch.where(better, size, best)
            best_x = torch.where(better.view(shape), xa, best_x)
            alive = alive & ~(first & ~ok)
            hi = torch.where(active & ok, torch.minimum(best, eps), hi)
            lo = torch.where(active & ~ok & ~first, eps, lo)
        if refine_steps > _ROUND_REFINE_STEPS:
            best_x = shrink_towards(model, x, best_x, cls, bounds, refine_steps)
        return best_x


def pgd_success(model: nn.Module, x: torch.Tensor, y, eps: float, norm: str = "linf",
                steps: int = 50, batch_size: int = 500, bounds: tuple[float, float] = (0.0, 1.0),
                seed: int = 0, attack=None) -> torch.Tensor:
    """Whether a fixed-budget attack (foolbox's PGD by default) finds an adversarial example within ``eps``.

    The attack sees the model through :class:`~lowrank.attacks.TwoLogitAdapter` with
    the per-image :func:`~lowrank.attacks.score_scale`, so the scale of the
    score does not change the result.

    Parameters
    ----------
    model : nn.Module
        One-score model.
    x : torch.Tensor
        Images within ``bounds``.
    y : array-like
        Labels in {-1, +1} or {0, 1}.
    eps : float
        Budget in the chosen norm.
    norm : {"l2", "linf"}
    steps : int
        PGD iterations (default attack), with step size ``2.5 * eps / steps`` and a random start.
    batch_size : int
    bounds : (float, float)
    seed : int
        Seeds torch's global generator (the random start).
    attack : foolbox.attacks.base.FixedEpsilonAttack, optional
        Another foolbox fixed-budget attack (its ``distance`` must match ``norm``);
        ``steps`` is then ignored.

    Returns
    -------
    torch.Tensor of bool, shape (n,), on ``x``'s device
        True where the clean image is misclassified or the attack succeeds.

    Examples
    --------
    >>> lin = nn.Linear(2, 1)
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[1.0, 0.0]])); _ = lin.bias.fill_(-0.5)
    >>> x = torch.tensor([[0.6, 0.5], [0.9, 0.5]])
    >>> pgd_success(lin, x, [1, 1], 0.2, "linf").tolist()
    [True, False]
    """
    import foolbox as fb

    from .min_norm import _check_attack_norm

    check_norm(norm)
    check_same_length(x, signed_labels(y, "y"), "x", "y")
    batch_size = _check_positive_int(batch_size, "batch_size")
    if attack is None:
        rel = 2.5 / _check_positive_int(steps, "steps")
        attack = (fb.attacks.L2PGD(steps=steps, rel_stepsize=rel) if norm == "l2"
                  else fb.attacks.LinfPGD(steps=steps, rel_stepsize=rel))
    elif not isinstance(attack, fb.attacks.base.FixedEpsilonAttack):
        raise TypeError(f"attack must be a foolbox FixedEpsilonAttack, got {type(attack).__name__}")
    _check_attack_norm(attack, norm)
    model.eval()
    cls = class_labels(y, x.device)
    torch.manual_seed(seed)
    res = []
    for i in range(0, len(x), batch_size):
        xb, cb = x[i:i + batch_size], cls[i:i + batch_size]
        adapter = TwoLogitAdapter(model, score_scale(model, xb)).eval()
        fmodel = fb.PyTorchModel(adapter, bounds=bounds, device=x.device)
        with torch.enable_grad():
            _, adv, _ = attack(fmodel, xb, cb, epsilons=float(eps))
        adv = adv.detach()
        ok = is_adversarial(model, adv, cb) & (perturbation_norms(adv - xb, norm) <= eps * (1 + 1e-5))
        res.append(ok | is_adversarial(model, xb, cb))
    return torch.cat(res)

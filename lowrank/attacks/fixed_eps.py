"""Fixed-budget attacks: PGD with a budget per image, a minimum-norm search by bisection on that
budget, and the foolbox PGD cross-check at one budget.

:func:`pgd_attack` is projected gradient descent on the model's own margin (the
score for a one-score model, the true logit minus the largest other logit for a
multi-class one; the direction is the sign of the gradient in L-infinity and the unit
gradient in L2, so the scale of the output does not matter) with a separate budget for
each image. :class:`PGDBisection` turns it into a minimum-norm attack: per image, it
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

from .._validation import check_same_length
from .adapter import (
    LogitAdapter,
    check_norm,
    class_labels,
    decision,
    is_adversarial,
    margin,
    model_outputs,
    n_outputs,
    perturbation_norms,
    score_scale,
    shrink_towards,
    worst_case_norms,
)

__all__ = ["pgd_attack", "PGDBisection", "pgd_success"]

_ROUND_REFINE_STEPS = 12  # shrink steps after each bisection round (relative precision 2**-12)


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_targets(targets) -> int | None:
    if targets is not None and (isinstance(targets, bool) or not isinstance(targets, int) or targets < 0):
        raise ValueError(f"targets must be None or a non-negative integer, got {targets!r}")
    return targets


@torch.no_grad()
def target_classes(model: nn.Module, x: torch.Tensor, cls: torch.Tensor,
                   targets: int | None) -> torch.Tensor | None:
    """Classes a multi-targeted attack aims at: per image the ``targets`` other classes with the
    largest clean logits (None: all ``C - 1``), shape (n, T); None for one score, C = 2 or ``targets=0``."""
    z = model_outputs(model, x)
    if z.ndim == 1 or z.shape[1] <= 2 or targets == 0:
        return None
    t = z.shape[1] - 1 if targets is None else min(targets, z.shape[1] - 1)
    # other classes by clean logit, largest first (the true class sorts last)
    others = z.scatter(1, cls[:, None], -torch.inf).argsort(dim=1, descending=True, stable=True)
    return others[:, :t]


def _check_target(target, cls: torch.Tensor, n_out: int) -> torch.Tensor:
    """``target`` as int64 on ``cls``'s device: -1 or a class in {0, ..., C-1} other than ``cls``."""
    t = torch.as_tensor(target)
    if n_out == 1:
        raise ValueError("target is for models that return class logits; this model returns one score")
    if t.shape != cls.shape or t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(f"target must be an integer tensor of shape {tuple(cls.shape)}, got "
                         f"{t.dtype} of shape {tuple(t.shape)}")
    t = t.to(device=cls.device, dtype=torch.int64)
    if not bool(((t == -1) | ((t >= 0) & (t < n_out) & (t != cls))).all()):
        raise ValueError(f"target must hold -1 or a class in {{0, ..., {n_out - 1}}} other than cls")
    return t


def pgd_attack(model: nn.Module, x: torch.Tensor, cls: torch.Tensor, eps: torch.Tensor,
               norm: str = "linf", steps: int = 20, rel_stepsize: float | None = None,
               bounds: tuple[float, float] = (0.0, 1.0),
               target: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """PGD with budget ``eps[i]`` for image ``i``; the first adversarial iterate per image.

    Starts at the clean image (no random start, so the result is deterministic) and
    takes ``steps`` steps of ``rel_stepsize * eps`` (default ``2.5 / steps``, enough
    travel to cross the ball) that lower the model's margin -- ``(2 cls - 1) * s`` for
    a one-score model, ``z_cls - max_{k != cls} z_k`` for class logits ``z`` (or the
    pairwise margin ``z_cls - z_target`` towards a ``target`` class) -- projecting onto
    the ball and the box after each. Success is always untargeted: any decision other
    than ``cls``.

    Parameters
    ----------
    model : nn.Module
        One-score model (output (n,) or (n, 1); ``s > 0`` means class 1) or a model
        returning class logits (n, C), C >= 2 (decision ``argmax``).
    x : torch.Tensor, shape (n, ...)
        Images within ``bounds``.
    cls : torch.Tensor of int64, shape (n,)
        True classes, on ``x``'s device: 1 for label +1 and 0 for label -1 (one score),
        ``0 .. C-1`` (logits).
    eps : torch.Tensor, shape (n,)
        Budget per image.
    norm : {"l2", "linf"}
    steps : int
    rel_stepsize : float, optional
    bounds : (float, float)
    target : torch.Tensor of int64, shape (n,), optional
        Logits only: per image a class ``!= cls`` whose logit the attack raises over
        ``z_cls``, or -1 for the untargeted margin.

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
    n_out = n_outputs(model, x)
    cls = class_labels(cls, n_out, x.device, name="cls")
    check_same_length(x, cls, "x", "cls")
    if target is not None:
        target = _check_target(target, cls, n_out)
    eps = torch.as_tensor(eps)
    if eps.shape != (len(x),) or not bool((eps >= 0).all()):
        raise ValueError(f"eps must hold one non-negative budget per image, shape ({len(x)},); "
                         f"got shape {tuple(eps.shape)}")
    rel = 2.5 / steps if rel_stepsize is None else float(rel_stepsize)
    shape = (-1,) + (1,) * (x.ndim - 1)
    x = x.detach()
    e = eps.to(device=x.device, dtype=x.dtype).view(shape)
    best_x = x.clone()
    found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    todo = torch.arange(len(x), device=x.device)  # images not adversarial yet
    delta = torch.zeros_like(x)
    for k in range(steps + 1):
        xa = (x[todo] + delta).requires_grad_(True)
        with torch.enable_grad():
            z = model_outputs(model, xa)
            tk = None if target is None else target[todo]
            grad = None if k == steps else torch.autograd.grad(margin(z, cls[todo], tk).sum(), xa)[0]
        adv = decision(z.detach()) != cls[todo]
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

    For a model with ``C > 2`` class logits each budget is tried by the untargeted PGD
    and by targeted PGD towards other classes (a multi-targeted attack): the untargeted
    margin ``z_cls - max_{k != cls} z_k`` follows the class that is nearest in logit,
    which need not be the class nearest in input space, and the search then settles
    on the wrong face of the decision region. The smallest norm over targets is exact
    for a linear model.

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
    targets : int, optional
        Logits with ``C > 2`` only: how many other classes (those with the largest clean
        logits) targeted PGD attacks besides the untargeted margin; None: all ``C - 1``,
        0: untargeted only. Each target adds one PGD run per budget.

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
    targets: int | None = None

    def __post_init__(self) -> None:
        _check_positive_int(self.steps, "steps")
        _check_positive_int(self.bisection_steps, "bisection_steps")
        if not 0 <= self.rtol < 1:
            raise ValueError(f"rtol must be in [0, 1), got {self.rtol!r}")
        _check_targets(self.targets)

    def _targets(self, model: nn.Module, x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor | None:
        """Per image, -1 (untargeted) then the targeted classes, shape (n, 1 + T); None: untargeted only."""
        t = target_classes(model, x, cls, self.targets)
        return None if t is None else torch.cat([torch.full_like(cls[:, None], -1), t], dim=1)

    def _round(self, model: nn.Module, x: torch.Tensor, cls: torch.Tensor, eps: torch.Tensor, norm: str,
               bounds: tuple[float, float], refine: int,
               targets: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """PGD at budget ``eps`` (over every target: the smallest adversarial), shrunk by ``refine`` steps."""
        if targets is not None:  # one copy of each image per target, in one batch
            m = targets.shape[1]
            x, cls, eps = (t.repeat_interleave(m, dim=0) for t in (x, cls, eps))
        xa, ok = pgd_attack(model, x, cls, eps, norm, self.steps, self.rel_stepsize, bounds,
                            target=None if targets is None else targets.flatten())
        if refine:
            xa = shrink_towards(model, x, xa, cls, bounds, refine)
        if targets is None:
            return xa, ok
        ok = ok & is_adversarial(model, xa, cls)
        size = torch.where(ok, perturbation_norms(xa - x, norm), torch.inf).view(-1, m)
        pick = size.argmin(dim=1)
        rows = torch.arange(len(pick), device=x.device)
        return xa.view(-1, m, *x.shape[1:])[rows, pick], ok.view(-1, m).any(dim=1)

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
        cls = class_labels(cls, n_outputs(model, x), x.device, name="cls")
        check_same_length(x, cls, "x", "cls")
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
        targets = self._targets(model, x, cls)
        # multi-targeted: first try the known budget ``upper`` too (PGD towards the nearest
        # class, shrunk along its direction, can beat it by less than the bisection's resolution)
        probe = fresh | (targets is not None)
        alive = torch.ones(n, dtype=torch.bool, device=x.device)
        for r in range(self.bisection_steps + int(bool(probe.any()))):
            first = probe & (r == 0)
            active = alive & (first | (lo < (1 - self.rtol) * hi))
            if not bool(active.any()):
                break
            eps = torch.where(first, torch.where(fresh, worst, hi), torch.where(active, (lo + hi) / 2, hi))
            # coarse shrink here; the final shrink below has the full precision
            xa, ok = self._round(model, x, cls, eps, norm, bounds, min(refine_steps, _ROUND_REFINE_STEPS),
                                 targets)
            ok = ok & is_adversarial(model, xa, cls)
            size = torch.where(ok, perturbation_norms(xa - x, norm).to(torch.float64),
                               torch.full_like(best, math.inf))
            better = size < best
            best = torch.where(better, size, best)
            best_x = torch.where(better.view(shape), xa, best_x)
            alive = alive & ~(first & fresh & ~ok)
            hi = torch.where(active & ok, torch.minimum(best, eps), hi)
            lo = torch.where(active & ~ok & ~first, eps, lo)
        if refine_steps > _ROUND_REFINE_STEPS:
            best_x = shrink_towards(model, x, best_x, cls, bounds, refine_steps)
        return best_x


def pgd_success(model: nn.Module, x: torch.Tensor, y, eps: float, norm: str = "linf",
                steps: int = 50, batch_size: int = 500, bounds: tuple[float, float] = (0.0, 1.0),
                seed: int = 0, attack=None, targets: int | None = None) -> torch.Tensor:
    """Whether a fixed-budget attack (foolbox's PGD by default) finds an adversarial example within ``eps``.

    The attack sees the model through :class:`~lowrank.attacks.LogitAdapter` with
    the per-image :func:`~lowrank.attacks.score_scale`, so the scale of the
    model's output does not change the result.

    Parameters
    ----------
    model : nn.Module
        One-score model (output (n,) or (n, 1)) or a model returning class logits
        (n, C), C >= 2.
    x : torch.Tensor
        Images within ``bounds``.
    y : array-like
        Labels in {-1, +1} or {0, 1} (one score), integers in {0, ..., C-1} (logits).
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
    targets : int, optional
        Logits with ``C > 2`` only: besides the untargeted attack, run it targeted
        (foolbox's ``TargetedMisclassification``) at this many other classes, those with
        the largest clean logits; None: all ``C - 1``; 0: untargeted only. An image
        counts as attacked if any run finds an adversarial example (any class but the
        true one). The untargeted loss follows the class nearest in logit, which need
        not be nearest in input space.

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
    cls = class_labels(y, n_outputs(model, x), x.device)
    check_same_length(x, cls, "x", "y")
    batch_size = _check_positive_int(batch_size, "batch_size")
    _check_targets(targets)
    if attack is None:
        rel = 2.5 / _check_positive_int(steps, "steps")
        attack = (fb.attacks.L2PGD(steps=steps, rel_stepsize=rel) if norm == "l2"
                  else fb.attacks.LinfPGD(steps=steps, rel_stepsize=rel))
    elif not isinstance(attack, fb.attacks.base.FixedEpsilonAttack):
        raise TypeError(f"attack must be a foolbox FixedEpsilonAttack, got {type(attack).__name__}")
    _check_attack_norm(attack, norm)
    model.eval()
    torch.manual_seed(seed)
    res = []
    for i in range(0, len(x), batch_size):
        xb, cb = x[i:i + batch_size], cls[i:i + batch_size]
        adapter = LogitAdapter(model, score_scale(model, xb, cb)).eval()
        fmodel = fb.PyTorchModel(adapter, bounds=bounds, device=x.device)
        aims = target_classes(model, xb, cb, targets)
        criteria = [cb] + ([] if aims is None else [fb.criteria.TargetedMisclassification(t)
                                                    for t in aims.T])
        ok = is_adversarial(model, xb, cb)
        for criterion in criteria:
            with torch.enable_grad():
                _, adv, _ = attack(fmodel, xb, criterion, epsilons=float(eps))
            adv = adv.detach()
            ok |= is_adversarial(model, adv, cb) & (perturbation_norms(adv - xb, norm) <= eps * (1 + 1e-5))
        res.append(ok)
    return torch.cat(res)

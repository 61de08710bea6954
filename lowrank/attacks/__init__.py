"""Adversarial evaluation of one-score binary models, built on foolbox 3.

* :class:`TwoLogitAdapter` turns a model giving one score ``s`` per image into the
  two-logit model ``[-s/2, s/2]`` that attack libraries expect (class 1 <-> ``s > 0``,
  i.e. label +1; class 0 <-> label -1).
* :func:`min_norm_perturbations` runs a foolbox minimum-norm attack -- by default
  DDN (Rony et al. 2019) in L2 and the Fast Minimum-Norm attack (FMN, Pintor et
  al. 2021) in L-infinity; FMN-L2 is available too -- and returns, per image, the norm of the
  smallest adversarial perturbation found, after an optional binary-search
  refinement along the found perturbation (the smallest ``t in [0, 1]`` with
  ``x + t * delta`` still adversarial). Conventions: ``0`` for images the model
  already misclassifies; ``inf`` where the attack found nothing.
* :func:`adversarial_share` turns those norms into the curve
  ``eps -> share of images with an adversarial example within eps`` without
  re-running any attack (at ``eps = 0`` it is the clean error).
* :func:`pgd_success` is the fixed-epsilon PGD cross-check.
* :func:`linear_min_norm` is the exact answer for a linear model,
  ``|f(x)| / ||w||_2`` (L2) and ``|f(x)| / ||w||_1`` (L-infinity), used to verify
  the attack's strength.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .._validation import signed_labels

__all__ = ["TwoLogitAdapter", "min_norm_perturbations", "adversarial_share", "pgd_success",
           "linear_min_norm", "ATTACK_NORMS"]

ATTACK_NORMS = ("l2", "linf")


class TwoLogitAdapter(nn.Module):
    """Two-logit view ``[-s/2, s/2]`` of a one-score model ``s = model(x)``.

    ``argmax`` is class 1 exactly when ``s > 0``; the logit difference is ``s``, so
    margin-based attacks see the model's own score.

    Parameters
    ----------
    model : nn.Module
        Returns scores of shape (n,) or (n, 1).

    Examples
    --------
    >>> a = TwoLogitAdapter(nn.Linear(2, 1))
    >>> a(torch.zeros(3, 2)).shape
    torch.Size([3, 2])
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        s = self.model(x)
        if s.ndim == 2 and s.shape[1] == 1:
            s = s[:, 0]
        half = 0.5 * s
        return torch.stack([-half, half], dim=1)


def _class_labels(y, device) -> torch.Tensor:
    return (signed_labels(y, "y") > 0).to(torch.int64).to(device)


def _norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.norm(p=2, dim=1) if norm == "l2" else flat.abs().amax(dim=1)


def _check_norm(norm: str) -> None:
    if norm not in ATTACK_NORMS:
        raise ValueError(f"norm must be one of {ATTACK_NORMS}, got {norm!r}")


@torch.no_grad()
def _is_adv(model: nn.Module, x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    s = model(x)
    if s.ndim == 2:
        s = s[:, 0]
    return (s > 0).to(torch.int64) != cls


@torch.no_grad()
def _refine(model, x, delta, cls, bounds, steps: int) -> torch.Tensor:
    """Shrink each adversarial ``delta`` by bisection on its scale ``t in [0, 1]``."""
    lo = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    hi = torch.ones_like(lo)
    shape = (-1,) + (1,) * (x.ndim - 1)
    for _ in range(steps):
        mid = (lo + hi) / 2
        adv = _is_adv(model, (x + mid.view(shape) * delta).clamp(*bounds), cls)
        hi = torch.where(adv, mid, hi)
        lo = torch.where(adv, lo, mid)
    return (x + hi.view(shape) * delta).clamp(*bounds) - x


def min_norm_perturbations(model: nn.Module, x: torch.Tensor, y, norm: str = "l2",
                           method: str = "auto", steps: int = 100, batch_size: int = 500,
                           refine_steps: int = 30, bounds: tuple[float, float] = (0.0, 1.0),
                           max_stepsize: float | None = None, seed: int = 0,
                           quiet: bool = True) -> torch.Tensor:
    """Norm of the smallest adversarial perturbation a minimum-norm attack finds, per image.

    Parameters
    ----------
    model : nn.Module
        One-score model (``s > 0`` means label +1), put in eval mode.
    x : torch.Tensor, shape (n, ...)
        Images, within ``bounds``.
    y : array-like, shape (n,)
        True labels in {-1, +1} or {0, 1}.
    norm : {"l2", "linf"}
        Threat model.
    method : {"auto", "ddn", "fmn"}
        Attack: ``"auto"`` is DDN for L2 (on trained CNNs it found about 10% smaller
        L2 perturbations than foolbox's FMN-L2 with default step sizes) and FMN for
        L-infinity (DDN exists only in L2).
    steps : int
        Attack iterations.
    batch_size : int
        Images per attack call.
    refine_steps : int
        Bisection steps of the refinement along the found perturbation (0: none).
    bounds : (float, float)
        Valid input range (perturbed images are clipped to it).
    max_stepsize : float, optional
        FMN's initial step size (foolbox default 1.0 for L2; for L-infinity we use
        ``0.1 * (hi - lo)`` unless given). For DDN it is the initial epsilon (default 1.0).
    seed : int
        Seeds torch's global generator before attacking (FMN is deterministic; kept
        for attacks with random starts).
    quiet : bool
        Hide the progress bar.

    Returns
    -------
    torch.Tensor, shape (n,), float64
        Per-image norm of the found perturbation; 0 where the model already
        misclassifies the clean image; ``inf`` where no adversarial example was found.

    Raises
    ------
    ValueError
        For an unknown ``norm`` or mismatched lengths.

    Examples
    --------
    >>> lin = nn.Linear(3, 1)
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[1.0, 2.0, 2.0]])); _ = lin.bias.fill_(-2.5)
    >>> x = torch.full((1, 3), 0.5)                   # f(x) = 0
    >>> d = min_norm_perturbations(lin, x + 0.1, [1], "l2", bounds=(-5.0, 5.0))
    >>> abs(float(d[0]) - 0.5 / 3) < 2e-3             # |f| / ||w||_2 = 0.5 / 3
    True
    """
    import foolbox as fb

    from ..progress import progress

    _check_norm(norm)
    if method == "auto":
        method = "ddn" if norm == "l2" else "fmn"
    if method not in ("ddn", "fmn") or (method == "ddn" and norm != "l2"):
        raise ValueError(f"method must be 'auto', 'fmn', or (for norm='l2') 'ddn'; got {method!r}")
    if len(x) != len(signed_labels(y, "y")):
        raise ValueError("x and y must have the same length")
    model.eval()
    cls = _class_labels(y, x.device)
    adapter = TwoLogitAdapter(model).eval()
    fmodel = fb.PyTorchModel(adapter, bounds=bounds, device=x.device)
    width = bounds[1] - bounds[0]
    if method == "ddn":
        attack = fb.attacks.DDNAttack(init_epsilon=max_stepsize or 1.0, steps=steps)
    elif norm == "l2":
        attack = fb.attacks.L2FMNAttack(steps=steps, max_stepsize=max_stepsize or 1.0)
    else:
        attack = fb.attacks.LInfFMNAttack(steps=steps, max_stepsize=max_stepsize or 0.1 * width)
    torch.manual_seed(seed)
    out = torch.empty(len(x), dtype=torch.float64)
    starts = range(0, len(x), batch_size)
    for i in progress(starts, desc=f"{method.upper()} {norm}", total=len(starts), quiet=quiet):
        xb, cb = x[i:i + batch_size], cls[i:i + batch_size]
        with torch.enable_grad():
            _, adv, _ = attack(fmodel, xb, cb, epsilons=None)
        adv = adv.detach()
        delta = adv - xb
        ok = _is_adv(model, adv, cb)
        if refine_steps:
            delta = torch.where(ok.view((-1,) + (1,) * (x.ndim - 1)),
                                _refine(model, xb, delta, cb, bounds, refine_steps), delta)
        d = _norm(delta, norm).to(torch.float64)
        d = torch.where(ok, d, torch.full_like(d, math.inf))
        d = torch.where(_is_adv(model, xb, cb), torch.zeros_like(d), d)
        out[i:i + batch_size] = d.cpu()
    return out


def adversarial_share(norms, eps) -> np.ndarray:
    """Share of images with an adversarial example within each ``eps``.

    Parameters
    ----------
    norms : array-like, shape (n,)
        Per-image minimal perturbation norms (``inf`` = none found).
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
    d = np.asarray(torch.as_tensor(norms, dtype=torch.float64), dtype=np.float64).ravel()
    e = np.asarray(eps, dtype=np.float64).ravel()
    if d.size == 0:
        raise ValueError("norms must not be empty")
    return (d[None, :] <= e[:, None]).mean(axis=1)


def pgd_success(model: nn.Module, x: torch.Tensor, y, eps: float, norm: str = "linf",
                steps: int = 50, batch_size: int = 500, bounds: tuple[float, float] = (0.0, 1.0),
                seed: int = 0) -> torch.Tensor:
    """Whether fixed-budget PGD finds an adversarial example within ``eps`` (per image).

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
        PGD iterations, with step size ``2.5 * eps / steps`` and a random start.
    batch_size : int
    bounds : (float, float)
    seed : int
        Seeds the random start.

    Returns
    -------
    torch.Tensor of bool, shape (n,)
        True where the clean image is misclassified or PGD succeeds.

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

    _check_norm(norm)
    model.eval()
    cls = _class_labels(y, x.device)
    fmodel = fb.PyTorchModel(TwoLogitAdapter(model).eval(), bounds=bounds, device=x.device)
    rel = 2.5 / steps  # step = 2.5 eps / steps: enough travel to cross the eps-ball
    attack = (fb.attacks.L2PGD(steps=steps, rel_stepsize=rel) if norm == "l2"
              else fb.attacks.LinfPGD(steps=steps, rel_stepsize=rel))
    torch.manual_seed(seed)
    res = []
    for i in range(0, len(x), batch_size):
        xb, cb = x[i:i + batch_size], cls[i:i + batch_size]
        with torch.enable_grad():
            _, adv, _ = attack(fmodel, xb, cb, epsilons=float(eps))
        ok = _is_adv(model, adv.detach(), cb) & (_norm(adv.detach() - xb, norm) <= eps * (1 + 1e-5))
        res.append(ok | _is_adv(model, xb, cb))
    return torch.cat(res).cpu()


def linear_min_norm(w, b: float, x, norm: str = "l2") -> torch.Tensor:
    """Exact smallest perturbation that flips the sign of ``f(x) = w.x + b`` (no box).

    Parameters
    ----------
    w : array-like, shape (d,)
    b : float
    x : array-like, shape (n, d)
    norm : {"l2", "linf"}

    Returns
    -------
    torch.Tensor, shape (n,), float64
        ``|f(x)| / ||w||_2`` or ``|f(x)| / ||w||_1`` (the dual norms).

    Examples
    --------
    >>> linear_min_norm([3.0, 4.0], 0.0, [[1.0, 1.0]], "l2").tolist()
    [1.4]
    >>> linear_min_norm([3.0, 4.0], 0.0, [[1.0, 1.0]], "linf").tolist()
    [1.0]
    """
    _check_norm(norm)
    w = torch.as_tensor(w, dtype=torch.float64).flatten()
    x = torch.as_tensor(x, dtype=torch.float64).reshape(-1, w.numel())
    f = (x @ w + float(b)).abs()
    return f / (w.norm(p=2) if norm == "l2" else w.abs().sum())

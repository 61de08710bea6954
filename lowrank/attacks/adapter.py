"""The two-logit view of a one-score binary model, and the small helpers every attack shares.

A model here returns one score ``s`` per image (``s > 0`` means label +1, class 1;
otherwise label -1, class 0). Attack libraries expect class logits, so
:class:`TwoLogitAdapter` shows them ``[-s/2, s/2] / c``. The per-image constant
``c > 0`` (default 1) does not change any decision; :func:`score_scale` sets it to
``|s(x_clean)|`` so that an attack sees a logit difference of +-1 at the clean image
whatever the scale of the score -- a model and the same model with its score
multiplied by 100 then look the same to the attack, and losses such as the
cross-entropy that DDN and foolbox's PGD use cannot saturate (in float32 the
cross-entropy gradient underflows to exactly zero once the logit difference passes
about 100, and the attack then never moves).
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import signed_labels

# The helpers below __all__ (scores, class_labels, is_adversarial, ...) are shared by
# the attack modules of this package and not part of the public API.
__all__ = ["ATTACK_NORMS", "TwoLogitAdapter", "score_scale"]

#: Threat models: Euclidean and L-infinity perturbations.
ATTACK_NORMS = ("l2", "linf")


def check_norm(norm: str) -> None:
    """Raise ValueError unless ``norm`` is one of :data:`ATTACK_NORMS`."""
    if norm not in ATTACK_NORMS:
        raise ValueError(f"norm must be one of {ATTACK_NORMS}, got {norm!r}")


def scores(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's score per image as a 1-D tensor (accepts outputs of shape (n,) or (n, 1))."""
    s = model(x)
    if s.ndim == 2 and s.shape[1] == 1:
        s = s[:, 0]
    if s.ndim != 1 or s.shape[0] != x.shape[0]:
        raise ValueError(f"model must return one score per image, shape (n,) or (n, 1); "
                         f"got shape {tuple(s.shape)} for {x.shape[0]} images")
    return s


class TwoLogitAdapter(nn.Module):
    """Two-logit view ``[-s/2, s/2] / scale`` of a one-score model ``s = model(x)``.

    ``argmax`` is class 1 exactly when ``s > 0`` (a tie, ``s == 0``, is class 0, as
    for the model itself); the logit difference is ``s / scale``.

    Parameters
    ----------
    model : nn.Module
        Returns scores of shape (n,) or (n, 1).
    scale : torch.Tensor, shape (n,), optional
        Positive per-image divisor (see :func:`score_scale`). With a scale the adapter
        only accepts batches of exactly ``n`` images, in the order the scale was
        computed for (foolbox's attacks always pass the whole batch).

    Examples
    --------
    >>> a = TwoLogitAdapter(nn.Linear(2, 1))
    >>> a(torch.zeros(3, 2)).shape
    torch.Size([3, 2])
    """

    def __init__(self, model: nn.Module, scale: torch.Tensor | None = None) -> None:
        super().__init__()
        self.model = model
        if scale is not None:
            scale = torch.as_tensor(scale).detach()
            if scale.ndim != 1 or not bool((scale > 0).all()) or not bool(torch.isfinite(scale).all()):
                raise ValueError("scale must be a 1-D tensor of positive finite numbers")
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        s = scores(self.model, x)
        if self.scale is not None:
            if len(s) != len(self.scale):
                raise ValueError(f"this adapter was built with a scale for {len(self.scale)} images "
                                 f"and got a batch of {len(s)}")
            s = s / self.scale.to(device=s.device, dtype=s.dtype)
        half = 0.5 * s
        return torch.stack([-half, half], dim=1)


@torch.no_grad()
def score_scale(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-image ``|s(x)|``, the divisor that makes the adapter's clean logit difference +-1.

    Parameters
    ----------
    model : nn.Module
        One-score model.
    x : torch.Tensor, shape (n, ...)
        Clean images.

    Returns
    -------
    torch.Tensor, shape (n,)
        ``|s(x)|``, with 1 for images whose score is zero or not finite.

    Examples
    --------
    >>> lin = nn.Linear(1, 1, bias=False)
    >>> _ = lin.weight.data.fill_(-3.0)
    >>> score_scale(lin, torch.tensor([[2.0], [0.0]])).tolist()
    [6.0, 1.0]
    """
    c = scores(model, x).detach().abs()
    return torch.where((c > 0) & torch.isfinite(c), c, torch.ones_like(c))


def class_labels(y, device: torch.device | str | None = None) -> torch.Tensor:
    """Class indices (1 for label +1, 0 for label -1 or 0) as int64 on ``device``."""
    return (signed_labels(y, "y") > 0).to(device=device, dtype=torch.int64)


@torch.no_grad()
def is_adversarial(model: nn.Module, x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """Whether the model's decision ``s > 0`` differs from class ``cls`` (per image)."""
    return (scores(model, x) > 0).to(torch.int64) != cls


def perturbation_norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-image L2 or L-infinity norm of ``delta`` (shape (n, ...))."""
    flat = delta.flatten(1)
    return flat.norm(p=2, dim=1) if norm == "l2" else flat.abs().amax(dim=1)


def worst_case_norms(x: torch.Tensor, norm: str, bounds: tuple[float, float]) -> torch.Tensor:
    """Norm of the largest perturbation that keeps each image inside ``bounds``.

    Every point of the box lies within this distance of ``x``, so no minimal
    adversarial perturbation inside the box is larger.
    """
    lo, hi = bounds
    return perturbation_norms(torch.maximum(x - lo, hi - x), norm)


@torch.no_grad()
def shrink_towards(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, cls: torch.Tensor,
                   bounds: tuple[float, float], steps: int) -> torch.Tensor:
    """Move each adversarial ``x_adv`` towards ``x`` by bisection on ``t in [0, 1]``.

    Returns, per image, the point ``clip(x + t * (x_adv - x))`` with the smallest
    ``t`` found at which it is still adversarial -- the very tensor that was
    checked, so that float rounding cannot turn it back -- and ``x_adv`` itself
    where no smaller ``t`` was adversarial (or ``x_adv`` is not adversarial).
    """
    delta = x_adv - x
    shape = (-1,) + (1,) * (x.ndim - 1)
    lo = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    hi = torch.ones_like(lo)
    best = x_adv.clone()
    for _ in range(steps):
        mid = (lo + hi) / 2
        point = (x + mid.view(shape) * delta).clamp(*bounds)
        adv = is_adversarial(model, point, cls)
        best = torch.where(adv.view(shape), point, best)
        hi = torch.where(adv, mid, hi)
        lo = torch.where(adv, lo, mid)
    return best

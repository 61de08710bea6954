"""The logit view of a model for attack libraries, and the small helpers every attack shares.

A model here returns, per image, either

* one score ``s`` (output shape (n,) or (n, 1)): ``s > 0`` means class 1 (label +1),
  otherwise class 0 (label -1 or 0); or
* class logits ``z`` (output shape (n, C), C >= 2): the decision is ``argmax z`` (a tie
  goes to the first index, as :func:`torch.argmax`), labels are integers in {0, ..., C-1}.

The kind is read from the model's output. Attack libraries expect class logits, so
:class:`LogitAdapter` shows them ``[-s/2, s/2] / c`` (one score) or ``z / c`` (logits).
The per-image constant ``c > 0`` (default 1) does not change any decision;
:func:`score_scale` sets it to the clean margin ``|s(x)|`` or ``|z_y - max_{k != y} z_k|``
so that an attack sees a margin of +-1 at the clean image whatever the scale of the
model's output -- a model and the same model with its output multiplied by 100 then look
the same to the attack, and losses such as the cross-entropy that DDN and foolbox's PGD
use cannot saturate (in float32 the cross-entropy gradient underflows to exactly zero
once the logit difference passes about 100, and the attack then never moves).
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import class_labels as _int_labels
from .._validation import signed_labels

# The helpers below __all__ (model_outputs, class_labels, is_adversarial, ...) are shared by
# the attack modules of this package and not part of the public API.
__all__ = ["ATTACK_NORMS", "LogitAdapter", "TwoLogitAdapter", "score_scale"]

#: Threat models: Euclidean and L-infinity perturbations.
ATTACK_NORMS = ("l2", "linf")


def check_norm(norm: str) -> None:
    """Raise ValueError unless ``norm`` is one of :data:`ATTACK_NORMS`."""
    if norm not in ATTACK_NORMS:
        raise ValueError(f"norm must be one of {ATTACK_NORMS}, got {norm!r}")


def model_outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's output on ``x``: scores of shape (n,) (from (n,) or (n, 1)) or logits (n, C), C >= 2."""
    z = model(x)
    if z.ndim == 2 and z.shape[1] == 1:
        z = z[:, 0]
    if z.ndim not in (1, 2) or z.shape[0] != x.shape[0] or z.ndim == 2 and z.shape[1] < 2:
        raise ValueError(f"model(x) must return one score per image, shape (n,) or (n, 1), or class "
                         f"logits, shape (n, C) with C >= 2; got shape {tuple(z.shape)} for "
                         f"{x.shape[0]} images")
    return z


@torch.no_grad()
def n_outputs(model: nn.Module, x: torch.Tensor) -> int:
    """1 for a one-score model, ``C`` for a model returning ``C`` class logits (read on ``x[:1]``)."""
    if x.ndim < 1 or len(x) == 0:
        raise ValueError(f"x must hold at least one image, got shape {tuple(x.shape)}")
    z = model_outputs(model, x[:1])
    return 1 if z.ndim == 1 else int(z.shape[1])


def class_labels(y, n_out: int = 1, device: torch.device | str | None = None,
                 name: str = "y") -> torch.Tensor:
    """Class indices as int64 on ``device``.

    ``n_out == 1`` (one score): 1 for label +1, 0 for label -1 or 0. ``n_out = C >= 2``
    (logits): integers in {0, ..., C-1}. ValueError naming ``name`` otherwise.
    """
    if n_out == 1:
        return (signed_labels(y, name) > 0).to(device=device, dtype=torch.int64)
    try:
        labels = _int_labels(y, name, n_classes=n_out, require_all=False)
    except ValueError as err:
        raise ValueError(f"{err} (the model returns {n_out} class logits per image; labels in "
                         f"{{-1, +1}} are for a model that returns one score per image)") from err
    return labels.to(device=device)


def decision(z: torch.Tensor) -> torch.Tensor:
    """Predicted class per image: ``s > 0`` for scores (n,), ``argmax`` for logits (n, C)."""
    return (z > 0).to(torch.int64) if z.ndim == 1 else z.argmax(dim=1)


def margin(z: torch.Tensor, cls: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image margin of class ``cls``: ``(2 cls - 1) s`` or ``z_cls - max_{k != cls} z_k``.

    Positive where the model prefers ``cls`` (up to the tie rule of :func:`decision`);
    differentiable in ``z``. For logits, ``target`` (int64, shape (n,)) gives instead the
    pairwise margin ``z_cls - z_target`` where ``target >= 0`` (negative: the margin above).
    """
    if z.ndim == 1:
        return (2 * cls - 1).to(z.dtype) * z
    own = z.gather(1, cls[:, None])[:, 0]
    mask = torch.zeros_like(z, dtype=torch.bool).scatter_(1, cls[:, None], True)
    out = own - z.masked_fill(mask, -torch.inf).amax(dim=1)
    if target is not None:
        pair = own - z.gather(1, target.clamp_min(0)[:, None])[:, 0]
        out = torch.where(target >= 0, pair, out)
    return out


class LogitAdapter(nn.Module):
    """Class-logit view of a model: ``[-s/2, s/2] / scale`` for one score ``s``, ``z / scale`` for logits.

    ``argmax`` of the view is the model's own decision: class 1 exactly when ``s > 0``
    (a tie, ``s == 0``, is class 0, as for the model itself), ``argmax z`` for logits.
    For one score the logit difference is ``s / scale``.

    Parameters
    ----------
    model : nn.Module
        Returns scores of shape (n,) or (n, 1), or class logits of shape (n, C), C >= 2.
    scale : torch.Tensor, shape (n,), optional
        Positive per-image divisor (see :func:`score_scale`). With a scale the adapter
        only accepts batches of exactly ``n`` images, in the order the scale was
        computed for (foolbox's attacks always pass the whole batch).

    Examples
    --------
    >>> a = LogitAdapter(nn.Linear(2, 1))
    >>> a(torch.zeros(3, 2)).shape
    torch.Size([3, 2])
    >>> LogitAdapter(nn.Linear(2, 5))(torch.zeros(3, 2)).shape
    torch.Size([3, 5])
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
        z = model_outputs(self.model, x)
        if self.scale is not None:
            if len(z) != len(self.scale):
                raise ValueError(f"this adapter was built with a scale for {len(self.scale)} images "
                                 f"and got a batch of {len(z)}")
            c = self.scale.to(device=z.device, dtype=z.dtype)
            z = z / (c if z.ndim == 1 else c[:, None])
        if z.ndim == 2:
            return z
        half = 0.5 * z
        return torch.stack([-half, half], dim=1)


#: The former name of :class:`LogitAdapter` (the same class).
TwoLogitAdapter = LogitAdapter


@torch.no_grad()
def score_scale(model: nn.Module, x: torch.Tensor, cls=None) -> torch.Tensor:
    """Per-image clean margin, the divisor that makes the adapter's clean margin +-1.

    Parameters
    ----------
    model : nn.Module
        One-score model, or a model returning class logits (n, C).
    x : torch.Tensor, shape (n, ...)
        Clean images.
    cls : array-like of int, shape (n,), optional
        True classes in {0, ..., C-1}; required for logits, ignored for one score.

    Returns
    -------
    torch.Tensor, shape (n,)
        ``|s(x)|`` (one score) or ``|z_cls(x) - max_{k != cls} z_k(x)|`` (logits), with 1
        for images where it is zero or not finite.

    Raises
    ------
    ValueError
        If the model returns logits and ``cls`` is missing, of the wrong length or out of range.

    Examples
    --------
    >>> lin = nn.Linear(1, 1, bias=False)
    >>> _ = lin.weight.data.fill_(-3.0)
    >>> score_scale(lin, torch.tensor([[2.0], [0.0]])).tolist()
    [6.0, 1.0]
    >>> lin3 = nn.Linear(1, 3, bias=False)
    >>> _ = lin3.weight.data.copy_(torch.tensor([[1.0], [2.0], [4.0]]))
    >>> score_scale(lin3, torch.tensor([[1.0], [1.0]]), cls=[2, 0]).tolist()   # |4 - 2|, |1 - 4|
    [2.0, 3.0]
    """
    z = model_outputs(model, x).detach()
    if z.ndim == 1:
        c = z.abs()
    else:
        if cls is None:
            raise ValueError(f"cls must be given for a model that returns class logits "
                             f"(shape {tuple(z.shape)}): the margin is taken to the true class")
        cls = class_labels(cls, z.shape[1], z.device, name="cls")
        if len(cls) != len(z):
            raise ValueError(f"cls must hold one class per image, {len(z)}; got {len(cls)}")
        c = margin(z, cls).abs()
    return torch.where((c > 0) & torch.isfinite(c), c, torch.ones_like(c))


@torch.no_grad()
def is_adversarial(model: nn.Module, x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """Whether the model's decision (``s > 0`` or ``argmax z``) differs from class ``cls`` (per image)."""
    return decision(model_outputs(model, x)) != cls


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

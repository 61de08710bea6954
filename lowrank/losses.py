"""Cross-entropy and differential losses for one-score binary classifiers.

A binary classifier here outputs one real score ``s = f(x)`` per example; the
label ``y`` is in {-1, +1} (or {0, 1}, read as {-1, +1}).

* Cross-entropy (logistic) loss: ``l(y s) = log(1 + exp(-y s))``.
* Differential loss: ``sum_{i in P} sum_{j in N} l(s_i - s_j)`` over every pair
  of a positive ``i`` and a negative ``j``. A bias added to every score cancels
  in ``s_i - s_j``, which is why differential training cannot tilt the boundary
  out of the data's affine subspace.

Multi-class classifiers output a score matrix ``S`` of shape (n, C) with labels in
{0, ..., C-1}; :func:`multiclass_differential_loss` is the one-vs-rest differential loss
on it (see its docstring for the exact correspondence with the binary loss at ``C = 2``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._validation import check_both_classes, check_finite, class_labels, signed_labels
from .kernels import pairwise_logistic

__all__ = [
    "cross_entropy_loss",
    "differential_loss",
    "CrossEntropyLoss",
    "DifferentialLoss",
    "multiclass_differential_loss",
    "MulticlassDifferentialLoss",
    "PAIR_LOSSES",
    "REDUCTIONS",
]

PAIR_LOSSES = ("logistic", "exponential")
REDUCTIONS = ("mean", "sum", "none")


def _check_scores_labels(scores, y) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(scores, torch.Tensor):
        scores = torch.as_tensor(scores, dtype=torch.get_default_dtype())
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D of shape (n,) (or (n, 1)), got shape {tuple(scores.shape)}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be a floating-point tensor, got dtype {scores.dtype}")
    check_finite(scores.detach(), "scores")
    ys = signed_labels(y, "y", dtype=scores.dtype).to(scores.device)
    if ys.shape[0] != scores.shape[0]:
        raise ValueError(f"scores and y must have the same length, got {scores.shape[0]} and {ys.shape[0]}")
    return scores, ys


def _check_reduction(reduction: str, allowed=REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {reduction!r}")


def cross_entropy_loss(scores: torch.Tensor, y, reduction: str = "mean") -> torch.Tensor:
    """Logistic (binary cross-entropy) loss of one-score outputs.

    Parameters
    ----------
    scores : torch.Tensor, shape (n,)
        Real scores ``f(x_i)`` (bias included).
    y : array-like, shape (n,)
        Labels in {-1, +1} or {0, 1}.
    reduction : {"mean", "sum", "none"}
        How to reduce the per-example losses ``log(1 + exp(-y_i s_i))``.

    Returns
    -------
    torch.Tensor
        Scalar loss, or per-example losses for ``reduction="none"``.

    Raises
    ------
    ValueError
        On wrong shapes, non-finite scores, or labels outside {-1, +1} / {0, 1}.

    Examples
    --------
    >>> import torch
    >>> float(cross_entropy_loss(torch.tensor([0.0], dtype=torch.float64), [1]))  # log 2
    0.6931471805599453
    """
    _check_reduction(reduction)
    scores, ys = _check_scores_labels(scores, y)
    per = F.softplus(-ys * scores)
    if reduction == "mean":
        return per.mean()
    if reduction == "sum":
        return per.sum()
    return per


def _pairwise_exponential(pos: torch.Tensor, neg: torch.Tensor, reduction: str) -> torch.Tensor:
    # sum_i sum_j exp(-(s_i - s_j)) = (sum_i exp(-s_i)) (sum_j exp(s_j)), in log space.
    log_total = torch.logsumexp(-pos, 0) + torch.logsumexp(neg, 0)
    if reduction == "mean":
        log_total = log_total - torch.log(torch.tensor(float(pos.numel() * neg.numel()),
                                                       dtype=pos.dtype, device=pos.device))
    return torch.exp(log_total)


def differential_loss(scores: torch.Tensor, y, pair_loss: str = "logistic",
                      reduction: str = "mean", backend: str = "auto") -> torch.Tensor:
    """Loss on the score differences of every (positive, negative) pair.

    ``L = sum_{i: y_i=+1} sum_{j: y_j=-1} l(s_i - s_j)`` (``reduction="sum"``) or
    that sum divided by the number of pairs ``P * N`` (``reduction="mean"``).

    Parameters
    ----------
    scores : torch.Tensor, shape (n,)
        Scores of the batch. A constant added to all of them does not change the loss.
    y : array-like, shape (n,)
        Labels in {-1, +1} or {0, 1}; both classes must be present.
    pair_loss : {"logistic", "exponential"}
        ``l(z) = log(1 + exp(-z))`` (computed stably, by the fused pairwise kernel
        :func:`lowrank.kernels.pairwise_logistic`, in O(P + N) memory) or
        ``l(z) = exp(-z)``, computed in O(P + N) from the factorisation
        ``(sum_i exp(-s_i)) (sum_j exp(s_j))`` in log space.
    reduction : {"mean", "sum"}
        Sum over pairs, or mean over the ``P * N`` pairs.
    backend : str
        Passed to :func:`lowrank.kernels.pairwise_logistic` for the logistic loss.

    Returns
    -------
    torch.Tensor
        Scalar loss, differentiable with respect to ``scores``.

    Raises
    ------
    ValueError
        On wrong shapes, non-finite scores, bad labels, or a batch without one of the classes.

    Examples
    --------
    >>> import torch
    >>> s = torch.tensor([2.0, 0.0], dtype=torch.float64)
    >>> float(differential_loss(s, [1, -1], reduction="sum"))  # log(1 + e^-2)
    0.1269280110429725
    """
    if pair_loss not in PAIR_LOSSES:
        raise ValueError(f"pair_loss must be one of {PAIR_LOSSES}, got {pair_loss!r}")
    _check_reduction(reduction, ("mean", "sum"))
    scores, ys = _check_scores_labels(scores, y)
    check_both_classes(ys, "y")
    pos = scores[ys > 0]
    neg = scores[ys < 0]
    if pair_loss == "exponential":
        return _pairwise_exponential(pos, neg, reduction)
    return pairwise_logistic(pos, neg, reduction=reduction, backend=backend)


class CrossEntropyLoss(nn.Module):
    """Module form of :func:`cross_entropy_loss`.

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}

    Examples
    --------
    >>> import torch
    >>> CrossEntropyLoss()(torch.tensor([0.0, 0.0], dtype=torch.float64), [1, 0]).item()
    0.6931471805599453
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        _check_reduction(reduction)
        self.reduction = reduction

    def forward(self, scores: torch.Tensor, y) -> torch.Tensor:  # noqa: D102
        return cross_entropy_loss(scores, y, reduction=self.reduction)


class _PairLossModule(nn.Module):
    """Shared constructor of the pair-loss modules: ``pair_loss``, ``reduction``, ``backend``."""

    def __init__(self, pair_loss: str = "logistic", reduction: str = "mean",
                 backend: str = "auto") -> None:
        super().__init__()
        if pair_loss not in PAIR_LOSSES:
            raise ValueError(f"pair_loss must be one of {PAIR_LOSSES}, got {pair_loss!r}")
        _check_reduction(reduction, ("mean", "sum"))
        self.pair_loss, self.reduction, self.backend = pair_loss, reduction, backend


class DifferentialLoss(_PairLossModule):
    """Module form of :func:`differential_loss`.

    Parameters
    ----------
    pair_loss : {"logistic", "exponential"}
    reduction : {"mean", "sum"}
    backend : str
        Kernel backend for the logistic pair loss.

    Examples
    --------
    >>> import torch
    >>> round(DifferentialLoss(reduction="sum")(torch.tensor([1.0, 1.0]), [1, -1]).item(), 6)
    0.693147
    """

    def forward(self, scores: torch.Tensor, y) -> torch.Tensor:  # noqa: D102
        return differential_loss(scores, y, pair_loss=self.pair_loss, reduction=self.reduction,
                                 backend=self.backend)


def _check_score_matrix(scores, y) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(scores, torch.Tensor):
        scores = torch.as_tensor(scores, dtype=torch.get_default_dtype())
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"scores must be 2-D of shape (n, C) with C >= 2 classes, "
                         f"got shape {tuple(scores.shape)}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be a floating-point tensor, got dtype {scores.dtype}")
    check_finite(scores.detach(), "scores")
    labels = class_labels(y, "y", n_classes=scores.shape[1], require_all=False).to(scores.device)
    if labels.shape[0] != scores.shape[0]:
        raise ValueError(f"scores and y must have the same length, got {scores.shape[0]} "
                         f"and {labels.shape[0]}")
    return scores, class_labels(labels, "y", n_classes=scores.shape[1])


def multiclass_differential_loss(scores: torch.Tensor, y, pair_loss: str = "logistic",
                                 reduction: str = "mean", backend: str = "auto") -> torch.Tensor:
    """One-vs-rest differential loss of a score matrix.

    For each class ``c``, the binary differential loss of the score column ``S[:, c]``
    with class ``c`` as the positives and every other class as the negatives:

    ``L = sum_c sum_{i: y_i = c} sum_{j: y_j != c} l(S_ic - S_jc)``  (``reduction="sum"``),

    or that sum divided by the number of pairs ``sum_c n_c (n - n_c)`` (``"mean"``). A
    per-class constant added to a column cancels, so the loss does not see per-class
    offsets; set them after training with :func:`lowrank.train.multiclass_offsets`.

    Correspondence with the binary loss: for ``C = 2`` and a one-score model ``s``, the
    score matrix ``S = [-s, s]`` (class 1 = positive) gives
    ``multiclass_differential_loss(S, y01, reduction="mean") ==
    differential_loss(s, y01, reduction="mean")`` and twice it for ``"sum"`` (both columns
    contribute the same pairs ``l(s_i - s_j)``, ``i`` in class 1, ``j`` in class 0).

    Parameters
    ----------
    scores : torch.Tensor, shape (n, C)
        Scores ``S_ic = f_c(x_i)``, ``C >= 2``.
    y : array-like, shape (n,)
        Labels in {0, ..., C-1}; every class must occur.
    pair_loss : {"logistic", "exponential"}
        ``l(z) = log(1 + exp(-z))`` through the fused kernel
        :func:`lowrank.kernels.pairwise_logistic` (O(n) memory per class), or
        ``l(z) = exp(-z)`` from the factorised sum, as in :func:`differential_loss`.
    reduction : {"mean", "sum"}
        Mean over all ``sum_c n_c (n - n_c)`` pairs, or their sum.
    backend : str
        Passed to :func:`lowrank.kernels.pairwise_logistic` for the logistic loss.

    Returns
    -------
    torch.Tensor
        Scalar loss, differentiable with respect to ``scores``.

    Raises
    ------
    ValueError
        If ``scores`` is not 2-D with ``C >= 2`` columns, holds NaN/inf, if ``y`` has the
        wrong length, labels outside {0, ..., C-1}, non-integer labels, or a class without
        examples, or if ``pair_loss`` / ``reduction`` is unknown.

    Examples
    --------
    >>> import torch
    >>> S = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    >>> round(float(multiclass_differential_loss(S, [0, 1, 2], reduction="sum")), 6)
    2.266674
    >>> s = torch.tensor([2.0, 0.0, 1.0], dtype=torch.float64)
    >>> a = multiclass_differential_loss(torch.stack([-s, s], 1), [1, 0, 0])
    >>> bool(torch.isclose(a, differential_loss(s, [1, 0, 0])))
    True
    """
    if pair_loss not in PAIR_LOSSES:
        raise ValueError(f"pair_loss must be one of {PAIR_LOSSES}, got {pair_loss!r}")
    _check_reduction(reduction, ("mean", "sum"))
    scores, labels = _check_score_matrix(scores, y)
    n = scores.shape[0]
    total = scores.new_zeros(())
    n_pairs = 0
    for c in range(scores.shape[1]):
        in_c = labels == c
        pos, neg = scores[in_c, c], scores[~in_c, c]
        n_pairs += pos.shape[0] * (n - pos.shape[0])
        if pair_loss == "exponential":
            total = total + _pairwise_exponential(pos, neg, "sum")
        else:
            total = total + pairwise_logistic(pos, neg, reduction="sum", backend=backend)
    if reduction == "mean":
        return total / n_pairs
    return total


class MulticlassDifferentialLoss(_PairLossModule):
    """Module form of :func:`multiclass_differential_loss`.

    Parameters
    ----------
    pair_loss : {"logistic", "exponential"}
    reduction : {"mean", "sum"}
    backend : str
        Kernel backend for the logistic pair loss.

    Examples
    --------
    >>> import torch
    >>> loss = MulticlassDifferentialLoss(reduction="sum")
    >>> round(loss(torch.zeros(3, 3), [0, 1, 2]).item(), 6)  # 6 pairs of log 2
    4.158883
    """

    def forward(self, scores: torch.Tensor, y) -> torch.Tensor:  # noqa: D102
        return multiclass_differential_loss(scores, y, pair_loss=self.pair_loss,
                                            reduction=self.reduction, backend=self.backend)

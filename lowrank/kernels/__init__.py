"""Pairwise logistic loss over all (positive, negative) pairs.

PLACEHOLDER: naive broadcast until the fused kernel lands.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["pairwise_logistic"]


def pairwise_logistic(pos_scores: torch.Tensor, neg_scores: torch.Tensor, reduction: str = "sum",
                      backend: str = "auto") -> torch.Tensor:
    diff = pos_scores[:, None] - neg_scores[None, :]
    loss = F.softplus(-diff).sum()
    if reduction == "mean":
        loss = loss / (pos_scores.shape[0] * neg_scores.shape[0])
    return loss

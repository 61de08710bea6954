"""Exact minimal adversarial perturbations of a linear model (the reference the attacks are tested on)."""

from __future__ import annotations

import torch

from .._validation import as_tensor, check_finite, check_vector
from .adapter import check_norm

__all__ = ["linear_min_norm"]


def linear_min_norm(w, b: float, x, norm: str = "l2") -> torch.Tensor:
    """Exact smallest perturbation that flips the sign of ``f(x) = w.x + b`` (no box).

    Parameters
    ----------
    w : array-like, shape (d,)
    b : float
    x : array-like, shape (n, d) or (n, ...) with ``d`` entries per image
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
    check_norm(norm)
    w = check_vector(as_tensor(w, "w").detach().flatten(), "w", torch.float64)
    x = check_finite(as_tensor(x, "x", torch.float64).detach().reshape(-1, w.numel()), "x")
    f = (x @ w.to(x.device) + float(b)).abs()
    return f / (w.norm(p=2) if norm == "l2" else w.abs().sum()).to(x.device)

"""The geometric margin of a multi-class linear classifier ``argmax_c (w_c . x + b_c)``."""

from __future__ import annotations

import torch

from .._validation import check_matrix, check_same_length, check_vector, class_labels

__all__ = ["multiclass_margin"]


def multiclass_margin(W, b, X, y) -> float:
    """Smallest distance from a training point to a boundary between its class and another.

    The boundary between classes ``a`` and ``c`` is the hyperplane
    ``(w_a - w_c) . x + b_a - b_c = 0``; the margin is

    ``min_i min_{c != y_i} ((w_{y_i} - w_c) . x_i + b_{y_i} - b_c) / ||w_{y_i} - w_c||_2``,

    positive when every example is classified correctly, negative when some example scores
    higher for another class. For ``C = 2`` it is the binary geometric margin of
    ``w = w_1 - w_0``, ``b = b_1 - b_0`` (class 1 read as +1).

    Parameters
    ----------
    W : array-like, shape (C, d)
        One weight vector per class.
    b : array-like, shape (C,)
        Per-class offsets.
    X : array-like, shape (n, d)
        Inputs.
    y : array-like, shape (n,)
        Labels in {0, ..., C-1} (not every class needs to occur).

    Returns
    -------
    float
        The margin (computed in float64).

    Raises
    ------
    ValueError
        On bad shapes, NaN/inf, labels outside {0, ..., C-1}, or when some difference
        ``w_{y_i} - w_c`` that the margin needs is zero (the boundary is undefined).

    Examples
    --------
    Three classes at -1, 0, 1 on a line, separated halfway (margin 1/2):

    >>> W = [[-2.0], [0.0], [2.0]]
    >>> multiclass_margin(W, [-1 / 3, 2 / 3, -1 / 3], [[-1.0], [0.0], [1.0]], [0, 1, 2])
    0.5
    """
    Wt = check_matrix(W, "W", dtype=torch.float64)
    C, d = Wt.shape
    if C < 2:
        raise ValueError(f"W must have one row per class and at least 2 rows, got shape {tuple(Wt.shape)}")
    bt = check_vector(b, "b", dtype=torch.float64).to(Wt.device)
    if bt.shape[0] != C:
        raise ValueError(f"b must have length W.shape[0] = {C}, got {bt.shape[0]}")
    Xt = check_matrix(X, "X", dtype=torch.float64).to(Wt.device)
    if Xt.shape[1] != d:
        raise ValueError(f"X must have W.shape[1] = {d} columns, got {Xt.shape[1]}")
    labels = class_labels(y, "y", n_classes=C, require_all=False).to(Wt.device)
    check_same_length(Xt, labels, "X", "y")
    scores = Xt @ Wt.T + bt  # (n, C)
    own = scores.gather(1, labels[:, None])  # (n, 1)
    diff_norm = torch.linalg.vector_norm(Wt[labels][:, None, :] - Wt[None, :, :], dim=2)  # (n, C)
    other = torch.ones_like(scores, dtype=torch.bool)
    other[torch.arange(Xt.shape[0]), labels] = False
    if bool((diff_norm[other] == 0).any()):
        raise ValueError("W must have w_a != w_c for every class a of an example and every other "
                         "class c: the boundary between two classes with equal weights is undefined")
    dist = (own - scores) / torch.where(other, diff_norm, torch.ones_like(diff_norm))
    return float(dist[other].min())

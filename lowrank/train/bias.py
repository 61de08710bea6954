"""The midpoint rule for the bias after differential training."""

from __future__ import annotations

import torch

from .._validation import check_both_classes, check_matrix, check_vector, signed_labels

__all__ = ["midpoint_bias", "calibrate_bias"]


def midpoint_bias(scores, y) -> float:
    """Bias that puts the boundary halfway between the two classes' closest scores.

    With ``s_i`` the bias-free scores, returns
    ``b = -(min_{y_i=+1} s_i + max_{y_j=-1} s_j) / 2`` so that the smallest
    positive score and the largest negative score are equidistant from 0.

    Parameters
    ----------
    scores : array-like, shape (n,)
        Scores without bias.
    y : array-like, shape (n,)
        Labels in {-1, +1} or {0, 1}; both classes present.

    Returns
    -------
    float
        The bias ``b``.

    Examples
    --------
    >>> midpoint_bias([3.0, 5.0], [-1, 1])
    -4.0
    """
    s = check_vector(torch.as_tensor(scores).detach(), "scores")
    ys = signed_labels(y, "y", dtype=s.dtype).to(s.device)
    if ys.shape[0] != s.shape[0]:
        raise ValueError(f"scores and y must have the same length, got {s.shape[0]} and {ys.shape[0]}")
    check_both_classes(ys, "y")
    return float(-(s[ys > 0].min() + s[ys < 0].max()) / 2)


def calibrate_bias(w, X, y) -> float:
    """Midpoint bias of the linear scores ``X @ w`` (see :func:`midpoint_bias`).

    Parameters
    ----------
    w : array-like, shape (d,)
        Weight vector.
    X : array-like, shape (n, d)
        Training inputs.
    y : array-like, shape (n,)
        Labels in {-1, +1} or {0, 1}.

    Returns
    -------
    float
        The bias ``b``.

    Examples
    --------
    >>> calibrate_bias([1.0, 0.0], [[3.0, 1.0], [5.0, 1.0]], [-1, 1])
    -4.0
    """
    X = check_matrix(X, "X")
    w = check_vector(w, "w", dtype=X.dtype)
    if w.shape[0] != X.shape[1]:
        raise ValueError(f"w must have length X.shape[1] = {X.shape[1]}, got {w.shape[0]}")
    return midpoint_bias(X @ w, y)

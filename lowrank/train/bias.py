"""Setting the bias after differential training: the midpoint rule, or offsets fitted by cross-entropy.

The differential loss does not see the bias, so it is set afterwards. The midpoint rule
(:func:`midpoint_bias`; per class :func:`lowrank.train.multiclass_offsets`) is the theory's:
at separability it gives the limit's bias. On data that are not separable it is set by the
extreme scores, which can cost accuracy -- for ten classes, about ten points of training
accuracy on Fashion-MNIST features. :func:`fitted_offsets` instead minimises the softmax
cross-entropy over the offsets alone (the weights stay as trained): convex, solved by
Newton's method, and certified by its optimality condition (the mean predicted probability
of each class equals its share of the data).
"""

from __future__ import annotations

import torch

from .._validation import (
    check_both_classes,
    check_matrix,
    check_same_length,
    check_vector,
    class_labels,
    signed_labels,
)

__all__ = ["midpoint_bias", "calibrate_bias", "fitted_offsets", "OFFSET_RULES"]

#: How the bias (offsets) of a differential model is set after training.
OFFSET_RULES = ("midpoint", "fitted")


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


def fitted_offsets(scores, y, tol: float = 1e-12, max_iter: int = 100) -> torch.Tensor:
    """Offsets ``b`` minimising the mean softmax cross-entropy of ``scores + b`` (weights fixed).

    The objective ``L(b) = mean_i [logsumexp_c (S_ic + b_c) - S_{i y_i} - b_{y_i}]`` is convex
    in ``b`` and invariant under ``b -> b + t 1``; with every class present its minimum is
    attained, and the minimiser is unique up to that shift. Newton's method (Hessian
    ``mean_i diag(p_i) - p_i p_i^T`` plus ``1 1^T / C`` for the shift, backtracking line
    search) in float64; the returned offsets sum to zero.

    Parameters
    ----------
    scores : array-like, shape (n, C)
        Scores without offsets (C >= 2).
    y : array-like, shape (n,)
        Labels in {0, ..., C-1}, every class present.
    tol : float
        Required accuracy of the optimality condition: ``max_c |mean_i p_ic - share_c| <= tol``
        (``p_i`` the softmax of ``S_i + b``, ``share_c`` the fraction of class ``c``).
    max_iter : int
        Newton steps at most.

    Returns
    -------
    torch.Tensor, shape (C,)
        The offsets (float64), certified by the optimality condition.

    Raises
    ------
    ValueError
        On bad shapes, NaN/inf, labels outside {0, ..., C-1} or a class without examples.
    RuntimeError
        If the optimality condition is not met within ``max_iter`` steps.

    Examples
    --------
    Two classes, scores ``(0, s)``: ``b_1 - b_0`` is the intercept of a logistic regression
    on ``s`` with slope 1. Symmetric scores give a zero intercept:

    >>> b = fitted_offsets([[0.0, 1.0], [0.0, -1.0], [0.0, 2.0], [0.0, -2.0]], [1, 0, 0, 1])
    >>> abs(float(b[1] - b[0])) < 1e-12
    True
    """
    S = check_matrix(torch.as_tensor(scores).detach(), "scores", dtype=torch.float64).cpu()
    C = S.shape[1]
    if C < 2:
        raise ValueError(f"scores must have shape (n, C) with C >= 2, got {tuple(S.shape)}")
    labels = class_labels(y, "y", n_classes=C).cpu()
    check_same_length(S, labels, "scores", "y")
    Y = torch.nn.functional.one_hot(labels, C).to(torch.float64)
    share = Y.mean(dim=0)
    S = S - S.max(dim=1, keepdim=True).values  # the loss is invariant; exp cannot overflow

    def loss(b: torch.Tensor) -> float:
        Z = S + b
        return float((torch.logsumexp(Z, dim=1) - (Z * Y).sum(dim=1)).mean())

    b = -torch.log(share)  # balances the classes when all scores are equal
    b = b - b.mean()
    ones = torch.full((C, C), 1.0 / C, dtype=torch.float64)
    for _ in range(max_iter):
        P = torch.softmax(S + b, dim=1)
        g = P.mean(dim=0) - share
        if float(g.abs().max()) <= tol:
            return b - b.mean()
        H = torch.diag(P.mean(dim=0)) - P.T @ P / len(P) + ones
        step = torch.linalg.solve(H, g)
        step = step - step.mean()
        f0, t = loss(b), 1.0
        while t > 1e-10 and loss(b - t * step) > f0 - 1e-4 * t * float(g @ step):
            t /= 2
        b = b - t * step
    P = torch.softmax(S + b, dim=1)
    err = float((P.mean(dim=0) - share).abs().max())
    if err <= tol:
        return b - b.mean()
    raise RuntimeError(f"fitted_offsets did not reach its optimality condition within {max_iter} "
                       f"Newton steps (max |mean p_c - share_c| = {err:.3g} > tol = {tol:.3g})")

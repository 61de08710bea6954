"""Step sizes of full-batch gradient descent on linear models, read off the data.

:func:`default_lr` is the stable step of plain gradient descent (half the stability bound
at the initial point); :func:`step_size` resolves the step of one run from a number, a
per-loss mapping or the default.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from .._validation import check_matrix, signed_labels
from .linear import NORMALIZED_LR

__all__ = ["default_lr", "step_size", "numpy_xy", "LR_FACTOR"]


#: Step size as a fraction of the stability bound at the initial point (zeros):
#: cross-entropy / logistic pair loss have Hessian ``G / 4`` there, so ``lr < 8 / lambda_max(G)``;
#: we take half of it. The exponential pair loss has Hessian ``G``: ``lr < 2 / lambda_max(G)``.
LR_FACTOR = {"cross_entropy": 4.0, "logistic": 4.0, "exponential": 1.0}


def step_size(lr: float | Mapping[str, float] | None, loss: str, schedule: str = "normalized",
              X=None, y=None, pair_loss: str = "logistic") -> float:
    """The step of one run: ``lr`` itself, ``lr[loss]`` for a per-loss mapping, or the default.

    Parameters
    ----------
    lr : float, mapping of loss to float, or None
        A step for every loss, one per loss (e.g.
        :data:`~lowrank.train.linear.NORMALIZED_LR`), or None for the default:
        ``NORMALIZED_LR`` for ``schedule="normalized"``, :func:`default_lr` of ``(X, y)``
        for ``schedule="constant"``.
    loss : {"cross_entropy", "differential"}
    schedule : {"constant", "normalized"}
    X, y : array-like, optional
        The data (needed for the default constant step only).
    pair_loss : {"logistic", "exponential"}

    Returns
    -------
    float

    Raises
    ------
    KeyError
        If a mapping has no entry for ``loss``.

    Examples
    --------
    >>> step_size(None, "cross_entropy"), step_size(None, "differential")
    (0.1, 1.0)
    >>> step_size({"cross_entropy": 0.2, "differential": 0.5}, "differential"), step_size(0.3, "x")
    (0.5, 0.3)
    """
    if lr is None:
        if schedule == "constant":
            return default_lr(X, y, loss, pair_loss)
        lr = NORMALIZED_LR
    if isinstance(lr, Mapping):
        if loss not in lr:
            raise KeyError(f"lr has no step for loss {loss!r}: {dict(lr)}")
        return float(lr[loss])
    return float(lr)


def numpy_xy(X, y) -> tuple[np.ndarray, np.ndarray]:
    """Data and labels as float64 numpy arrays, labels in {-1, +1}.

    Parameters
    ----------
    X : array-like, shape (n, d)
    y : array-like, shape (n,)
        Labels in {-1, +1} (or {0, 1}).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)

    Examples
    --------
    >>> numpy_xy([[1.0], [2.0]], [0, 1])[1].tolist()
    [-1.0, 1.0]
    """
    Xn = check_matrix(X, "X", dtype=torch.float64, detach=True).cpu().numpy()
    yn = signed_labels(y, "y", dtype=torch.float64).cpu().numpy()
    yn = np.where(yn > 0, 1.0, -1.0)
    return Xn, yn


def default_lr(X, y, loss: str = "cross_entropy", pair_loss: str = "logistic") -> float:
    """A stable step size for mean-reduced full-batch gradient descent, read off the data.

    Cross-entropy: ``4 / lambda_max(Z^T Z / n)`` with ``Z = [X, 1]`` the augmented points
    (the Hessian at zero is ``Z^T Z / (4 n)``; ``4/lambda`` is half the stability bound).
    Differential training: the same with the second moment of the pair differences,
    ``G = mean_{i+, j-} (x_i - x_j)(x_i - x_j)^T`` (factor 1 instead of 4 for the
    exponential pair loss). Later in training the Hessian only shrinks.

    Parameters
    ----------
    X : array-like, shape (n, d)
    y : array-like, shape (n,)
        Labels in {-1, +1} (or {0, 1}).
    loss : {"cross_entropy", "differential"}
    pair_loss : {"logistic", "exponential"}
        Pair loss of differential training.

    Returns
    -------
    float
        ``LR_FACTOR[...] / lambda_max`` of the second-moment matrix.

    Raises
    ------
    ValueError
        If ``loss`` is neither ``"cross_entropy"`` nor ``"differential"``.

    Examples
    --------
    >>> round(default_lr([[3.0, 1.0], [5.0, 1.0]], [-1, 1]), 4)
    0.2117
    """
    Xn, yn = numpy_xy(X, y)
    if loss == "cross_entropy":
        Z = np.hstack([Xn, np.ones((Xn.shape[0], 1))])
        G = Z.T @ Z / Z.shape[0]
        factor = LR_FACTOR["cross_entropy"]
    elif loss == "differential":
        P, Q = Xn[yn > 0], Xn[yn < 0]
        mp, mq = P.mean(axis=0), Q.mean(axis=0)
        G = P.T @ P / len(P) + Q.T @ Q / len(Q) - np.outer(mp, mq) - np.outer(mq, mp)
        factor = LR_FACTOR[pair_loss]
    else:
        raise ValueError(f"loss must be 'cross_entropy' or 'differential', got {loss!r}")
    lam = float(np.linalg.eigvalsh(G).max())
    return factor / lam

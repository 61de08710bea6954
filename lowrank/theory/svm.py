"""Exact hard-margin separators: the optimal (free-bias) SVM and the cross-entropy limit.

Both are the quadratic program

    minimise 1/2 v^T P v   subject to   y_i (w . x_i + b) >= 1  for all i,

with ``v = (w, b)``. For the optimal separator ``P = diag(1, ..., 1, 0)`` (the bias is
free); for the limit of gradient descent on cross-entropy with a bias term (Soudry et al.
2018, applied to the augmented points ``(x, 1)``) ``P = I``: the bias is penalised like a
weight. The QP is solved by the interior-point conic solver Clarabel; the solution is then
*polished*: the active set is read off and the KKT equations restricted to it are solved
exactly in float64, which brings the duality gap to rounding level (~1e-15).
"""

from __future__ import annotations

from dataclasses import dataclass

import clarabel
import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch

from .._validation import check_both_classes, check_matrix, check_same_length, signed_labels

__all__ = ["Separator", "NotSeparableError", "max_margin_separator", "cross_entropy_limit"]


class NotSeparableError(ValueError):
    """Raised when the data are not linearly separable (a ValueError)."""


@dataclass(frozen=True)
class Separator:
    """A linear separator ``sign(w . x + b)`` and its certificate.

    Attributes
    ----------
    w : torch.Tensor, shape (d,)
        Weights (float64).
    b : float
        Bias.
    margin : float
        Geometric margin in input space, ``min_i y_i (w . x_i + b) / ||w||_2``.
    support : torch.Tensor
        Indices of the support vectors (active constraints).
    duality_gap : float
        Primal minus dual objective of the QP at the returned point.
    polished : bool
        Whether the exact active-set refinement was accepted.

    Examples
    --------
    >>> sep = max_margin_separator([[0.0, 0.0], [2.0, 0.0]], [-1, 1])
    >>> [round(v, 12) for v in sep.direction.tolist()], round(sep.b, 12), sep.support.tolist()
    ([1.0, 0.0], -1.0, [0, 1])
    """

    w: torch.Tensor
    b: float
    margin: float
    support: torch.Tensor
    duality_gap: float
    polished: bool

    @property
    def direction(self) -> torch.Tensor:
        """Unit normal ``w / ||w||``."""
        return self.w / torch.linalg.vector_norm(self.w)


def _prepare(X, y) -> tuple[np.ndarray, np.ndarray]:
    Xt = check_matrix(X, "X", dtype=torch.float64)
    yt = signed_labels(y, "y", dtype=torch.float64)
    check_same_length(Xt, yt, "X", "y")
    check_both_classes(yt, "y")
    return Xt.cpu().numpy(), yt.cpu().numpy()


def _solve_qp(A: np.ndarray, bias_weight: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Solve min 1/2 v^T P v s.t. A v >= 1 with Clarabel; return (v, dual z, gap)."""
    n, m = A.shape
    diag = np.ones(m)
    diag[-1] = bias_weight
    P = sp.diags(diag, format="csc")
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = 1e-10
    settings.tol_feas = 1e-10
    settings.tol_ktratio = 1e-8
    settings.max_iter = 500
    # A v >= 1  <=>  -A v + s = -1, s >= 0
    solver = clarabel.DefaultSolver(P, np.zeros(m), sp.csc_matrix(-A), -np.ones(n),
                                    [clarabel.NonnegativeConeT(n)], settings)
    sol = solver.solve()
    status = sol.status
    if status in (clarabel.SolverStatus.PrimalInfeasible,
                  clarabel.SolverStatus.AlmostPrimalInfeasible):
        raise NotSeparableError("X, y are not linearly separable: no hyperplane puts every "
                                "example on its own side (the hard-margin problem is infeasible)")
    if status not in (clarabel.SolverStatus.Solved, clarabel.SolverStatus.AlmostSolved):
        raise RuntimeError(f"the QP solver did not converge (status {status})")
    v = np.asarray(sol.x, dtype=np.float64)
    z = np.asarray(sol.z, dtype=np.float64)
    return v, z, float(sol.obj_val - sol.obj_val_dual)


def _polish(A: np.ndarray, bias_weight: float, v0: np.ndarray, z0: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Solve the KKT system on the active set exactly; None if the result is not optimal."""
    m = A.shape[1]
    slack = A @ v0 - 1.0
    # strict complementarity split of the interior-point iterate: active where z_i > s_i
    S = np.flatnonzero(z0 > np.maximum(slack, 0.0))
    if S.size == 0:
        return None
    AS = A[S]
    Pd = np.ones(m)
    Pd[-1] = bias_weight
    k = S.size
    K = np.zeros((m + k, m + k))
    K[:m, :m] = np.diag(Pd)
    K[:m, m:] = -AS.T
    K[m:, :m] = AS
    rhs = np.concatenate([np.zeros(m), np.ones(k)])
    sol, *_ = scipy.linalg.lstsq(K, rhs, lapack_driver="gelsd")
    v, lam = sol[:m], sol[m:]
    resid = np.abs(K @ sol - rhs).max()
    if resid > 1e-9 or (A @ v).min() < 1 - 1e-9 or lam.min() < -1e-9:
        return None
    lam_full = np.zeros(A.shape[0])
    lam_full[S] = lam
    quad = float(v @ (Pd * v))
    gap = 0.5 * quad - (lam_full.sum() - 0.5 * quad)
    return v, lam_full, gap


def _hard_margin(X, y, bias_weight: float) -> Separator:
    Xn, yn = _prepare(X, y)
    # Free bias: translation does not change the solution, so centre for conditioning.
    shift = Xn.mean(axis=0) if bias_weight == 0.0 else np.zeros(Xn.shape[1])
    A = yn[:, None] * np.hstack([Xn - shift, np.ones((Xn.shape[0], 1))])
    v, z, gap = _solve_qp(A, bias_weight)
    polished = _polish(A, bias_weight, v, z)
    if polished is not None:
        v, z, gap = polished
    w = v[:-1]
    b = float(v[-1] - w @ shift)
    scores = Xn @ w + b
    margin = float((yn * scores).min() / np.linalg.norm(w))
    support = np.flatnonzero(z > 1e-7 * max(z.max(), 1e-300))
    return Separator(w=torch.from_numpy(w.copy()), b=b, margin=margin,
                     support=torch.from_numpy(support), duality_gap=abs(float(gap)),
                     polished=polished is not None)


def max_margin_separator(X, y) -> Separator:
    """The hard-margin SVM with a free (unpenalised) bias: the optimal linear separator.

    Its geometric margin is the largest achievable by any hyperplane, and it is invariant
    under translations of the data.

    Parameters
    ----------
    X : array-like, shape (n, d)
        Inputs.
    y : array-like, shape (n,)
        Labels in {-1, +1} or {0, 1}.

    Returns
    -------
    Separator
        ``w``, ``b``, the geometric ``margin`` (= 1/||w||), support vectors, duality gap.

    Raises
    ------
    NotSeparableError
        (a ValueError) if the data are not linearly separable.
    ValueError
        On bad shapes, NaN/inf, bad labels or a missing class.

    Examples
    --------
    >>> round(max_margin_separator([[3.0, 1.0], [5.0, 1.0]], [-1, 1]).margin, 12)
    1.0
    """
    return _hard_margin(X, y, bias_weight=0.0)


def cross_entropy_limit(X, y) -> Separator:
    """The direction gradient descent on cross-entropy with a bias converges to.

    This is the hard-margin SVM of the augmented points ``(x_i, 1)`` through the origin of
    ``R^{d+1}``: the bias is penalised like a weight. Its geometric margin in input space
    can be much smaller than the optimal one when the data lie in an affine subspace away
    from the origin.

    Parameters
    ----------
    X : array-like, shape (n, d)
    y : array-like, shape (n,)
        Labels in {-1, +1} or {0, 1}.

    Returns
    -------
    Separator
        ``w``, ``b`` (the scale of the QP solution, ``min_i y_i(w.x_i+b) = 1``), the geometric
        input-space ``margin``, support vectors, duality gap.

    Raises
    ------
    NotSeparableError
        (a ValueError) if the data are not linearly separable.
    ValueError
        On bad shapes, NaN/inf, bad labels or a missing class.

    Examples
    --------
    >>> sep = cross_entropy_limit([[3.0, 1.0], [5.0, 1.0]], [-1, 1])
    >>> round(sep.margin ** -2, 10)  # margin = 1/sqrt(5)
    5.0
    """
    return _hard_margin(X, y, bias_weight=1.0)

"""Exact multi-class predictions: the Crammer–Singer hard-margin separators, certified.

A multi-class linear classifier predicts ``argmax_c (w_c . x + b_c)``. Its hard-margin
problem (Crammer & Singer 2001) is the quadratic program

    minimise 1/2 sum_c ||w_c||^2 + beta/2 sum_c b_c^2
    subject to (w_{y_i} - w_c) . x_i + b_{y_i} - b_c >= 1   for every i and c != y_i.

* ``beta = 0`` (:func:`multiclass_max_margin`): free biases, the *optimal* separator. It
  is invariant under translations of the data (``b_c -> b_c - w_c . t`` absorbs ``x -> x + t``).
* ``beta = 1`` (:func:`multiclass_cross_entropy_limit`): the biases are penalised like
  weights; this is the hard-margin SVM of the augmented points ``(x, 1)``, the direction
  to which gradient descent on softmax cross-entropy with biases converges (Soudry et al.,
  JMLR 2018, their multi-class extension). It is not translation invariant: when the data
  lie in an affine subspace far from the origin its margin collapses, as in the binary case.

The weights ``W`` are unique (the objective is strictly convex in ``W``, and the optimum
has ``sum_c w_c = 0``); with free biases only the differences ``b_a - b_c`` enter, and the
returned ``b`` is centred (``sum_c b_c = 0``); the differences are unique whenever the
active constraints pin them down (generic data).

For ``C = 2`` both problems reduce to the binary ones of :mod:`lowrank.theory.svm`: with
``u = w_1 - w_0`` and ``beta = b_1 - b_0`` the constraints are the binary
``y_i (u . x_i + beta) >= 1`` and, for a fixed difference, ``||w_0||^2 + ||w_1||^2`` (and
``b_0^2 + b_1^2``) is smallest at ``w_1 = -w_0 = u / 2``; hence ``w_1 - w_0`` is the
binary SVM's ``w`` (``w = 2 w_1``), ``b_1 - b_0`` its ``b``, and the multi-class
geometric margin is the binary margin.

The QP is solved by Clarabel, then *polished*: the KKT equations restricted to the active
set are solved in float64 (a few active-set corrections if needed), and the result is
*certified* in extended precision (:func:`certify_multiclass`): primal feasibility, sign
of the multipliers, stationarity, complementarity and the duality gap, all at rounding
level. An answer that fails the certificate is never returned (:class:`CertificationError`).

:func:`one_vs_rest_limit` is the limit of the one-vs-rest differential loss
(:func:`lowrank.losses.multiclass_differential_loss`): the loss decouples over classes,
so each ``w_c`` converges in direction to the free-bias binary SVM of class ``c`` against
the rest, with the per-class offsets of :func:`lowrank.train.multiclass_offsets`.
"""

from __future__ import annotations

from dataclasses import dataclass

import clarabel
import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse as sp
import torch

from .._validation import check_matrix, check_same_length, class_labels
from ..analysis.multiclass import multiclass_margin
from .svm import CertificationError, NotSeparableError, max_margin_separator

__all__ = [
    "MulticlassCertificate",
    "MulticlassSeparator",
    "CertificationError",
    "multiclass_max_margin",
    "multiclass_cross_entropy_limit",
    "one_vs_rest_limit",
    "certify_multiclass",
    "CERTIFICATE_TOL",
]

#: Relative tolerance of every check of :func:`certify_multiclass`.
CERTIFICATE_TOL = 1e-9


@dataclass(frozen=True)
class MulticlassCertificate:
    """Optimality certificate of a multi-class hard-margin solution, checked in extended precision.

    Attributes
    ----------
    objective : float
        Primal objective ``1/2 sum ||w_c||^2 (+ 1/2 sum b_c^2)``.
    dual_objective : float
        Dual objective ``sum lambda - 1/2 ||W(lambda)||^2 (- 1/2 ||b(lambda)||^2)``.
    duality_gap : float
        ``objective - dual_objective``.
    primal_violation : float
        ``max(0, max (1 - margin constraint))``.
    min_multiplier : float
        Smallest multiplier (must be >= 0 up to rounding).
    stationarity : float
        Largest entry of ``W - W(lambda)`` and of the bias residual.
    complementarity : float
        Largest ``|lambda_ic (constraint_ic - 1)|``.
    scale : float
        ``1 + max_i ||x_i|| max_c ||w_c|| + max_c |b_c|``: the absolute size of the
        constraint values, by which the tolerances are scaled.
    ok : bool
        Whether every check passed at relative tolerance :data:`CERTIFICATE_TOL`.

    Examples
    --------
    >>> sep = multiclass_max_margin([[-1.0], [0.0], [1.0]], [0, 1, 2])
    >>> sep.certificate.ok, sep.certificate.duality_gap < 1e-12
    (True, True)
    """

    objective: float
    dual_objective: float
    duality_gap: float
    primal_violation: float
    min_multiplier: float
    stationarity: float
    complementarity: float
    scale: float
    ok: bool


@dataclass(frozen=True)
class MulticlassSeparator:
    """A multi-class linear classifier ``argmax_c (w_c . x + b_c)`` and its certificate.

    Attributes
    ----------
    W : torch.Tensor, shape (C, d)
        Weights (float64), at the QP's scale (the smallest active constraint equals 1).
    b : torch.Tensor, shape (C,)
        Offsets.
    margin : float
        Multi-class geometric margin (:func:`lowrank.analysis.multiclass_margin`).
    multipliers : torch.Tensor, shape (n, C)
        Lagrange multipliers ``lambda_ic`` of the constraints (0 at ``c = y_i``); empty
        for :func:`one_vs_rest_limit`.
    support : torch.Tensor, shape (k, 2)
        Pairs ``(i, c)`` of the active constraints with positive multipliers.
    certificate : MulticlassCertificate or None
        The optimality certificate (``None`` for :func:`one_vs_rest_limit`, whose binary
        parts are certified by :func:`lowrank.theory.max_margin_separator`).

    Examples
    --------
    >>> sep = multiclass_max_margin([[-1.0], [0.0], [1.0]], [0, 1, 2])
    >>> [round(v, 12) for v in sep.W[:, 0].tolist()], round(sep.margin, 12)
    ([-2.0, 0.0, 2.0], 0.5)
    """

    W: torch.Tensor
    b: torch.Tensor
    margin: float
    multipliers: torch.Tensor
    support: torch.Tensor
    certificate: MulticlassCertificate | None

    def predict(self, X) -> torch.Tensor:
        """Predicted classes ``argmax_c (w_c . x + b_c)`` of the rows of ``X``.

        Parameters
        ----------
        X : array-like, shape (m, d)

        Returns
        -------
        torch.Tensor, shape (m,)
            Labels in {0, ..., C-1}.

        Examples
        --------
        >>> sep = multiclass_max_margin([[-1.0], [0.0], [1.0]], [0, 1, 2])
        >>> sep.predict([[-3.0], [0.2], [0.9]]).tolist()
        [0, 1, 2]
        """
        Xt = check_matrix(X, "X", dtype=torch.float64)
        if Xt.shape[1] != self.W.shape[1]:
            raise ValueError(f"X must have {self.W.shape[1]} columns, got {Xt.shape[1]}")
        return torch.argmax(Xt @ self.W.T + self.b, dim=1)


def _prepare(X, y) -> tuple[np.ndarray, np.ndarray, int]:
    Xt = check_matrix(X, "X", dtype=torch.float64)
    labels = class_labels(y, "y", require_all=False)
    check_same_length(Xt, labels, "X", "y")
    labels = class_labels(labels, "y")
    return Xt.cpu().numpy(), labels.cpu().numpy(), int(labels.max()) + 1


def _constraint_index(labels: np.ndarray, C: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``i`` and other classes ``c != y_i`` of every constraint, ordered by (i, c)."""
    n = labels.shape[0]
    ii = np.repeat(np.arange(n), C)
    cc = np.tile(np.arange(C), n)
    keep = cc != labels[ii]
    return ii[keep], cc[keep]


def _constraint_matrix(X: np.ndarray, labels: np.ndarray, C: int, free_bias: bool
                       ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Sparse ``A`` with ``(A v)_r = (w_{y_i} - w_c) . x_i + b_{y_i} - b_c`` for ``v = (vec W, b)``.

    With ``free_bias`` the column of ``b_0`` is dropped (``b_0 = 0`` fixes the gauge).
    """
    n, d = X.shape
    ii, cc = _constraint_index(labels, C)
    yy = labels[ii]
    R = ii.size
    rows = np.repeat(np.arange(R), 2 * d)
    feat = np.tile(np.arange(d), R)
    cols_w = np.concatenate([(yy[:, None] * d + np.arange(d)[None, :]),
                             (cc[:, None] * d + np.arange(d)[None, :])], axis=1).ravel()
    vals_w = np.concatenate([X[ii], -X[ii]], axis=1).ravel()
    del feat
    bias_cols = np.stack([yy, cc], axis=1)  # b_{y_i} (+1), b_c (-1)
    bias_vals = np.tile(np.array([1.0, -1.0]), (R, 1))
    bias_rows = np.repeat(np.arange(R), 2)
    if free_bias:
        keep = bias_cols.ravel() != 0
        b_cols = bias_cols.ravel()[keep] - 1 + C * d
        b_vals = bias_vals.ravel()[keep]
        b_rows = bias_rows[keep]
        m = C * d + C - 1
    else:
        b_cols = bias_cols.ravel() + C * d
        b_vals = bias_vals.ravel()
        b_rows = bias_rows
        m = C * d + C
    A = sp.csr_matrix((np.concatenate([vals_w, b_vals]),
                       (np.concatenate([rows, b_rows]), np.concatenate([cols_w, b_cols]))),
                      shape=(R, m))
    return A, ii, cc


def _solve_qp(A: sp.csr_matrix, pdiag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clarabel on ``min 1/2 v^T diag(pdiag) v  s.t.  A v >= 1``; (v, multipliers)."""
    R, m = A.shape
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = 1e-10
    settings.tol_feas = 1e-10
    settings.tol_ktratio = 1e-8
    settings.max_iter = 500
    solver = clarabel.DefaultSolver(sp.diags(pdiag, format="csc"), np.zeros(m),
                                    sp.csc_matrix(-A), -np.ones(R),
                                    [clarabel.NonnegativeConeT(R)], settings)
    sol = solver.solve()
    status = sol.status
    if status in (clarabel.SolverStatus.PrimalInfeasible,
                  clarabel.SolverStatus.AlmostPrimalInfeasible):
        raise NotSeparableError("X, y are not linearly separable by a multi-class linear "
                                "classifier: the hard-margin problem is infeasible")
    if status not in (clarabel.SolverStatus.Solved, clarabel.SolverStatus.AlmostSolved):
        raise CertificationError(f"the QP solver did not converge (status {status})")
    return np.asarray(sol.x, dtype=np.float64), np.asarray(sol.z, dtype=np.float64)


def _kkt_on(A: sp.csr_matrix, pdiag: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``P v = A_S^T lam``, ``A_S v = 1`` (least squares if singular)."""
    m = A.shape[1]
    AS = A[S].toarray()
    k = S.size
    K = np.zeros((m + k, m + k))
    K[:m, :m] = np.diag(pdiag)
    K[:m, m:] = -AS.T
    K[m:, :m] = AS
    rhs = np.concatenate([np.zeros(m), np.ones(k)])
    sol, *_ = scipy.linalg.lstsq(K, rhs, lapack_driver="gelsd")
    v, lam = sol[:m], sol[m:]
    if lam.size and lam.min() < 0:
        # degenerate active set (multipliers not unique): nonnegative multipliers for this v
        lam_nn, _ = scipy.optimize.nnls(AS.T, pdiag * v, maxiter=50 * max(k, 1))
        lam = lam_nn
    return v, lam


def _polish(A: sp.csr_matrix, pdiag: np.ndarray, v0: np.ndarray, z0: np.ndarray,
            max_rounds: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Active-set refinement of the interior-point iterate; (v, full multiplier vector)."""
    slack = A @ v0 - 1.0
    S = np.flatnonzero(z0 > np.maximum(slack, 0.0))
    v, lam_full = v0, np.maximum(z0, 0.0)
    for _ in range(max_rounds):
        if S.size == 0:
            break
        v, lam = _kkt_on(A, pdiag, S)
        lam_full = np.zeros(A.shape[0])
        lam_full[S] = lam
        viol = np.flatnonzero(A @ v < 1.0 - 1e-12 * (1.0 + np.abs(v).max()))
        neg = S[lam < -1e-14 * max(1.0, np.abs(lam).max())]
        if viol.size == 0 and neg.size == 0:
            break
        S = np.setdiff1d(np.union1d(S, viol), neg)
    return v, lam_full


def certify_multiclass(X, y, W, b, multipliers, penalize_bias: bool,
                       tol: float = CERTIFICATE_TOL) -> MulticlassCertificate:
    """Check the KKT conditions and the duality gap of a multi-class hard-margin solution.

    Evaluated in extended precision (``numpy.longdouble``) on the original data:
    constraint values ``F_ic = (w_{y_i} - w_c) . x_i + b_{y_i} - b_c`` (primal
    feasibility ``F_ic >= 1``); multipliers ``lambda_ic >= 0``; stationarity
    ``W = M^T X`` with ``M_ic = -lambda_ic`` (``c != y_i``), ``M_{i y_i} = sum_c lambda_ic``,
    and for the biases ``M^T 1 = 0`` (free) or ``b = M^T 1`` (penalised); complementarity
    ``lambda_ic (F_ic - 1) = 0``; duality gap = primal minus dual objective.

    Parameters
    ----------
    X : array-like, shape (n, d)
    y : array-like, shape (n,)
        Labels in {0, ..., C-1}, every class present.
    W : array-like, shape (C, d)
    b : array-like, shape (C,)
    multipliers : array-like, shape (n, C)
        ``lambda_ic`` (entries at ``c = y_i`` are ignored).
    penalize_bias : bool
        ``True`` for the cross-entropy limit, ``False`` for free biases.
    tol : float
        Relative tolerance of each check.

    Returns
    -------
    MulticlassCertificate

    Examples
    --------
    The closed form of three points on a line (``W = (-2, 0, 2)``, ``b = (-1, 2, -1)/3``,
    multipliers 2 on the constraints between neighbours):

    >>> lam = [[0, 2, 0], [2, 0, 2], [0, 2, 0]]
    >>> cert = certify_multiclass([[-1.0], [0.0], [1.0]], [0, 1, 2], [[-2.0], [0.0], [2.0]],
    ...                           [-1 / 3, 2 / 3, -1 / 3], lam, penalize_bias=False)
    >>> cert.ok, round(cert.objective, 12), round(cert.dual_objective, 12)
    (True, 4.0, 4.0)
    """
    Xn, labels, C = _prepare(X, y)
    ld = np.longdouble
    Wn = np.asarray(torch.as_tensor(W, dtype=torch.float64).cpu().numpy(), dtype=ld)
    bn = np.asarray(torch.as_tensor(b, dtype=torch.float64).cpu().numpy(), dtype=ld)
    lam = np.asarray(torch.as_tensor(multipliers, dtype=torch.float64).cpu().numpy(), dtype=ld)
    n, d = Xn.shape
    if Wn.shape != (C, d) or bn.shape != (C,) or lam.shape != (n, C):
        raise ValueError(f"W, b, multipliers must have shapes ({C}, {d}), ({C},), ({n}, {C}); got "
                         f"{Wn.shape}, {bn.shape}, {lam.shape}")
    Xl = Xn.astype(ld)
    other = np.ones((n, C), dtype=bool)
    other[np.arange(n), labels] = False
    lam = np.where(other, lam, ld(0))
    scores = Xl @ Wn.T + bn
    F = scores[np.arange(n), labels][:, None] - scores
    primal_violation = float(max(ld(0), (1 - F[other]).max()))
    min_mult = float(lam[other].min())
    M = -lam
    M[np.arange(n), labels] = lam.sum(axis=1)
    W_dual = M.T @ Xl
    b_dual = M.sum(axis=0)
    stat_w = float(np.abs(Wn - W_dual).max())
    stat_b = float(np.abs(bn - b_dual).max() if penalize_bias else np.abs(b_dual).max())
    comp = float(np.abs(lam[other] * (F[other] - 1)).max())
    bw = ld(1) if penalize_bias else ld(0)
    primal = (np.sum(Wn * Wn) + bw * np.sum(bn * bn)) / 2
    dual = lam[other].sum() - (np.sum(W_dual * W_dual) + bw * np.sum(b_dual * b_dual)) / 2
    scale = float(1 + np.linalg.norm(Xn, axis=1).max() * np.linalg.norm(Wn.astype(float), axis=1).max()
                  + float(np.abs(bn).max()))
    lam_scale = max(1.0, float(lam.max()))
    gap = float(primal - dual)
    ok = (primal_violation <= tol * scale and min_mult >= -tol * lam_scale
          and max(stat_w, stat_b) <= tol * scale * max(1.0, float(lam.sum(axis=1).max()))
          and comp <= tol * scale * lam_scale and abs(gap) <= tol * max(1.0, float(primal)) * scale)
    return MulticlassCertificate(objective=float(primal), dual_objective=float(dual),
                                 duality_gap=gap, primal_violation=primal_violation,
                                 min_multiplier=min_mult, stationarity=max(stat_w, stat_b),
                                 complementarity=comp, scale=scale, ok=bool(ok))


def _row_space(X: np.ndarray) -> np.ndarray:
    """Orthonormal basis (columns) of the row space of ``X`` (at least one column)."""
    _, sv, vt = np.linalg.svd(X, full_matrices=False)
    r = max(1, int((sv > 1e-12 * max(sv.max(initial=0.0), 1e-300)).sum()))
    return vt[:r].T


def _hard_margin(X, y, penalize_bias: bool) -> MulticlassSeparator:
    Xn, labels, C = _prepare(X, y)
    n, d = Xn.shape
    shift = Xn.mean(axis=0) if not penalize_bias else np.zeros(d)
    # Stationarity puts every w_c in the row space of the data, so solve in coordinates of
    # that space (r <= k + 1 for data in a k-dimensional affine subspace): W = W_r V^T.
    V = _row_space(Xn - shift)
    r = V.shape[1]
    A, ii, cc = _constraint_matrix((Xn - shift) @ V, labels, C, free_bias=not penalize_bias)
    m = A.shape[1]
    pdiag = np.ones(m)
    if not penalize_bias:
        pdiag[C * r:] = 0.0
    v0, z0 = _solve_qp(A, pdiag)
    v, lam_flat = _polish(A, pdiag, v0, z0)
    W = v[:C * r].reshape(C, r) @ V.T
    b = np.concatenate([[0.0], v[C * r:]]) if not penalize_bias else v[C * r:].copy()
    if not penalize_bias:
        b = b - W @ shift
        b = b - b.mean()
    lam = np.zeros((n, C))
    lam[ii, cc] = lam_flat
    cert = certify_multiclass(Xn, labels, W, b, lam, penalize_bias)
    if not cert.ok:
        raise CertificationError(
            f"the multi-class hard-margin solution could not be certified to relative tolerance "
            f"{CERTIFICATE_TOL:g}: primal violation {cert.primal_violation:.3g}, smallest "
            f"multiplier {cert.min_multiplier:.3g}, stationarity {cert.stationarity:.3g}, "
            f"complementarity {cert.complementarity:.3g}, duality gap {cert.duality_gap:.3g} "
            f"(scale {cert.scale:.3g}); the data may be badly conditioned")
    support = np.flatnonzero(lam_flat > 1e-9 * max(lam_flat.max(), 1e-300))
    Wt, bt = torch.from_numpy(W.copy()), torch.from_numpy(b.copy())
    return MulticlassSeparator(W=Wt, b=bt, margin=multiclass_margin(Wt, bt, Xn, labels),
                               multipliers=torch.from_numpy(lam),
                               support=torch.from_numpy(np.stack([ii[support], cc[support]], 1)),
                               certificate=cert)


def multiclass_max_margin(X, y) -> MulticlassSeparator:
    """The optimal multi-class hard-margin separator (Crammer–Singer, free biases).

    Parameters
    ----------
    X : array-like, shape (n, d)
        Inputs.
    y : array-like, shape (n,)
        Labels in {0, ..., C-1}, every class present (``C >= 2``).

    Returns
    -------
    MulticlassSeparator
        Certified ``W``, centred ``b``, the multi-class geometric margin, multipliers.

    Raises
    ------
    NotSeparableError
        (a ValueError) if no multi-class linear classifier separates the data.
    CertificationError
        (a RuntimeError) if the solution cannot be certified optimal.
    ValueError
        On bad shapes, NaN/inf, or bad labels (non-integer, negative, a class without examples).

    Examples
    --------
    One point per class at the unit vectors of ``R^3``: ``w_c = e_c - 1/3``, margin
    ``1/sqrt(2)``:

    >>> sep = multiclass_max_margin([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], [0, 1, 2])
    >>> [round(v, 9) for v in sep.W[0].tolist()], round(sep.margin ** -2, 9)
    ([0.666666667, -0.333333333, -0.333333333], 2.0)
    """
    return _hard_margin(X, y, penalize_bias=False)


def multiclass_cross_entropy_limit(X, y) -> MulticlassSeparator:
    """The direction softmax cross-entropy with biases converges to (augmented-point SVM).

    The hard-margin problem with the biases penalised like weights,
    ``min 1/2 sum_c (||w_c||^2 + b_c^2)``, i.e. the Crammer–Singer SVM of the points
    ``(x_i, 1)`` without biases.

    Parameters
    ----------
    X : array-like, shape (n, d)
    y : array-like, shape (n,)
        Labels in {0, ..., C-1}, every class present.

    Returns
    -------
    MulticlassSeparator
        Certified ``W``, ``b`` (at the QP's scale), the input-space geometric margin,
        multipliers.

    Raises
    ------
    NotSeparableError
        (a ValueError) if the data are not separable.
    CertificationError
        (a RuntimeError) if the solution cannot be certified optimal.
    ValueError
        On bad shapes, NaN/inf, or bad labels.

    Examples
    --------
    Three points on the line ``x2 = 1``: the limit's margin is ``1/sqrt(4 + 1/4)``, below the
    optimal 1/2:

    >>> X = [[-1.0, 1.0], [0.0, 1.0], [1.0, 1.0]]
    >>> round(multiclass_cross_entropy_limit(X, [0, 1, 2]).margin ** -2, 9)
    4.25
    """
    return _hard_margin(X, y, penalize_bias=True)


def one_vs_rest_limit(X, y) -> MulticlassSeparator:
    """The limit of one-vs-rest differential training, with midpoint offsets.

    The one-vs-rest differential loss is a sum over classes of binary differential losses
    of the score columns, so ``w_c`` converges in direction to the free-bias binary SVM of
    class ``c`` against the rest (all classes at the common scale of a unit functional
    margin); the per-class midpoint offsets (:func:`lowrank.train.multiclass_offsets`) are
    then those SVMs' biases.

    Parameters
    ----------
    X : array-like, shape (n, d)
    y : array-like, shape (n,)
        Labels in {0, ..., C-1}, every class present.

    Returns
    -------
    MulticlassSeparator
        ``W`` (row ``c`` = the binary SVM's ``w`` of class ``c`` vs the rest), ``b``, the
        multi-class geometric margin; no multipliers and ``certificate=None``.

    Raises
    ------
    NotSeparableError
        (a ValueError) if some class cannot be separated from the rest by a hyperplane
        (the message names it).
    ValueError
        On bad shapes, NaN/inf, or bad labels.

    Examples
    --------
    >>> sep = one_vs_rest_limit([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], [0, 1, 2])
    >>> [round(v, 9) for v in sep.W[0].tolist()], round(sep.margin ** -2, 9)
    ([1.333333333, -0.666666667, -0.666666667], 2.0)
    """
    Xn, labels, C = _prepare(X, y)
    W = np.zeros((C, Xn.shape[1]))
    b = np.zeros(C)
    for c in range(C):
        try:
            sep = max_margin_separator(Xn, (labels == c).astype(np.int64))
        except NotSeparableError as err:
            raise NotSeparableError(f"class {c} cannot be separated from the other classes by a "
                                    f"hyperplane, so one-vs-rest training has no limit: {err}") from err
        W[c], b[c] = sep.w.numpy(), sep.b
    Wt, bt = torch.from_numpy(W), torch.from_numpy(b)
    return MulticlassSeparator(W=Wt, b=bt, margin=multiclass_margin(Wt, bt, Xn, labels),
                               multipliers=torch.zeros(0, C, dtype=torch.float64),
                               support=torch.zeros(0, 2, dtype=torch.int64), certificate=None)

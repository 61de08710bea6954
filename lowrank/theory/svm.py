"""Exact hard-margin separators: the optimal (free-bias) SVM and the cross-entropy limit.

Both are the quadratic program

    minimise 1/2 (||w||^2 + beta b^2)   subject to   y_i (w . x_i + b) >= 1  for all i,

with ``beta = 0`` for the optimal separator (the bias is free) and ``beta = 1`` for the
limit of gradient descent on cross-entropy with a bias term (Soudry et al. 2018, applied to
the augmented points ``(x, 1)``): the bias is penalised like a weight.

How an answer is computed and certified
---------------------------------------
1. *Well-conditioned coordinates.* The data are centred on a per-feature median and scaled
   by a power of two. For the free-bias problem translation and scaling are exact symmetries.
   For the cross-entropy limit they are not; there an orthonormal basis of the augmented
   space is used instead (norm-preserving, so the objective stays ``||v||^2``): the plane of
   ``u = mu / ||mu||`` and the bias axis is rotated so that ``(mu, 1)`` becomes an axis, and
   ``u``'s complement gets a Householder basis. A point's coordinates ``(t / nm, x_perp,
   nm + ||mu|| t / nm)``, with ``t = u . (x - mu)`` and ``nm = ||(mu, 1)||``, are computed
   without cancellation, so rounding perturbs each point by about ``eps`` times the spread
   of the data, not ``eps`` times its distance from the origin.
2. *Interior point, then exact active set.* The QP in those coordinates is solved by
   Clarabel. If the KKT equations on its active set (solved by the null-space method on
   column-equilibrated variables, with iterative refinement of double-double residuals; if
   scaling by the constraint columns leaves a residual, as it does for a column of negligible
   entries, the columns of the whole KKT matrix are equilibrated instead)
   satisfy every KKT condition, that is the answer; otherwise a primal active-set method
   (Nocedal & Wright, Algorithm 16.3) starts from a strictly feasible point: the scaled
   interior-point iterate, else the optimal separator (same feasible set), else an LP
   solution. Multipliers of degenerate active sets come from non-negative least squares.
3. *Refinement for the data as given.* Rounding in step 1 moves each point by ``eps`` times
   the spread of the whole data; on a feature of much smaller spread (say 1e-10 next to 1,
   far from zero) that is a large relative change, which ``w`` there (~1 / spread) inherits
   although every backward measure below is tiny. So the KKT equations on the active set are
   solved once more for the data's own rows, by iterative refinement with double-double
   residuals of the exact rows ``y_i (x_i, 1) T`` (``T`` the float change of variables, taken
   exactly), corrections from the factorisation of step 2 and a double-double iterate.
4. *Certificate.* Primal feasibility, dual feasibility (multipliers >= 0 and stationarity
   ``w = sum_i l_i y_i x_i`` with ``sum_i l_i y_i = 0`` for the free bias or ``b = sum_i l_i
   y_i`` for the cross-entropy limit) and complementarity (the duality gap) are evaluated with
   compensated (double-double) dot products, both in the solver's coordinates and in the
   data's own coordinates, each relative to the size of the terms it sums (backward errors).
   Two forward measures are added: the data's constraints for the refined, unrounded
   ``(w, b)`` (active ones equal to 1, all >= 1) relative to 1, and the refinement's estimate
   of the relative error of ``(w, b)``. A separator is returned only if every measure is at
   most :data:`CERTIFICATE_TOL`; otherwise :class:`CertificationError` says which check failed.

Data beyond float64's reach for these quantities (``|X| > 2^500``, or so small a scale
that ``||w||^2`` or the multipliers overflow) raise :class:`CertificationError` too.

:class:`NotSeparableError` is raised only with an exact Farkas certificate: multipliers
``l >= 0``, ``sum l = 1``, on a basic support found by the dual simplex method (HiGHS), with
``sum_i l_i y_i (x_i, 1) = 0`` verified in rational arithmetic on the float data as given.
Data that are neither certified separable nor certified inseparable raise
:class:`CertificationError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import clarabel
import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse as sp
import torch

from .._validation import check_both_classes, check_matrix, check_same_length, signed_labels

__all__ = ["Separator", "NotSeparableError", "CertificationError", "CERTIFICATE_TOL",
           "max_margin_separator", "cross_entropy_limit"]

#: Largest accepted relative primal infeasibility, dual infeasibility and duality gap (each
#: measured relative to the magnitude of the terms it sums), constraint residual (relative to 1)
#: and forward-error estimate; see :class:`Separator`.
CERTIFICATE_TOL = 1e-11

_MAX_ACTIVE_SET_STEPS = 200
_REFINEMENT_STEPS = 4
_DATA_REFINEMENT_STEPS = 8
_EQP_TOL = 2.0 ** -45  # relative residual of an equality-constrained solve taken as exact
_MAX_ABS_X = 2.0 ** 500


class NotSeparableError(ValueError):
    """Raised when the data are certified not linearly separable (a ValueError).

    The certificate is exact: multipliers ``l >= 0`` with ``sum_i l_i y_i (x_i, 1) = 0``,
    verified in rational arithmetic.
    """


class CertificationError(RuntimeError):
    """Raised when no separator could be certified optimal; the message says which check failed.

    The one exception of every certified solver of :mod:`lowrank.theory`, binary and
    multi-class (:mod:`lowrank.theory.multiclass` re-exports it), so that
    ``except lowrank.theory.CertificationError`` catches them all.
    """


@dataclass(frozen=True)
class Separator:
    """A linear separator ``sign(w . x + b)`` and its optimality certificate.

    Attributes
    ----------
    w : torch.Tensor, shape (d,)
        Weights (float64), at the QP scale ``min_i y_i (w . x_i + b) = 1``.
    b : float
        Bias.
    margin : float
        Geometric margin in input space, ``min_i y_i (w . x_i + b) / ||w||_2``; at the
        certified optimum the active constraints equal 1, so it is computed as ``1 / ||w||``.
    support : torch.Tensor
        Indices of the support vectors (positive multipliers).
    duality_gap : float
        ``|primal - dual|`` objective of the QP (absolute, in the QP's units).
    polished : bool
        Always True: only certified separators are returned (kept for compatibility).
    multipliers : torch.Tensor, shape (n,)
        The dual multipliers ``l_i >= 0`` (zero off the support).
    primal_infeasibility : float
        ``max_i max(0, 1 - y_i (w . x_i + b)) / max(1, sum_j |w_j x_ij| + |b|)``.
    dual_infeasibility : float
        Stationarity residual ``|(w, beta b) - sum_i l_i y_i (x_i, 1)|_inf`` relative to the
        largest ``|(w, beta b)_j| + sum_i l_i |(x_i, 1)_j|``, or the relative size of a negative
        multiplier, whichever is larger.
    relative_gap : float
        Complementarity ``|sum_i l_i (y_i (w . x_i + b) - 1)| / sum_i l_i t_i`` with ``t_i =
        max(1, sum_j |w_j x_ij| + |b|)``: the duality gap relative to the objective
        ``||w||^2 + beta b^2 = sum_i l_i``, each term measured in its own scale.

    The three measures are the larger of their values in the solver's coordinates and in
    the data's own coordinates, computed with compensated dot products. Being relative to the
    terms they sum, they bound a backward error; two forward measures complete the certificate:

    constraint_residual : float
        ``max(max_{i in support} |y_i (w . x_i + b) - 1|, max_i max(0, 1 - y_i (w . x_i + b)))``,
        absolute (relative to 1), for the data as given and ``(w, b)`` as the double-double
        that the float64 ``w`` and ``b`` are the rounding of. (The rounded values themselves
        cannot do better than about ``eps * sum_j |w_j x_ij|``, which for a feature of tiny
        spread far from zero can be ~1e-6.)
    forward_error : float
        ``|dv|_inf / |(w, b)|_inf`` of the last correction of the iterative refinement on the
        active set in the data's coordinates: an estimate of the relative error of ``(w, b)``.

    Examples
    --------
    >>> sep = max_margin_separator([[0.0, 0.0], [2.0, 0.0]], [-1, 1])
    >>> [round(v, 12) for v in sep.direction.tolist()], round(sep.b, 12), sep.support.tolist()
    ([1.0, 0.0], -1.0, [0, 1])
    >>> sep.primal_infeasibility <= CERTIFICATE_TOL and sep.relative_gap <= CERTIFICATE_TOL
    True
    """

    w: torch.Tensor
    b: float
    margin: float
    support: torch.Tensor
    duality_gap: float
    polished: bool = True
    multipliers: torch.Tensor | None = None
    primal_infeasibility: float = 0.0
    dual_infeasibility: float = 0.0
    relative_gap: float = 0.0
    constraint_residual: float = 0.0
    forward_error: float = 0.0

    @property
    def direction(self) -> torch.Tensor:
        """Unit normal ``w / ||w||``."""
        return self.w / torch.linalg.vector_norm(self.w)


# ---------------------------------------------------------------------------------------
# compensated arithmetic (Ogita, Rump & Oishi 2005: Dot2 is as accurate as if computed in
# twice the working precision)

_SPLITTER = 134217729.0  # 2**27 + 1


def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _two_prod(a, b):
    p = a * b
    c = _SPLITTER * a
    ah = c - (c - a)
    al = a - ah
    c = _SPLITTER * b
    bh = c - (c - b)
    bl = b - bh
    return p, al * bl - (((p - ah * bh) - al * bh) - ah * bl)


def _dot2(M: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``M @ v`` row by row in double-double: (hi, lo, sum of |terms|)."""
    s = np.zeros(M.shape[0])
    c = np.zeros(M.shape[0])
    for j in range(M.shape[1]):
        p, ep = _two_prod(M[:, j], v[j])
        s, es = _two_sum(s, p)
        c += ep + es
    return s, c, np.abs(M) @ np.abs(v)


def _fdot(a: np.ndarray, b: np.ndarray) -> float:
    """A correctly rounded-ish dot product of two vectors."""
    hi, lo, _ = _dot2(a[None, :], b)
    return float(hi[0] + lo[0])


# ---------------------------------------------------------------------------------------
# the QP in well-conditioned coordinates

@dataclass
class _Coords:
    """Rows ``A`` (n x (d+1)) and bias weight ``rho`` of the transformed QP, and the map back."""

    A: np.ndarray
    rho: float
    mu: np.ndarray
    s: float
    bias_weight: float
    # cross-entropy limit only: unit vector u = mu / r, Householder vector q (Q u = +-e_1),
    # nm = ||(mu, 1)||, bias column scale E and factor gamma
    u: np.ndarray | None = None
    q: np.ndarray | None = None
    r: float = 0.0
    nm: float = 1.0
    E: float = 1.0
    gamma: float = 1.0

    def to_original(self, v: np.ndarray) -> tuple[np.ndarray, float]:
        """Map a solution of the transformed QP to ``(w, b)`` of the original one."""
        if self.bias_weight == 0.0:
            w = v[:-1] / self.s
            # b = c - mu . w, evaluated in double-double
            return w, _fdot(np.r_[1.0, -self.mu], np.r_[v[-1], w])
        gam = self.gamma * v[-1] / self.E          # coefficient along (mu, 1) / nm
        if self.u is None:                          # mu = 0: rows (x, 1), no rotation
            return v[:-1] / self.s, float(gam)
        alpha = v[0] / self.s                       # coefficient along (1, -r) / nm
        w_perp = np.r_[0.0, v[1:-1] / self.s]
        omega = (alpha + gam * self.r) / self.nm
        b = (gam - alpha * self.r) / self.nm
        q = self.q
        Qw = w_perp - q * (2.0 * float(q @ w_perp) / float(q @ q))
        return omega * self.u + Qw, float(b)


    def from_centred(self, w: np.ndarray, c: float) -> np.ndarray:
        """Transformed variables of the separator ``w . (x - mu) + c`` (cross-entropy limit)."""
        if self.u is None:
            return np.r_[w * self.s, c * self.E / self.gamma]
        omega = _fdot(self.u, w)
        q = self.q
        w_perp = (w - q * (2.0 * float(q @ w) / float(q @ q)))[1:]
        alpha = omega * self.nm - self.r * c / self.nm
        return np.r_[alpha * self.s, w_perp * self.s, (c / self.nm) * self.E / self.gamma]


def _coordinates(X: np.ndarray, y: np.ndarray, bias_weight: float) -> _Coords:
    """Well-conditioned coordinates in which the QP is solved.

    Free bias: rows ``y_i ((x_i - mu) / s, 1)`` (exact symmetries). Cross-entropy limit: an
    orthonormal basis of the augmented space made of ``(u, 0)`` split into ``(1, -r)/nm`` and
    ``(r, 1)/nm`` in the plane of ``u = mu / r`` and the bias axis, and an orthonormal basis of
    ``u``'s complement (a Householder reflection); in it a point has coordinates
    ``(t / nm, x_perp, nm + r t / nm)`` with ``t = u . (x - mu)``, each computed without
    cancellation, and the objective stays ``||v||^2``.
    """
    n, d = X.shape
    mu = np.sort(X, axis=0)[(n - 1) // 2]  # a data value per feature: x - mu is often exact
    Xc = X - mu
    if bias_weight == 0.0:
        P = Xc
        amax = float(np.abs(P).max())
        s = 2.0 ** round(math.log2(amax)) if amax > 0 else 1.0
        A = y[:, None] * np.hstack([P / s, np.ones((n, 1))])
        return _Coords(A=A, rho=0.0, mu=mu, s=s, bias_weight=bias_weight)
    r = float(np.linalg.norm(mu))
    nm = float(np.hypot(r, 1.0))
    if r == 0.0:
        P, e, kw = Xc, np.ones(n), {}
    else:
        u = mu / r
        q = u.copy()
        q[0] += math.copysign(1.0, u[0]) * float(np.linalg.norm(u))
        hi, lo, _ = _dot2(Xc, u)
        t = hi + lo
        x_perp = (Xc - np.outer(Xc @ q, q) * (2.0 / float(q @ q)))[:, 1:]
        P = np.hstack([(t / nm)[:, None], x_perp])
        e = nm + (r / nm) * t
        kw = dict(u=u, q=q, r=r, nm=nm)
    amax = float(np.abs(P).max())
    s = 2.0 ** round(math.log2(amax)) if amax > 0 else 1.0
    emax = float(np.abs(e).max())
    E = 2.0 ** round(math.log2(emax))
    e = e / E
    rho, gamma = (s / E) ** 2, 1.0
    if rho > 1.0:
        gamma = 1.0 / math.sqrt(rho)
        e = e * gamma
        rho = 1.0
    A = y[:, None] * np.hstack([P / s, e[:, None]])
    return _Coords(A=A, rho=rho, mu=mu, s=s, bias_weight=bias_weight, E=E, gamma=gamma, **kw)


def _clarabel(A: np.ndarray, rho: float):
    n, m = A.shape
    diag = np.ones(m)
    diag[-1] = rho
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = 1e-10
    settings.tol_feas = 1e-10
    settings.tol_ktratio = 1e-8
    settings.max_iter = 500
    # A v >= 1  <=>  -A v + s = -1, s >= 0
    solver = clarabel.DefaultSolver(sp.diags(diag, format="csc"), np.zeros(m), sp.csc_matrix(-A),
                                    -np.ones(n), [clarabel.NonnegativeConeT(n)], settings)
    return solver.solve()


def _lp_feasible_point(A: np.ndarray) -> np.ndarray | None:
    """A point with ``A v >= 1`` from an LP (HiGHS) on column-equilibrated rows, or None."""
    n, m = A.shape
    sigma = _column_scales(A)
    res = scipy.optimize.linprog(np.zeros(m), A_ub=-A / sigma, b_ub=-np.ones(n), bounds=(None, None),
                                 method="highs")
    if res.status != 0:
        return None
    v = np.asarray(res.x) / sigma
    return v if np.isfinite(v).all() and (A @ v).min() > 0 else None


def _farkas_support(A: np.ndarray) -> np.ndarray | None:
    """Support of a basic solution of ``A^T l = 0, sum l = 1, l >= 0`` (dual simplex), or None."""
    n, m = A.shape
    sigma = _column_scales(A)
    A_eq = np.vstack([(A / sigma).T, np.ones((1, n))])
    res = scipy.optimize.linprog(np.zeros(n), A_eq=A_eq, b_eq=np.r_[np.zeros(m), 1.0], bounds=(0, None),
                                 method="highs-ds")
    if res.status != 0:
        return None
    return np.flatnonzero(np.asarray(res.x) > 0)


def _exact_farkas(Xn: np.ndarray, yn: np.ndarray, T: np.ndarray) -> bool:
    """Whether some ``l >= 0`` on ``T`` has ``sum_i l_i y_i (x_i, 1) = 0`` and ``sum l = 1``
    *exactly*: Gaussian elimination in rational arithmetic on the float data as given."""
    k = T.size
    rows = [[Fraction(float(yn[i])) * Fraction(float(Xn[i, j])) for i in T] + [Fraction(0)]
            for j in range(Xn.shape[1])]
    rows.append([Fraction(float(yn[i])) for i in T] + [Fraction(0)])
    rows.append([Fraction(1)] * k + [Fraction(1)])
    pivots, r = [], 0
    for col in range(k):
        piv = next((i for i in range(r, len(rows)) if rows[i][col] != 0), None)
        if piv is None:
            continue
        rows[r], rows[piv] = rows[piv], rows[r]
        inv = 1 / rows[r][col]
        rows[r] = [v * inv for v in rows[r]]
        for i in range(len(rows)):
            if i != r and rows[i][col] != 0:
                f = rows[i][col]
                rows[i] = [a - f * b for a, b in zip(rows[i], rows[r], strict=True)]
        pivots.append(col)
        r += 1
    if any(row[k] != 0 for row in rows[r:]):
        return False  # inconsistent
    lam = [Fraction(0)] * k  # free variables at zero
    for i, col in enumerate(pivots):
        lam[col] = rows[i][k]
    return all(v >= 0 for v in lam)


def _column_scales(A: np.ndarray) -> np.ndarray:
    """Powers of two near each column's largest entry (1 for a zero column)."""
    amax = np.abs(A).max(axis=0)
    return np.where(amax > 0, 2.0 ** np.round(np.log2(np.where(amax > 0, amax, 1.0))), 1.0)


def _kkt_scales(A: np.ndarray, rho: float) -> np.ndarray:
    """Variable scales that equilibrate the columns of the KKT matrix ``[[D, -A^T], [A, 0]]``.

    In ``v~ = sigma v`` the column of variable ``j`` holds ``D_j / sigma_j^2`` and
    ``A_ij / sigma_j``; ``sigma_j`` is the power of two near ``max(max_i |A_ij|, sqrt(D_j))``, so
    the larger of the two is about 1 and neither exceeds it. :func:`_column_scales` looks at
    the constraint column alone, which makes the rank decisions invariant under rescaling a
    feature, but multiplies ``D_j`` by ``1 / max_i |A_ij|^2``: for a column of negligible entries
    (a dead ReLU feature shifted along a computed normal, whose components there are ~1e-32)
    that is ~1e70, and the reduced Hessian of the null-space method, formed and solved in
    float64, loses every other direction to rounding.
    """
    D = np.r_[np.ones(A.shape[1] - 1), rho]
    big = np.maximum(np.abs(A).max(axis=0), np.sqrt(D))
    return np.where(big > 0, 2.0 ** np.round(np.log2(np.where(big > 0, big, 1.0))), 1.0)


class _EQP:
    """``min 1/2 v^T D v  s.t.  A_S v = 1`` by the null-space method on column-equilibrated
    variables, restricted to a linearly independent subset of the rows in ``S``."""

    def __init__(self, A: np.ndarray, rho: float, S: np.ndarray, sigma: np.ndarray):
        m = A.shape[1]
        self.m, self.sigma = m, sigma
        self.D = np.r_[np.ones(m - 1), rho]
        self.Dt = self.D / sigma ** 2
        At = A[S] / sigma
        Q, R, piv = scipy.linalg.qr(At.T, pivoting=True, mode="full")
        diag = np.abs(np.diag(R))
        r = int((diag > 1e-12 * diag[0]).sum()) if diag.size and diag[0] > 0 else 0
        self.S, self.A_S = S, A[S]
        self.ind = S[piv[:r]]
        self.Q1, self.Q2, self.R1 = Q[:, :r], Q[:, r:], R[:r, :r]
        self.H = self.Q2.T @ (self.Dt[:, None] * self.Q2)
        self.K = np.zeros((m + r, m + r))
        self.K[:m, :m] = np.diag(self.D)
        self.K[:m, m:] = -A[self.ind].T
        self.K[m:, :m] = A[self.ind]

    def _solve(self, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
        r1t = r1 / self.sigma
        vp = self.Q1 @ scipy.linalg.solve_triangular(self.R1, r2, trans="T")
        if self.Q2.shape[1]:
            rhs = self.Q2.T @ (r1t - self.Dt * vp)
            t, *_ = scipy.linalg.lstsq(self.H, rhs)
            vt = vp + self.Q2 @ t
        else:
            vt = vp
        lam = scipy.linalg.solve_triangular(self.R1, self.Q1.T @ (self.Dt * vt - r1t))
        return np.r_[vt / self.sigma, lam]

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        """(v, multipliers on ``S``; zero on rows implied by the others), refined in double-double."""
        m, r = self.m, self.ind.size
        rhs = np.r_[np.zeros(m), np.ones(r)]
        sol = self._solve(rhs[:m], rhs[m:])
        for _ in range(_REFINEMENT_STEPS):
            hi, lo, _ = _dot2(self.K, sol)
            res = (rhs - hi) - lo
            corr = self._solve(res[:m], res[m:])
            sol = sol + corr
            if np.abs(corr).max() <= 2.0 ** -53 * np.abs(sol).max():
                break
        lam = np.zeros(self.S.size)
        lam[np.searchsorted(self.S, self.ind)] = sol[m:]
        return sol[:m], lam

    def residual(self, v: np.ndarray, lam: np.ndarray) -> float:
        """Largest relative residual of ``A_S v = 1`` (every row of ``S``, also those left out as
        dependent; each relative to its terms) and of ``D v = A_S^T lam`` (relative to the largest
        term, as in the certificate), in double-double."""
        hi, lo, terms = _dot2(self.A_S, v)
        eq = np.abs((1.0 - hi) - lo) / np.maximum(terms, 1.0)
        shi, slo, sterms = _dot2(np.hstack([np.diag(self.D), -self.A_S.T]), np.r_[v, lam])
        st = float(np.abs(shi + slo).max()) / max(float(sterms.max()), 1e-300)
        return float(max(eq.max(initial=0.0), st))


def _eqp_on(A: np.ndarray, rho: float, S: np.ndarray) -> tuple[_EQP, np.ndarray, np.ndarray]:
    """The :class:`_EQP` on ``np.sort(S)`` and its solution (v, multipliers on ``S``).

    Solved on variables scaled by the constraint columns (:func:`_column_scales`); if that
    solution leaves a residual above :data:`_EQP_TOL`, again on variables scaled by the KKT
    columns (:func:`_kkt_scales`), whose solution is taken when it meets the tolerance.
    """
    S = np.sort(S)
    eqp = _EQP(A, rho, S, _column_scales(A))
    v, lam = eqp.solve()
    if eqp.residual(v, lam) <= _EQP_TOL:
        return eqp, v, lam
    sigma = _kkt_scales(A, rho)
    if np.array_equal(sigma, eqp.sigma):
        return eqp, v, lam
    eqp2 = _EQP(A, rho, S, sigma)
    v2, lam2 = eqp2.solve()
    return (eqp2, v2, lam2) if eqp2.residual(v2, lam2) <= _EQP_TOL else (eqp, v, lam)


def _kkt_on(A: np.ndarray, rho: float, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve min 1/2 v^T D v s.t. A_S v = 1; multipliers in the order of ``np.sort(S)``
    (see :func:`_eqp_on`)."""
    _, v, lam = _eqp_on(A, rho, S)
    return v, lam


def _kkt_ok(A: np.ndarray, rho: float, S: np.ndarray, v: np.ndarray, lam: np.ndarray
            ) -> np.ndarray | None:
    """Full multiplier vector if ``(v, lam)`` on ``S`` satisfies the KKT conditions, else None."""
    n, m = A.shape
    hi, lo, terms = _dot2(A, v)
    viol = ((1.0 - hi) - lo) / np.maximum(terms, 1.0)
    if viol.max() > CERTIFICATE_TOL or np.abs(viol[S]).max() > CERTIFICATE_TOL:
        return None
    if lam.min() < -CERTIFICATE_TOL * max(float(np.abs(lam).max()), 1e-300):
        # degenerate active sets have many multiplier vectors: look for a non-negative one
        sigma = _column_scales(A)
        Dv = np.r_[np.ones(m - 1), rho] * v / sigma   # D~ v~ with v~ = sigma v
        lam, res = scipy.optimize.nnls(A[S].T / sigma[:, None], Dv)
        if res > CERTIFICATE_TOL * max(float(np.linalg.norm(Dv)), 1e-300):
            return None
    full = np.zeros(n)
    full[S] = np.maximum(lam, 0.0)
    return full


def _primal_active_set(A: np.ndarray, rho: float, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Primal active-set method (Nocedal & Wright, Alg. 16.3) from a feasible ``v``."""
    n, m = A.shape
    W = np.array([int(np.argmin(A @ v))])
    steps = max(_MAX_ACTIVE_SET_STEPS, 3 * (n + m))
    for _ in range(steps):
        v_eq, lam = _kkt_on(A, rho, W)
        p = v_eq - v
        if np.abs(p).max() <= 1e-14 * max(float(np.abs(v_eq).max()), 1e-300):
            full = _kkt_ok(A, rho, W, v_eq, lam)
            if full is not None:
                return v_eq, full
            if lam.min() < 0:
                W = np.delete(W, int(np.argmin(lam)))
            else:  # rounding drift: a constraint outside W is (slightly) violated
                hi, lo, terms = _dot2(A, v_eq)
                worst = int(np.argmax(((1.0 - hi) - lo) / np.maximum(terms, 1.0)))
                if worst in W:
                    break
                W = np.sort(np.append(W, worst))
            v = v_eq
            continue
        Ap = A @ p
        slack = np.maximum(A @ v - 1.0, 0.0)
        block = (Ap < 0) & ~np.isin(np.arange(n), W)
        step, i_block = 1.0, -1
        if block.any():
            ratios = slack[block] / -Ap[block]
            k = int(np.argmin(ratios))
            if ratios[k] < 1.0:
                step, i_block = float(ratios[k]), int(np.flatnonzero(block)[k])
        v = v + step * p
        if i_block >= 0:
            W = np.sort(np.append(W, i_block))
    raise CertificationError("the active-set method did not reach the KKT conditions")


def _active_set(A: np.ndarray, rho: float, S: np.ndarray, start) -> tuple[np.ndarray, np.ndarray]:
    """Exact KKT solution: the interior-point guess ``S`` if it is right, else the primal
    active-set method from the strictly feasible point ``start()``."""
    S = np.unique(S)
    if S.size:
        v, lam = _kkt_on(A, rho, S)
        full = _kkt_ok(A, rho, S, v, lam)
        if full is not None:
            return v, full
    v0 = start()
    return _primal_active_set(A, rho, v0 / float((A @ v0).min()))


def _measures(A: np.ndarray, Dd: np.ndarray, v: np.ndarray, lam: np.ndarray) -> tuple[float, float, float]:
    """(primal infeasibility, dual infeasibility, relative gap) of (v, lam) for rows A."""
    hi, lo, terms = _dot2(A, v)
    slack_m1 = (hi - 1.0) + lo  # y_i f_i - 1
    primal = float(np.max(np.maximum(-slack_m1, 0.0) / np.maximum(terms, 1.0)))
    S = np.flatnonzero(lam)
    AT = A[S].T
    shi, slo, sterms = _dot2(np.hstack([np.diag(Dd), -AT]), np.r_[v, lam[S]])
    dual = float(np.abs(shi + slo).max() / max(float(sterms.max()), 1e-300))
    lsum = math.fsum(lam)
    dual = max(dual, float(max(0.0, -lam.min())) / max(lsum, 1e-300))
    gap = abs(math.fsum(lam[S] * slack_m1[S])) / max(math.fsum(lam[S] * np.maximum(terms[S], 1.0)), 1e-300)
    return primal, dual, gap


def _dot_dd(M: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``M @ (hi + lo)`` for a double-double vector: (hi, lo, sum of |terms|) as :func:`_dot2`."""
    h, low, terms = _dot2(M, hi)
    return h, low + M @ lo, terms


def _matmul2(M: np.ndarray, N: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``M @ N`` in double-double: (hi, lo), summed over the inner index as :func:`_dot2`."""
    s = np.zeros((M.shape[0], N.shape[1]))
    c = np.zeros_like(s)
    for k in range(M.shape[1]):
        p, ep = _two_prod(M[:, k:k + 1], N[k:k + 1, :])
        s, es = _two_sum(s, p)
        c += ep + es
    return s, c


def _mv_dd(Mh: np.ndarray, Ml: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """``(Mh + Ml) @ (hi + lo)`` for a double-double matrix and vector, to about ``eps^2`` times
    its terms: ``(h, l)`` with ``h + l`` the product (not normalised)."""
    h, low, _ = _dot2(Mh, hi)
    return h, low + (Ml @ hi + Mh @ lo)


def _add_dd(hi: np.ndarray, lo: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(hi + lo) + d`` as a normalised double-double (``hi`` is the rounded sum)."""
    s, e = _two_sum(hi, d)
    e = e + lo
    h = s + e
    return h, e - (h - s)


def _refine_in_data_coordinates(co: _Coords, Ao: np.ndarray, Dd: np.ndarray, v_hat: np.ndarray,
                                lam_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The solution on the active set, refined for the data as given.

    The solver's rows ``A`` are the data's ``Ao = y (x, 1)`` in other coordinates only up to
    rounding: the rotation of the cross-entropy limit mixes features, so each point moves by
    about ``eps`` times the spread of the *whole* data, which for a feature of much smaller
    spread is a large relative change, and ``w`` on it (large, ~1 / spread) inherits it. The
    backward-error certificate, relative to terms ``|w_j x_ij| ~ 1 / spread``, cannot see it.

    So the KKT equations on the active set are solved again for the data as given, in the
    solver's variables ``v_hat`` but with the change of variables ``v = T v_hat`` taken
    *exactly* for the float matrix ``T`` (the linear map :meth:`_Coords.to_original`): rows
    ``Ao_S T`` and Hessian ``s^2 T^T D T`` formed in double-double (``l = l_hat / s^2``). Their
    residuals are computed in double-double per transformed component (mapping a data-space
    residual through ``T^T`` in float would spill ``eps`` of the cheap bias direction into the
    others, which at a tiny bias weight is not small), corrected with the factorised system in
    the solver's coordinates (:class:`_EQP`), and the iterate is kept in double-double. It
    converges at the rate of the relative perturbation (~1e-6 in the worst case seen).

    The iteration keeps the iterate of smallest merit (constraint residual relative to 1,
    stationarity relative to its terms) and stops when the merit stops decreasing. The active
    set is the support of the solver's multipliers; if the refined multipliers on it are not
    all >= 0 or a constraint of the data is violated, the rows the solver's answer meets with
    equality (a degenerate optimum can have more active rows than float64 multipliers show)
    are tried instead. If neither passes, the forward-error estimate returned is ``inf``: the
    certificate then refuses the answer.

    Returns ``(v_hi, v_lo, multipliers, correction)``: ``(w, b)`` as a double-double, the full
    multiplier vector and ``|T dv_hat|_inf / |v|_inf`` of the correction computed at the
    returned iterate: an estimate of its relative forward error (``inf`` if none could be
    computed).
    """
    n, m = Ao.shape
    s2 = co.s ** 2
    lam = lam_hat / s2
    T = np.column_stack([np.r_[co.to_original(e)] for e in np.eye(m)])   # v = T v_hat
    unrefined = (T @ v_hat, np.zeros(m), lam, math.inf)
    if not (np.isfinite(T).all() and np.isfinite(lam).all() and np.isfinite(v_hat).all()
            and math.isfinite(s2) and s2 > 0):
        return unrefined
    hi, lo, terms = _dot2(co.A, v_hat)
    equal = np.abs((hi - 1.0) + lo) <= CERTIFICATE_TOL * np.maximum(terms, 1.0)
    candidates = [np.flatnonzero(lam_hat > 0), np.flatnonzero((lam_hat > 0) | equal)]
    if candidates[1].size == candidates[0].size:
        candidates.pop()
    for S in candidates:
        if S.size == 0:
            continue
        v_hi, v_lo, lam_S, correction = _refine_on(co, Ao, Dd, T, v_hat, lam_hat, S)
        if lam_S is None:
            continue
        h, low, _ = _dot_dd(Ao, v_hi, v_lo)
        fm1 = (h - 1.0) + low
        if fm1.min() >= -CERTIFICATE_TOL and np.abs(fm1[lam_S > 0]).max(initial=0.0) <= CERTIFICATE_TOL:
            return v_hi, v_lo, lam_S, correction
    return unrefined


def _refine_on(co: _Coords, Ao: np.ndarray, Dd: np.ndarray, T: np.ndarray, v_hat: np.ndarray,
               lam_hat: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float]:
    """:func:`_refine_in_data_coordinates` on the active set ``S``; multipliers None unless >= 0."""
    n, m = Ao.shape
    s2 = co.s ** 2
    eqp, _, _ = _eqp_on(co.A, co.rho, S)
    ind = eqp.ind
    Ah, Al = _matmul2(Ao[ind], T)                      # the exact rows in the solver's variables
    Hh, Hl = _matmul2(T.T * (Dd * s2), T)              # s^2 T^T D T (Dd * s2 is exact)
    u_hi, u_lo = v_hat.copy(), np.zeros(m)
    l_hi, l_lo = lam_hat[ind].copy(), np.zeros(ind.size)
    absA, absH = np.abs(Ah), np.abs(Hh)
    best = None        # (u_hi, u_lo, l_hi, l_lo, merit, correction) of the best iterate so far
    for _ in range(_DATA_REFINEMENT_STEPS + 1):
        h1, e1 = _mv_dd(Ah.T, Al.T, l_hi, l_lo)
        h2, e2 = _mv_dd(Hh, Hl, u_hi, u_lo)
        r1 = (h1 - h2) + (e1 - e2)                      # A~^T l_hat - H v_hat
        h, low = _mv_dd(Ah, Al, u_hi, u_lo)
        r2 = (1.0 - h) - low                            # 1 - A~ v_hat
        # merit: the constraints relative to 1, stationarity relative to its terms
        terms = absA.T @ np.abs(l_hi) + absH @ np.abs(u_hi)
        merit = max(float(np.abs(r2).max()), float((np.abs(r1) / np.maximum(terms, 1e-300)).max()))
        if not math.isfinite(merit) or (best is not None and not merit < best[4]):
            break                                       # keep the best iterate
        sol = eqp._solve(r1, r2)
        du, dl = sol[:m], sol[m:]
        vmax = float(np.abs(T @ u_hi).max())
        step = float(np.abs(T @ du).max()) / vmax if vmax > 0 else math.inf
        if not (np.isfinite(du).all() and np.isfinite(dl).all()):
            step = math.inf
        best = (u_hi, u_lo, l_hi, l_lo, merit, step)
        if not step > 2.0 ** -100 or merit == 0.0:
            break
        u_hi, u_lo = _add_dd(u_hi, u_lo, du)
        l_hi, l_lo = _add_dd(l_hi, l_lo, dl)
    if best is None:
        return T @ v_hat, np.zeros(m), None, math.inf
    u_hi, u_lo, l_hi, l_lo, _, correction = best
    h, low = _mv_dd(T, np.zeros_like(T), u_hi, u_lo)
    v_hi, v_lo = _add_dd(h, low, np.zeros(m))
    lam = np.zeros(n)
    lam[ind] = (l_hi + l_lo) / s2
    if lam.min() < -CERTIFICATE_TOL * max(float(lam.max()), 1e-300):
        return v_hi, v_lo, None, correction
    return v_hi, v_lo, np.maximum(lam, 0.0), correction


def _to_numpy(X, y) -> tuple[np.ndarray, np.ndarray]:
    Xt = check_matrix(X, "X", dtype=torch.float64)
    yt = signed_labels(y, "y", dtype=torch.float64)
    check_same_length(Xt, yt, "X", "y")
    check_both_classes(yt, "y")
    return Xt.detach().cpu().numpy(), yt.detach().cpu().numpy()


def _solve(Xn: np.ndarray, yn: np.ndarray, bias_weight: float
           ) -> tuple[_Coords, np.ndarray, np.ndarray, str]:
    """Exact solution in well-conditioned coordinates: (coords, v_hat, multipliers, status)."""
    co = _coordinates(Xn, yn, bias_weight)
    A, rho = co.A, co.rho
    sol = _clarabel(A, rho)
    status = str(sol.status)
    z = np.asarray(sol.z, dtype=np.float64)
    infeasible = sol.status in (clarabel.SolverStatus.PrimalInfeasible,
                                clarabel.SolverStatus.AlmostPrimalInfeasible)
    if infeasible:
        S0 = np.flatnonzero(z > 1e-8 * max(float(np.abs(z).max()), 1e-300))
        v0 = None
    else:
        v0 = np.asarray(sol.x, dtype=np.float64)
        slack = A @ v0 - 1.0
        # strict complementarity split of the interior-point iterate: active where z_i > s_i
        S0 = np.flatnonzero(z > np.maximum(slack, 0.0))
    if v0 is not None and not (np.isfinite(v0).all() and (A @ v0).min() > 0):
        v0 = None

    def start() -> np.ndarray:
        """A strictly feasible point when the interior-point iterate is not one."""
        if v0 is not None:
            return v0
        if bias_weight != 0.0:
            # both problems have the same feasible set: start from the optimal separator
            # (well-conditioned coordinates; raises NotSeparableError when certified)
            co0, v_free, _, _ = _solve(Xn, yn, 0.0)
            return co.from_centred(v_free[:-1] / co0.s, float(v_free[-1]))
        T = _farkas_support(A)
        if T is not None and _exact_farkas(Xn, yn, T):
            raise NotSeparableError(
                "X, y are not linearly separable: no hyperplane puts every example on its own side "
                f"(Farkas certificate on {T.size} points, verified in exact rational arithmetic)")
        v = _lp_feasible_point(A)
        if v is None:
            raise CertificationError("neither a separating hyperplane nor an exact Farkas "
                                     "certificate of non-separability was found")
        return v

    try:
        v_hat, lam_hat = _active_set(A, rho, S0, start)
    except NotSeparableError:
        raise
    except CertificationError as err:
        raise CertificationError(f"no certified separator (solver status {status}): {err}") from None
    return co, v_hat, lam_hat, status


def _hard_margin(X, y, bias_weight: float) -> Separator:
    # over/underflow at extreme scales shows up as non-finite certificates, which are refused
    with np.errstate(all="ignore"):
        return _hard_margin_impl(X, y, bias_weight)


def _hard_margin_impl(X, y, bias_weight: float) -> Separator:
    Xn, yn = _to_numpy(X, y)
    amax = float(np.abs(Xn).max())
    if amax > _MAX_ABS_X:
        raise CertificationError(
            f"X has entries up to {amax:.1e}; the certified solver works with |X| <= 2^500 "
            "(about 3e150), where its double-double arithmetic cannot overflow: rescale X")
    n, d = Xn.shape
    co, v_hat, lam_hat, status = _solve(Xn, yn, bias_weight)
    A, rho = co.A, co.rho
    Dd_hat = np.r_[np.ones(d), rho]
    m_hat = _measures(A, Dd_hat, v_hat, lam_hat)

    Ao = yn[:, None] * np.hstack([Xn, np.ones((n, 1))])
    Dd = np.r_[np.ones(d), bias_weight]
    v_hi, v_lo, lam, forward = _refine_in_data_coordinates(co, Ao, Dd, v_hat, lam_hat)
    w, b = v_hi[:d].copy(), float(v_hi[d])
    m_orig = _measures(Ao, Dd, v_hi, lam)
    # forward check: the constraints of the data as given, for the unrounded (w, b), relative to 1
    hi, lo, _ = _dot_dd(Ao, v_hi, v_lo)
    fm1 = (hi - 1.0) + lo
    constraint = max(float(np.abs(fm1[lam > 0]).max(initial=0.0)), float(max(0.0, -fm1.min())))
    # NaN (from overflow or underflow) must fail the checks below, so no max(a, nan) == a
    primal, dual, gap = (max(a, c) if a == a and c == c else math.nan
                         for a, c in zip(m_hat, m_orig, strict=True))
    names = ("primal infeasibility", "dual infeasibility", "relative duality gap",
             "active-constraint residual in the data's coordinates", "forward-error estimate")
    failed = [f"{nm_} {val:.1e}" for nm_, val in zip(names, (primal, dual, gap, constraint, forward),
                                                      strict=True)
              if not val <= CERTIFICATE_TOL]
    if failed:
        raise CertificationError(
            f"could not certify the separator (solver status {status}): {', '.join(failed)} "
            f"exceed the tolerance {CERTIFICATE_TOL:.0e}")
    wnorm = math.hypot(*w)  # no overflow in the sum of squares
    if not (np.isfinite(w).all() and math.isfinite(b) and np.isfinite(lam).all()
            and 0.0 < wnorm < math.inf and 1.0 / wnorm > 0.0):
        raise CertificationError("the separator or its multipliers are outside the float64 range "
                                 "for data at this scale: rescale X")
    primal_obj = 0.5 * math.fsum(np.r_[w * w, bias_weight * b * b])
    S = np.flatnonzero(lam)
    ghi, glo, _ = _dot2(Ao[S].T, lam[S])
    g = ghi + glo
    dual_obj = math.fsum(lam) - 0.5 * math.fsum(g[:d] ** 2) - 0.5 * bias_weight * g[d] ** 2
    return Separator(w=torch.from_numpy(w.copy()), b=float(b), margin=1.0 / wnorm,
                     support=torch.from_numpy(S), duality_gap=abs(primal_obj - dual_obj),
                     polished=True, multipliers=torch.from_numpy(lam),
                     primal_infeasibility=primal, dual_infeasibility=dual, relative_gap=gap,
                     constraint_residual=constraint, forward_error=forward)


def max_margin_separator(X, y) -> Separator:
    """The hard-margin SVM with a free (unpenalised) bias: the optimal linear separator.

    Its geometric margin is the largest achievable by any hyperplane, and it is invariant
    under translations of the data. The result is certified (see the module docstring and
    :class:`Separator`): primal and dual feasibility and the duality gap hold to
    :data:`CERTIFICATE_TOL` relative to the data's own scale.

    Parameters
    ----------
    X : array-like, shape (n, d)
        Real inputs (a tensor that requires grad is detached).
    y : array-like, shape (n,)
        Labels in {-1, +1} or {0, 1}.

    Returns
    -------
    Separator
        ``w``, ``b``, the geometric ``margin`` (= 1/||w||), support vectors, multipliers and
        the certificate.

    Raises
    ------
    NotSeparableError
        (a ValueError) if the data are certified not linearly separable.
    CertificationError
        (a RuntimeError) if no separator could be certified optimal.
    ValueError
        On bad shapes, NaN/inf, complex ``X``, bad labels or a missing class.

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
    from the origin. The result is certified like :func:`max_margin_separator`'s.

    Parameters
    ----------
    X : array-like, shape (n, d)
        Real inputs (a tensor that requires grad is detached).
    y : array-like, shape (n,)
        Labels in {-1, +1} or {0, 1}.

    Returns
    -------
    Separator
        ``w``, ``b`` (the scale of the QP solution, ``min_i y_i(w.x_i+b) = 1``), the geometric
        input-space ``margin``, support vectors, multipliers and the certificate.

    Raises
    ------
    NotSeparableError
        (a ValueError) if the data are certified not linearly separable.
    CertificationError
        (a RuntimeError) if no separator could be certified optimal.
    ValueError
        On bad shapes, NaN/inf, complex ``X``, bad labels or a missing class.

    Examples
    --------
    >>> sep = cross_entropy_limit([[3.0, 1.0], [5.0, 1.0]], [-1, 1])
    >>> round(sep.margin ** -2, 10)  # margin = 1/sqrt(5)
    5.0
    """
    return _hard_margin(X, y, bias_weight=1.0)

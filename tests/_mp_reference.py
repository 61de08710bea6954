"""An independent exact reference for the hard-margin problems, in mpmath (50 digits).

Solves ``min 1/2 (||w||^2 + beta b^2)  s.t.  y_i (w . x_i + b) >= 1`` for the float64 data
*as given* (every float converts exactly to an mpf), in 50-digit arithmetic, by Wolfe's
minimum-norm-point algorithm (an exact, finite active-set method): for beta = 1 the problem
is the minimum-norm point of conv{y_i (x_i, 1)}, for beta = 0 that of conv(X+) - conv(X-).
The answer is returned only after the KKT conditions are verified in mpmath (multipliers
>= 0, every constraint >= 1, stationarity and complementarity to 1e-30 relative), which
proves optimality for this convex QP. Nothing here calls ``lowrank``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mpmath
import numpy as np

DPS = 50


@dataclass
class Reference:
    w: list            # mpf
    b: object          # mpf
    margin: object     # mpf, 1 / ||w||
    support: list
    steps: int


class ReferenceFailed(RuntimeError):
    pass


class NotSeparable(ReferenceFailed):
    pass


def _wolfe(Xm, ym, beta, max_iter: int = 5000):
    """Wolfe's minimum-norm-point algorithm (finite): (point, atoms, weights).

    beta = 1: the minimum-norm point of conv{y_i (x_i, 1)} (the SVM through the origin of
    the augmented points). beta = 0: the minimum-norm point of conv(X+) - conv(X-), whose atoms
    are pairs (i, j) of a positive and a negative point.
    """
    n, d = len(Xm), len(Xm[0])
    pos = [i for i in range(n) if ym[i] > 0]
    neg = [i for i in range(n) if ym[i] < 0]
    if beta:
        def point(a):
            return [ym[a] * v for v in Xm[a]] + [ym[a]]

        def oracle(x):
            return min(range(n), key=lambda i: ym[i] * (mpmath.fdot(x[:d], Xm[i]) + x[d]))
        first = 0
    else:
        def point(a):
            i, j = a
            return [Xm[i][c] - Xm[j][c] for c in range(d)]

        def oracle(x):
            dots = [mpmath.fsum(x[c] * Xm[i][c] for c in range(d)) for i in range(n)]
            return (min(pos, key=lambda i: dots[i]), max(neg, key=lambda i: dots[i]))
        first = (pos[0], neg[0])
    dot = mpmath.fdot
    atoms, wts = [first], [mpmath.mpf(1)]
    pts = {first: point(first)}
    x = list(pts[first])
    big = max(dot(p, p) for p in pts.values())
    eps = mpmath.mpf(10) ** (-(mpmath.mp.dps - 20))
    for _ in range(max_iter):
        q = oracle(x)
        if q not in pts:
            pts[q] = point(q)
        big = max(big, dot(pts[q], pts[q]))
        if dot(x, x) <= mpmath.mpf(10) ** (-(mpmath.mp.dps - 8)) * big:
            raise NotSeparable("the hulls of the two classes meet")
        if dot(x, x) - dot(x, pts[q]) <= eps * dot(x, x) or q in atoms:
            break
        atoms.append(q)
        wts.append(mpmath.mpf(0))
        while True:  # minor cycle
            k = len(atoms)
            M = mpmath.zeros(k + 1, k + 1)
            rhs = mpmath.zeros(k + 1, 1)
            for a in range(k):
                for c in range(k):
                    M[a, c] = dot(pts[atoms[a]], pts[atoms[c]])
                M[a, k] = M[k, a] = 1
            rhs[k] = 1
            alpha = mpmath.lu_solve(M, rhs)
            alpha = [alpha[a] for a in range(k)]
            if all(v > 0 for v in alpha):
                wts = alpha
                break
            theta = min(wts[a] / (wts[a] - alpha[a]) for a in range(k) if alpha[a] <= 0)
            wts = [theta * alpha[a] + (1 - theta) * wts[a] for a in range(k)]
            keep = [a for a in range(k) if wts[a] > eps]
            atoms = [atoms[a] for a in keep]
            wts = [wts[a] for a in keep]
            s_ = mpmath.fsum(wts)
            wts = [v / s_ for v in wts]
        x = [mpmath.fsum(wts[a] * pts[atoms[a]][c] for a in range(len(atoms))) for c in range(len(x))]
    else:
        raise ReferenceFailed("Wolfe's algorithm did not finish")
    return x, atoms, wts


def hard_margin_reference(X, y, beta: float) -> Reference:
    """The exact solution for float data ``X`` (n, d), labels ``y`` in {-1, +1}.

    beta = 1: ``v = u / ||u||^2`` for the minimum-norm point ``u = sum_i a_i y_i (x_i, 1)`` of
    the augmented points, multipliers ``a_i / ||u||^2``. beta = 0: ``w = 2 u / ||u||^2`` for
    the minimum-norm point ``u`` of conv(X+) - conv(X-); the bias from the active constraints.
    Raises NotSeparable when the hulls meet, ReferenceFailed when the KKT check fails.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = X.shape
    # 50 digits plus what cancellation costs in the Gram matrix of data far from the origin
    ratio = float(np.abs(X).max() / max(np.ptp(X, axis=0).max(), 1e-300))
    dps = DPS + 2 * max(0, math.ceil(math.log10(ratio)))
    with mpmath.workdps(dps):
        Xm = [[mpmath.mpf(float(v)) for v in row] for row in X]
        ym = [mpmath.mpf(float(v)) for v in y]
        x, atoms, wts = _wolfe(Xm, ym, beta)
        nx = mpmath.fdot(x, x)
        lam = [mpmath.mpf(0)] * n
        if beta:
            w, b = [v / nx for v in x[:d]], x[d] / nx
            for a, c in zip(atoms, wts):
                lam[a] += c / nx
        else:
            w = [2 * v / nx for v in x]
            for (i, j), c in zip(atoms, wts):
                lam[i] += 2 * c / nx
                lam[j] += 2 * c / nx
            S = [i for i in range(n) if lam[i] > 0]
            b = mpmath.fsum(ym[i] - mpmath.fdot(w, Xm[i]) for i in S) / len(S)
        tol = mpmath.mpf(10) ** (-30)
        S = [i for i in range(n) if lam[i] > 0]
        f = [ym[i] * (mpmath.fdot(w, Xm[i]) + b) for i in range(n)]
        scale = [mpmath.fsum(abs(w[j] * Xm[i][j]) for j in range(d)) + abs(b) for i in range(n)]
        lsum = mpmath.fsum(lam)
        checks = {
            "primal": all(f[i] - 1 >= -tol * max(scale[i], 1) for i in range(n)),
            "complementarity": all(abs(f[i] - 1) <= tol * max(scale[i], 1) for i in S),
            "bias": abs(beta * b - mpmath.fsum(lam[i] * ym[i] for i in S)) <= tol * (abs(b) + lsum),
        }
        for j in range(d):
            g = mpmath.fsum(lam[i] * ym[i] * Xm[i][j] for i in S)
            sc = abs(w[j]) + mpmath.fsum(abs(lam[i] * Xm[i][j]) for i in S)
            checks[f"stationarity {j}"] = abs(w[j] - g) <= tol * max(sc, tol)
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ReferenceFailed(f"KKT check failed: {bad}")
        margin = 1 / mpmath.sqrt(mpmath.fdot(w, w))
        return Reference(w=w, b=b, margin=margin, support=S, steps=len(atoms))

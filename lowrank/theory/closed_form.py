"""Closed-form margins derived with sympy.

Families
--------
``line_pair``
    Classes at ``(a, c)`` (label -1) and ``(a + 2g, c)`` (label +1), on the line ``x2 = c``.
``two_points``
    Any two points ``p`` (label -1) and ``q`` (label +1) in ``R^2``.

For two points both constraints of the hard-margin problem are active, so the solution
is found from the KKT equations ``v = l_q z_q - l_p z_p``, ``v . z_q = 1``, ``v . z_p = -1``
with ``z = (x, 1)`` (cross-entropy limit: bias penalised) or from the classical result
``w = 2 (q - p) / ||q - p||^2`` (free bias). Sympy solves and simplifies the equations;
the input-space margin is ``1 / ||w||`` in both cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

__all__ = ["ClosedFormMargins", "line_pair_margins", "two_point_margins", "line_pair_ratio"]


@dataclass(frozen=True)
class ClosedFormMargins:
    """Symbolic margins of one family and a way to evaluate them.

    Attributes
    ----------
    symbols : tuple of sympy.Symbol
        The family's parameters, in the order :meth:`values` takes them.
    optimal_margin : sympy.Expr
        Margin of the free-bias hard-margin SVM.
    cross_entropy_margin : sympy.Expr
        Input-space margin of the cross-entropy limit (augmented-point SVM).
    cross_entropy_w : sympy.Matrix
        Weights of the cross-entropy limit (QP scale).
    cross_entropy_b : sympy.Expr
        Bias of the cross-entropy limit (QP scale).

    Examples
    --------
    >>> m = line_pair_margins()
    >>> m.ratio
    (c**2 + 1)/sqrt(c**2*(a + g)**2 + (c**2 + 1)**2)
    """

    symbols: tuple
    optimal_margin: sp.Expr
    cross_entropy_margin: sp.Expr
    cross_entropy_w: sp.Matrix
    cross_entropy_b: sp.Expr

    @property
    def ratio(self) -> sp.Expr:
        """Cross-entropy margin divided by the optimal margin, simplified."""
        return sp.simplify(self.cross_entropy_margin / self.optimal_margin)

    def values(self, *params: float) -> dict[str, float]:
        """Evaluate the margins and their ratio at numeric parameter values.

        Parameters
        ----------
        *params : float
            One value per entry of :attr:`symbols`.

        Returns
        -------
        dict
            ``optimal_margin``, ``cross_entropy_margin``, ``ratio`` as floats.

        Raises
        ------
        ValueError
            If the number of values does not match :attr:`symbols`.
        """
        if len(params) != len(self.symbols):
            raise ValueError(f"params must give {len(self.symbols)} values "
                             f"({', '.join(map(str, self.symbols))}), got {len(params)}")
        subs = dict(zip(self.symbols, params, strict=True))
        opt = float(self.optimal_margin.evalf(30, subs=subs))
        ce = float(self.cross_entropy_margin.evalf(30, subs=subs))
        return {"optimal_margin": opt, "cross_entropy_margin": ce, "ratio": ce / opt}


def _augmented_svm_two_points(p: sp.Matrix, q: sp.Matrix) -> tuple[sp.Matrix, sp.Expr]:
    """KKT solution of the augmented hard-margin SVM for p (label -1) and q (label +1)."""
    zp = p.col_join(sp.Matrix([1]))
    zq = q.col_join(sp.Matrix([1]))
    lp, lq = sp.symbols("lambda_p lambda_q")
    v = lq * zq - lp * zp
    sol = sp.solve([sp.Eq(v.dot(zq), 1), sp.Eq(v.dot(zp), -1)], [lp, lq], dict=True)[0]
    v = sp.simplify(v.subs(sol))
    return v[:-1, :], v[-1]


@cache
def line_pair_margins() -> ClosedFormMargins:
    """Margins for ``(a, c) -> -1`` and ``(a + 2g, c) -> +1`` (``g > 0``).

    Returns
    -------
    ClosedFormMargins
        ``optimal_margin = g`` and
        ``cross_entropy_margin = g / sqrt(1 + c^2 (a + g)^2 / (1 + c^2)^2)``
        (sympy's form may differ but is equal), in the symbols ``(a, g, c)``.

    Examples
    --------
    >>> m = line_pair_margins()
    >>> round(m.values(3, 1, 1)["cross_entropy_margin"] ** -2, 12)
    5.0
    """
    a, c = sp.symbols("a c", real=True)
    g = sp.symbols("g", positive=True)
    p = sp.Matrix([a, c])
    q = sp.Matrix([a + 2 * g, c])
    w, b = _augmented_svm_two_points(p, q)
    ce = sp.simplify(1 / sp.sqrt(sp.simplify(w.dot(w))))
    return ClosedFormMargins(symbols=(a, g, c), optimal_margin=g, cross_entropy_margin=ce,
                             cross_entropy_w=w, cross_entropy_b=b)


@cache
def two_point_margins() -> ClosedFormMargins:
    """Margins for any two points ``p = (p1, p2) -> -1`` and ``q = (q1, q2) -> +1``.

    Returns
    -------
    ClosedFormMargins
        In the symbols ``(p1, p2, q1, q2)``; ``optimal_margin = ||q - p|| / 2``.

    Examples
    --------
    >>> round(two_point_margins().values(3, 1, 5, 1)["ratio"] ** -2, 12)
    5.0
    """
    p1, p2, q1, q2 = sp.symbols("p1 p2 q1 q2", real=True)
    p = sp.Matrix([p1, p2])
    q = sp.Matrix([q1, q2])
    w, b = _augmented_svm_two_points(p, q)
    ce = 1 / sp.sqrt(sp.simplify(w.dot(w)))
    opt = sp.sqrt((q - p).dot(q - p)) / 2
    return ClosedFormMargins(symbols=(p1, p2, q1, q2), optimal_margin=opt,
                             cross_entropy_margin=ce, cross_entropy_w=w, cross_entropy_b=b)


def line_pair_ratio(center: float, offset: float) -> float:
    """Closed-form ratio (cross-entropy limit / optimal margin) of two points on a line.

    For ``(a, c) -> -1`` and ``(a + 2g, c) -> +1`` the ratio depends only on the midpoint
    ``m = a + g`` (here ``center``) and the height ``c`` (here ``offset``):
    ``(c^2 + 1) / sqrt(c^2 m^2 + (c^2 + 1)^2)`` (evaluated from the sympy expression).

    Parameters
    ----------
    center : float
        Midpoint ``m = a + g`` of the two points along the line.
    offset : float
        Height ``c`` of the line (its distance from the origin).

    Returns
    -------
    float
        Cross-entropy limit margin divided by the optimal margin, in (0, 1].

    Examples
    --------
    >>> round(line_pair_ratio(4.0, 1.0) ** -2, 12)
    5.0
    """
    return line_pair_margins().values(center - 1.0, 1.0, offset)["ratio"]

"""Closed-form margins derived with sympy.

Families
--------
``line_pair``
    Classes at ``(a, c)`` (label -1) and ``(a + 2g, c)`` (label +1), on the line ``x2 = c``.
``two_points``
    Any two points ``p`` (label -1) and ``q`` (label +1) in ``R^2``.

Free bias: both points are always support vectors, ``w = 2 (q - p) / ||q - p||^2`` and the
margin is ``||q - p|| / 2``.

Cross-entropy limit: the hard-margin SVM through the origin of the augmented points
``z_p = (p, 1)``, ``z_q = (q, 1)``, ``min ||v||^2`` subject to ``v . z_q >= 1`` and
``-v . z_p >= 1``. Its KKT solution depends on which constraints are active, and sympy
derives each case with its condition:

* ``q only``: ``v = z_q / ||z_q||^2``, valid when p's constraint holds there,
  ``-v . z_p >= 1``, i.e. ``-z_p . z_q >= ||z_q||^2``;
* ``p only``: ``v = -z_p / ||z_p||^2``, valid when ``-z_p . z_q >= ||z_p||^2``;
* ``both``: ``v = l_q z_q - l_p z_p`` with ``v . z_q = 1``, ``v . z_p = -1``, valid when
  both multipliers ``l_p, l_q >= 0``, which is exactly when neither single case holds
  strictly.

(The two single cases cannot hold together: that would need ``-z_p . z_q >= ||z_p|| ||z_q||``,
i.e. ``z_p = -z_q``, impossible as both end in 1.) The input-space margin is ``1 / ||w||``
in every case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, cached_property

import mpmath
import sympy as sp

__all__ = ["ActiveSetCase", "ClosedFormMargins", "line_pair_margins", "two_point_margins",
           "line_pair_ratio"]


@dataclass(frozen=True)
class ActiveSetCase:
    """One case of the cross-entropy-limit solution: which points are support vectors.

    Attributes
    ----------
    name : str
        ``"q only"``, ``"p only"`` or ``"both"``.
    condition : sympy.Boolean
        Where the case holds (``True`` for the last case: everywhere the others do not).
    w : sympy.Matrix
        Weights (QP scale).
    b : sympy.Expr
        Bias (QP scale).
    margin : sympy.Expr
        Input-space margin ``1 / ||w||``.

    Examples
    --------
    >>> case = two_point_margins().case("p only")
    >>> case.condition
    -p1**2 - p1*q1 - p2**2 - p2*q2 - 2 >= 0
    >>> case.w.T, case.b
    (Matrix([[-p1/(p1**2 + p2**2 + 1), -p2/(p1**2 + p2**2 + 1)]]), -1/(p1**2 + p2**2 + 1))
    """

    name: str
    condition: sp.Basic
    w: sp.Matrix
    b: sp.Expr
    margin: sp.Expr


@dataclass(frozen=True)
class ClosedFormMargins:
    """Symbolic margins of one family and a way to evaluate them.

    Attributes
    ----------
    symbols : tuple of sympy.Symbol
        The family's parameters, in the order :meth:`values` takes them.
    optimal_margin : sympy.Expr
        Margin of the free-bias hard-margin SVM.
    cases : tuple of ActiveSetCase
        The cross-entropy-limit solution case by case, in the order of the piecewise forms.
    domain : sympy.Relational
        Where the parameters are valid, ``expr > 0`` or ``expr >= 0`` (``g > 0``;
        ``||q - p||^2 > 0``).
    domain_text : str
        The same in words, for error messages.

    Examples
    --------
    >>> m = line_pair_margins()
    >>> [c.name for c in m.cases]
    ['q only', 'p only', 'both']
    >>> m.case("both").margin
    g*(c**2 + 1)/sqrt(c**2*(a + g)**2 + (c**2 + 1)**2)
    >>> m.case("q only").margin
    (c**2 + (a + 2*g)**2 + 1)/sqrt(c**2 + (a + 2*g)**2)
    >>> m.active_case(3, 1, 1), m.active_case(-7.5, 5, 0)
    ('both', 'q only')
    """

    symbols: tuple
    optimal_margin: sp.Expr
    cases: tuple
    domain: sp.Basic
    domain_text: str

    def case(self, name: str) -> ActiveSetCase:
        """The case called ``name`` (``"q only"``, ``"p only"``, ``"both"``)."""
        for c in self.cases:
            if c.name == name:
                return c
        raise ValueError(f"name must be one of {[c.name for c in self.cases]}, got {name!r}")

    def _piecewise(self, get) -> sp.Expr:
        return sp.Piecewise(*[(get(c), c.condition) for c in self.cases])

    @property
    def cross_entropy_margin(self) -> sp.Expr:
        """Input-space margin of the cross-entropy limit, as a ``Piecewise`` over the cases."""
        return self._piecewise(lambda c: c.margin)

    @property
    def cross_entropy_w(self) -> sp.Matrix:
        """Weights of the cross-entropy limit (QP scale), each entry a ``Piecewise``."""
        n = self.cases[0].w.shape[0]
        return sp.Matrix([self._piecewise(lambda c, i=i: c.w[i]) for i in range(n)])

    @property
    def cross_entropy_b(self) -> sp.Expr:
        """Bias of the cross-entropy limit (QP scale), a ``Piecewise``."""
        return self._piecewise(lambda c: c.b)

    @property
    def ratio(self) -> sp.Expr:
        """Cross-entropy margin divided by the optimal margin, simplified case by case."""
        return self._piecewise(lambda c: sp.simplify(c.margin / self.optimal_margin))

    @cached_property
    def _numeric(self):
        conds = [None if c.condition is sp.true else sp.lambdify(self.symbols, c.condition.lhs, "mpmath")
                 for c in self.cases]
        margins = [sp.lambdify(self.symbols, c.margin, "mpmath") for c in self.cases]
        dom = self.domain
        strict = isinstance(dom, sp.StrictGreaterThan)
        dom_fn = sp.lambdify(self.symbols, dom.lhs - dom.rhs, "math")
        return (sp.lambdify(self.symbols, self.optimal_margin, "mpmath"), conds, margins,
                (lambda *v: dom_fn(*v) > 0) if strict else (lambda *v: dom_fn(*v) >= 0))

    def _check(self, params) -> list:
        if len(params) != len(self.symbols):
            raise ValueError(f"params must give {len(self.symbols)} values "
                             f"({', '.join(map(str, self.symbols))}), got {len(params)}")
        vals = []
        for sym, v in zip(self.symbols, params, strict=True):
            try:
                f = float(v)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{sym} must be a real number, got {v!r}") from err
            if not math.isfinite(f):
                raise ValueError(f"{sym} must be finite, got {f}")
            vals.append(f)
        if not self._numeric[3](*vals):
            raise ValueError(f"parameters must satisfy {self.domain_text}; got "
                             + ", ".join(f"{s}={v:g}" for s, v in zip(self.symbols, vals, strict=True)))
        return vals

    def _case_index(self, vals) -> int:
        _, conds, _, _ = self._numeric
        with mpmath.workdps(30):
            args = [mpmath.mpf(v) for v in vals]
            for i, cond in enumerate(conds):
                if cond is None or cond(*args) >= 0:
                    return i
        raise AssertionError("the last case holds everywhere")  # pragma: no cover

    def active_case(self, *params: float) -> str:
        """Which case holds at ``params`` (the name of an :class:`ActiveSetCase`).

        Raises
        ------
        ValueError
            For a wrong number of values, non-finite values or parameters outside the domain.
        """
        return self.cases[self._case_index(self._check(params))].name

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
            If the number of values does not match :attr:`symbols`, a value is not a finite
            real number, or the parameters are outside the family's domain (``g <= 0``,
            coincident points).
        """
        vals = self._check(params)
        opt_fn, _, margins, _ = self._numeric
        i = self._case_index(vals)
        with mpmath.workdps(30):
            args = [mpmath.mpf(v) for v in vals]
            opt = opt_fn(*args)
            ce = margins[i](*args)
            return {"optimal_margin": float(opt), "cross_entropy_margin": float(ce),
                    "ratio": float(ce / opt)}


def _condition(slack: sp.Expr, positive: sp.Expr, cleared: sp.Expr) -> sp.Basic:
    """``slack >= 0`` written as ``cleared >= 0``; sympy checks ``cleared == slack * positive``."""
    assert sp.simplify(slack * positive - cleared) == 0
    return sp.Ge(cleared, 0)


def _augmented_svm_two_points(p: sp.Matrix, q: sp.Matrix, simplify_margin: bool = True
                              ) -> tuple[ActiveSetCase, ...]:
    """The cross-entropy-limit cases for p (label -1) and q (label +1), derived by sympy."""
    zp = p.col_join(sp.Matrix([1]))
    zq = q.col_join(sp.Matrix([1]))
    lp, lq = sp.symbols("lambda_p lambda_q")

    def finish(name, v, condition):
        v = sp.simplify(v)
        w, b = v[:-1, :], v[-1]
        margin = 1 / sp.sqrt(sp.simplify(w.dot(w)))
        if simplify_margin:
            margin = sp.simplify(margin)
        return ActiveSetCase(name=name, condition=condition, w=w, b=b, margin=margin)

    # q only: v = l_q z_q with v . z_q = 1; valid where p's constraint -v . z_p >= 1 holds
    v_q = lq * zq
    v_q = v_q.subs(sp.solve(sp.Eq(v_q.dot(zq), 1), lq, dict=True)[0])
    nq, npp, pq = zq.dot(zq), zp.dot(zp), zp.dot(zq)
    q_only = finish("q only", v_q, _condition(-v_q.dot(zp) - 1, nq, sp.expand(-pq - nq)))
    # p only: v = -l_p z_p with -v . z_p = 1; valid where q's constraint v . z_q >= 1 holds
    v_p = -lp * zp
    v_p = v_p.subs(sp.solve(sp.Eq(-v_p.dot(zp), 1), lp, dict=True)[0])
    p_only = finish("p only", v_p, _condition(v_p.dot(zq) - 1, npp, sp.expand(-pq - npp)))
    # both active: the KKT equations; valid where both multipliers are >= 0, which is where
    # neither single case holds strictly (the multipliers change sign at those boundaries)
    v = lq * zq - lp * zp
    sol = sp.solve([sp.Eq(v.dot(zq), 1), sp.Eq(v.dot(zp), -1)], [lp, lq], dict=True)[0]
    both = finish("both", v.subs(sol), sp.true)
    return q_only, p_only, both


@cache
def line_pair_margins() -> ClosedFormMargins:
    """Margins for ``(a, c) -> -1`` and ``(a + 2g, c) -> +1`` (``g > 0``).

    Returns
    -------
    ClosedFormMargins
        ``optimal_margin = g``; where both points are support vectors of the cross-entropy
        limit (``case("both")``), ``cross_entropy_margin = g / sqrt(1 + c^2 (a + g)^2 /
        (1 + c^2)^2)`` (sympy's form may differ but is equal); elsewhere one point alone is
        (e.g. ``a = -7.5, g = 5, c = 0``: margin 2.9, not 5). In the symbols ``(a, g, c)``.

    Examples
    --------
    >>> m = line_pair_margins()
    >>> round(m.values(3, 1, 1)["cross_entropy_margin"] ** -2, 12)
    5.0
    >>> round(m.values(-7.5, 5, 0)["cross_entropy_margin"], 12)
    2.9
    """
    a, c = sp.symbols("a c", real=True)
    g = sp.symbols("g", positive=True)
    cases = _augmented_svm_two_points(sp.Matrix([a, c]), sp.Matrix([a + 2 * g, c]))
    return ClosedFormMargins(symbols=(a, g, c), optimal_margin=g, cases=cases,
                             domain=sp.Gt(g, 0, evaluate=False), domain_text="g > 0")


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
    >>> m = two_point_margins()
    >>> m.active_case(-1, 2, 3, -4), round(m.values(-1, 2, 3, -4)["cross_entropy_margin"] ** 2, 12)
    ('p only', 7.2)
    """
    p1, p2, q1, q2 = sp.symbols("p1 p2 q1 q2", real=True)
    p = sp.Matrix([p1, p2])
    q = sp.Matrix([q1, q2])
    cases = _augmented_svm_two_points(p, q, simplify_margin=False)
    opt = sp.sqrt((q - p).dot(q - p)) / 2
    return ClosedFormMargins(symbols=(p1, p2, q1, q2), optimal_margin=opt, cases=cases,
                             domain=sp.Gt((q - p).dot(q - p), 0), domain_text="p != q (distinct points)")


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

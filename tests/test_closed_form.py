"""Piecewise closed forms of the two-point families against the exact solver.

For two points the cross-entropy limit has one or two support vectors depending on the
parameters; the closed forms must pick the right case everywhere. Random draws cover all
three cases (asserted), and each is compared with :func:`cross_entropy_limit`, whose
answers are certified (see ``tests/test_theory_certified.py``).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import sympy as sp

from lowrank.theory import cross_entropy_limit, line_pair_margins, max_margin_separator, two_point_margins

N_DRAWS = 500  # per family: 1,000 in all


def _independent_ce_margin(p: np.ndarray, q: np.ndarray) -> float:
    """Minimum-norm point of the segment [z_q, -z_p] (z = (x, 1)), written out by hand."""
    zp, zq = np.r_[p, 1.0], np.r_[q, 1.0]
    d = -zp - zq
    t = min(1.0, max(0.0, -float(zq @ d) / float(d @ d)))
    u = zq + t * d
    v = u / float(u @ u)
    return 1.0 / float(np.linalg.norm(v[:-1]))


def test_issue_examples():
    # the two-active formula gave 3.3955 and 5.0 here
    vals = two_point_margins().values(-1, 2, 3, -4)
    assert vals["cross_entropy_margin"] == pytest.approx(6 / math.sqrt(5), rel=1e-14)  # 2.6833
    assert two_point_margins().active_case(-1, 2, 3, -4) == "p only"
    assert line_pair_margins().values(-7.5, 5, 0)["cross_entropy_margin"] == pytest.approx(2.9, rel=1e-14)
    assert line_pair_margins().active_case(-7.5, 5, 0) == "q only"
    for X in ([[-1.0, 2.0], [3.0, -4.0]], [[-7.5, 0.0], [2.5, 0.0]]):
        sep = cross_entropy_limit(X, [-1, 1])
        assert sep.support.numel() == 1


def test_two_point_family_on_random_draws():
    rng = np.random.default_rng(20240901)
    closed = two_point_margins()
    seen = Counter()
    for k in range(N_DRAWS):
        p, q = rng.uniform(-4, 4, size=(2, 2))
        # one draw in three each: the origin between the points, nearer q or nearer p, where
        # one point alone is active ("q only" / "p only")
        if k % 3 == 1:
            q = -p * rng.uniform(0.05, 0.9) + rng.normal(0, 0.1, 2)
        elif k % 3 == 2:
            p = -q * rng.uniform(0.05, 0.9) + rng.normal(0, 0.1, 2)
        case = closed.active_case(*p, *q)
        seen[case] += 1
        vals = closed.values(*p, *q)
        sep = cross_entropy_limit(np.stack([p, q]), [-1, 1])
        assert vals["cross_entropy_margin"] == pytest.approx(sep.margin, rel=1e-9), (p, q, case)
        assert vals["cross_entropy_margin"] == pytest.approx(_independent_ce_margin(p, q), rel=1e-9)
        assert sep.support.numel() == (2 if case == "both" else 1) or _near_boundary(closed, p, q)
        if k % 20 == 0:
            opt = max_margin_separator(np.stack([p, q]), [-1, 1])
            assert vals["optimal_margin"] == pytest.approx(opt.margin, rel=1e-9)
    assert min(seen[c] for c in ("both", "p only", "q only")) >= 50, seen


def test_line_pair_family_on_random_draws():
    rng = np.random.default_rng(7)
    closed = line_pair_margins()
    seen = Counter()
    for _ in range(N_DRAWS):
        g = rng.uniform(0.1, 6.0)
        a = rng.uniform(-2.5 * g, 1.0)
        c = rng.uniform(-2.0, 2.0)
        case = closed.active_case(a, g, c)
        seen[case] += 1
        vals = closed.values(a, g, c)
        X = np.array([[a, c], [a + 2 * g, c]])
        sep = cross_entropy_limit(X, [-1, 1])
        assert vals["cross_entropy_margin"] == pytest.approx(sep.margin, rel=1e-9), (a, g, c, case)
        assert vals["optimal_margin"] == pytest.approx(g, rel=1e-15)
        assert vals["ratio"] == pytest.approx(sep.margin / g, rel=1e-9)
    assert min(seen[c] for c in ("both", "p only", "q only")) >= 50, seen


def _near_boundary(closed, p, q) -> bool:
    """On a case boundary a multiplier is ~0 and the solver's support may hold 1 or 2 points."""
    subs = dict(zip(closed.symbols, [*p, *q], strict=True))
    return any(abs(float(c.condition.lhs.subs(subs))) < 1e-9 for c in closed.cases[:-1])


def test_cases_join_continuously_and_the_piecewise_forms_agree_with_values():
    m = line_pair_margins()
    a, g, c = m.symbols
    # on the boundary of "q only" ((a + g)(a + 2g) + c^2 + 1 = 0) both formulas agree
    g0, c0 = 3.0, 0.5
    a0 = float(min(sp.solve(m.case("q only").condition.lhs.subs({g: g0, c: c0}), a)))
    both = float(m.case("both").margin.subs({a: a0, g: g0, c: c0}))
    single = float(m.case("q only").margin.subs({a: a0, g: g0, c: c0}))
    assert both == pytest.approx(single, rel=1e-12)
    for params in ((3, 1, 1), (-7.5, 5, 0), (-1.0, 3.0, 0.2)):
        subs = dict(zip(m.symbols, params, strict=True))
        assert float(m.cross_entropy_margin.subs(subs)) == pytest.approx(
            m.values(*params)["cross_entropy_margin"], rel=1e-14)
        assert float(m.ratio.subs(subs)) == pytest.approx(m.values(*params)["ratio"], rel=1e-12)
        w = [float(v) for v in m.cross_entropy_w.subs(subs)]
        sep = cross_entropy_limit([[params[0], params[2]], [params[0] + 2 * params[1], params[2]]], [-1, 1])
        np.testing.assert_allclose(w, sep.w.numpy(), rtol=1e-9, atol=1e-12)
        assert float(m.cross_entropy_b.subs(subs)) == pytest.approx(sep.b, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("family,params,match", [
    (line_pair_margins, (1.0, 0.0, 1.0), "g > 0"),
    (line_pair_margins, (1.0, -1.0, 1.0), "g > 0"),
    (line_pair_margins, (float("nan"), 1.0, 1.0), "a must be finite"),
    (line_pair_margins, (1.0, float("inf"), 1.0), "g must be finite"),
    (line_pair_margins, (1.0, 1.0), "must give 3 values"),
    (line_pair_margins, (1.0, "x", 1.0), "g must be a real number"),
    (two_point_margins, (1.0, 2.0, 1.0, 2.0), "distinct points"),
    (two_point_margins, (1.0, 2.0, float("nan"), 2.0), "q1 must be finite"),
])
def test_invalid_parameters_raise(family, params, match):
    with pytest.raises(ValueError, match=match):
        family().values(*params)
    with pytest.raises(ValueError, match=match):
        family().active_case(*params)

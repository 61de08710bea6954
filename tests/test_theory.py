"""Exact separators against closed forms, translation invariance, and errors."""

import math

import numpy as np
import pytest
import sympy as sp
import torch

from lowrank.data import affine_subspace_data, line_pair
from lowrank.theory import (
    NotSeparableError,
    cross_entropy_limit,
    line_pair_margins,
    max_margin_separator,
    two_point_margins,
)


def test_paper_example_margins_match_closed_form():
    d = line_pair(3.0, 1.0, 1.0)
    opt = max_margin_separator(d.X, d.y)
    ce = cross_entropy_limit(d.X, d.y)
    assert opt.margin == pytest.approx(1.0, abs=1e-9)
    assert ce.margin == pytest.approx(1 / math.sqrt(5), abs=1e-9)
    closed = line_pair_margins()
    a, g, c = closed.symbols
    assert sp.simplify(closed.cross_entropy_margin.subs({a: 3, g: 1, c: 1}) - 1 / sp.sqrt(5)) == 0
    assert closed.optimal_margin.subs({g: 1}) == 1
    # the limit direction itself: w = (1, -2), b = -2 at QP scale
    torch.testing.assert_close(ce.w, torch.tensor([1.0, -2.0], dtype=torch.float64), atol=1e-9, rtol=0)
    assert ce.b == pytest.approx(-2.0, abs=1e-9)
    assert ce.duality_gap <= 1e-8 and opt.duality_gap <= 1e-8


@pytest.mark.parametrize("a,g,c", [(0.0, 1.0, 0.0), (3.0, 0.5, 2.0), (-4.0, 2.0, 0.7), (10.0, 1.0, 1.0)])
def test_line_pair_family_solver_equals_sympy(a, g, c):
    d = line_pair(a, g, c)
    vals = line_pair_margins().values(a, g, c)
    assert cross_entropy_limit(d.X, d.y).margin == pytest.approx(vals["cross_entropy_margin"], rel=1e-9)
    assert max_margin_separator(d.X, d.y).margin == pytest.approx(vals["optimal_margin"], rel=1e-9)
    # the simplified ratio (c^2+1)/sqrt(c^2 (a+g)^2 + (c^2+1)^2), written independently
    assert vals["ratio"] == pytest.approx((c * c + 1) / math.hypot(c * (a + g), c * c + 1), rel=1e-12)


def test_two_point_family_general_positions():
    rng = np.random.default_rng(0)
    closed = two_point_margins()
    for _ in range(3):
        p, q = rng.normal(size=2) * 3, rng.normal(size=2) * 3
        X = np.stack([p, q])
        vals = closed.values(*p, *q)
        assert cross_entropy_limit(X, [-1, 1]).margin == pytest.approx(vals["cross_entropy_margin"], rel=1e-9)
        assert max_margin_separator(X, [-1, 1]).margin == pytest.approx(np.linalg.norm(q - p) / 2, rel=1e-9)


def test_solvers_agree_at_zero_offset_and_center():
    # subspace through the origin, classes centred on it: no bias is needed, both coincide
    d = affine_subspace_data(40, dim=12, rank=3, offset=0.0, gap=1.0, center=0.0, seed=3, spread=0.5)
    opt, ce = max_margin_separator(d.X, d.y), cross_entropy_limit(d.X, d.y)
    assert ce.margin == pytest.approx(opt.margin, rel=1e-3)
    assert abs(float(ce.direction @ opt.direction)) == pytest.approx(1.0, abs=1e-6)


def test_offset_shrinks_cross_entropy_margin_but_not_optimal():
    margins_opt, margins_ce = [], []
    for offset in (0.0, 1.0, 3.0, 10.0, 30.0):
        d = affine_subspace_data(30, dim=8, rank=2, offset=offset, gap=1.0, seed=7)
        margins_opt.append(max_margin_separator(d.X, d.y).margin)
        margins_ce.append(cross_entropy_limit(d.X, d.y).margin)
    # translation invariance of the free-bias SVM (same seed => same points up to translation)
    assert np.allclose(margins_opt, margins_opt[0], rtol=1e-7)
    assert all(b < a for a, b in zip(margins_ce, margins_ce[1:]))
    assert margins_ce[0] == pytest.approx(margins_opt[0], rel=1e-6)
    assert margins_ce[-1] < 0.75 * margins_opt[-1]


def test_solution_satisfies_kkt_independently():
    d = affine_subspace_data(100, dim=20, rank=4, offset=5.0, gap=0.5, noise=0.2, seed=11)
    for fn, penal in ((max_margin_separator, 0.0), (cross_entropy_limit, 1.0)):
        sep = fn(d.X, d.y)
        X, y = d.X.numpy(), d.y.numpy()
        f = y * (X @ sep.w.numpy() + sep.b)
        assert f.min() == pytest.approx(1.0, abs=1e-9)
        # stationarity: (w, penal*b) = sum over support of lambda_i y_i (x_i, 1) with lambda >= 0
        S = sep.support.numpy()
        A = (y[S, None] * np.hstack([X[S], np.ones((len(S), 1))])).T
        target = np.concatenate([sep.w.numpy(), [penal * sep.b]])
        lam, *_ = np.linalg.lstsq(A, target, rcond=None)
        assert np.abs(A @ lam - target).max() < 1e-8
        assert lam.min() > -1e-8


def test_large_problem_is_certified():
    # its time (budget: 10 s on 2 cores) is measured in tests/benchmarks/test_bench_svm.py
    d = affine_subspace_data(1000, dim=100, rank=10, offset=5.0, gap=0.5, noise=0.3, seed=1)
    for fn in (max_margin_separator, cross_entropy_limit):
        sep = fn(d.X, d.y)
        assert sep.duality_gap <= 1e-8 and sep.polished
        f = d.y.numpy() * (d.X.numpy() @ sep.w.numpy() + sep.b)
        assert f.min() == pytest.approx(1.0, abs=1e-9)


def test_not_separable_raises():
    X = [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]
    for fn in (max_margin_separator, cross_entropy_limit):
        with pytest.raises(NotSeparableError, match="not linearly separable"):
            fn(X, [1, -1, 1])
    assert issubclass(NotSeparableError, ValueError)


@pytest.mark.parametrize("X,y,match", [
    ([[0.0, 1.0], [1.0, 0.0]], [1, 1], "both classes"),
    ([[0.0, float("nan")], [1.0, 0.0]], [1, -1], "X must be finite"),
    ([0.0, 1.0], [1, -1], "X must be 2-D"),
    ([[0.0, 1.0], [1.0, 0.0]], [1, 3], "y must hold labels"),
    ([[0.0, 1.0], [1.0, 0.0]], [1, -1, 1], "same length"),
])
def test_bad_inputs(X, y, match):
    with pytest.raises(ValueError, match=match):
        max_margin_separator(X, y)

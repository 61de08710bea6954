"""Exact multi-class separators, the multi-class margin and the multi-class data generator.

Independent references: closed forms derived by hand (three points on a line at height c;
one point per class at the unit vectors), the C = 2 reduction to the binary solvers of
:mod:`lowrank.theory.svm`, and a brute-force active-set enumeration whose KKT system is
solved in 40-digit mpmath arithmetic (no Clarabel, no polish code).
"""

from __future__ import annotations

import itertools
import math

import mpmath
import numpy as np
import pytest
import torch

from lowrank.analysis import geometric_margin, multiclass_margin
from lowrank.data import multiclass_subspace_data
from lowrank.theory import (
    CertificationError,
    NotSeparableError,
    certify_multiclass,
    cross_entropy_limit,
    max_margin_separator,
    multiclass_cross_entropy_limit,
    multiclass_max_margin,
    one_vs_rest_limit,
)

# ---------------------------------------------------------------- closed forms


@pytest.mark.parametrize("c", [0.0, 0.5, 1.0, 3.0])
def test_three_points_on_a_line_closed_form(c):
    """Classes 0, 1, 2 at (-1, c), (0, c), (1, c).

    Free biases: w_c = (-2, 0, 2)_c e_1, b = (-1, 2, -1)/3, margin 1/2 for every c.
    Cross-entropy limit (derivation: the height and the bias combine into effective biases
    beta_c = c v_c + b_c of cost beta_c^2 / (1 + c^2); the symmetric optimum keeps
    u = (-2, 0, 2), beta = (-1, 2, -1)/3): v_c = beta_c c / (1 + c^2), b_c = beta_c / (1 + c^2),
    margin 1 / sqrt(4 + c^2 / (1 + c^2)^2).
    """
    X = [[-1.0, c], [0.0, c], [1.0, c]]
    y = [0, 1, 2]
    opt = multiclass_max_margin(X, y)
    np.testing.assert_allclose(opt.W.numpy(), [[-2, 0], [0, 0], [2, 0]], atol=1e-10)
    np.testing.assert_allclose(opt.b.numpy(), np.array([-1, 2, -1]) / 3, atol=1e-10)
    assert opt.margin == pytest.approx(0.5, abs=1e-12)
    assert opt.certificate.ok and abs(opt.certificate.duality_gap) < 1e-12

    ce = multiclass_cross_entropy_limit(X, y)
    kappa = 1 + c * c
    beta = np.array([-1.0, 2.0, -1.0]) / 3
    np.testing.assert_allclose(ce.W.numpy(), np.stack([[-2, 0, 2], beta * c / kappa], 1), atol=1e-10)
    np.testing.assert_allclose(ce.b.numpy(), beta / kappa, atol=1e-10)
    assert ce.margin == pytest.approx(1 / math.sqrt(4 + c * c / kappa ** 2), abs=1e-12)
    assert ce.certificate.objective == pytest.approx(4 + (2 / 3) / kappa / 2, abs=1e-12)


def test_unit_vectors_closed_form_and_translation():
    """One point per class at e_c in R^3: W = I - 1/3, b equal, margin 1/sqrt(2), any translation."""
    X = np.eye(3)
    for t in (np.zeros(3), np.array([5.0, -2.0, 7.0])):
        sep = multiclass_max_margin(X + t, [0, 1, 2])
        np.testing.assert_allclose(sep.W.numpy(), np.eye(3) - 1 / 3, atol=1e-10)
        assert sep.margin == pytest.approx(1 / math.sqrt(2), abs=1e-12)
        assert sep.certificate.objective == pytest.approx(1.0, abs=1e-12)
    ovr = one_vs_rest_limit(X, [0, 1, 2])
    np.testing.assert_allclose(ovr.W.numpy(), 2 * (np.eye(3) - 1 / 3), atol=1e-10)
    assert ovr.margin == pytest.approx(1 / math.sqrt(2), abs=1e-12)


def test_free_biases_are_translation_invariant_and_the_limit_is_not():
    data = multiclass_subspace_data(6, n_classes=4, dim=7, rank=3, offset=0.0, seed=2)
    far = multiclass_subspace_data(6, n_classes=4, dim=7, rank=3, offset=10.0, seed=2)
    a, b = multiclass_max_margin(data.X, data.y), multiclass_max_margin(far.X, far.y)
    np.testing.assert_allclose(a.W.numpy(), b.W.numpy(), atol=1e-8)
    assert a.margin == pytest.approx(b.margin, rel=1e-9)
    ce0 = multiclass_cross_entropy_limit(data.X, data.y)
    ce10 = multiclass_cross_entropy_limit(far.X, far.y)
    assert ce10.margin < 0.9 * b.margin
    assert ce10.margin < ce0.margin


# ---------------------------------------------------------------- C = 2 and the binary solvers


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_classes_reduce_to_the_binary_svms(seed):
    """C = 2: w_1 = -w_0 = w/2 and b_1 - b_0 = b of the binary SVM (w = 2 w_1); same margin."""
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(size=(6, 3)) + [3, 0, 0], rng.normal(size=(5, 3)) - [3, 0, 0]])
    X += [0.0, 4.0, 2.0]
    y = np.array([1] * 6 + [0] * 5)
    for multi, binary in ((multiclass_max_margin, max_margin_separator),
                          (multiclass_cross_entropy_limit, cross_entropy_limit)):
        m, s = multi(X, y), binary(X, y)
        np.testing.assert_allclose(m.W[1].numpy(), -m.W[0].numpy(), atol=1e-9)
        np.testing.assert_allclose(2 * m.W[1].numpy(), s.w.numpy(), atol=1e-8)
        assert float(m.b[1] - m.b[0]) == pytest.approx(s.b, abs=1e-8)
        assert m.margin == pytest.approx(s.margin, rel=1e-9)
    ce = multiclass_cross_entropy_limit(X, y)
    assert float(ce.b[1]) == pytest.approx(-float(ce.b[0]), abs=1e-9)


# ---------------------------------------------------------------- brute-force exact reference


def _constraints(y, C):
    return [(i, c) for i in range(len(y)) for c in range(C) if c != y[i]]


def _rows(X, y, C, cons, free):
    """Rows a_r of the constraint matrix in variables (vec W, b) (b_0 dropped if free)."""
    n, d = X.shape
    m = C * d + (C - 1 if free else C)
    A = []
    for i, c in cons:
        a = [0] * m
        for k in range(d):
            a[y[i] * d + k] += X[i, k]
            a[c * d + k] -= X[i, k]
        for cls, sgn in ((y[i], 1), (c, -1)):
            if free and cls == 0:
                continue
            a[C * d + cls - (1 if free else 0)] += sgn
        A.append(a)
    return A, m


def _kkt(A, S, pdiag, m, solve):
    k = len(S)
    K = [[0] * (m + k) for _ in range(m + k)]
    for j in range(m):
        K[j][j] = pdiag[j]
    for col, r in enumerate(S):
        for j in range(m):
            K[j][m + col] = -A[r][j]
            K[m + col][j] = A[r][j]
    rhs = [0] * m + [1] * k
    return solve(K, rhs)


def _reference(X, y, C, free):
    """Enumerate active sets; the KKT point (feasible, multipliers >= 0) solved in mpmath."""
    X = np.asarray(X, dtype=float)
    cons = _constraints(y, C)
    A, m = _rows(X, y, C, cons, free)
    d = X.shape[1]
    pdiag = [1.0] * (C * d) + [0.0 if free else 1.0] * (m - C * d)
    An = np.asarray(A, dtype=float)

    def np_solve(K, rhs):
        K = np.asarray(K, dtype=float)
        if np.linalg.matrix_rank(K) < K.shape[0]:
            return None
        return np.linalg.solve(K, np.asarray(rhs, dtype=float))

    found = []
    for k in range(1, m + 1):
        for S in itertools.combinations(range(len(cons)), k):
            sol = _kkt(A, S, pdiag, m, np_solve)
            if sol is None:
                continue
            v, lam = sol[:m], sol[m:]
            if lam.min() >= -1e-10 and (An @ v).min() >= 1 - 1e-10:
                found.append(S)
                break
        if found:
            break
    assert found, "no KKT point found by enumeration"
    mpmath.mp.dps = 40
    Am = [[mpmath.mpf(float(a)) for a in row] for row in A]

    def mp_solve(K, rhs):
        return mpmath.lu_solve(mpmath.matrix(K), mpmath.matrix(rhs))

    sol = _kkt(Am, found[0], [mpmath.mpf(p) for p in pdiag], m, mp_solve)
    v = np.array([float(sol[j]) for j in range(m)])
    W = v[:C * d].reshape(C, d)
    b = np.concatenate([[0.0], v[C * d:]]) if free else v[C * d:]
    return W, b


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("free", [True, False])
def test_solvers_match_brute_force_mpmath_reference(seed, free):
    rng = np.random.default_rng(seed)
    C, d = 3, 2
    y = np.array([0, 1, 2, rng.integers(0, 3)])
    centres = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    X = centres[y] + 0.4 * rng.normal(size=(4, d)) + [1.0, 2.0]
    W_ref, b_ref = _reference(X, y, C, free)
    sep = (multiclass_max_margin if free else multiclass_cross_entropy_limit)(X, y)
    np.testing.assert_allclose(sep.W.numpy(), W_ref, atol=1e-9)
    if free:  # compare offset differences (the solver centres b)
        b_ref = b_ref - b_ref.mean()
    np.testing.assert_allclose(sep.b.numpy(), b_ref, atol=1e-9)
    assert sep.margin == pytest.approx(multiclass_margin(W_ref, b_ref, X, y), rel=1e-9)


# ---------------------------------------------------------------- certificate


def test_certificate_rejects_perturbed_solutions():
    data = multiclass_subspace_data(5, n_classes=4, dim=6, rank=2, offset=3.0, seed=0)
    for penalize, solver in ((False, multiclass_max_margin), (True, multiclass_cross_entropy_limit)):
        sep = solver(data.X, data.y)
        good = certify_multiclass(data.X, data.y, sep.W, sep.b, sep.multipliers, penalize)
        assert good.ok and good.primal_violation < 1e-12 and good.min_multiplier >= 0
        assert good.stationarity < 1e-9 and abs(good.duality_gap) < 1e-9
        shrunk = certify_multiclass(data.X, data.y, 0.99 * sep.W, 0.99 * sep.b, sep.multipliers, penalize)
        assert not shrunk.ok and shrunk.primal_violation > 1e-3
        grown = certify_multiclass(data.X, data.y, 1.01 * sep.W, 1.01 * sep.b, sep.multipliers, penalize)
        assert not grown.ok
        neg = sep.multipliers.clone()
        i, c = sep.support[0].tolist()
        neg[i, c] = -1.0
        assert not certify_multiclass(data.X, data.y, sep.W, sep.b, neg, penalize).ok


def test_certification_error_is_a_runtime_error():
    assert issubclass(CertificationError, RuntimeError)


# ---------------------------------------------------------------- errors


def test_not_separable_and_bad_input():
    with pytest.raises(NotSeparableError):
        multiclass_max_margin([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]], [0, 1, 2])
    with pytest.raises(NotSeparableError, match="class 1 cannot be separated"):
        one_vs_rest_limit([[-1.0], [0.0], [1.0]], [0, 1, 2])
    with pytest.raises(ValueError, match="X must be finite"):
        multiclass_max_margin([[float("nan")], [0.0], [1.0]], [0, 1, 2])
    with pytest.raises(ValueError, match=r"class\(es\) \[1\]"):
        multiclass_cross_entropy_limit([[0.0], [1.0], [2.0]], [0, 2, 2])
    with pytest.raises(ValueError, match="X and y"):
        multiclass_max_margin([[0.0], [1.0]], [0, 1, 2])
    with pytest.raises(ValueError, match="y must hold labels"):
        multiclass_max_margin([[0.0], [1.0]], [0, -1])


# ---------------------------------------------------------------- multi-class margin


def test_multiclass_margin_matches_a_loop_and_the_binary_margin():
    rng = np.random.default_rng(11)
    W, b = rng.normal(size=(4, 3)), rng.normal(size=4)
    X, y = rng.normal(size=(9, 3)), rng.integers(0, 4, 9)
    expect = min(((W[y[i]] - W[c]) @ X[i] + b[y[i]] - b[c]) / np.linalg.norm(W[y[i]] - W[c])
                 for i in range(9) for c in range(4) if c != y[i])
    assert multiclass_margin(W, b, X, y) == pytest.approx(expect, rel=1e-13)
    W2, b2, y2 = W[:2], b[:2], rng.integers(0, 2, 9)
    assert multiclass_margin(W2, b2, X, y2) == pytest.approx(
        geometric_margin(W2[1] - W2[0], b2[1] - b2[0], X, y2), rel=1e-13)


def test_multiclass_margin_bad_input():
    X, y = [[0.0, 1.0], [1.0, 0.0]], [0, 1]
    with pytest.raises(ValueError, match="w_a != w_c"):
        multiclass_margin([[1.0, 0.0], [1.0, 0.0]], [0.0, 0.0], X, y)
    with pytest.raises(ValueError, match="b must have length"):
        multiclass_margin([[1.0, 0.0], [0.0, 1.0]], [0.0], X, y)
    with pytest.raises(ValueError, match="X must have"):
        multiclass_margin([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [0.0, 0.0], X, y)
    with pytest.raises(ValueError, match="y must hold labels"):
        multiclass_margin([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0], X, [0, 2])
    with pytest.raises(ValueError, match="X and y"):
        multiclass_margin([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0], X, [0])


# ---------------------------------------------------------------- data generator


def test_generator_geometry():
    d0 = multiclass_subspace_data(7, n_classes=6, dim=9, rank=3, offset=0.0, seed=4, gap=0.8)
    d5 = multiclass_subspace_data(7, n_classes=6, dim=9, rank=3, offset=5.0, seed=4, gap=0.8)
    shift = (d5.X - d0.X).numpy()
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-12)
    np.testing.assert_allclose(shift[0], 5.0 * (d5.normal + d5.basis[:, 0]).numpy(), atol=1e-12)
    assert torch.bincount(d5.y).tolist() == [7] * 6
    # the data lie in the affine subspace at distance `offset` from the origin
    rel = (d5.X - d5.foot).numpy()
    resid = rel - rel @ d5.basis.numpy() @ d5.basis.numpy().T
    assert np.abs(resid).max() < 1e-12
    assert float(d5.normal @ d5.foot) == pytest.approx(5.0)
    # every class is at least `gap` beyond the rest along its radial direction
    for c in range(6):
        u = (d5.centers[c] - d5.origin) / torch.linalg.vector_norm(d5.centers[c] - d5.origin)
        proj = (d5.X @ u).numpy()
        yy = d5.y.numpy()
        assert proj[yy == c].min() - proj[yy != c].max() >= 0.8 - 1e-12


@pytest.mark.parametrize("kwargs, match", [
    ({"n_classes": 1}, "n_classes"),
    ({"rank": 1}, "rank"),
    ({"rank": 9}, "rank must be smaller"),
    ({"offset": -1.0}, "offset"),
    ({"gap": 0.0}, "gap"),
    ({"spread": float("nan")}, "spread"),
    ({"center": float("inf")}, "center"),
])
def test_generator_bad_arguments(kwargs, match):
    args = {"n_per_class": 3, "n_classes": 3, "dim": 9, "rank": 2, "offset": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        multiclass_subspace_data(**args)

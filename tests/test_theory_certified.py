"""The exact solvers return only certified answers: checked against an independent 50-digit reference.

The reference (``tests/_mp_reference.py``) solves the same QPs for the same float64 data in
mpmath by Wolfe's minimum-norm-point algorithm and verifies the KKT conditions in 50+ digits;
it shares no code with ``lowrank``. Every answer must match it to 1e-9 relative; a
``CertificationError`` would be allowed by the contract, but on these grids every case is
answered today, so the tests also require that (a regression to "raise everywhere" shows).
"""

from __future__ import annotations

from pathlib import Path

import mpmath
import numpy as np
import pytest
import torch
from _mp_reference import NotSeparable, hard_margin_reference

from lowrank.theory import (
    CERTIFICATE_TOL,
    CertificationError,
    NotSeparableError,
    cross_entropy_limit,
    max_margin_separator,
)
from lowrank.theory import svm as svm_module

REL = 1e-9
SOLVERS = [(max_margin_separator, 0.0), (cross_entropy_limit, 1.0)]


def separable(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian points split by a random hyperplane through the origin, pushed 0.25 apart."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    y = np.where(X @ u > 0, 1.0, -1.0)
    return X + 0.25 * y[:, None] * u, y


def errors(sep, ref, X: np.ndarray) -> dict[str, float]:
    """Relative errors of margin and w; error of b in the data's scale (|b| + ||w|| max ||x||)."""
    with mpmath.workdps(60):
        nw = mpmath.sqrt(mpmath.fsum(v * v for v in ref.w))
        ew = mpmath.sqrt(mpmath.fsum((mpmath.mpf(a) - r) ** 2 for a, r in zip(sep.w.tolist(), ref.w)))
        xmax = mpmath.mpf(float(np.linalg.norm(X, axis=1).max()))
        return {"margin": float(abs(mpmath.mpf(sep.margin) - ref.margin) / ref.margin),
                "w": float(ew / nw),
                "b": float(abs(mpmath.mpf(sep.b) - ref.b) / (abs(ref.b) + nw * xmax))}


def check_against_reference(X: np.ndarray, y: np.ndarray) -> float:
    """Both solvers on (X, y) against the reference; returns the worst relative error."""
    worst = 0.0
    for fn, beta in SOLVERS:
        try:
            ref = hard_margin_reference(X, y, beta)
        except NotSeparable:
            with pytest.raises(NotSeparableError):
                fn(X, y)
            continue
        sep = fn(X, y)  # CertificationError would be allowed, but fails the test here (see top)
        err = errors(sep, ref, X)
        assert max(err.values()) <= REL, (fn.__name__, err)
        assert max(sep.primal_infeasibility, sep.dual_infeasibility, sep.relative_gap) <= CERTIFICATE_TOL
        worst = max(worst, *err.values())
    return worst


SCALES = [1e-8, 1e-6, 1e-4, 1e-2, 1.0, 1e2, 1e4, 1e6, 1e8]
SHIFTS = [0.0, 1e2, 1e4, 1e6]


@pytest.mark.parametrize("shift", SHIFTS)
def test_grid_of_scales_and_shifts_matches_50_digit_reference(shift):
    X0, y = separable(60, 5, seed=0)
    worst = max(check_against_reference(X0 * scale + shift, y) for scale in SCALES)
    assert worst <= REL  # measured: 1.6e-15 on the whole grid (2-core CPU dev machine)


@pytest.mark.parametrize("scale,shift", [(1e-6, 0.0), (1e-3, 0.0), (0.01, 100.0), (0.01, 1000.0), (1.0, 1e4)])
def test_issue_cases_300_by_8(scale, shift):
    # where the former solver returned -1.5e-3 / -7.7e-2 relative errors, a RuntimeError,
    # -15 % / -8.3 % cross-entropy margins, a negative margin and MaxIterations
    X0, y = separable(300, 8, seed=0)
    assert check_against_reference(X0 * scale + shift, y) <= REL


@pytest.mark.parametrize("eps", [1e-9, 1e-13])
@pytest.mark.parametrize("fn", [max_margin_separator, cross_entropy_limit])
def test_separable_at_tiny_scale_is_not_called_inseparable(fn, eps):
    X = [[0.0, 0.0], [0.0, 1.0], [eps, 0.0], [eps, 1.0]]
    sep = fn(X, [-1, -1, 1, 1])
    # the boundary x1 = eps / 2; the bias costs 1 against ||w||^2 = 4 / eps^2, so both agree
    expected_w = torch.tensor([2 / eps, 0.0], dtype=torch.float64)
    torch.testing.assert_close(sep.w, expected_w, rtol=1e-12, atol=1e-3)
    assert sep.b == pytest.approx(-1.0, rel=1e-12)
    assert sep.margin == pytest.approx(eps / 2, rel=1e-12)
    assert (sep.multipliers >= 0).all()


@pytest.mark.parametrize("X,y", [
    ([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], [1, -1, 1]),
    ([[0.0], [0.0]], [-1, 1]),
    ([[1e6], [1e6 + 2 ** -33], [1e6 + 2 ** -32]], [1, -1, 1]),   # inseparable at the last bits
    (np.random.default_rng(0).normal(size=(400, 10)),
     np.where(np.random.default_rng(1).normal(size=400) > 0, 1, -1)),  # random labels
])
@pytest.mark.parametrize("fn", [max_margin_separator, cross_entropy_limit])
def test_not_separable_needs_a_farkas_certificate(fn, X, y):
    with pytest.raises(NotSeparableError, match="verified in exact rational arithmetic"):
        fn(X, y)


def test_separable_at_the_last_bits_far_from_the_origin():
    # 1e6 and its two next floats (spacing 2^-33): separable, margin half a float spacing
    X = np.array([[1e6], [1e6 + 2 ** -33], [1e6 + 2 ** -32]])
    y = np.array([-1.0, 1.0, 1.0])
    sep = max_margin_separator(X, y)
    assert sep.margin == pytest.approx(2.0 ** -34, rel=1e-12)
    check_against_reference(X, y)


def test_a_wrong_answer_is_refused(monkeypatch):
    """The certificate catches an answer that is off by 1e-7 relative (it never returns it)."""
    X, y = separable(60, 5, seed=1)
    real = svm_module._active_set

    def perturbed(*args, **kwargs):
        v, lam = real(*args, **kwargs)
        return v * (1 + 1e-7), lam

    monkeypatch.setattr(svm_module, "_active_set", perturbed)
    for fn, _ in SOLVERS:
        with pytest.raises(CertificationError, match="could not certify"):
            fn(X * 0.01 + 1000.0, y)


def test_certificate_fields_and_multipliers():
    X, y = separable(60, 5, seed=2)
    for fn, beta in SOLVERS:
        sep = fn(X + 50.0, y)
        lam = sep.multipliers.numpy()
        assert (lam >= 0).all() and set(np.flatnonzero(lam)) == set(sep.support.tolist())
        # stationarity, independently in float64 with math.fsum-level care
        Xs, ys = (X + 50.0)[lam > 0], y[lam > 0]
        g = (lam[lam > 0] * ys) @ Xs
        assert np.abs(sep.w.numpy() - g).max() <= 1e-8 * np.abs(lam[lam > 0] @ np.abs(Xs)).max()
        assert abs(beta * sep.b - float(lam @ y)) <= 1e-8 * lam.sum()
        assert sep.polished and sep.duality_gap <= 1e-8 * float(lam.sum())


@pytest.mark.parametrize("fn", [max_margin_separator, cross_entropy_limit])
def test_tensor_requiring_grad_is_detached(fn):
    X = torch.tensor([[3.0, 1.0], [5.0, 1.0]], requires_grad=True)
    sep = fn(X, torch.tensor([-1, 1]))
    assert sep.margin == pytest.approx(fn(X.detach().numpy(), [-1, 1]).margin, rel=0, abs=0)
    assert not sep.w.requires_grad and X.grad is None


@pytest.mark.parametrize("fn", [max_margin_separator, cross_entropy_limit])
def test_complex_X_is_rejected(fn):
    with pytest.raises(ValueError, match="X must be real"):
        fn(np.array([[3.0 + 1j, 1.0], [5.0, 1.0]]), [-1, 1])


@pytest.mark.parametrize("scale", [1e-300, 1e300])
@pytest.mark.parametrize("fn", [max_margin_separator, cross_entropy_limit])
def test_out_of_range_scales_raise_instead_of_returning_zero(fn, scale):
    # 1e-300: ||w||^2 and the multipliers overflow (the former code returned margin 0.0)
    X = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) * scale
    with pytest.raises(CertificationError, match="rescale X|could not certify"):
        fn(X, [-1, 1, 1])


@pytest.mark.parametrize("scale,shift", [(1.0, 0.0), (1e-4, 1e4), (1e3, 1e6)])
def test_fallback_without_the_interior_point_solver(monkeypatch, scale, shift):
    """With Clarabel giving nothing usable, the LP start and the primal active-set method
    alone must reach the exact answer (or, for inseparable data, the exact Farkas check)."""
    import clarabel

    class Useless:
        status = clarabel.SolverStatus.MaxIterations

        def __init__(self, A):
            self.x = [float("nan")] * A.shape[1]
            self.z = [0.0] * A.shape[0]

    monkeypatch.setattr(svm_module, "_clarabel", lambda A, rho: Useless(A))
    X0, y = separable(60, 5, seed=3)
    assert check_against_reference(X0 * scale + shift, y) <= REL
    random_labels = np.where(np.random.default_rng(4).normal(size=60) > 0, 1, -1)  # 60 points in R^5
    with pytest.raises(NotSeparableError, match="exact rational"):
        max_margin_separator(X0, random_labels)


# --- dead ReLU features shifted along the optimal normal -----------------------------------
# A computed normal has rounding-level components (~1e-32) on features that are zero for every
# point; shifting the data along it turns those features into columns of ~1e-34 constants. The
# former solver equilibrated the KKT variables by the constraint columns alone, scaling such a
# column's Hessian entry by ~1e70: the null-space solve lost everything else to rounding and the
# cross-entropy limit raised CertificationError for every shift (the optimal separator, whose
# centring removes a constant column exactly, was unaffected).

def relu_features(n: int, d: int, rank: int, dead: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative features of rank ``rank`` with ``dead`` all-zero columns, linearly separable."""
    rng = np.random.default_rng(seed)
    H = np.maximum(rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d)) + 0.5, 0.0)
    H[:, :dead] = 0.0
    score = H @ rng.normal(size=d)
    score -= np.median(score)
    keep = np.abs(score) > 0.1 * score.std()
    return H[keep], np.where(score[keep] > 0, 1.0, -1.0)


def check_shift_along_normal(X: np.ndarray, y: np.ndarray, u: np.ndarray, c: float) -> None:
    """Both solvers on X + c u against the reference; the optimal margin must not move."""
    assert check_against_reference(X + c * u, y) <= REL
    m0, m1 = max_margin_separator(X, y).margin, max_margin_separator(X + c * u, y).margin
    assert m1 == pytest.approx(m0, rel=REL)


@pytest.mark.parametrize("c", [0.01, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_dead_relu_features_shifted_along_the_normal(seed, c):
    X, y = relu_features(100, 16, rank=5, dead=4, seed=seed)
    u = max_margin_separator(X, y).direction.numpy().copy()
    # what a computed normal holds on dead features (fixed here, so the case does not hang on
    # the rounding of one platform): the former solver failed with these, for every c
    u[:4] = [3.4e-32, -2.6e-32, 4.3e-33, -7.2e-34]
    check_shift_along_normal(X, y, u, c)


@pytest.mark.parametrize("c", [0.01, 0.1, 1.0])
def test_real_cnn_features_shifted_along_the_normal(c):
    """120 of 500 penultimate ReLU features (32-d, 12 dead units, rank 20) of a small CNN,
    with both solvers' support vectors, and the optimal normal as computed from them."""
    data = np.load(Path(__file__).parent / "data" / "relu_features_120.npz")
    X, y, u = data["X"], data["y"], data["u"]
    assert (np.abs(X).max(axis=0) == 0).sum() == 12 and np.abs(u[np.abs(X).max(axis=0) == 0]).max() > 0
    np.testing.assert_allclose(max_margin_separator(X, y).direction.numpy(), u, rtol=0, atol=1e-12)
    check_shift_along_normal(X, y, u, c)


# --- features of tiny spread far from the origin, next to features of unit spread ----------
# The cross-entropy limit is solved in rotated coordinates (the plane of the mean and the bias
# axis); the rotation mixes the features, so rounding moves each point by ~eps times the spread
# of the unit-scale features, a 1e-6 relative change of the 1e-10-scale ones, and w on those
# (~1e10) inherited it. The certificate, relative to the terms |w_j x_ij| ~ 5e10, saw a backward
# error of ~1e-17, yet the margin was 2.5e-7 off (seed 0; 6e-9, w 1.3e-7, seed 2) and the active
# constraints missed 1 by ~5e-5. The answer is now refined for the data as given and the
# certificate checks the constraints relative to 1.

def tiny_features_off_origin(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """60 points in R^6: ``separable(60, 4, seed)`` with its first two features scaled by 1e-10,
    two constant columns 5 appended, everything shifted by +3 (features 3 + 1e-10 z)."""
    X0, y = separable(60, 4, seed)
    X = np.hstack([X0 * np.array([1e-10, 1e-10, 1.0, 1.0]), np.full((60, 2), 5.0)]) + 3.0
    return X, y


@pytest.mark.parametrize("seed", [0, 2])
def test_tiny_spread_features_off_origin_match_the_reference(seed):
    X, y = tiny_features_off_origin(seed)
    assert check_against_reference(X, y) <= REL  # measured: 5e-17 (was 2.5e-7 for seed 0)
    for fn, _ in SOLVERS:
        sep = fn(X, y)
        assert sep.constraint_residual <= CERTIFICATE_TOL and sep.forward_error <= CERTIFICATE_TOL
        # the float64 (w, b) meet the active constraints as well as their rounding allows:
        # |y_i (w . x_i + b) - 1| in 60 digits, against eps times the terms (~5e10 here)
        with mpmath.workdps(60):
            w = [mpmath.mpf(v) for v in sep.w.tolist()]
            for i in sep.support.tolist():
                f = y[i] * (mpmath.fdot(w, [mpmath.mpf(float(v)) for v in X[i]]) + mpmath.mpf(sep.b))
                terms = float(np.abs(sep.w.numpy() * X[i]).sum() + abs(sep.b))
                assert abs(float(f) - 1.0) <= 8 * 2.0 ** -53 * terms


@pytest.mark.parametrize("fn", [max_margin_separator, cross_entropy_limit])
def test_an_answer_right_only_backwards_is_refused(monkeypatch, fn):
    """Without the refinement in the data's coordinates the solver's answer is backward stable
    but misses the active constraints by ~1e-5: the forward check must refuse it."""
    X, y = tiny_features_off_origin(0)

    def unrefined(co, Ao, Dd, v_hat, lam_hat):
        return np.r_[co.to_original(v_hat)], np.zeros(Ao.shape[1]), lam_hat / co.s ** 2, 0.0

    monkeypatch.setattr(svm_module, "_refine_in_data_coordinates", unrefined)
    with pytest.raises(CertificationError, match="active-constraint residual in the data's coordinates"):
        fn(X, y)

"""Multi-class linear training: gradients against autograd, C = 2 against fit_linear, limits.

The limits are checked against the exact solvers of :mod:`lowrank.theory.multiclass` and
the closed form of three points on a line.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

from lowrank.data import multiclass_subspace_data
from lowrank.losses import multiclass_differential_loss
from lowrank.theory import multiclass_cross_entropy_limit, one_vs_rest_limit
from lowrank.train import fit_linear
from lowrank.train.multiclass import (
    _MulticlassObjective,
    fit_multiclass,
    multiclass_default_lr,
    multiclass_offsets,
)


def _torch_loss(X, y, W, b, loss, reduction):
    S = torch.from_numpy(X) @ W.T + b
    if loss == "cross_entropy":
        return torch.nn.functional.cross_entropy(S, torch.from_numpy(y), reduction=reduction)
    return multiclass_differential_loss(S, y, reduction=reduction)


@pytest.mark.parametrize("loss", ["cross_entropy", "differential"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_closed_form_gradients_match_autograd(loss, reduction, scale):
    d = multiclass_subspace_data(5, n_classes=4, dim=6, rank=2, offset=3.0, seed=0)
    X, y = d.X.numpy(), d.y.numpy()
    rng = np.random.default_rng(1)
    W0, b0 = scale * rng.normal(size=(4, 6)), scale * rng.normal(size=4)
    obj = _MulticlassObjective(X, y, 4, loss, reduction)
    W, b = torch.tensor(W0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    L = _torch_loss(X, y, W, b, loss, reduction)
    assert obj.value(W0, b0) == pytest.approx(float(L.detach()), rel=1e-12)
    gW, gb = torch.autograd.grad(L, (W, b))
    mW, mb = obj.grad(W0, b0)
    np.testing.assert_allclose(mW, gW.numpy(), rtol=1e-10, atol=1e-12 * max(1.0, float(L.detach())))
    np.testing.assert_allclose(mb, gb.numpy(), rtol=1e-10, atol=1e-12 * max(1.0, float(L.detach())))
    if scale == 1.0:  # log L: autograd is accurate while L is not tiny
        gW, gb = torch.autograd.grad(torch.log(_torch_loss(X, y, W, b, loss, reduction)), (W, b))
        lW, lb = obj.log_loss_grad(W0, b0)
        np.testing.assert_allclose(lW, gW.numpy(), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(lb, gb.numpy(), rtol=1e-10, atol=1e-13)


def _mp_log_loss(X, y, W, b, loss):
    """log L in 60-digit arithmetic (L underflows in float64 here)."""
    n, C = len(y), W.shape[0]
    S = [[mpmath.fsum(mpmath.mpf(X[i][k]) * W[c][k] for k in range(X.shape[1])) + b[c]
          for c in range(C)] for i in range(n)]
    if loss == "cross_entropy":
        terms = [mpmath.log1p(mpmath.fsum(mpmath.exp(S[i][c] - S[i][y[i]]) for c in range(C) if c != y[i]))
                 for i in range(n)]
    else:
        terms = [mpmath.log1p(mpmath.exp(-(S[i][c] - S[j][c])))
                 for c in range(C) for i in range(n) if y[i] == c for j in range(n) if y[j] != c]
    return mpmath.log(mpmath.fsum(terms))


@pytest.mark.parametrize("loss", ["cross_entropy", "differential"])
def test_log_loss_gradient_survives_underflow(loss):
    """At margins ~1000, L underflows in float64 but grad log L matches a 60-digit reference."""
    mpmath.mp.dps = 60
    X, y = np.eye(3) + [0.0, 0.3, -0.2], np.array([0, 1, 2])
    W = 1000 * (np.eye(3) - 1 / 3 + [[0.1, 0, 0], [0, 0, 0], [0, 0, -0.2]])
    b = 1000 * np.array([0.1, -0.2, 0.05])
    obj = _MulticlassObjective(X, y, 3, loss, "mean")
    assert obj.value(W, b) == 0.0  # underflow
    gW, gb = obj.log_loss_grad(W, b)
    Wm = [[mpmath.mpf(v) for v in row] for row in W]
    bm = [mpmath.mpf(v) for v in b]
    h = mpmath.mpf("1e-25")
    for c in range(3):
        for k in range(3):
            up = [row[:] for row in Wm]
            dn = [row[:] for row in Wm]
            up[c][k] += h
            dn[c][k] -= h
            ref = (_mp_log_loss(X, y, np.array(up, dtype=object), bm, loss)
                   - _mp_log_loss(X, y, np.array(dn, dtype=object), bm, loss)) / (2 * h)
            assert gW[c, k] == pytest.approx(float(ref), rel=1e-9, abs=1e-12)
    if loss == "differential":
        assert np.all(gb == 0)


@pytest.mark.parametrize("schedule", ["constant", "normalized"])
def test_two_classes_match_fit_linear(schedule):
    """C = 2 from zero keeps w_0 = -w_1. Softmax CE (and its log) is the binary CE of
    (u, beta) = (w_1 - w_0, b_1 - b_0), whose gradient in W is doubled: lr here = 2 lr there.
    The differential loss is the binary one of w_1 with half the gradient: 2 lr here = lr there.
    The multi-class margin is the binary margin."""
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(size=(5, 3)) + [2, 0, 0], rng.normal(size=(6, 3)) - [2, 0, 0]])
    X += [0.0, 3.0, 1.0]
    y = np.array([1] * 5 + [0] * 6)
    lr = 0.05 if schedule == "constant" else 0.01  # normalized CE oscillates (rounding-sensitive) at 0.1
    ce_m = fit_multiclass(X, y, "cross_entropy", steps=300, lr=lr, schedule=schedule, record=[100])
    ce_b = fit_linear(X, y, "cross_entropy", steps=300, lr=2 * lr, schedule=schedule, record=[100])
    np.testing.assert_allclose(ce_m.W[0].numpy(), -ce_m.W[1].numpy(), atol=1e-12)
    np.testing.assert_allclose((ce_m.W[1] - ce_m.W[0]).numpy(), ce_b.w.numpy(), rtol=1e-10, atol=1e-12)
    assert float(ce_m.b[1] - ce_m.b[0]) == pytest.approx(ce_b.b, rel=1e-10)
    np.testing.assert_allclose(ce_m.history["margin"][1:], ce_b.history["margin"][1:], rtol=1e-9)
    df_m = fit_multiclass(X, y, "differential", steps=300, lr=2 * lr, schedule=schedule, record=[100])
    df_b = fit_linear(X, y, "differential", steps=300, lr=lr, schedule=schedule, record=[100])
    np.testing.assert_allclose(df_m.W[0].numpy(), -df_m.W[1].numpy(), atol=1e-12)
    np.testing.assert_allclose(df_m.W[1].numpy(), df_b.w.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(df_m.history["margin"][1:], df_b.history["margin"][1:], rtol=1e-9)


def test_differential_training_is_translation_invariant():
    a = multiclass_subspace_data(4, n_classes=4, dim=5, rank=2, offset=0.0, seed=3)
    b = multiclass_subspace_data(4, n_classes=4, dim=5, rank=2, offset=20.0, seed=3)
    fa = fit_multiclass(a.X, a.y, "differential", steps=500, lr=0.05, record=[50, 200])
    fb = fit_multiclass(b.X, b.y, "differential", steps=500, lr=0.05, record=[50, 200])
    np.testing.assert_allclose(fa.W.numpy(), fb.W.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fa.history["margin"][1:], fb.history["margin"][1:], rtol=1e-9)
    ca = fit_multiclass(a.X, a.y, "cross_entropy", steps=500, record=[200])
    cb = fit_multiclass(b.X, b.y, "cross_entropy", steps=500, record=[200])
    assert cb.margin < ca.margin  # cross-entropy is not


def test_normalized_gd_reaches_the_predicted_limits():
    """Three points at height 1: CE margin -> 1/sqrt(4.25); differential = optimal 1/2 at once."""
    X, y = [[-1.0, 1.0], [0.0, 1.0], [1.0, 1.0]], [0, 1, 2]
    ce_lim = multiclass_cross_entropy_limit(X, y)
    fit = fit_multiclass(X, y, steps=3000, schedule="normalized", reference=ce_lim.W, record=[300])
    pred = 1 / math.sqrt(4.25)
    assert ce_lim.margin == pytest.approx(pred, abs=1e-12)
    assert fit.history["cosine"][-1] > 0.9999
    assert abs(fit.margin - pred) < 2e-3 * pred
    d = multiclass_subspace_data(5, n_classes=4, dim=6, rank=2, offset=6.0, seed=1)
    ovr = one_vs_rest_limit(d.X, d.y)
    fd = fit_multiclass(d.X, d.y, "differential", steps=3000, schedule="normalized", reference=ovr.W)
    assert fd.history["cosine"][-1] > 0.9999
    assert fd.margin == pytest.approx(ovr.margin, rel=5e-3)
    np.testing.assert_allclose(multiclass_offsets(d.X.numpy() @ ovr.W.numpy().T, d.y).numpy(),
                               ovr.b.numpy(), atol=1e-9)


def test_default_learning_rates():
    X, y = [[-1.0], [0.0], [1.0]], [0, 1, 2]
    # CE: C / lambda_max([X, 1]^T [X, 1] / n) = 3 / 1; differential: 4 N / max_c lambda_max(G_c)
    assert multiclass_default_lr(X, y) == pytest.approx(3.0)
    # class 0 (x=-1) vs {0, 1}: G_0 = 1 + 4 = 5; class 1: 1 + 1 = 2; N = 6 -> 24 / 5
    assert multiclass_default_lr(X, y, "differential") == pytest.approx(24 / 5)
    assert multiclass_default_lr(X, y, "cross_entropy", "normalized") == pytest.approx(1.0)
    assert multiclass_default_lr(X, y, "differential", "normalized") == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"loss": "hinge"}, "loss"),
    ({"schedule": "adam"}, "schedule"),
    ({"init": "ones"}, "init"),
    ({"reduction": "none"}, "reduction"),
    ({"steps": -1}, "steps"),
    ({"lr": 0.0}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"reference": np.zeros((3, 1))}, "reference"),
    ({"reference": np.ones((2, 1))}, "reference must have shape"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_multiclass([[-1.0], [0.0], [1.0]], [0, 1, 2], **{"steps": 1, **kwargs})


def test_bad_data():
    with pytest.raises(ValueError, match="X and y"):
        fit_multiclass([[0.0], [1.0]], [0, 1, 1], steps=1)
    with pytest.raises(ValueError, match=r"class\(es\) \[1\]"):
        fit_multiclass([[0.0], [1.0], [2.0]], [0, 2, 2], steps=1)
    with pytest.raises(ValueError, match="X must be finite"):
        fit_multiclass([[float("nan")], [1.0]], [0, 1], steps=1)

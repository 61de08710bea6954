"""Offsets fitted by cross-entropy after differential training, against independent references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch

from lowrank.models import MLP
from lowrank.train import DeepTrainConfig, fitted_offsets, multiclass_offsets, predict_scores, train_deep


def _ce(b, S, y):
    Z = S + b
    m = Z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(Z - m).sum(axis=1)) + m[:, 0] - Z[np.arange(len(y)), y]))


def test_fitted_offsets_match_an_independent_minimiser_and_their_certificate():
    rng = np.random.default_rng(0)
    S = rng.normal(size=(400, 6)) * 4 + rng.normal(size=6) * 10
    y = rng.integers(0, 6, size=400)
    b = fitted_offsets(S, y).numpy()
    ref = scipy.optimize.minimize(_ce, np.zeros(6), args=(S, y), method="BFGS",
                                  options={"gtol": 1e-12, "maxiter": 10_000}).x
    assert np.abs(b - (ref - ref.mean())).max() < 1e-5
    assert abs(b.sum()) < 1e-12
    assert _ce(b, S, y) <= _ce(ref, S, y) + 1e-12
    # the optimality condition: mean predicted probability of each class = its share
    Z = S + b
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    assert np.abs(P.mean(axis=0) - np.bincount(y, minlength=6) / 400).max() < 1e-12


def test_fitted_offsets_follow_a_shifted_column_and_reduce_to_logistic_intercept():
    rng = np.random.default_rng(1)
    S = rng.normal(size=(200, 3))
    y = rng.integers(0, 3, size=200)
    b = fitted_offsets(S, y)
    shifted = S.copy()
    shifted[:, 1] += 7.0
    b2 = fitted_offsets(shifted, y)
    expect = b - torch.tensor([0.0, 7.0, 0.0], dtype=torch.float64)
    assert torch.allclose(b2, expect - expect.mean(), atol=1e-10)
    # two classes with scores (0, s): b_1 - b_0 is the intercept of a logistic fit with slope 1
    s = rng.normal(size=300) + 0.3
    cls = (rng.uniform(size=300) < 1 / (1 + np.exp(-(s - 0.8)))).astype(int)
    two = np.stack([np.zeros_like(s), s], axis=1)
    b = fitted_offsets(two, cls)

    def nll(c):
        z = s + c[0]
        return float(np.mean(np.logaddexp(0.0, z) - cls * z))

    c = scipy.optimize.minimize(nll, [0.0], method="BFGS", options={"gtol": 1e-12}).x[0]
    assert float(b[1] - b[0]) == pytest.approx(c, abs=1e-6)


def test_fitted_offsets_reject_bad_input():
    with pytest.raises(ValueError, match="every class"):
        fitted_offsets(np.zeros((4, 3)), [0, 1, 0, 1], )
    with pytest.raises(ValueError, match="scores"):
        fitted_offsets(np.full((2, 2), np.nan), [0, 1])
    with pytest.raises(ValueError, match="C >= 2"):
        fitted_offsets(np.zeros((3, 1)), [0, 0, 0])
    with pytest.raises(ValueError, match="offset_rule"):
        DeepTrainConfig(offset_rule="median")


def _overlapping(seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(120) % 4
    means = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    x = means[y] + 0.9 * torch.randn(120, 2, generator=g)
    return x.view(120, 1, 1, 2), y


@pytest.mark.parametrize("rule", ["midpoint", "fitted"])
def test_train_deep_sets_the_offsets_by_the_rule(rule):
    x, y = _overlapping()
    torch.manual_seed(0)
    model = MLP(2, (8,), n_classes=4)
    res = train_deep(model, x, y, DeepTrainConfig(loss="differential", epochs=3, batch_size=8,
                                                  spectrum_samples=0, offset_rule=rule), quiet=True)
    raw = predict_scores(res.model, x).double() - res.model.head.bias.detach().double()
    expect = fitted_offsets(raw, y) if rule == "fitted" else multiclass_offsets(raw, y)
    assert torch.allclose(torch.tensor(res.bias, dtype=torch.float64), expect, atol=1e-5)
    assert res.bias_rule == ("fitted" if rule == "fitted" else "offsets")
    acc = float(((raw + expect).argmax(1) == y).double().mean())
    assert res.history[-1]["train_acc"] == pytest.approx(acc, abs=1e-12)


def test_binary_fitted_bias():
    x, y4 = _overlapping(1)
    y = (y4 < 2).to(torch.float32) * 2 - 1
    torch.manual_seed(0)
    res = train_deep(MLP(2, (8,)), x, y, DeepTrainConfig(loss="differential", epochs=2, batch_size=8,
                                                         spectrum_samples=0, offset_rule="fitted"),
                     quiet=True)
    raw = predict_scores(res.model, x).double() - float(res.model.head.bias.detach())
    b = fitted_offsets(torch.stack([torch.zeros_like(raw), raw], 1), (y > 0).long())
    assert res.bias == pytest.approx(float(b[1] - b[0]), abs=1e-6) and res.bias_rule == "fitted"

"""Attack adapter and minimum-norm attacks, checked against the exact answer for linear models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lowrank.attacks import (
    TwoLogitAdapter,
    adversarial_share,
    linear_min_norm,
    min_norm_perturbations,
    pgd_success,
)


def _linear_problem(d=50, n=60, seed=0):
    torch.manual_seed(seed)
    lin = nn.Linear(d, 1)
    x = torch.rand(n, d)
    with torch.no_grad():
        lin.weight.normal_()
        lin.weight /= lin.weight.norm()
        # boundary through the middle of the data, but through no data point
        lin.bias.fill_(-float((x @ lin.weight[0]).median()) + 0.0123)
        y = torch.where(lin(x)[:, 0] > 0, 1.0, -1.0)
    w, b = lin.weight.detach()[0].clone(), float(lin.bias.detach()[0])
    return lin, x, y, w, b


def test_adapter_two_logits_follow_the_score():
    lin, x, _, w, b = _linear_problem(n=10)
    logits = TwoLogitAdapter(lin)(x).detach()
    s = (x @ w + b)
    torch.testing.assert_close(logits[:, 1] - logits[:, 0], s)
    assert torch.equal(logits.argmax(1), (s > 0).long())


@pytest.mark.parametrize("norm,method", [("l2", "ddn"), ("l2", "fmn"), ("linf", "fmn")])
def test_min_norm_attack_is_within_one_percent_of_exact_linear_answer(norm, method):
    lin, x, y, w, b = _linear_problem()
    # a wide box so the exact unconstrained minimum is reachable
    found = min_norm_perturbations(lin, x, y, norm, method=method, bounds=(-10.0, 10.0))
    exact = linear_min_norm(w, b, x, norm)
    ratio = found / exact
    assert torch.isfinite(found).all()
    assert float(ratio.max()) <= 1.01, float(ratio.max())
    assert float(ratio.min()) >= 1 - 1e-4  # a valid adversarial cannot beat the exact minimum
    # the exact formula itself: |f| / ||w||_2 and |f| / ||w||_1
    f = (x.double() @ w.double() + b).abs()
    dual = w.double().norm() if norm == "l2" else w.double().abs().sum()
    torch.testing.assert_close(exact, f / dual)


def test_misclassified_images_get_zero_and_share_curve():
    lin, x, y, w, b = _linear_problem(n=20)
    y_wrong = y.clone()
    y_wrong[:5] = -y_wrong[:5]
    d = min_norm_perturbations(lin, x, y_wrong, "linf", bounds=(-10.0, 10.0))
    assert torch.all(d[:5] == 0) and torch.all(d[5:] > 0)
    eps = np.linspace(0, float(d.max()) * 1.01, 30)
    share = adversarial_share(d, eps)
    assert share[0] == pytest.approx(5 / 20) and share[-1] == 1.0
    assert np.all(np.diff(share) >= 0)
    # per-eps share equals counting by hand
    e = float(torch.sort(d).values[12])
    assert adversarial_share(d, [e])[0] == pytest.approx(float((d <= e).double().mean()))
    assert adversarial_share([np.inf, 1.0], [10.0]).tolist() == [0.5]


def test_pgd_cross_check_agrees_with_exact_minimum():
    lin, x, y, w, b = _linear_problem(n=40)
    exact = linear_min_norm(w, b, x, "linf")
    eps = float(exact.median())
    ok = pgd_success(lin, x, y, eps, "linf", steps=40, bounds=(-10.0, 10.0))
    below, above = exact < eps * 0.98, exact > eps * 1.02
    assert not ok[above].any()          # PGD cannot beat the exact minimum
    assert ok[below].float().mean() >= 0.95
    ok2 = pgd_success(lin, x, y, 1.0, "l2", steps=40, bounds=(-10.0, 10.0))
    torch.testing.assert_close(ok2, linear_min_norm(w, b, x, "l2") < 1.0, check_dtype=False)


def test_attack_argument_errors():
    lin, x, y, _, _ = _linear_problem(n=4)
    with pytest.raises(ValueError, match="norm"):
        min_norm_perturbations(lin, x, y, "l1")
    with pytest.raises(ValueError, match="method"):
        min_norm_perturbations(lin, x, y, "linf", method="ddn")
    with pytest.raises(ValueError, match="same length"):
        min_norm_perturbations(lin, x, y[:-1], "l2")

"""Attack adapter and minimum-norm attacks, checked against the exact answer for linear models."""

from __future__ import annotations

import copy
import warnings

import foolbox as fb
import numpy as np
import pytest
import torch
from torch import nn

from lowrank.attacks import (
    PGDBisection,
    TwoLogitAdapter,
    adversarial_share,
    linear_min_norm,
    min_norm_attack,
    min_norm_perturbations,
    pgd_attack,
    pgd_success,
    score_scale,
)
from lowrank.models import build_model

WIDE = (-10.0, 10.0)  # a box wide enough that the exact unconstrained minimum is reachable


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


def _scaled(model: nn.Module, factor: float) -> nn.Module:
    """The same model with its score multiplied by ``factor`` (head or layer scaled)."""
    m = copy.deepcopy(model)
    layer = m.head if hasattr(m, "head") else m
    with torch.no_grad():
        layer.weight *= factor
        layer.bias *= factor
    return m


def test_adapter_two_logits_follow_the_score():
    lin, x, _, w, b = _linear_problem(n=10)
    logits = TwoLogitAdapter(lin)(x).detach()
    s = (x @ w + b)
    torch.testing.assert_close(logits[:, 1] - logits[:, 0], s)
    assert torch.equal(logits.argmax(1), (s > 0).long())
    # scaled: the clean logit difference is +-1, the decision unchanged
    scaled = TwoLogitAdapter(lin, score_scale(lin, x))(x).detach()
    torch.testing.assert_close(scaled[:, 1] - scaled[:, 0], torch.sign(s))
    with pytest.raises(ValueError, match="scale for 10 images"):
        TwoLogitAdapter(lin, score_scale(lin, x))(x[:3])
    with pytest.raises(ValueError, match="scale"):
        TwoLogitAdapter(lin, torch.zeros(10))


# Each foolbox attack is followed by the PGD bisection (the default pipeline for its norm).
ATTACKS = {"ddn": lambda: fb.attacks.DDNAttack(steps=100),
           "fmn-l2": lambda: fb.attacks.L2FMNAttack(steps=100),
           "fmn": lambda: fb.attacks.LInfFMNAttack(steps=100, max_stepsize=2.0)}


@pytest.mark.parametrize("norm,method", [("l2", "ddn"), ("l2", "fmn-l2"), ("linf", "fmn")])
def test_min_norm_attack_is_within_one_percent_of_exact_linear_answer(norm, method):
    # seeds 1 and 4 hold points where FMN alone stalls on the boundary (on this machine)
    for seed in range(5):
        lin, x, y, w, b = _linear_problem(seed=seed)
        res = min_norm_attack(lin, x, y, norm, attacks=[ATTACKS[method](), PGDBisection()], bounds=WIDE)
        exact = linear_min_norm(w, b, x, norm)
        ratio = res.norms / exact
        assert torch.isfinite(res.norms).all() and res.n_failed == 0
        assert float(ratio.max()) <= 1.01, (seed, float(ratio.max()))
        assert float(ratio.min()) >= 1 - 1e-4  # a valid adversarial cannot beat the exact minimum
        assert set(res.method) <= {method.split("-")[0], "pgd"}
        # the reported norm is the minimum over the methods tried
        per = torch.stack(list(res.per_method.values()))
        torch.testing.assert_close(res.norms, per.min(0).values)
    # the exact formula itself: |f| / ||w||_2 and |f| / ||w||_1
    f = (x.double() @ w.double() + b).abs()
    dual = w.double().norm() if norm == "l2" else w.double().abs().sum()
    torch.testing.assert_close(exact, f / dual)


def _exact_tie_problem():
    """w = 1, b = -2, x = 0.25 (d = 4): FMN's first step lands on s = 0 exactly, in any float order."""
    lin = nn.Linear(4, 1)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.fill_(-2.0)
    return lin, torch.full((2, 4), 0.25)


def test_fmn_stalls_on_an_exact_tie_and_pgd_bisection_takes_over():
    # The root cause of the FMN-Linf `inf`: the linearised distance is exact for a linear
    # model, so FMN's first iterate is x + 0.25, where s = 0 exactly. s = 0 is class 0,
    # so an image of class 0 (label -1) is not adversarial there; the radius update adds
    # |s| / ||grad||_1 = 0, and FMN never moves again and returns the clean image.
    lin, x = _exact_tie_problem()
    y = torch.tensor([-1.0, -1.0])
    fmn = fb.attacks.LInfFMNAttack(steps=50, max_stepsize=2.0)
    with pytest.warns(RuntimeWarning, match="no adversarial example found for 2 of 2"):
        alone = min_norm_attack(lin, x, y, "linf", attacks=fmn, bounds=WIDE)
    assert alone.method == ("none", "none") and alone.failed.tolist() == [0, 1]
    # for label +1 a tie counts as adversarial, so FMN finds the exact 0.25
    up = min_norm_attack(lin, 1 - x, -y, "linf", attacks=fmn, bounds=WIDE)  # s(0.75) = +1
    torch.testing.assert_close(up.norms, torch.full((2,), 0.25, dtype=torch.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing fails any more: no warning
        both = min_norm_attack(lin, x, y, "linf", attacks=[fmn, PGDBisection()], bounds=WIDE)
    assert both.method == ("pgd", "pgd")
    assert torch.all(both.norms > 0.25) and torch.all(both.norms <= 0.25 * 1.001)
    assert torch.isinf(both.per_method["fmn"]).all()


def test_minimum_over_methods_when_the_first_attack_is_weak():
    lin, x, y, w, b = _linear_problem(n=30, seed=3)
    weak = fb.attacks.LInfFMNAttack(steps=3, max_stepsize=2.0)
    res = min_norm_attack(lin, x, y, "linf", attacks=[weak, PGDBisection()], bounds=WIDE)
    exact = linear_min_norm(w, b, x, "linf")
    assert float((res.norms / exact).max()) <= 1.01
    per = torch.stack([res.per_method["fmn"], res.per_method["pgd"]])
    torch.testing.assert_close(res.norms, per.min(0).values)
    won = [("fmn", "pgd")[int(k)] for k in per.argmin(0)]
    assert list(res.method) == won and "pgd" in won
    assert sum(res.counts().values()) == len(x)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_min_norm_is_scale_free_on_a_linear_model(norm):
    # x 1e4 puts the scores near 1e3, where DDN's cross-entropy gradient is exactly 0 in float32
    lin, x, y, w, b = _linear_problem(n=30, seed=2)
    big = _scaled(lin, 1e4)
    a = min_norm_perturbations(lin, x, y, norm, bounds=WIDE)
    c = min_norm_perturbations(big, x, y, norm, bounds=WIDE)
    exact = linear_min_norm(w, b, x, norm)
    for found in (a, c):
        assert torch.isfinite(found).all()
        assert float((found / exact).max()) <= 1.01 and float((found / exact).min()) >= 1 - 1e-4
    assert float(((a - c).abs() / exact).max()) <= 1e-2


def _small_cnn(seed=0, n=16):
    torch.manual_seed(seed)
    m = build_model("cnn", (1, 12, 12), width=4, feature_dim=8).eval()
    x = torch.rand(n, 1, 12, 12)
    with torch.no_grad():
        m.head.bias -= m(x).mean()  # the boundary through the data (through no image)
        s = m(x)
    m = _scaled(m, 5.0 / float(s.abs().median()))  # scores of order 5, as after training
    with torch.no_grad():
        y = torch.where(m(x) > 0, 1.0, -1.0)
    return m, x, y


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_min_norm_is_scale_free_on_a_small_cnn(norm):
    # before the adapter divided by |s(x_clean)|, DDN failed on every image of the x 100 model
    m, x, y = _small_cnn()
    a = min_norm_attack(m, x, y, norm, steps=40)
    c = min_norm_attack(_scaled(m, 100.0), x, y, norm, steps=40)
    assert a.n_failed == 0 and c.n_failed == 0
    torch.testing.assert_close(a.norms, c.norms, rtol=1e-3, atol=1e-6)
    # fixed-budget cross-check is scale-free too
    eps = float(a.norms.median())
    torch.testing.assert_close(pgd_success(m, x, y, eps, norm, steps=10),
                               pgd_success(_scaled(m, 100.0), x, y, eps, norm, steps=10))


def test_misclassified_images_get_zero_and_share_curve():
    lin, x, y, w, b = _linear_problem(n=20)
    y_wrong = y.clone()
    y_wrong[:5] = -y_wrong[:5]
    res = min_norm_attack(lin, x, y_wrong, "linf", bounds=WIDE)
    d = res.norms
    assert torch.all(d[:5] == 0) and torch.all(d[5:] > 0)
    assert res.method[:5] == ("clean",) * 5 and res.counts()["clean"] == 5
    eps = np.linspace(0, float(d.max()) * 1.01, 30)
    share = adversarial_share(d, eps)
    assert share[0] == pytest.approx(5 / 20) and share[-1] == 1.0
    assert np.all(np.diff(share) >= 0)
    # per-eps share equals counting by hand
    e = float(torch.sort(d).values[12])
    assert adversarial_share(d, [e])[0] == pytest.approx(float((d <= e).double().mean()))
    assert adversarial_share([np.inf, 1.0], [10.0]).tolist() == [0.5]


def test_unreachable_boundary_is_reported_not_silently_inf():
    # s = x_0 + 10 > 0 on the whole box [0, 1]: no adversarial example exists for label +1
    lin = nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0]]))
        lin.bias.fill_(10.0)
    x = torch.tensor([[0.5, 0.5], [0.2, 0.9]])
    with pytest.warns(RuntimeWarning, match=r"1 of 2 images \(indices \[0\]\)"):
        res = min_norm_attack(lin, x, [1, -1], "linf")
    assert res.method == ("none", "clean") and res.failed.tolist() == [0] and res.n_failed == 1
    assert torch.isinf(res.norms[0]) and res.norms[1] == 0


def test_pgd_cross_check_agrees_with_exact_minimum():
    lin, x, y, w, b = _linear_problem(n=40)
    exact = linear_min_norm(w, b, x, "linf")
    eps = float(exact.median())
    ok = pgd_success(lin, x, y, eps, "linf", steps=40, bounds=WIDE)
    below, above = exact < eps * 0.98, exact > eps * 1.02
    assert not ok[above].any()          # PGD cannot beat the exact minimum
    assert ok[below].float().mean() >= 0.95
    ok2 = pgd_success(lin, x, y, 1.0, "l2", steps=40, bounds=WIDE)
    torch.testing.assert_close(ok2, linear_min_norm(w, b, x, "l2") < 1.0, check_dtype=False)
    # another foolbox fixed-budget attack, passed as an object
    ok3 = pgd_success(lin, x, y, eps, "linf", bounds=WIDE, attack=fb.attacks.LinfBasicIterativeAttack())
    assert not ok3[above].any() and ok3[below].float().mean() >= 0.95


def test_attack_argument_errors():
    lin, x, y, _, _ = _linear_problem(n=4)
    with pytest.raises(ValueError, match="norm"):
        min_norm_perturbations(lin, x, y, "l1")
    with pytest.raises(ValueError, match="DDNAttack minimises the l2 norm"):
        min_norm_attack(lin, x, y, "linf", attacks=fb.attacks.DDNAttack())
    with pytest.raises(TypeError, match="attacks must be"):
        min_norm_attack(lin, x, y, "l2", attacks=[fb.attacks.L2PGD()])
    with pytest.raises(ValueError, match="at least one"):
        min_norm_attack(lin, x, y, "l2", attacks=[])
    with pytest.raises(ValueError, match="same length"):
        min_norm_perturbations(lin, x, y[:-1], "l2")
    with pytest.raises(ValueError, match="batch_size"):
        min_norm_attack(lin, x, y, "l2", batch_size=0)
    with pytest.raises(ValueError, match="bisection_steps"):
        PGDBisection(bisection_steps=0)
    with pytest.raises(TypeError, match="FixedEpsilonAttack"):
        pgd_success(lin, x, y, 0.1, "linf", attack=fb.attacks.DDNAttack())
    with pytest.raises(ValueError, match="L2ProjectedGradientDescentAttack minimises the l2 norm"):
        pgd_success(lin, x, y, 0.1, "linf", attack=fb.attacks.L2PGD())
    with pytest.raises(ValueError, match="one score per image"):
        min_norm_attack(nn.Linear(50, 2), x, y, "l2")
    with pytest.raises(ValueError, match="eps must hold one"):
        pgd_attack(lin, x, (y > 0).long(), torch.tensor([0.1]), "linf")

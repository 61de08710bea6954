"""Minimum-norm and fixed-budget attacks on multi-class models (class logits), checked against the exact
answer for linear models z = W x + b."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from lowrank.attacks import (
    LogitAdapter,
    PGDBisection,
    TwoLogitAdapter,
    min_norm_attack,
    min_norm_perturbations,
    pgd_attack,
    pgd_success,
    score_scale,
)

WIDE = (-50.0, 50.0)  # a box so wide that it never binds: the unconstrained minimum is reachable


def _linear(C: int, d: int = 10, n: int = 30, seed: int = 0, factor: float = 1.0):
    """A C-class linear model on R^d, n points it classifies correctly, and their labels."""
    g = torch.Generator().manual_seed(seed)
    W, b = torch.randn(C, d, generator=g), torch.randn(C, generator=g)
    lin = nn.Linear(d, C)
    with torch.no_grad():
        lin.weight.copy_(factor * W)
        lin.bias.copy_(factor * b)
    x = torch.randn(n, d, generator=g)
    y = (x.double() @ W.double().T + b.double()).argmax(1)
    return lin, x, y


def _exact(lin: nn.Linear, x: torch.Tensor, y: torch.Tensor, norm: str) -> torch.Tensor:
    """min_{k != y} (z_y - z_k) / ||w_y - w_k||_* in float64 (dual norm: L2 for L2, L1 for L-inf)."""
    W, b = lin.weight.detach().double(), lin.bias.detach().double()
    z = x.double() @ W.T + b
    diff = W[y][:, None, :] - W[None, :, :]                          # (n, C, d)
    dual = diff.norm(dim=2) if norm == "l2" else diff.abs().sum(dim=2)
    ratio = (z.gather(1, y[:, None]) - z) / dual
    ratio[torch.arange(len(y)), y] = math.inf
    return ratio.min(dim=1).values


@pytest.mark.parametrize("C", [3, 5])
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_min_norm_attack_matches_the_exact_linear_multiclass_answer(C, norm):
    for seed in range(2):
        lin, x, y = _linear(C, d=5 + 10 * seed, seed=10 * C + seed)
        exact = _exact(lin, x, y, norm)
        # the test is not trivial: for many images the class nearest in input space is not
        # the runner-up in logit (where an untargeted margin attack goes first)
        z = lin(x).detach().double()
        runner_up = z.scatter(1, y[:, None], -math.inf).argmax(1)
        assert bool((exact < _pair_distance(lin, x, y, runner_up, norm) * 0.99).any())
        res = min_norm_attack(lin, x, y, norm, bounds=WIDE)
        assert res.n_failed == 0 and torch.isfinite(res.norms).all()
        rel = res.norms / exact - 1
        assert float(rel.abs().max()) <= 1e-3, (seed, float(rel.min()), float(rel.max()))
        assert float(rel.min()) >= -1e-5  # a valid adversarial example cannot beat the exact minimum
        _check_adversarials(lin, x, y, res, norm)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_untargeted_search_alone_misses_the_nearest_class(norm):
    # why PGDBisection is multi-targeted for C > 2: with the untargeted margin only, the
    # search settles on the face of the runner-up class in logit, not the nearest one
    from lowrank.attacks import default_attacks
    lin, x, y = _linear(5, d=5, seed=50)
    exact = _exact(lin, x, y, norm)
    first = default_attacks(norm)[0]
    alone = min_norm_attack(lin, x, y, norm, attacks=[first, PGDBisection(targets=0)], bounds=WIDE)
    both = min_norm_attack(lin, x, y, norm, attacks=[first, PGDBisection()], bounds=WIDE)
    assert float((alone.norms / exact).max()) > 1.02
    assert float((both.norms / exact - 1).abs().max()) <= 1e-3
    # targeting only the two classes with the largest other logits: exact wherever the
    # nearest class is one of them
    two = min_norm_attack(lin, x, y, norm, attacks=[first, PGDBisection(targets=2)], bounds=WIDE)
    z = lin(x).detach().double()
    top2 = z.scatter(1, y[:, None], -math.inf).argsort(1, descending=True)[:, :2]
    pair = torch.stack([_pair_distance(lin, x, y, top2[:, j], norm) for j in range(2)], 1).min(1).values
    covered = pair <= exact * (1 + 1e-9)
    assert 0 < int(covered.sum()) < len(x)
    assert float((two.norms[covered] / exact[covered] - 1).abs().max()) <= 1e-3


def _pair_distance(lin, x, y, k, norm):
    W, b = lin.weight.detach().double(), lin.bias.detach().double()
    z = x.double() @ W.T + b
    diff = W[y] - W[k]
    dual = diff.norm(dim=1) if norm == "l2" else diff.abs().sum(dim=1)
    return (z.gather(1, y[:, None]) - z.gather(1, k[:, None]))[:, 0] / dual


def _check_adversarials(model, x, y, res, norm):
    """Each finite reported norm is the norm of a point that the model, re-scored, misclassifies."""
    fin = torch.isfinite(res.norms) & (res.norms > 0)
    adv = res.adversarials[fin]
    with torch.no_grad():
        assert bool((model(adv).argmax(1) != y[fin]).all())
    flat = (adv - x[fin]).flatten(1)
    size = flat.norm(dim=1) if norm == "l2" else flat.abs().amax(dim=1)
    torch.testing.assert_close(size.double(), res.norms[fin], rtol=1e-6, atol=0)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_min_norm_is_scale_free_for_logits(norm):
    lin, x, y = _linear(5, seed=3)
    big, _, _ = _linear(5, seed=3, factor=100.0)
    exact = _exact(lin, x, y, norm)
    a = min_norm_perturbations(lin, x, y, norm, bounds=WIDE)
    c = min_norm_perturbations(big, x, y, norm, bounds=WIDE)
    assert torch.isfinite(c).all()
    assert float(((a - c).abs() / exact).max()) <= 1e-3
    assert float((c / exact - 1).abs().max()) <= 1e-3
    # tied logits (margin 0) or non-finite ones: scale 1
    flat = nn.Linear(10, 5)
    with torch.no_grad():
        flat.weight.zero_()
        flat.bias.zero_()
    assert score_scale(flat, x, y).tolist() == [1.0] * len(x)
    inf_model = nn.Sequential(flat, _Wrap(nn.Identity(), lambda t: t + torch.tensor([math.inf] + [0.0] * 4)))
    assert score_scale(inf_model, x[:2], torch.tensor([1, 0])).tolist() == [1.0, 1.0]
    # the adapter sees the same scaled logits for both models
    torch.testing.assert_close(LogitAdapter(lin, score_scale(lin, x, y))(x),
                               LogitAdapter(big, score_scale(big, x, y))(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_two_logit_model_matches_the_one_score_model(norm):
    g = torch.Generator().manual_seed(7)
    d, n = 8, 30
    w, b = torch.randn(d, generator=g), float(torch.randn((), generator=g))
    one, two = nn.Linear(d, 1), nn.Linear(d, 2)
    with torch.no_grad():
        one.weight.copy_(w[None])
        one.bias.fill_(b)
        two.weight.copy_(torch.stack([torch.zeros(d), w]))      # z = [0, s]
        two.bias.copy_(torch.tensor([0.0, b]))
    x = torch.randn(n, d, generator=g)
    with torch.no_grad():
        y = (one(x)[:, 0] > 0).long()
        assert torch.equal(two(x).argmax(1), y)
    y[:3] = 1 - y[:3]  # three misclassified images
    a = min_norm_attack(one, x, y, norm, bounds=WIDE)
    c = min_norm_attack(two, x, y, norm, bounds=WIDE)
    assert a.n_failed == 0 and c.n_failed == 0
    torch.testing.assert_close(c.norms, a.norms, rtol=1e-3, atol=0)
    assert a.method[:3] == c.method[:3] == ("clean",) * 3
    dual = w.double().norm() if norm == "l2" else w.double().abs().sum()
    exact = (x.double() @ w.double() + b).abs() / dual
    assert float((c.norms[3:] / exact[3:] - 1).abs().max()) <= 1e-3
    # the adapter: [-s/2, s/2] for one score, the logits as they are for two
    torch.testing.assert_close(LogitAdapter(one)(x).diff(dim=1), LogitAdapter(two)(x).diff(dim=1))
    assert TwoLogitAdapter is LogitAdapter


def test_pgd_success_agrees_with_the_exact_distance():
    lin, x, y = _linear(4, d=10, n=60, seed=5)
    for norm in ("l2", "linf"):
        exact = _exact(lin, x, y, norm)
        eps = float(exact.median())
        ok = pgd_success(lin, x, y, eps, norm, steps=40, bounds=WIDE)
        assert bool(ok[exact < 0.9 * eps].all()), norm
        assert not bool(ok[exact > 1.1 * eps].any()), norm
        # and the logits x 100 give the same answer (but at the median image itself, on the boundary)
        big, _, _ = _linear(4, d=10, n=60, seed=5, factor=100.0)
        off = (exact / eps - 1).abs() > 1e-2
        assert int((~off).sum()) <= 2
        ok_big = pgd_success(big, x, y, eps, norm, steps=40, bounds=WIDE)
        assert torch.equal(ok_big[off], ok[off])


def test_pgd_attack_lowers_the_multiclass_margin():
    lin, x, y = _linear(3, d=6, n=20, seed=2)
    exact = _exact(lin, x, y, "l2")
    # targeted at the nearest class, PGD succeeds just above the exact distance
    W = lin.weight.detach().double()
    z = lin(x).detach().double()
    pair = (z.gather(1, y[:, None]) - z) / (W[y][:, None, :] - W[None]).norm(dim=2)
    pair[torch.arange(len(y)), y] = math.inf
    nearest = pair.argmin(1)
    xa, ok = pgd_attack(lin, x, y, exact * 1.01, "l2", steps=20, bounds=WIDE, target=nearest)
    assert bool(ok.all())
    with torch.no_grad():
        assert bool((lin(xa).argmax(1) != y).all())
    _, ok = pgd_attack(lin, x, y, exact * 0.99, "l2", steps=20, bounds=WIDE, target=nearest)
    assert not bool(ok.any())
    # untargeted: the margin z_y - max_{k != y} z_k, gradient w_y - w_runner-up
    xr = x.clone().requires_grad_(True)
    from lowrank.attacks.adapter import margin
    margin(lin(xr), y).sum().backward()
    runner_up = z.scatter(1, y[:, None], -math.inf).argmax(1)
    torch.testing.assert_close(xr.grad.double(), W[y] - W[runner_up], rtol=1e-6, atol=1e-6)


def test_misclassified_images_get_zero_and_clean():
    lin, x, y = _linear(5, n=12, seed=4)
    y_wrong = y.clone()
    y_wrong[:4] = (y[:4] + 1) % 5
    for norm in ("l2", "linf"):
        res = min_norm_attack(lin, x, y_wrong, norm, bounds=WIDE)
        assert torch.all(res.norms[:4] == 0) and torch.all(res.norms[4:] > 0)
        assert res.method[:4] == ("clean",) * 4 and "clean" not in res.method[4:]
        assert torch.equal(res.adversarials[:4], x[:4])
        rel = res.norms[4:] / _exact(lin, x[4:], y[4:], norm) - 1
        assert float(rel.abs().max()) <= 1e-3


def _conv_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 5, stride=2), nn.ReLU(), nn.Conv2d(4, 8, 5, stride=2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 4 * 4, 10)).eval()


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_small_ten_class_conv_net(norm):
    net = _conv_net()
    torch.manual_seed(1)
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        y = net(x).argmax(1)
    y[0] = (y[0] + 3) % 10  # one misclassified image
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no image fails
        res = min_norm_attack(net, x, y, norm, steps=30)
    assert res.n_failed == 0 and res.method[0] == "clean" and res.norms[0] == 0
    assert torch.all(res.norms[1:] > 0)
    assert set(res.method[1:]) <= {"ddn", "fmn", "pgd"}
    _check_adversarials(net, x, y, res, norm)
    # the reported norm is the minimum over the methods tried
    per = torch.stack(list(res.per_method.values())).min(0).values
    torch.testing.assert_close(res.norms[1:], per[1:])


def test_bad_input_errors():
    lin, x, y = _linear(3, n=4)
    with pytest.raises(ValueError, match=r"y must hold labels in \{0, \.\.\., 2\}.*3 class logits"):
        min_norm_attack(lin, x, torch.tensor([0, 1, 3, 0]), "l2")
    with pytest.raises(ValueError, match=r"y must hold labels in \{0, \.\.\., 2\}"):
        min_norm_attack(lin, x, torch.tensor([0, -1, 1, 0]), "l2")
    with pytest.raises(ValueError, match="y must be 1-D"):
        min_norm_attack(lin, x, y[:, None], "l2")
    with pytest.raises(ValueError, match="y must hold integer class labels"):
        min_norm_attack(lin, x, torch.tensor([0.5, 1.0, 2.0, 0.0]), "l2")
    with pytest.raises(ValueError, match="same length"):
        min_norm_attack(lin, x, y[:3], "l2")
    with pytest.raises(ValueError, match="y must hold labels"):
        pgd_success(lin, x, torch.tensor([0, 1, 5, 0]), 0.1, "l2")
    with pytest.raises(ValueError, match="cls must hold labels"):
        pgd_attack(lin, x, torch.tensor([0, 1, 5, 0]), torch.full((4,), 0.1), "l2")
    with pytest.raises(ValueError, match="cls must be given"):
        score_scale(lin, x)
    with pytest.raises(ValueError, match="target must hold -1 or a class"):
        pgd_attack(lin, x, y, torch.full((4,), 0.1), "l2", target=y)
    with pytest.raises(ValueError, match="target is for models that return class logits"):
        pgd_attack(nn.Linear(10, 1), x, torch.ones(4, dtype=torch.long), torch.full((4,), 0.1), "l2",
                   target=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="targets must be None or a non-negative integer"):
        PGDBisection(targets=-1)
    # model outputs that are neither one score nor class logits per image
    for bad in (lambda t: t[:, :1, None], lambda t: t[:, :0], lambda t: t[:2]):
        with pytest.raises(ValueError, match=r"model\(x\) must return one score per image.*or class logits"):
            min_norm_attack(_Wrap(lin, bad), x, y, "l2")
    with pytest.raises(ValueError, match="x must hold at least one image"):
        min_norm_attack(lin, x[:0], y[:0], "l2")


class _Wrap(nn.Module):
    def __init__(self, model, f):
        super().__init__()
        self.model, self.f = model, f

    def forward(self, x):
        return self.f(self.model(x))

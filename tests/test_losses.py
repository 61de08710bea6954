"""Losses against naive float64 references, autograd, and bad inputs."""

import math

import pytest
import torch

from lowrank.losses import CrossEntropyLoss, DifferentialLoss, cross_entropy_loss, differential_loss


def naive_differential(scores, y, pair_loss="logistic", reduction="mean"):
    total, count = 0.0, 0
    s = [float(v) for v in scores]
    for i, yi in enumerate(y):
        for j, yj in enumerate(y):
            if yi == 1 and yj == -1:
                z = s[i] - s[j]
                if pair_loss == "logistic":
                    total += math.log1p(math.exp(-z)) if z > -30 else -z + math.log1p(math.exp(z))
                else:
                    total += math.exp(-z)
                count += 1
    return total / count if reduction == "mean" else total


@pytest.mark.parametrize("pair_loss", ["logistic", "exponential"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_differential_matches_double_loop(pair_loss, reduction):
    gen = torch.Generator().manual_seed(1)
    s = torch.randn(23, generator=gen, dtype=torch.float64)
    y = [1 if v > 0.4 else -1 for v in torch.rand(23, generator=gen)]
    y[0], y[1] = 1, -1
    got = float(differential_loss(s, y, pair_loss=pair_loss, reduction=reduction))
    want = naive_differential(s, y, pair_loss, reduction)
    assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("pair_loss", ["logistic", "exponential"])
def test_differential_gradient_matches_broadcast_autograd(pair_loss):
    gen = torch.Generator().manual_seed(2)
    s = torch.randn(40, generator=gen, dtype=torch.float64)
    y = torch.where(torch.arange(40) % 3 == 0, 1.0, -1.0).double()
    s1 = s.clone().requires_grad_(True)
    differential_loss(s1, y, pair_loss=pair_loss, reduction="sum").backward()
    s2 = s.clone().requires_grad_(True)
    z = s2[y > 0][:, None] - s2[y < 0][None, :]
    ref = torch.nn.functional.softplus(-z) if pair_loss == "logistic" else torch.exp(-z)
    ref.sum().backward()
    torch.testing.assert_close(s1.grad, s2.grad, rtol=1e-12, atol=1e-13)


def test_differential_bias_invariance_and_zero_one_labels():
    s = torch.tensor([0.3, -1.2, 2.0, 0.1], dtype=torch.float64)
    a = differential_loss(s, [1, 0, 1, 0])
    b = differential_loss(s + 17.0, [1, -1, 1, -1])
    assert float(a) == pytest.approx(float(b), rel=1e-12)


def test_differential_extreme_scores_are_finite_logistic():
    s = torch.tensor([1e4, -1e4, 5e3, -3e3, 1e4, -1e4], dtype=torch.float64, requires_grad=True)
    y = [1, -1, -1, 1, -1, 1]
    loss = differential_loss(s, y, reduction="sum")
    loss.backward()
    assert torch.isfinite(s.grad).all()
    # exact: softplus(-z) = max(-z, 0) + log1p(exp(-|z|)); two pairs have z = 0
    want = sum(max(-(a - b), 0.0) + math.log1p(math.exp(-abs(a - b)))
               for a in (1e4, -3e3, -1e4) for b in (-1e4, 5e3, 1e4))
    assert float(loss.detach()) == pytest.approx(want, rel=1e-15)
    # d/ds_i = -sum_j sigmoid(s_j - s_i): each term is 0, 1/2 or 1 at these gaps
    assert s.grad.tolist() == pytest.approx([-0.5, 0.5, 2.0, -2.0, 2.5, -2.5], abs=1e-12)


def test_differential_exponential_log_space_avoids_overflow():
    # exp(-s_i) alone overflows float64, the pair terms do not
    s = torch.tensor([-5000.0, -5000.5, -4999.0], dtype=torch.float64, requires_grad=True)
    y = [1, -1, -1]
    loss = differential_loss(s, y, pair_loss="exponential", reduction="sum")
    loss.backward()
    want = math.exp(-0.5) + math.exp(-(-5000.0 + 4999.0))
    assert float(loss.detach()) == pytest.approx(want, rel=1e-12)
    assert torch.isfinite(s.grad).all()
    assert float(s.grad[0]) == pytest.approx(-want, rel=1e-12)


def test_cross_entropy_reference_and_module():
    s = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    y = [1, 0, 0]
    want = [math.log1p(math.exp(-2.0)), math.log1p(math.exp(-1.0)), math.log1p(math.exp(0.5))]
    torch.testing.assert_close(cross_entropy_loss(s, y, reduction="none"),
                               torch.tensor(want, dtype=torch.float64))
    assert float(CrossEntropyLoss(reduction="sum")(s, y)) == pytest.approx(sum(want), rel=1e-14)
    assert float(DifferentialLoss()(s, y)) == pytest.approx(naive_differential(s, [1, -1, -1]))
    big = cross_entropy_loss(torch.tensor([-1e4, 1e4], dtype=torch.float64), [1, 1], "none")
    assert big.tolist() == [1e4, 0.0]


@pytest.mark.parametrize("fn", [cross_entropy_loss, differential_loss])
@pytest.mark.parametrize("scores,y,match", [
    (torch.tensor([0.0, 1.0]), [1, 2], "y must hold labels"),
    (torch.tensor([0.0, 1.0]), [1, -1, 1], "same length"),
    (torch.tensor([[0.0, 1.0], [1.0, 2.0]]), [1, -1], "scores must be 1-D"),
    (torch.tensor([0.0, float("nan")]), [1, -1], "scores must be finite"),
    (torch.tensor([0.0, float("inf")]), [1, -1], "scores must be finite"),
    (torch.tensor([0.0, 1.0]), [float("nan"), 1.0], "y must hold labels"),
    (torch.tensor([0.0, 1.0]), [-1, 0], "mixes"),
])
def test_bad_inputs_name_the_argument(fn, scores, y, match):
    with pytest.raises(ValueError, match=match):
        fn(scores, y)


def test_differential_requires_both_classes():
    with pytest.raises(ValueError, match="y must contain both classes.*negative"):
        differential_loss(torch.tensor([0.0, 1.0]), [1, 1])
    with pytest.raises(ValueError, match="y must contain both classes.*positive"):
        differential_loss(torch.tensor([0.0, 1.0]), [0, 0])


def test_bad_options():
    with pytest.raises(ValueError, match="pair_loss"):
        differential_loss(torch.tensor([0.0, 1.0]), [1, -1], pair_loss="hinge")
    with pytest.raises(ValueError, match="reduction"):
        differential_loss(torch.tensor([0.0, 1.0]), [1, -1], reduction="none")

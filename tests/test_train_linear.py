"""Gradient descent on the linear model: the paper example, gradients, the bias rule."""

import math

import numpy as np
import pytest
import torch

from lowrank.data import affine_subspace_data, line_pair
from lowrank.losses import cross_entropy_loss, differential_loss
from lowrank.theory import cross_entropy_limit, max_margin_separator
from lowrank.train import calibrate_bias, fit_linear, log_spaced_steps, midpoint_bias
from lowrank.train.linear import NORMALIZED_LR, _LinearObjective


def test_paper_example_cross_entropy_margin():
    d = line_pair()
    fit = fit_linear(d.X, d.y, loss="cross_entropy", steps=20_000, lr=0.5, init="zeros", record=40)
    assert 0.43 <= fit.margin <= 1 / math.sqrt(5)
    steps = np.array(fit.history["step"])
    m = np.array(fit.history["margin"])[steps >= 100]
    assert np.all(np.diff(m) >= 0)
    assert fit.history["step"][-1] == 20_000


def test_paper_example_differential_margin():
    d = line_pair()
    fit = fit_linear(d.X, d.y, loss="differential", steps=2_000, lr=0.5)
    assert fit.margin >= 0.999
    assert fit.b == pytest.approx(-4.0 * float(fit.w[0]), rel=1e-12)  # boundary at x1 = 4
    assert float(fit.w[1]) == 0.0  # the weights never leave the data's span


@pytest.mark.parametrize("loss,pair_loss", [("cross_entropy", "logistic"),
                                            ("differential", "logistic"),
                                            ("differential", "exponential")])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_manual_gradient_equals_autograd(loss, pair_loss, reduction):
    d = affine_subspace_data(7, dim=5, rank=2, offset=2.0, gap=0.5, seed=1)
    obj = _LinearObjective(d.X, d.y, loss, pair_loss, reduction)
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=5) * 0.3, 0.7
    gw, gb = obj.grad(w, b)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    s = d.X @ wt + bt
    val = (cross_entropy_loss(s, d.y, reduction) if loss == "cross_entropy"
           else differential_loss(s, d.y, pair_loss=pair_loss, reduction=reduction))
    val.backward()
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-11, atol=1e-13)
    assert gb == pytest.approx(float(bt.grad), abs=1e-13)
    assert obj.value(w, b) == pytest.approx(float(val.detach()), rel=1e-13)


def test_dense_and_kernel_differential_gradients_agree(monkeypatch):
    d = affine_subspace_data(30, dim=6, rank=2, offset=1.0, gap=0.5, seed=2)
    w = np.linspace(-1, 1, 6)
    dense = _LinearObjective(d.X, d.y, "differential", "logistic", "mean").grad(w, 0.0)[0]
    monkeypatch.setattr(_LinearObjective, "MAX_DENSE_PAIRS", 0)
    chunked = _LinearObjective(d.X, d.y, "differential", "logistic", "mean").grad(w, 0.0)[0]
    np.testing.assert_allclose(dense, chunked, rtol=1e-12, atol=1e-14)


def test_differential_reaches_optimal_margin_in_subspace():
    d = affine_subspace_data(15, dim=10, rank=3, offset=4.0, gap=1.0, seed=5, spread=0.5)
    opt = max_margin_separator(d.X, d.y)
    fit = fit_linear(d.X, d.y, loss="differential", steps=20_000, lr=1.0, reference=opt.w)
    assert fit.history["cosine"][-1] > 0.99
    assert fit.margin <= opt.margin + 1e-9
    margins = np.array(fit.history["margin"][1:])
    assert np.all(np.diff(margins) > 0) and margins[-1] > 0.85 * opt.margin  # slow, log-rate
    # the weights stay in the span of the data's directions: no normal component
    assert abs(float(fit.w @ d.normal)) < 1e-10 * float(torch.linalg.vector_norm(fit.w))


def test_cross_entropy_heads_to_augmented_svm():
    d = affine_subspace_data(10, dim=6, rank=2, offset=3.0, gap=1.0, seed=9, spread=0.5)
    ce = cross_entropy_limit(d.X, d.y)
    fit = fit_linear(d.X, d.y, loss="cross_entropy", steps=30_000, lr=0.05, reference=ce.w)
    cos = np.array(fit.history["cosine"])
    assert cos[-1] > 0.99 and cos[-1] > cos[len(cos) // 2]
    assert fit.margin <= ce.margin + 1e-9


def test_random_init_orthogonal_component_is_frozen():
    d = affine_subspace_data(10, dim=6, rank=2, offset=0.0, gap=1.0, center=0.0, seed=3)
    span = torch.cat([d.basis, d.normal[:, None]], dim=1)  # data span incl. bias-free offset dir
    fit0 = fit_linear(d.X, d.y, loss="differential", steps=0, init="random", seed=1)
    fit = fit_linear(d.X, d.y, loss="differential", steps=500, lr=0.5, init="random", seed=1)
    Q, _ = torch.linalg.qr(span)
    orth0 = fit0.w - Q @ (Q.T @ fit0.w)
    orth1 = fit.w - Q @ (Q.T @ fit.w)
    torch.testing.assert_close(orth0, orth1, rtol=0, atol=1e-12)
    assert float(torch.linalg.vector_norm(orth0)) > 0.1


def test_bias_rule():
    assert midpoint_bias([3.0, 5.0, 10.0, -2.0], [-1, 1, 1, -1]) == -4.0
    assert calibrate_bias([1.0, 0.0], [[3.0, 1.0], [5.0, 1.0]], [0, 1]) == -4.0
    with pytest.raises(ValueError, match="w must have length"):
        calibrate_bias([1.0], [[3.0, 1.0]], [1])
    with pytest.raises(ValueError, match="both classes"):
        midpoint_bias([1.0, 2.0], [1, 1])


def test_log_spaced_steps():
    assert log_spaced_steps(1000, 4) == [1, 10, 100, 1000]
    assert log_spaced_steps(0, 5) == []


@pytest.mark.parametrize("kwargs,match", [
    (dict(loss="hinge"), "loss must be one of"),
    (dict(init="ones"), "init must be"),
    (dict(lr=-1.0), "lr must be a finite number > 0"),
    (dict(lr=0.0), "lr must be a finite number > 0"),
    (dict(lr=float("inf")), "lr must be a finite number > 0, got inf"),
    (dict(lr=float("nan")), "lr must be a finite number > 0, got nan"),
    (dict(steps=-3), "steps must be"),
    (dict(steps=2.5), "steps must be a finite integer"),
    (dict(steps=float("inf")), "steps must be a finite integer"),
    (dict(steps=float("nan")), "steps must be a finite integer"),
    (dict(y=[1, 1]), "both classes"),
    (dict(X=[[3.0, float("inf")], [5.0, 1.0]]), "X must be finite"),
    (dict(X=[[3.0 + 1j, 1.0], [5.0, 1.0]]), "X must be real-valued"),
    (dict(X=torch.tensor([[3.0, 1.0], [5.0, 1.0]], dtype=torch.complex128)), "X must be real-valued"),
    (dict(reference=[1.0]), "reference must have shape"),
])
def test_fit_linear_bad_arguments(kwargs, match):
    args = dict(X=[[3.0, 1.0], [5.0, 1.0]], y=[-1, 1], steps=3) | kwargs
    with pytest.raises(ValueError, match=match):
        fit_linear(**args)


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr="0.1"), "lr must be a real number, got str"),
    (dict(steps="10"), "steps must be a real number, got str"),
    (dict(steps=None), "steps must be a real number"),
    (dict(init="random", seed=1.5), "seed must be an integer or None, got float"),
])
def test_fit_linear_argument_types(kwargs, match):
    args = dict(X=[[3.0, 1.0], [5.0, 1.0]], y=[-1, 1], steps=3) | kwargs
    with pytest.raises(TypeError, match=match):
        fit_linear(**args)


def test_fit_linear_integral_float_steps_and_divergence():
    X, y = [[3.0, 1.0], [5.0, 1.0]], [-1, 1]
    assert fit_linear(X, y, steps=1e2, lr=0.5).history["step"][-1] == 100
    # a finite step so large that w overflows: the error names lr, not the loss's scores
    with pytest.raises(ValueError, match=r"diverged .* lr=1e\+308 is too large"):
        fit_linear(X, y, steps=5, lr=1e308)


@pytest.mark.parametrize("loss", ["cross_entropy", "differential"])
def test_fit_linear_accepts_tensors_that_require_grad(loss):
    d = affine_subspace_data(5, dim=4, rank=2, offset=2.0, gap=0.5, seed=3)
    X = d.X.clone().requires_grad_(True)
    y = d.y.clone().requires_grad_(True)
    ref = torch.ones(4, dtype=torch.float64, requires_grad=True)
    fit = fit_linear(X, y, loss=loss, steps=50, lr=0.5, reference=ref)
    plain = fit_linear(d.X, d.y, loss=loss, steps=50, lr=0.5, reference=torch.ones(4))
    assert torch.equal(fit.w, plain.w) and fit.b == plain.b
    np.testing.assert_equal(fit.history, plain.history)  # NaN at step 0 (w = 0) included
    assert not fit.w.requires_grad and X.grad is None


def test_default_steps_per_loss_and_schedule():
    X, y = [[3.0, 1.0], [5.0, 1.0]], [-1, 1]
    assert NORMALIZED_LR == {"cross_entropy": 0.1, "differential": 1.0}
    for loss in ("cross_entropy", "differential"):
        assert fit_linear(X, y, loss=loss, steps=1).config["lr"] == 0.1
        normalized = fit_linear(X, y, loss=loss, steps=1, schedule="normalized")
        assert normalized.config["lr"] == NORMALIZED_LR[loss]


def test_history_flags_runs_that_do_not_separate():
    # the translation sweep's farthest pair (offset 8): normalized GD on cross-entropy at its
    # default step does not separate the two points for the first ~1000 steps (the bias must
    # grow to ~8 ||w||; signed margins -0.56, -0.20 at steps 250, 500), then does, and from
    # step 1500 on its margin rises monotonically towards the limit
    d = line_pair(7.5, 0.5, 8.0)
    ce = cross_entropy_limit(d.X, d.y)
    fit = fit_linear(d.X, d.y, steps=3000, schedule="normalized", record=list(range(0, 3001, 250)))
    margin, sep = np.asarray(fit.history["margin"]), fit.history["separated"]
    assert sep == [bool(m > 0) for m in margin]  # NaN (w = 0 at step 0) is not separated
    assert sep[:3] == [False, False, False] and margin[1] < -0.5 and all(sep[5:])
    assert np.all(np.diff(margin[6:]) > 0) and margin[-1] <= ce.margin + 1e-12
    assert margin[-1] > 0.6 * ce.margin


@pytest.mark.parametrize("loss,pair_loss", [("cross_entropy", "logistic"),
                                            ("differential", "logistic"),
                                            ("differential", "exponential")])
def test_log_loss_gradient_equals_autograd_of_log_loss(loss, pair_loss, monkeypatch):
    d = affine_subspace_data(6, dim=5, rank=2, offset=2.0, gap=0.5, seed=4)
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=5), 0.3
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    s = d.X @ wt + bt
    val = (cross_entropy_loss(s, d.y) if loss == "cross_entropy"
           else differential_loss(s, d.y, pair_loss=pair_loss))
    torch.log(val).backward()
    for max_pairs in (4_000_000, 7):  # one block, and blocks of one positive row
        monkeypatch.setattr(_LinearObjective, "MAX_DENSE_PAIRS", max_pairs)
        gw, gb = _LinearObjective(d.X, d.y, loss, pair_loss, "mean").log_loss_grad(w, b)
        np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-10, atol=1e-13)
        assert gb == pytest.approx(float(bt.grad), abs=1e-12)


def test_log_loss_gradient_survives_underflow():
    # margins ~1e4: L underflows to 0 in float64, grad log L is still the hard-max direction
    X = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [3.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    obj = _LinearObjective(X, y, "differential", "logistic", "sum")
    gw, _ = obj.log_loss_grad(np.array([5e3, 0.0]), 0.0)
    # the pair with the smallest difference (x_0 - x_1 = (2, 0)) carries all the weight
    np.testing.assert_allclose(gw, [-2.0, 0.0], rtol=1e-12, atol=1e-300)


def test_normalized_schedule_reaches_the_limits():
    d = affine_subspace_data(25, dim=20, rank=5, offset=1.0, gap=0.5, center=4.0, seed=0)
    opt, ce = max_margin_separator(d.X, d.y), cross_entropy_limit(d.X, d.y)
    dt = fit_linear(d.X, d.y, loss="differential", steps=3_000, lr=1.0, schedule="normalized")
    assert opt.margin - 1e-3 <= dt.margin <= opt.margin + 1e-12
    # cross-entropy needs the smaller step (lr 1 oscillates there, see fit_linear)
    cef = fit_linear(d.X, d.y, loss="cross_entropy", steps=3_000, lr=0.1, schedule="normalized",
                     reference=ce.w)
    assert cef.margin <= ce.margin + 1e-12 and cef.history["cosine"][-1] > 0.999
    assert cef.margin > 0.9 * ce.margin
    with pytest.raises(ValueError, match="schedule must be one of"):
        fit_linear(d.X, d.y, schedule="adam")


def _wide_pairs(n=150, seed=3):
    """150 + 150 points in R^6 (22,500 pairs): large enough for the pair screen."""
    d = affine_subspace_data(n, dim=6, rank=3, offset=2.0, gap=0.4, center=3.0, seed=seed)
    return d.X, d.y


def test_pair_screen_keeps_the_gradient_to_rounding(monkeypatch):
    from lowrank.train.linear import _PairScreen

    X, y = _wide_pairs()
    w_opt = max_margin_separator(X, y).w.numpy()
    obj = _LinearObjective(X, y, "differential", "logistic", "mean")
    assert obj.n_pairs >= _PairScreen.MIN_PAIRS
    w = 2000.0 * w_opt / np.linalg.norm(w_opt)  # large margins: few pairs matter
    full, _ = obj.log_loss_grad(w, 0.0)
    screen = obj._screen
    assert screen is not None and len(screen.rows) < 0.25 * obj.n_pairs
    # inside the certificate (any move along w, a turn within the radius) the screened
    # gradient is the full one to rounding
    rng = np.random.default_rng(0)
    step = rng.normal(size=w.shape)
    u = w / np.linalg.norm(w)
    step -= (step @ u) * u
    near = w + 300.0 * u + 0.9 * screen.radius * step / np.linalg.norm(step)
    assert screen.covers(near) and not screen.covers(w - 1e-6 * u)
    screened, _ = obj.log_loss_grad(near, 0.0)
    assert obj._screen is screen  # no full pass was needed
    reference, _ = _LinearObjective(X, y, "differential", "logistic", "mean").log_loss_grad(near, 0.0)
    np.testing.assert_allclose(screened, reference, rtol=1e-13, atol=1e-16 * np.abs(reference).max())
    # outside it the next call is a full pass, which builds a new screen
    far = w + 2.0 * screen.radius * step / np.linalg.norm(step)
    assert not screen.covers(far)
    again, _ = obj.log_loss_grad(far, 0.0)
    assert obj._screen is not screen
    np.testing.assert_allclose(again, _LinearObjective(X, y, "differential", "logistic", "mean")
                               .log_loss_grad(far, 0.0)[0], rtol=0, atol=0)


def test_pair_screen_follows_the_full_trajectory(monkeypatch):
    from lowrank.train.linear import _PairScreen

    X, y = _wide_pairs(seed=5)
    kw = dict(loss="differential", steps=1500, lr=0.3, init="random", seed=1, schedule="normalized")
    calls = []
    orig = _LinearObjective._screened_log_loss_grad
    monkeypatch.setattr(_LinearObjective, "_screened_log_loss_grad",
                        lambda self, a, b: calls.append(1) or orig(self, a, b))
    screened = fit_linear(X, y, **kw)
    assert len(calls) > 500  # the screen did most of the steps
    monkeypatch.setattr(_PairScreen, "MIN_PAIRS", 10 ** 12)
    full = fit_linear(X, y, **kw)
    np.testing.assert_allclose(screened.w.numpy(), full.w.numpy(), rtol=1e-11,
                               atol=1e-11 * float(full.w.abs().max()))
    assert screened.margin == pytest.approx(full.margin, rel=1e-11)
    assert full.margin > 0.99 * max_margin_separator(X, y).margin

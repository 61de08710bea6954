"""Margins and directions against hand-computed values."""

import math

import mpmath as mp
import numpy as np
import pytest
import torch

from lowrank.analysis import angle_between, cosine, geometric_margin, subspace_split


def test_geometric_margin_hand_values():
    X = [[3.0, 1.0], [5.0, 1.0]]
    assert geometric_margin([1.0, -2.0], -2.0, X, [-1, 1]) == pytest.approx(1 / math.sqrt(5), rel=1e-15)
    assert geometric_margin([1.0, 0.0], -4.0, X, [0, 1]) == pytest.approx(1.0)
    assert geometric_margin([1.0, 0.0], -4.5, X, [-1, 1]) == pytest.approx(0.5)
    assert geometric_margin([1.0, 0.0], -6.0, X, [-1, 1]) == pytest.approx(-1.0)  # misclassified


def test_margin_errors():
    with pytest.raises(ValueError, match="w must be non-zero"):
        geometric_margin([0.0, 0.0], 0.0, [[1.0, 2.0]], [1])
    with pytest.raises(ValueError, match="w must have length"):
        geometric_margin([1.0], 0.0, [[1.0, 2.0]], [1])
    with pytest.raises(ValueError, match="b must be finite"):
        geometric_margin([1.0, 0.0], float("nan"), [[1.0, 2.0]], [1])


def test_subspace_split_and_angles():
    s = subspace_split([3.0, 4.0, 12.0], [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    assert s.inside.tolist() == [3.0, 4.0, 0.0] and s.orthogonal.tolist() == [0.0, 0.0, 12.0]
    assert s.orthogonal_fraction == pytest.approx(12 / 13)
    assert cosine([1.0, 0.0], [3.0, 4.0]) == pytest.approx(0.6)
    assert angle_between([1.0, 0.0], [1.0, 1.0], degrees=True) == pytest.approx(45.0)
    tiny = angle_between([1.0, 0.0], [1.0, 1e-9])
    assert tiny == pytest.approx(1e-9, rel=1e-6)  # arccos would return 0 here
    with pytest.raises(ValueError, match="non-zero"):
        cosine([0.0, 0.0], [1.0, 0.0])
    assert torch.is_tensor(s.inside)


def _exact_margin(w, b, X, y) -> float:
    """min_i y_i (w . x_i + b) / ||w|| in 60-digit arithmetic (mpmath: no overflow)."""
    mp.mp.dps = 60
    wm = [mp.mpf(float(v)) for v in w]
    scores = [int(yi) * (mp.fsum(mp.mpf(float(x)) * v for x, v in zip(row, wm)) + mp.mpf(float(b)))
              for row, yi in zip(X, y)]
    return float(min(scores) / mp.sqrt(mp.fsum(v * v for v in wm)))


def test_geometric_margin_is_scale_safe():
    X, y = [[3.0, 1.0], [5.0, 1.0]], [-1, 1]
    # ||w|| = 1.5e300 squared overflows float64: the naive norm gave inf and margin 0.0
    assert geometric_margin([1.5e300, 0.0], -6e300, X, y) == 1.0
    # ||w|| = 5e-300 squared underflows to 0: the naive check called w zero
    assert geometric_margin([3e-300, 4e-300], -12e-300, X, y) == pytest.approx(-0.2, rel=1e-15)
    rng = np.random.default_rng(0)
    for exponent in (-300, -150, -20, 0, 20, 150, 300):
        Xr = rng.normal(size=(6, 3)) * 10.0
        yr = np.where(np.arange(6) % 2 == 0, 1, -1)
        w, b = rng.normal(size=3) * 10.0 ** exponent, rng.normal() * 10.0 ** exponent
        got = geometric_margin(w, b, Xr, yr)
        assert got == pytest.approx(_exact_margin(w, b, Xr, yr), rel=1e-13), exponent
    # the directions of huge and tiny vectors
    assert cosine([1e300, 1e300], [1.0, 0.0]) == pytest.approx(1 / math.sqrt(2), rel=1e-15)
    assert cosine([3e-310, 4e-310], [1.0, 0.0]) == pytest.approx(0.6, rel=1e-12)  # subnormal
    assert angle_between([1e308, 0.0], [1e308, 1e308], degrees=True) == pytest.approx(45.0, rel=1e-14)


def test_geometric_margin_accepts_tensors_that_require_grad():
    w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    X = torch.tensor([[3.0, 1.0], [5.0, 1.0]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(-2.0, dtype=torch.float64, requires_grad=True)
    assert geometric_margin(w, b, X, [-1, 1]) == pytest.approx(1 / math.sqrt(5), rel=1e-15)

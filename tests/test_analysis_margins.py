"""Margins and directions against hand-computed values."""

import math

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

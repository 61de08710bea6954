"""Geometry of the synthetic data."""

import pytest
import torch

from lowrank.data import affine_subspace_data, line_pair


def test_affine_subspace_geometry():
    d = affine_subspace_data(60, dim=15, rank=4, offset=2.5, gap=0.8, seed=0)
    assert d.X.shape == (120, 15) and d.X.dtype == torch.float64
    assert sorted(set(d.y.tolist())) == [-1.0, 1.0] and int(d.y.sum()) == 0
    torch.testing.assert_close(d.basis.T @ d.basis, torch.eye(4, dtype=torch.float64))
    assert float(d.basis.T @ d.normal).__abs__() < 1e-12 if d.basis.shape[1] == 1 else \
        torch.allclose(d.basis.T @ d.normal, torch.zeros(4, dtype=torch.float64), atol=1e-12)
    rel = d.X - d.foot
    # every point lies in the affine subspace: no component outside span(basis)
    resid = rel - (rel @ d.basis) @ d.basis.T
    assert resid.abs().max() < 1e-12
    # the subspace is at distance `offset` from the origin
    assert float(torch.linalg.vector_norm(d.foot)) == pytest.approx(2.5, rel=1e-12)
    # closest points of the two classes exactly `gap` apart along the separating direction
    proj = d.X @ d.direction
    assert float(proj[d.y > 0].min() - proj[d.y < 0].max()) == pytest.approx(0.8, rel=1e-12)
    assert float(d.origin @ d.direction) == pytest.approx(2.5, rel=1e-12)  # center = offset


def test_noise_is_orthogonal_and_seed_reproducible():
    a = affine_subspace_data(20, dim=10, rank=2, offset=1.0, gap=1.0, noise=0.5, seed=4)
    b = affine_subspace_data(20, dim=10, rank=2, offset=1.0, gap=1.0, noise=0.5, seed=4)
    torch.testing.assert_close(a.X, b.X, rtol=0, atol=0)
    rel = a.X - a.foot
    resid = rel - (rel @ a.basis) @ a.basis.T
    assert 0.3 < float(resid.std()) < 0.7
    # the noise does not change the in-subspace coordinates' separation
    proj = a.X @ a.direction
    assert float(proj[a.y > 0].min() - proj[a.y < 0].max()) == pytest.approx(1.0, rel=1e-12)


def test_line_pair_is_the_paper_example():
    d = line_pair()
    assert d.X.tolist() == [[3.0, 1.0], [5.0, 1.0]] and d.y.tolist() == [-1.0, 1.0]
    assert d.offset == 1.0 and d.gap == 2.0


@pytest.mark.parametrize("kwargs,match", [
    (dict(rank=10), "rank must be smaller than dim"),
    (dict(gap=0.0), "gap must be"),
    (dict(offset=-1.0), "offset must be"),
    (dict(noise=float("nan")), "noise must be"),
    (dict(n_per_class=0), "n_per_class"),
])
def test_bad_arguments(kwargs, match):
    args = dict(n_per_class=5, dim=10, rank=2, offset=1.0, gap=1.0) | kwargs
    with pytest.raises(ValueError, match=match):
        affine_subspace_data(**args)

"""Geometry of the synthetic data."""

import numpy as np
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


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_per_class=float("inf")), "n_per_class must be a finite integer >= 1, got inf"),
    (dict(n_per_class=float("nan")), "n_per_class must be a finite integer"),
    (dict(n_per_class=2.5), "n_per_class must be a finite integer"),
    (dict(dim=float("inf")), "dim must be a finite integer >= 2"),
    (dict(offset=float("inf")), "offset must be a finite number >= 0"),
    (dict(center=float("nan")), "center must be a finite number"),
    # float16 holds at most 65504: the data would come back as inf
    (dict(offset=1e5, dtype=torch.float16), "dtype=torch.float16 cannot represent the generated X"),
])
def test_bad_values_name_the_argument(kwargs, match):
    args = dict(n_per_class=5, dim=10, rank=2, offset=1.0, gap=1.0, seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        affine_subspace_data(**args)


@pytest.mark.parametrize("kwargs,match", [
    (dict(seed=1.5), "seed must be an integer or None, got float 1.5"),
    (dict(seed="3"), "seed must be an integer or None"),
    (dict(seed=True), "seed must be an integer or None"),
    (dict(n_per_class="5"), "n_per_class must be a real number, got str"),
    (dict(offset="1"), "offset must be a real number, got str"),
    # an integer dtype would truncate every coordinate
    (dict(dtype=torch.int64), "dtype must be a floating dtype"),
    (dict(dtype="int32"), "dtype must be a floating dtype"),
    (dict(dtype=torch.complex64), "dtype must be a floating dtype"),
    (dict(dtype="no_such_dtype"), "dtype must be a floating dtype"),
])
def test_bad_types_name_the_argument(kwargs, match):
    args = dict(n_per_class=5, dim=10, rank=2, offset=1.0, gap=1.0, seed=0) | kwargs
    with pytest.raises(TypeError, match=match):
        affine_subspace_data(**args)


def test_dtype_names_and_float16_within_range():
    ref = affine_subspace_data(5, dim=6, rank=2, offset=3.0, gap=1.0, seed=2)
    for dtype in ("float32", "torch.float32", np.float32, torch.float32):
        d = affine_subspace_data(5, dim=6, rank=2, offset=3.0, gap=1.0, seed=2, dtype=dtype)
        assert d.X.dtype == torch.float32 and d.basis.dtype == torch.float32
        torch.testing.assert_close(d.X, ref.X.float(), rtol=0, atol=0)  # the float64 data, rounded
    # float16 is fine while the data fit its range (offset 1e4: |x| ~ 1.4e4 < 65504)
    h = affine_subspace_data(5, dim=6, rank=2, offset=1e4, gap=1.0, seed=2, dtype="float16")
    far = affine_subspace_data(5, dim=6, rank=2, offset=1e4, gap=1.0, seed=2)
    assert h.X.dtype == torch.float16 and bool(torch.isfinite(h.X).all())
    torch.testing.assert_close(h.X, far.X.half(), rtol=0, atol=0)
    assert affine_subspace_data(5, dim=6, rank=2, offset=1.0, gap=1.0, seed=np.int64(2)).info["seed"] == 2


def test_line_pair_dtype_and_range():
    assert line_pair(dtype="float32").X.dtype == torch.float32
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        line_pair(dtype=torch.int64)
    with pytest.raises(ValueError, match="float16 cannot represent the generated X"):
        line_pair(a=7e4, dtype=torch.float16)
    with pytest.raises(TypeError, match="c must be a real number"):
        line_pair(c="1")

"""Synthetic multi-class data in a low-dimensional affine subspace.

Geometry of :func:`multiclass_subspace_data` (the multi-class sibling of
:func:`lowrank.data.affine_subspace_data`, with the same ``offset`` / ``center`` meaning):

* ``basis`` (dim, rank), ``rank >= 2``, spans the subspace; ``normal`` is a unit vector
  orthogonal to it; the subspace's point closest to the origin (its *foot*) is
  ``offset * normal``.
* The classes' common centre (``origin``) is ``foot + center * basis[:, 0]``; by default
  ``center = offset``, so raising ``offset`` translates the whole data set along
  ``(basis[:, 0] + normal) / sqrt(2)``.
* Class ``c`` is centred at ``origin + R (cos t_c basis[:, 0] + sin t_c basis[:, 1])``
  with ``t_c = 2 pi c / C`` (the vertices of a regular C-gon in the subspace), and its
  points are drawn uniformly in the ``rank``-dimensional ball of radius ``spread`` around
  that centre.
* ``R = (gap + 2 spread) / (1 - cos(2 pi / C))``: along the radial direction of class
  ``c`` its points are at least ``gap`` beyond every other class's points, so every class
  is linearly separable from the rest (one-vs-rest training has a limit) and the data are
  separable by a multi-class linear classifier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .._validation import check_float_dtype, check_int, check_real, check_seed
from .synthetic import _check_nonneg

__all__ = ["MulticlassData", "multiclass_subspace_data"]


@dataclass(frozen=True)
class MulticlassData:
    """A labelled multi-class data set in an affine subspace.

    Attributes
    ----------
    X : torch.Tensor, shape (n, dim)
        Inputs.
    y : torch.Tensor, shape (n,)
        Labels in {0, ..., C-1} (int64).
    basis : torch.Tensor, shape (dim, rank)
        Orthonormal directions of the subspace.
    origin : torch.Tensor, shape (dim,)
        The classes' common centre, a point of the subspace.
    normal : torch.Tensor, shape (dim,)
        Unit vector orthogonal to the subspace (from the origin towards it when ``offset > 0``).
    centers : torch.Tensor, shape (C, dim)
        Class centres.
    offset : float
        Distance of the affine subspace from the origin.
    center : float
        Coordinate of ``origin`` along ``basis[:, 0]`` measured from the subspace's foot.
    radius : float
        Distance ``R`` of the class centres from ``origin``.
    info : dict
        Generator parameters, for saving beside results.

    Examples
    --------
    >>> d = multiclass_subspace_data(4, n_classes=3, dim=5, rank=2, offset=2.0, seed=0)
    >>> d.n_classes, tuple(d.X.shape), d.y.tolist()[:5]
    (3, (12, 5), [0, 0, 0, 0, 1])
    """

    X: torch.Tensor
    y: torch.Tensor
    basis: torch.Tensor
    origin: torch.Tensor
    normal: torch.Tensor
    centers: torch.Tensor
    offset: float
    center: float
    radius: float
    info: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        """Number of classes ``C``."""
        return int(self.centers.shape[0])

    @property
    def foot(self) -> torch.Tensor:
        """The subspace's point closest to the coordinate origin, ``offset * normal``."""
        return self.offset * self.normal


def multiclass_subspace_data(n_per_class: int, n_classes: int, dim: int, rank: int,
                             offset: float, gap: float = 1.0, spread: float = 0.5,
                             seed: int | None = None, dtype: torch.dtype = torch.float64,
                             center: float | None = None) -> MulticlassData:
    """``n_classes`` clusters at the vertices of a regular polygon in an affine subspace.

    Parameters
    ----------
    n_per_class : int
        Points per class.
    n_classes : int
        Number of classes ``C >= 2``.
    dim : int
        Ambient dimension.
    rank : int
        Dimension of the subspace, ``2 <= rank < dim``.
    offset : float
        Distance (>= 0) of the affine subspace from the origin.
    gap : float, default 1
        Separation (> 0) of each class from the rest along its radial direction.
    spread : float, default 0.5
        Radius (>= 0) of the ball each class is drawn from.
    seed : int, optional
        Seed of a fresh :class:`torch.Generator` (global state is untouched).
    dtype : torch.dtype, default torch.float64
    center : float, optional
        Position of the common centre along ``basis[:, 0]`` from the subspace's foot
        (default ``offset``).

    Returns
    -------
    MulticlassData

    Raises
    ------
    ValueError
        If a size is not a positive integer, ``n_classes < 2``, ``rank < 2`` or
        ``rank >= dim``, or ``offset``, ``gap``, ``spread`` or ``center`` is invalid.

    Examples
    --------
    >>> d = multiclass_subspace_data(10, n_classes=5, dim=20, rank=3, offset=4.0, seed=1)
    >>> tuple(d.X.shape), torch.bincount(d.y).tolist()
    ((50, 20), [10, 10, 10, 10, 10])
    """
    n_per_class = check_int(n_per_class, "n_per_class", minimum=1)
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    dim = check_int(dim, "dim", minimum=3)
    rank = check_int(rank, "rank", minimum=2)
    seed = check_seed(seed)
    dtype = check_float_dtype(dtype)
    if rank >= dim:
        raise ValueError(f"rank must be smaller than dim (an orthogonal direction is needed), "
                         f"got rank={rank}, dim={dim}")
    offset = _check_nonneg(offset, "offset")
    gap = _check_nonneg(gap, "gap", strict=True)
    spread = _check_nonneg(spread, "spread")
    center = offset if center is None else check_real(center, "center")

    gen = torch.Generator().manual_seed(seed if seed is not None else torch.seed())
    q, _ = torch.linalg.qr(torch.randn(dim, rank + 1, generator=gen, dtype=torch.float64))
    basis, normal = q[:, :rank], q[:, rank]
    origin = offset * normal + center * basis[:, 0]
    radius = (gap + 2 * spread) / (1 - math.cos(2 * math.pi / n_classes))
    angles = 2 * math.pi * torch.arange(n_classes, dtype=torch.float64) / n_classes
    zc = torch.zeros(n_classes, rank, dtype=torch.float64)
    zc[:, 0], zc[:, 1] = radius * torch.cos(angles), radius * torch.sin(angles)
    n = n_classes * n_per_class
    g = torch.randn(n, rank, generator=gen, dtype=torch.float64)
    u = torch.rand(n, generator=gen, dtype=torch.float64) ** (1.0 / rank)
    ball = spread * u[:, None] * g / torch.linalg.vector_norm(g, dim=1, keepdim=True)
    y = torch.arange(n_classes).repeat_interleave(n_per_class)
    X = origin + (zc[y] + ball) @ basis.T
    centers = origin + zc @ basis.T
    info = {"n_per_class": n_per_class, "n_classes": n_classes, "dim": dim, "rank": rank,
            "offset": offset, "center": center, "gap": gap, "spread": spread, "seed": seed}
    return MulticlassData(X=X.to(dtype), y=y, basis=basis.to(dtype), origin=origin.to(dtype),
                          normal=normal.to(dtype), centers=centers.to(dtype), offset=offset,
                          center=center, radius=radius, info=info)

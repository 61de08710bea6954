"""Synthetic data lying in (or near) a low-dimensional affine subspace.

Geometry of :func:`affine_subspace_data`
----------------------------------------
* ``basis`` (dim, rank) spans the subspace's directions; its first column is
  the *separating direction* ``e`` along which the two classes are apart.
* ``normal`` is a unit vector orthogonal to the subspace; the subspace's point
  closest to the origin (its *foot*) is ``offset * normal``, so the affine
  subspace ``foot + span(basis)`` lies at distance ``offset`` from the origin.
* The class midpoint (``origin``) sits at ``foot + center * e``: ``center``
  measures how far along the subspace the data sit from the foot. By default
  ``center = offset``, so raising ``offset`` translates the whole data set
  along ``(e + normal)/sqrt(2)``: the free-bias max-margin separator is
  unchanged by this translation, the cross-entropy limit is not.
* Inside the subspace, the coordinate along ``e`` is ``y * (gap/2 + spread*|N(0,1)|)``
  (the closest points of the two classes are exactly ``gap`` apart along ``e``),
  the other ``rank - 1`` coordinates are ``spread * N(0, 1)``.
* ``noise`` adds ``N(0, noise^2)`` components orthogonal to the subspace, so the
  data become full rank (approximately low-rank for small ``noise``).

The canonical two-point example of the theory is :func:`line_pair`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .._validation import check_float_dtype, check_int, check_real, check_seed
from ..device import resolve_device

__all__ = ["LowRankData", "affine_subspace_data", "line_pair"]


@dataclass(frozen=True)
class LowRankData:
    """A labelled data set in (or near) an affine subspace.

    Attributes
    ----------
    X : torch.Tensor, shape (n, dim)
        Inputs.
    y : torch.Tensor, shape (n,)
        Labels in {-1, +1}.
    basis : torch.Tensor, shape (dim, rank)
        Orthonormal directions of the subspace; ``basis[:, 0]`` is the separating direction.
    origin : torch.Tensor, shape (dim,)
        The class midpoint, a point of the subspace.
    normal : torch.Tensor, shape (dim,)
        Unit vector orthogonal to the subspace, pointing from the origin to the subspace
        (an arbitrary such unit vector when ``offset == 0``).
    offset : float
        Distance of the affine subspace from the origin.
    center : float
        Coordinate of ``origin`` along ``basis[:, 0]`` measured from the subspace's foot point.
    gap : float
        Separation of the two classes along ``basis[:, 0]`` (closest points).
    noise : float
        Standard deviation of the components orthogonal to the subspace.
    info : dict
        Generator parameters (seed, spread, ...), for saving beside results.

    Examples
    --------
    >>> d = line_pair()
    >>> d.direction.tolist(), d.foot.tolist(), d.offset
    ([1.0, 0.0], [0.0, 1.0], 1.0)
    """

    X: torch.Tensor
    y: torch.Tensor
    basis: torch.Tensor
    origin: torch.Tensor
    normal: torch.Tensor
    offset: float
    center: float
    gap: float
    noise: float = 0.0
    info: dict = field(default_factory=dict)

    @property
    def direction(self) -> torch.Tensor:
        """The separating direction ``basis[:, 0]`` (unit vector)."""
        return self.basis[:, 0]

    @property
    def foot(self) -> torch.Tensor:
        """The subspace's point closest to the coordinate origin, ``offset * normal``."""
        return self.offset * self.normal


def _check_nonneg(value, name: str, strict: bool = False) -> float:
    return check_real(value, name, minimum=0.0, strict=strict)


def _cast(name: str, dtype: torch.dtype, **tensors: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cast float64 ``tensors`` to ``dtype``; ValueError if a value does not fit in it."""
    out = {k: t.to(dtype) for k, t in tensors.items()}
    for k, t in out.items():
        if not bool(torch.isfinite(t).all()):
            big = float(tensors[k].abs().max())
            raise ValueError(f"dtype={dtype} cannot represent the generated {k}: values up to "
                             f"{big:.3g} exceed its range ({torch.finfo(dtype).max:.3g}); "
                             f"use a wider dtype or smaller {name}")
    return out


def affine_subspace_data(n_per_class: int, dim: int, rank: int, offset: float, gap: float,
                         noise: float = 0.0, seed: int | None = None,
                         dtype: torch.dtype = torch.float64, center: float | None = None,
                         spread: float = 1.0,
                         device: str | torch.device | None = None) -> LowRankData:
    """Two classes in a ``rank``-dimensional affine subspace of ``R^dim`` at distance ``offset``.

    Parameters
    ----------
    n_per_class : int
        Number of points of each class.
    dim : int
        Ambient dimension ``d``.
    rank : int
        Dimension ``k`` of the subspace, ``1 <= k < d`` (a normal direction must exist).
    offset : float
        Distance of the affine subspace from the origin (>= 0).
    gap : float
        Separation (> 0) of the closest points of the two classes along the separating direction.
    noise : float, default 0
        Standard deviation of the components orthogonal to the subspace.
    seed : int, optional
        Seed of the generator (a fresh :class:`torch.Generator`; global state is untouched).
    dtype : torch.dtype or str, default torch.float64
        A floating dtype (or its name, e.g. ``"float32"``). The data are generated in
        float64 and cast.
    center : float, optional
        Position of the class midpoint along the separating direction, measured from the
        subspace's foot point. Default: ``offset`` (see the module docstring).
    spread : float, default 1
        Scale of the within-class spread inside the subspace.
    device : str or torch.device, optional
        Where to put the tensors (see :func:`lowrank.device.resolve_device`); default the
        CPU. The points are drawn on the CPU, so a seed gives the same data on every device.

    Returns
    -------
    LowRankData

    Raises
    ------
    TypeError
        If a size, ``seed`` or a length is not a number of the right kind (``seed`` must be
        an integer), or ``dtype`` is not a floating dtype.
    ValueError
        If a size is not a positive integer, ``rank >= dim``, ``offset``, ``gap``, ``noise``
        or ``spread`` is negative or not finite, or ``dtype`` cannot represent the data
        (e.g. float16 with ``offset = 1e5``).

    Examples
    --------
    >>> data = affine_subspace_data(50, dim=10, rank=2, offset=3.0, gap=1.0, seed=0)
    >>> data.X.shape, int(data.y.sum())
    (torch.Size([100, 10]), 0)
    """
    n_per_class = check_int(n_per_class, "n_per_class", minimum=1)
    dim = check_int(dim, "dim", minimum=2)
    rank = check_int(rank, "rank", minimum=1)
    if rank >= dim:
        raise ValueError(f"rank must be smaller than dim (an orthogonal direction is needed), "
                         f"got rank={rank}, dim={dim}")
    offset = _check_nonneg(offset, "offset")
    gap = _check_nonneg(gap, "gap", strict=True)
    noise = _check_nonneg(noise, "noise")
    spread = _check_nonneg(spread, "spread")
    center = offset if center is None else check_real(center, "center")
    seed = check_seed(seed)
    dtype = check_float_dtype(dtype)

    gen = torch.Generator().manual_seed(seed if seed is not None else torch.seed())
    q, _ = torch.linalg.qr(torch.randn(dim, rank + 1, generator=gen, dtype=torch.float64))
    basis, normal = q[:, :rank], q[:, rank]
    foot = offset * normal
    origin = foot + center * basis[:, 0]

    y = torch.cat([torch.ones(n_per_class), -torch.ones(n_per_class)]).to(torch.float64)
    n = 2 * n_per_class
    z = spread * torch.randn(n, rank, generator=gen, dtype=torch.float64)
    along = gap / 2 + spread * torch.randn(n, generator=gen, dtype=torch.float64).abs()
    # make the closest points exactly gap apart along e
    for cls in (1.0, -1.0):
        m = y == cls
        along[m] = along[m] - along[m].min() + gap / 2
    z[:, 0] = y * along
    X = origin + z @ basis.T
    if noise > 0:
        eps = noise * torch.randn(n, dim, generator=gen, dtype=torch.float64)
        X = X + eps - (eps @ basis) @ basis.T
    info = {"n_per_class": n_per_class, "dim": dim, "rank": rank, "offset": offset,
            "center": center, "gap": gap, "noise": noise, "spread": spread, "seed": seed}
    t = _cast("offset, center, gap or spread", dtype, X=X, origin=origin)
    to = {"dtype": dtype, "device": None if device is None else resolve_device(device)}
    return LowRankData(X=t["X"].to(**to), y=y.to(**to), basis=basis.to(**to),
                       origin=t["origin"].to(**to), normal=normal.to(**to), offset=offset,
                       center=center, gap=gap, noise=noise, info=info)


def line_pair(a: float = 3.0, g: float = 1.0, c: float = 1.0,
              dtype: torch.dtype = torch.float64) -> LowRankData:
    """The theory's two-point example: ``(a, c)`` labelled -1 and ``(a + 2g, c)`` labelled +1.

    Both points lie on the line ``x2 = c`` (an affine subspace of rank 1 at distance ``|c|``
    from the origin). The optimal (free-bias) margin is ``g``; the cross-entropy limit margin
    is given by :func:`lowrank.theory.closed_form.line_pair_margins`. The defaults give the
    paper's example (3, 1) / (5, 1): margins 1 and ``1/sqrt(5)``.

    Parameters
    ----------
    a : float
        First coordinate of the negative point.
    g : float
        Half the distance between the points (> 0).
    c : float
        Height of the line.
    dtype : torch.dtype or str, default torch.float64
        A floating dtype (or its name).

    Returns
    -------
    LowRankData

    Examples
    --------
    >>> line_pair().X.tolist()
    [[3.0, 1.0], [5.0, 1.0]]
    """
    g = _check_nonneg(g, "g", strict=True)
    a, c = check_real(a, "a"), check_real(c, "c")
    dtype = check_float_dtype(dtype)
    t = _cast("a, g or c", dtype,
              X=torch.tensor([[a, c], [a + 2 * g, c]], dtype=torch.float64),
              origin=torch.tensor([a + g, c], dtype=torch.float64))
    y = torch.tensor([-1.0, 1.0], dtype=dtype)
    normal = torch.tensor([0.0, 1.0 if c >= 0 else -1.0], dtype=dtype)
    return LowRankData(X=t["X"], y=y, basis=torch.tensor([[1.0], [0.0]], dtype=dtype),
                       origin=t["origin"], normal=normal,
                       offset=abs(c), center=a + g, gap=2 * g, noise=0.0,
                       info={"a": a, "g": g, "c": c})

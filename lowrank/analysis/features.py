"""Singular-value spectrum and effective rank of penultimate features.

Definitions (used in every result file):

* The spectrum is the singular values ``s_1 >= s_2 >= ...`` of the (n, k) feature
  matrix after subtracting the feature mean (``center=True``): it measures the
  dimension of the *affine* hull of the features, which is what the paper's
  low-rank (affine-subspace) argument is about.
* ``effective_rank`` (Roy & Vetterli, 2007): ``exp(H(p))`` with
  ``p_i = s_i / sum_j s_j`` and ``H`` the Shannon entropy (natural log); it equals
  ``r`` for ``r`` equal non-zero singular values.
* ``energy_rank``: the smallest ``r`` with ``sum_{i<=r} s_i^2 >= energy * sum_i s_i^2``
  (default 99% of the energy).
"""

from __future__ import annotations

import math

import torch

from .._validation import check_matrix

__all__ = ["singular_values", "effective_rank", "energy_rank", "spectrum_summary",
           "feature_spectrum"]


def singular_values(F, center: bool = True) -> torch.Tensor:
    """Singular values (descending, float64) of a feature matrix.

    Parameters
    ----------
    F : array-like, shape (n, k)
        Features, one row per example.
    center : bool
        Subtract the column means first (affine rank).

    Returns
    -------
    torch.Tensor, shape (min(n, k),)

    Raises
    ------
    ValueError
        If ``F`` is not a finite 2-D matrix.

    Examples
    --------
    >>> singular_values([[3.0, 0.0], [0.0, 4.0]], center=False).tolist()
    [4.0, 3.0]
    """
    F = check_matrix(F, "F").detach().to(torch.float64)
    if center:
        F = F - F.mean(0, keepdim=True)
    return torch.linalg.svdvals(F)


def effective_rank(s) -> float:
    """Roy-Vetterli effective rank ``exp(H(s / sum s))`` of singular values ``s``.

    Parameters
    ----------
    s : array-like, shape (m,)
        Non-negative singular values.

    Returns
    -------
    float
        In [1, m]; 0.0 if all singular values are 0.

    Raises
    ------
    ValueError
        If ``s`` is empty or has a negative entry.

    Examples
    --------
    >>> round(effective_rank([2.0, 2.0, 0.0]), 6)
    2.0
    """
    s = torch.as_tensor(s, dtype=torch.float64).flatten()
    if s.numel() == 0 or bool((s < 0).any()):
        raise ValueError("s must be a non-empty vector of non-negative singular values")
    total = float(s.sum())
    if total == 0.0:
        return 0.0
    p = s[s > 0] / total
    return float(math.exp(float(-(p * p.log()).sum())))


def energy_rank(s, energy: float = 0.99) -> int:
    """Number of leading singular values that hold ``energy`` of ``sum s_i^2``.

    Parameters
    ----------
    s : array-like
        Singular values (any order; sorted internally).
    energy : float in (0, 1]
        Share of the squared-singular-value energy.

    Returns
    -------
    int
        In [0, len(s)]; 0 if all singular values are 0.

    Raises
    ------
    ValueError
        If ``energy`` is not in (0, 1].

    Examples
    --------
    >>> energy_rank([10.0, 2.0, 0.0], 0.99)
    2
    >>> energy_rank([10.0, 0.5, 0.0], 0.99)
    1
    """
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"energy must be in (0, 1], got {energy}")
    return int(_energy_count(torch.as_tensor(s, dtype=torch.float64), energy))


def _energy_count(s: torch.Tensor, energy: float) -> torch.Tensor:
    """:func:`energy_rank` as a 0-d int64 tensor on ``s.device`` (no host synchronisation).

    The count of leading sorted ``s_i**2`` whose cumulative share stays below
    ``energy`` (minus a 1e-12 tolerance), plus one; 0 when all ``s_i`` are 0.
    """
    e = torch.sort(s.flatten(), descending=True).values ** 2
    total = e.sum()
    cum = torch.cumsum(e, 0) / total
    below = (cum < energy - 1e-12).sum()  # = searchsorted(cum, energy - 1e-12), left side
    count = torch.clamp(below + 1, max=e.numel())
    return torch.where(total > 0, count, torch.zeros_like(count))


def spectrum_summary(F, center: bool = True, energy: float = 0.99) -> dict:
    """Spectrum, effective rank and energy rank of a feature matrix.

    Parameters
    ----------
    F : array-like, shape (n, k)
    center : bool
        Subtract the feature mean first.
    energy : float
        Energy share for :func:`energy_rank`.

    Returns
    -------
    dict
        ``singular_values`` (list), ``effective_rank``, ``energy_rank``, ``energy``,
        ``n_features``, ``n_samples``, ``centered``.

    Examples
    --------
    >>> spectrum_summary([[1.0, 0.0], [0.0, 0.0]], center=False)["energy_rank"]
    1
    """
    F = check_matrix(F, "F")
    s = singular_values(F, center=center)
    return {"singular_values": s.tolist(), "effective_rank": effective_rank(s),
            "energy_rank": energy_rank(s, energy), "energy": energy,
            "n_features": int(F.shape[1]), "n_samples": int(F.shape[0]), "centered": center}


@torch.no_grad()
def feature_spectrum(model, x: torch.Tensor, batch_size: int = 1024, center: bool = True,
                     energy: float = 0.99) -> dict:
    """:func:`spectrum_summary` of ``model.features(x)`` (computed in eval mode, in batches).

    Parameters
    ----------
    model : lowrank.models.OneScoreNet
        Any module with a ``features`` method.
    x : torch.Tensor
        Inputs.
    batch_size : int
        Forward batch size.
    center, energy
        See :func:`spectrum_summary`.

    Returns
    -------
    dict
        As :func:`spectrum_summary`. The model's train/eval mode is restored afterwards.

    Examples
    --------
    >>> from lowrank.models import MLP
    >>> model = MLP(6, (16, 4))
    >>> out = feature_spectrum(model, torch.rand(10, 6), batch_size=4)
    >>> out["n_samples"], out["n_features"], len(out["singular_values"]), model.training
    (10, 4, 4, True)
    """
    was = model.training
    model.eval()
    try:
        F = torch.cat([model.features(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was)
    return spectrum_summary(F, center=center, energy=energy)

"""Percentile bootstrap intervals over seeds and, within each seed, over images.

A measurement repeated over several training seeds, each with its own sample of images,
has two sources of spread. :func:`bootstrap_interval` resamples both: first the seeds
(with replacement), then the images of each drawn seed (with replacement), and evaluates
the statistic on the pooled resample. With one value per seed it is the ordinary
bootstrap over seeds; with one seed it is the bootstrap over images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .._validation import check_int, check_real

__all__ = ["bootstrap_interval", "bootstrap_curve", "paired_differences"]


def _groups(groups) -> list[np.ndarray]:
    if isinstance(groups, np.ndarray) and groups.ndim == 1:
        groups = [groups]
    out = [np.asarray(g, dtype=np.float64).reshape(-1) for g in groups]
    if not out or any(g.size == 0 for g in out):
        raise ValueError("groups must be a non-empty sequence of non-empty arrays (one per seed)")
    return out


def _draws(groups: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n_boot`` pooled resamples: seeds with replacement, then images within each seed."""
    out = []
    for _ in range(n_boot):
        picked = rng.integers(0, len(groups), size=len(groups))
        out.append(np.concatenate([groups[k][rng.integers(0, groups[k].size, size=groups[k].size)]
                                   for k in picked]))
    return out


def bootstrap_interval(groups, statistic: Callable[[np.ndarray], float] = np.mean,
                       n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Point estimate and percentile bootstrap interval, resampling seeds then images.

    Parameters
    ----------
    groups : sequence of array-like, or one 1-d array
        One array per seed (its per-image values, or a single value); a 1-d array is one
        group.
    statistic : callable, default numpy.mean
        Applied to the pooled values (e.g. :func:`numpy.median`).
    n_boot : int, default 2000
        Bootstrap resamples.
    level : float, default 0.95
        Coverage of the interval.
    seed : int, default 0
        Seed of the resampling generator (:func:`numpy.random.default_rng`).

    Returns
    -------
    dict
        ``estimate`` (the statistic of all values pooled), ``low``, ``high``, ``level``,
        ``n_boot``, ``n_groups``, ``n_values``.

    Raises
    ------
    ValueError
        For empty groups, ``n_boot < 1`` or ``level`` outside (0, 1).

    Examples
    --------
    >>> r = bootstrap_interval([[1.0, 2.0, 3.0], [2.0, 3.0, 4.0]], n_boot=500)
    >>> r["estimate"], r["low"] <= 2.5 <= r["high"], r["n_groups"], r["n_values"]
    (2.5, True, 2, 6)
    """
    g = _groups(groups)
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    level = check_real(level, "level", minimum=0.0, strict=True)
    if level >= 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    stats = np.array([statistic(d) for d in _draws(g, n_boot, rng)], dtype=np.float64)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return {"estimate": float(statistic(np.concatenate(g))), "low": float(low), "high": float(high),
            "level": level, "n_boot": n_boot, "n_groups": len(g),
            "n_values": int(sum(x.size for x in g))}


def bootstrap_curve(groups, grid: Sequence[float], n_boot: int = 1000, level: float = 0.95,
                    seed: int = 0) -> dict:
    """Share of values ``<= eps`` for every ``eps`` of ``grid``, with pointwise intervals.

    The resampling is that of :func:`bootstrap_interval` (seeds, then images), one
    resample for the whole curve.

    Parameters
    ----------
    groups : sequence of array-like
        Per-seed values (e.g. minimum adversarial norms; ``inf`` allowed).
    grid : sequence of float
        Thresholds.
    n_boot, level, seed
        As for :func:`bootstrap_interval`.

    Returns
    -------
    dict
        ``eps``, ``share`` (pooled), ``low``, ``high`` (lists aligned with ``grid``).

    Examples
    --------
    >>> c = bootstrap_curve([[0.1, 0.3], [0.2, float("inf")]], [0.0, 0.25, 1.0], n_boot=200)
    >>> c["share"]
    [0.0, 0.5, 0.75]
    """
    g = _groups(groups)
    grid = np.asarray(grid, dtype=np.float64)
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    rng = np.random.default_rng(seed)

    def share(v: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.sort(v), grid, side="right") / v.size

    curves = np.stack([share(d) for d in _draws(g, n_boot, rng)])
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(curves, [alpha, 1.0 - alpha], axis=0)
    return {"eps": grid.tolist(), "share": share(np.concatenate(g)).tolist(),
            "low": low.tolist(), "high": high.tolist()}


def paired_differences(a, b) -> list[np.ndarray]:
    """Per-seed, per-image differences ``a - b`` of two paired measurements.

    Parameters
    ----------
    a, b : sequence of array-like
        One array per seed, the same images in the same order in both.

    Returns
    -------
    list of numpy.ndarray
        ``a[k] - b[k]`` per seed (``inf - inf`` becomes 0: neither found an example).

    Raises
    ------
    ValueError
        If the seeds or images do not pair up.

    Examples
    --------
    >>> [d.tolist() for d in paired_differences([[1.0, 2.0]], [[0.5, 2.0]])]
    [[0.5, 0.0]]
    """
    ga, gb = _groups(a), _groups(b)
    if len(ga) != len(gb) or any(x.shape != y.shape for x, y in zip(ga, gb, strict=True)):
        raise ValueError("a and b must hold the same number of seeds and of images per seed")
    out = []
    for x, y in zip(ga, gb, strict=True):
        with np.errstate(invalid="ignore"):
            d = x - y
        d[np.isinf(x) & np.isinf(y) & (np.sign(x) == np.sign(y))] = 0.0
        out.append(d)
    return out

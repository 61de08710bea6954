"""Input-space robustness of a one-score or multi-class network on fixed image subsamples.

:func:`min_norm_record` runs :func:`lowrank.attacks.min_norm_attack` on the attacked
images and summarises the per-image minimum norms as share-vs-eps curves;
:func:`robustness` does it for every split and norm, with the fixed-eps PGD cross-check,
and keeps each result in a :class:`ResultCache` so that a rerun skips finished attacks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..attacks import adversarial_share, min_norm_attack, pgd_success
from ..sweep import ResultCache
from .tasks import NORMS

__all__ = ["cached", "min_norm_record", "robustness", "norms_of"]


def cached(cache: ResultCache | None, key: Mapping[str, Any], compute: Callable[[], Any]) -> Any:
    """``compute()`` once per ``key``: stored in ``cache`` with its wall time under ``seconds``.

    Parameters
    ----------
    cache : ResultCache or None
        Where finished results live (None: always compute).
    key : mapping
        JSON-serialisable description of the computation.
    compute : callable
        Returns a dict (JSON-serialisable through :func:`lowrank.io.save_json`).

    Returns
    -------
    dict
        The result, with ``seconds`` (of the run that computed it; added to
        ``cache.piece_seconds`` whether computed now or read back).

    Examples
    --------
    >>> cache = ResultCache(None)
    >>> cached(cache, {"k": 1}, lambda: {"v": 2})["v"], cached(cache, {"k": 1}, lambda: {"v": 3})["v"]
    (2, 2)
    """
    if cache is not None and key in cache:
        value = cache.get(key)
        _count_seconds(cache, value)
        return value
    t0 = time.perf_counter()
    value = dict(compute())
    value["seconds"] = time.perf_counter() - t0
    if cache is not None:
        cache.put(key, value)
        value = cache.get(key)
        _count_seconds(cache, value)
    return value


def _count_seconds(cache: ResultCache, value: Mapping[str, Any]) -> None:
    """Add a piece's compute time to ``cache.piece_seconds`` (what a result is made of)."""
    cache.piece_seconds += float(value.get("seconds", 0.0))


def norms_of(record: Mapping[str, Any]) -> np.ndarray:
    """The per-image norms of a record as floats (``"inf"`` strings from JSON become inf).

    Parameters
    ----------
    record : mapping
        A :func:`min_norm_record` (in memory or read back from JSON).

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> norms_of({"norms": [0.5, "inf"]}).tolist()
    [0.5, inf]
    """
    return np.asarray([float(v) for v in record["norms"]], dtype=np.float64)


def min_norm_record(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str,
                    grid: Sequence[float], report_eps: Sequence[float], indices: torch.Tensor,
                    steps: int, seed: int = 0, quiet: bool = True) -> dict:
    """Smallest adversarial perturbation per image and its share-vs-eps curve.

    Parameters
    ----------
    model : torch.nn.Module
        One-score network, or a network returning class logits (n, C) (eval mode).
    x, y : torch.Tensor
        The attacked images and their labels: in {-1, +1} or {0, 1} for one score,
        integers in {0, ..., C-1} for class logits.
    norm : {"l2", "linf"}
    grid : sequence of float
        eps values of the curve.
    report_eps : sequence of float
        eps values listed in ``share_at_reported_eps``.
    indices : torch.Tensor
        Indices of the attacked images in their split (recorded).
    steps : int
        Iterations of the minimum-norm attack.
    seed, quiet
        Passed to :func:`lowrank.attacks.min_norm_attack`.

    Returns
    -------
    dict
        ``eps``, ``share``, ``share_at_reported_eps``, ``median_norm``, ``mean_finite_norm``,
        ``n_failed``, ``n_images``, ``failed_indices`` (images with no adversarial example
        found: norm ``inf``), ``method_counts``, ``method``, ``indices``, ``norms``.

    Examples
    --------
    A linear score on two pixels; the exact L2 distance of ``(0.5, 0.5)`` to the boundary
    ``x_0 = 0.25`` is 0.25:

    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 1), torch.nn.Flatten(0))
    >>> with torch.no_grad():
    ...     _ = model[1].weight.copy_(torch.tensor([[1.0, 0.0]])), model[1].bias.fill_(-0.25)
    >>> r = min_norm_record(model.eval(), torch.tensor([[0.5, 0.5]]), torch.tensor([1.0]), "l2",
    ...                     [0.0, 0.3], [0.3], torch.tensor([7]), steps=20)
    >>> round(r["median_norm"], 3), r["share"].tolist(), r["n_failed"]
    (0.25, [0.0, 1.0], 0)
    """
    r = min_norm_attack(model, x, y, norm, steps=steps, seed=seed, quiet=quiet, warn=False)
    norms = r.norms.cpu()
    finite = norms[torch.isfinite(norms)]
    idx = indices.cpu()
    return {"eps": np.asarray(grid, dtype=float), "share": adversarial_share(norms, grid),
            "share_at_reported_eps": {f"{e:.4g}": float(adversarial_share(norms, [e])[0])
                                      for e in report_eps},
            "median_norm": float(norms.median()),
            "mean_finite_norm": float(finite.mean()) if len(finite) else math.inf,
            "n_failed": int(torch.isinf(norms).sum()), "n_images": int(len(norms)),
            "failed_indices": idx[torch.isinf(norms)], "method_counts": r.counts(),
            "method": list(r.method), "indices": idx, "norms": norms}


def robustness(model: torch.nn.Module, splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
               indices: Mapping[str, torch.Tensor], eps_cfg: Mapping[str, Any],
               steps: int, key: Mapping[str, Any], cache: ResultCache | None = None,
               norms: Sequence[str] = NORMS, pgd_steps: int = 0, seed: int = 0,
               quiet: bool = True) -> dict:
    """:func:`min_norm_record` (and the PGD cross-check) for every split and norm, cached.

    Parameters
    ----------
    model : torch.nn.Module
        One-score network, or a network returning class logits (n, C); the labels of
        ``splits`` follow :func:`min_norm_record`.
    splits : mapping of split name to (x, y)
        The full splits; ``indices[split]`` selects the attacked images.
    indices : mapping of split name to torch.Tensor
    eps_cfg : mapping
        One entry of :data:`lowrank.images.tasks.EPS`.
    steps : int
        Minimum-norm attack iterations.
    key : mapping
        What identifies the model (seed, training, head, ...): the cache key is ``key``
        plus split, norm and the attack budget.
    cache : ResultCache, optional
    norms : sequence of str
        Threat models to run.
    pgd_steps : int
        Steps of the fixed-eps PGD cross-check at ``eps_cfg["pgd"]``; 0 skips it.
    seed, quiet
        Attack seed; hide progress bars.

    Returns
    -------
    dict
        ``{"attacks": {split: {norm: record}}, "pgd": {split: {norm: ...}}}``.

    Examples
    --------
    >>> from lowrank.images.tasks import EPS
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 1), torch.nn.Flatten(0))
    >>> with torch.no_grad():
    ...     _ = model[1].weight.copy_(torch.tensor([[1.0, 0.0]])), model[1].bias.fill_(-0.25)
    >>> x, y = torch.tensor([[0.5, 0.5], [0.0, 0.5]]), torch.tensor([1.0, -1.0])
    >>> cache = ResultCache(None)
    >>> r = robustness(model.eval(), {"test": (x, y)}, {"test": torch.tensor([0, 1])},
    ...                EPS["fashion_mnist"], 20, {"model": "demo"}, cache, norms=["l2"])
    >>> [round(float(v), 3) for v in r["attacks"]["test"]["l2"]["norms"]], len(cache.results)
    ([0.25, 0.25], 1)
    """
    out: dict = {"attacks": {}, "pgd": {}}
    for split, (xs, ys) in splits.items():
        idx = indices[split]
        dev_idx = idx.to(xs.device)
        xa, ya = xs[dev_idx], ys[dev_idx]
        out["attacks"][split], out["pgd"][split] = {}, {}
        for norm in norms:
            grid = np.linspace(*eps_cfg[norm])
            k = dict(key, split=split, norm=norm, steps=steps, n_images=int(len(idx)), seed=seed,
                     eps=list(eps_cfg[norm]), what="min_norm")
            out["attacks"][split][norm] = cached(cache, k, lambda xa=xa, ya=ya, norm=norm, grid=grid, idx=idx:
                                                 min_norm_record(model, xa, ya, norm, grid,
                                                                 eps_cfg["report"][norm], idx,
                                                                 steps, seed=seed, quiet=quiet))
            if pgd_steps:
                e = eps_cfg["pgd"][norm]
                found = norms_of(out["attacks"][split][norm])
                out["pgd"][split][norm] = cached(
                    cache, dict(k, what="pgd", pgd_steps=pgd_steps),
                    lambda xa=xa, ya=ya, norm=norm, e=e, found=found: _pgd_record(
                        model, xa, ya, e, norm, pgd_steps, seed, found))
    return out


def _pgd_record(model, x, y, eps: float, norm: str, steps: int, seed: int,
                found: np.ndarray) -> dict:
    ok = pgd_success(model, x, y, eps, norm, steps=steps, seed=seed).cpu().numpy()
    return {"eps": eps, "pgd_share": float(ok.mean()),
            "min_norm_share": float(np.mean(found <= eps)),
            "pgd_found_but_min_norm_missed": int((ok & (found > eps)).sum())}

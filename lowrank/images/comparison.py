"""Cross-entropy against differential training, with intervals: the statistics the image studies share.

:func:`seed_interval` (a scalar over seeds), :func:`compare_norms` (median minimum norms of
two models and their paired share differences at each eps), :func:`claim_verdict` (does
the paper's claim hold on every split and norm?) and :func:`format_interval` (for the
report lines). Used by :mod:`lowrank.images.real_features` and :mod:`lowrank.images.multiclass`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..analysis.bootstrap import bootstrap_interval, paired_differences
from .robustness import norms_of

__all__ = ["seed_interval", "compare_norms", "claim_verdict", "format_interval"]


def seed_interval(values, n_boot: int, seed: int = 0) -> dict | None:
    """Mean and 95% bootstrap interval of one value per seed (None and non-finite values skipped).

    Parameters
    ----------
    values : iterable of float or None
    n_boot : int
    seed : int
        Seed of the resampling.

    Returns
    -------
    dict or None
        :func:`lowrank.analysis.bootstrap.bootstrap_interval`; None when no value is left.

    Examples
    --------
    >>> seed_interval([1.0, None, 3.0], n_boot=100)["estimate"], seed_interval([None], 10)
    (2.0, None)
    """
    vals = [[float(v)] for v in values if v is not None and np.isfinite(float(v))]
    return bootstrap_interval(vals, n_boot=n_boot, seed=seed) if vals else None


def compare_norms(a_recs: Sequence[Mapping], b_recs: Sequence[Mapping], eps_list,
                  n_boot: int) -> dict:
    """Median norms of both models and paired share differences a - b at each eps (bootstrap).

    Parameters
    ----------
    a_recs, b_recs : sequence of mapping
        Per seed, the :func:`lowrank.images.robustness.min_norm_record` of the cross-entropy
        model (a) and of the differential model (b), on the same images.
    eps_list : sequence of float
    n_boot : int

    Returns
    -------
    dict
        ``median_norm`` (``cross_entropy``, ``differential``) and
        ``share_difference_ce_minus_differential`` per eps, each with a ``verdict``.

    Examples
    --------
    >>> a, b = [{"norms": [0.2, 0.4]}], [{"norms": [0.6, 0.8]}]
    >>> d = compare_norms(a, b, [0.5], n_boot=50)["share_difference_ce_minus_differential"]["0.5"]
    >>> d["estimate"], d["verdict"]
    (1.0, 'differential lower (interval above 0)')
    """
    na = [norms_of(r) for r in a_recs]
    nb = [norms_of(r) for r in b_recs]
    out = {"median_norm": {"cross_entropy": bootstrap_interval(na, np.median, n_boot),
                           "differential": bootstrap_interval(nb, np.median, n_boot)},
           "share_difference_ce_minus_differential": {}}
    for e in eps_list:
        ia = [(x <= e).astype(float) for x in na]
        ib = [(x <= e).astype(float) for x in nb]
        d = bootstrap_interval(paired_differences(ia, ib), np.mean, n_boot)
        d["verdict"] = ("differential lower (interval above 0)" if d["low"] > 0 else
                        "differential higher (interval below 0)" if d["high"] < 0 else
                        "no difference resolved (interval contains 0)")
        out["share_difference_ce_minus_differential"][f"{e:.4g}"] = d
    return out


def claim_verdict(arm: Mapping, report: Mapping) -> dict:
    """Whether differential training lowered the share at the middle reported eps everywhere.

    Parameters
    ----------
    arm : mapping
        ``{split: {norm: compare_norms(...)}}``.
    report : mapping
        Reported eps values per norm.

    Returns
    -------
    dict
        ``holds`` (every split and norm: interval above 0), ``per_split_norm`` verdicts,
        ``statement``.

    Examples
    --------
    >>> cmp = {"share_difference_ce_minus_differential": {"1": {"verdict": "differential lower"}}}
    >>> claim_verdict({"test": {"l2": cmp}}, {"l2": [1.0]})["holds"]
    True
    """
    verdicts = {}
    for split, per in arm.items():
        for norm, cmp in per.items():
            mid = f"{report[norm][len(report[norm]) // 2]:.4g}"
            verdicts[f"{split}_{norm}_eps{mid}"] = cmp["share_difference_ce_minus_differential"][mid][
                "verdict"]
    holds = bool(verdicts) and all(v.startswith("differential lower") for v in verdicts.values())
    return {"holds": holds, "per_split_norm": verdicts,
            "statement": "the paper's claim (differential training reduces the share of images "
                         "with an adversarial example, train and test) "
                         + ("holds here" if holds else "is not supported here")}


def format_interval(st: Mapping | None, spec: str = ".4f") -> str:
    """``estimate [low, high]`` of an interval dict, ``n/a`` for None.

    Parameters
    ----------
    st : mapping or None
        ``estimate``, ``low``, ``high`` (e.g. from :func:`seed_interval`).
    spec : str
        Format specification of each number.

    Returns
    -------
    str

    Examples
    --------
    >>> format_interval({"estimate": 0.5, "low": 0.25, "high": 0.75}, ".2f"), format_interval(None)
    ('0.50 [0.25, 0.75]', 'n/a')
    """
    if not st:
        return "n/a"
    return f"{st['estimate']:{spec}} [{st['low']:{spec}}, {st['high']:{spec}}]"

"""Cross-entropy against differential training, with intervals: the statistics the image studies share.

:func:`seed_interval` (a scalar over seeds), :func:`compare_norms` (median minimum norms of
two models and their paired share differences at each eps), :func:`claim_verdict` (does
the paper's claim hold on every split and norm?), :func:`format_interval`,
:func:`comparison_lines` and :func:`runtime_line` (for the report lines),
:func:`share_rows` (for the CSV) and :func:`share_band` (for the figures). Used by
:mod:`lowrank.images.real_features` and :mod:`lowrank.images.multiclass`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..analysis.bootstrap import bootstrap_curve, bootstrap_interval, paired_differences
from .robustness import norms_of

__all__ = ["seed_interval", "compare_norms", "claim_verdict", "format_interval",
           "comparison_lines", "runtime_line", "share_rows", "share_band"]


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


def comparison_lines(label: str, arm: Mapping) -> list[str]:
    """Report lines of one arm's :func:`compare_norms` results, per split and norm.

    Parameters
    ----------
    label : str
        What the lines start with (e.g. ``"A heads"``).
    arm : mapping
        split -> norm -> :func:`compare_norms` result.

    Returns
    -------
    list of str
        The median norms of both models, then the share difference at each eps with its
        verdict.

    Examples
    --------
    >>> st = {"estimate": 0.5, "low": 0.4, "high": 0.6}
    >>> cmp = {"median_norm": {"cross_entropy": st, "differential": st},
    ...        "share_difference_ce_minus_differential": {"1": dict(st, verdict="v")}}
    >>> comparison_lines("A", {"test": {"l2": cmp}})[0]
    'A test l2: median norm CE 0.5000 [0.4000, 0.6000]  diff 0.5000 [0.4000, 0.6000]'
    """
    lines = []
    for split, per in arm.items():
        for norm, cmp in per.items():
            med = cmp["median_norm"]
            lines.append(f"{label} {split} {norm}: median norm CE "
                         f"{format_interval(med['cross_entropy'])}"
                         f"  diff {format_interval(med['differential'])}")
            for e, d in cmp["share_difference_ce_minus_differential"].items():
                lines.append(f"    share CE - diff at eps {e}: {format_interval(d, '+.3f')}  "
                             f"({d['verdict']})")
    return lines


def runtime_line(results: Mapping) -> str:
    """This invocation's runtime and what the cached pieces of the results cost to compute.

    Parameters
    ----------
    results : mapping
        With ``runtime_seconds`` and ``cached_piece_seconds`` (NaN where absent).

    Returns
    -------
    str

    Examples
    --------
    >>> runtime_line({"runtime_seconds": 2.0, "cached_piece_seconds": 30.0})
    'runtime 2.0 s (the cached pieces the results use took 30.0 s to compute)'
    """
    return (f"runtime {results.get('runtime_seconds', float('nan')):.1f} s (the cached pieces "
            f"the results use took {results.get('cached_piece_seconds', float('nan')):.1f} s "
            "to compute)")


def share_rows(fields: Mapping, records: Mapping) -> list[dict]:
    """CSV rows of share-vs-eps records: ``fields`` plus split, norm, eps and the share.

    Parameters
    ----------
    fields : mapping
        The columns in front (seed, arm, model, ...).
    records : mapping
        split -> norm -> record with ``eps`` and ``share``.

    Returns
    -------
    list of dict

    Examples
    --------
    >>> share_rows({"seed": 0}, {"test": {"l2": {"eps": [0.0, 1.0], "share": [0.0, 0.5]}}})[1]
    {'seed': 0, 'split': 'test', 'norm': 'l2', 'eps': 1.0, 'share_adversarial': 0.5}
    """
    return [{**fields, "split": split, "norm": norm, "eps": float(e), "share_adversarial": float(v)}
            for split, per in records.items() for norm, r in per.items()
            for e, v in zip(r["eps"], r["share"], strict=True)]


def share_band(records: Sequence[Mapping], n_boot: int = 500) -> dict | None:
    """Share-vs-eps curve with a 95% bootstrap band over seeds and images (for the figures).

    Parameters
    ----------
    records : sequence of mapping
        One minimum-norm record per seed (``norms``, ``eps``).
    n_boot : int

    Returns
    -------
    dict or None
        :func:`lowrank.analysis.bootstrap.bootstrap_curve` of the per-seed norms; None for
        no record.

    Examples
    --------
    >>> share_band([{"eps": [0.0, 1.0], "norms": [0.5, 2.0]}], 50)["share"]
    [0.0, 0.5]
    """
    records = list(records)
    if not records:
        return None
    return bootstrap_curve([norms_of(r) for r in records], records[0]["eps"], n_boot=n_boot)

"""The real-features figure: margins against predictions, the offset sweep, robustness bands."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..plotting import LOSS_COLORS, apply_style, save_figure
from .plots import norm_label
from .real_features import share_bands

__all__ = ["plot_real_features"]


def _band(ax, x, values, color, label, **style):
    """Mean over seeds with a min-max band (seeds as rows; NaN allowed)."""
    v = np.asarray(values, dtype=float)
    if v.ndim == 1:
        v = v[None]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a grid point with no value: a gap
        mean = np.nanmean(v, axis=0)
        lo, hi = np.nanmin(v, axis=0), np.nanmax(v, axis=0)
    ax.plot(x, mean, color=color, label=label, **style)
    if v.shape[0] > 1:
        ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)


def plot_real_features(results: Mapping[str, Any], out: str | Path, name: str) -> list[Path]:
    """Four panels: (a) head margins over normalized-GD steps against the predictions;
    (b) arm B predicted and measured margin ratios against the shift c; (c) arm B median
    input-space norm ratio; (d) share-vs-eps on the test split with 95% bootstrap bands.

    Parameters
    ----------
    results : mapping
        Results of :func:`lowrank.images.real_features.compute_study` (or their JSON).
    out : path-like
    name : str

    Returns
    -------
    list of Path

    Examples
    --------
    >>> plot_real_features(load_json("figures/real_features_fashion_mnist_shirt_vs_t-shirt-top.json"),
    ...                    "figures", "real_features_fashion_mnist_shirt_vs_t-shirt-top")  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    apply_style()
    seeds = [s for s in results["seeds"] if "heads" in s["feature_space"]]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5), layout="constrained")
    ax = axes[0, 0]
    for loss, pred_key in (("cross_entropy", "ce_limit_margin"), ("differential", "optimal_margin")):
        runs = [s["feature_space"]["heads"][f"normalized_{loss}"]["history"] for s in seeds]
        if runs:
            steps = np.asarray(runs[0]["step"], dtype=float)
            n = min(len(r["margin"]) for r in runs)
            rel = [np.asarray([m if m is not None and m > 0 else np.nan for m in r["margin"][:n]],
                              float) / s["feature_space"]["optimal_margin"]
                   for r, s in zip(runs, seeds, strict=True)]
            _band(ax, np.maximum(steps[:n], 0.5), rel, LOSS_COLORS[loss],
                  f"{loss.replace('_', '-')} head")
            pred = np.mean([s["feature_space"][pred_key] / s["feature_space"]["optimal_margin"]
                            for s in seeds])
            ax.axhline(pred, color=LOSS_COLORS[loss], ls="--", lw=1)
    ax.set(xscale="log", xlabel="normalized GD step (0 drawn at 0.5)",
           ylabel="margin / optimal margin", title="(a) arm A: heads on frozen features")
    ax.set_ylim(bottom=max(ax.get_ylim()[0], -0.5))
    ax.legend(title="dashed: predictions", loc="lower right")
    for j, (key, title) in enumerate((("ratio", "(b) arm B: margin ratios vs shift"),
                                      ("norm", "(c) arm B: median norm, differential / CE"))):
        ax = axes[0, 1] if j == 0 else axes[1, 0]
        for u_name, ls in (("optimal_normal", "-"), ("feature_mean", ":")):
            runs = [s["offset_sweep"][u_name]["points"] for s in seeds
                    if "points" in s.get("offset_sweep", {}).get(u_name, {})]
            if not runs:
                continue
            n = min(len(r) for r in runs)
            x = np.arange(n)
            if key == "ratio":
                _band(ax, x, [[p.get("ratio_predicted", np.nan) for p in r[:n]] for r in runs],
                      "k", f"predicted, u = {u_name}", ls=ls, marker="o")
                for loss, mk in (("cross_entropy", "ce_head_margin"),
                                 ("differential", "differential_head_margin")):
                    _band(ax, x, [[p[mk] / p["optimal_margin"]
                                   if p.get("optimal_margin") and p.get(mk) is not None else np.nan
                                   for p in r[:n]]
                                  for r in runs], LOSS_COLORS[loss],
                          f"{loss.replace('_', '-')} head, {u_name}", ls=ls, marker=".")
            else:
                vals = []
                for r in runs:
                    row = []
                    for p in r[:n]:
                        isp = p.get("input_space")
                        if not isp:
                            row.append(np.nan)
                            continue
                        split = next(iter(isp["cross_entropy"]))
                        norm = next(iter(isp["cross_entropy"][split]))
                        a = np.median([float(v) for v in isp["cross_entropy"][split][norm]["norms"]])
                        b = np.median([float(v) for v in isp["differential"][split][norm]["norms"]])
                        sep = p.get("ce_head_margin") is not None and p.get(
                            "differential_head_margin") is not None
                        row.append(b / a if sep and 0 < a < np.inf and np.isfinite(b) else np.nan)
                    vals.append(row)
                _band(ax, x, vals, "C2", f"u = {u_name}", ls=ls, marker="o")
                ax.axhline(1.0, color="0.5", lw=0.8)
        ax.set(xlabel="grid point k (c_0 = 0; c_k log-spaced, see JSON)",
               ylabel="margin / optimal margin" if key == "ratio" else "median norm ratio",
               title=title)
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    ax = axes[1, 1]
    for source, head, style in (("A", "cross_entropy", "-"), ("A", "differential", "-"),
                                ("C", "cross_entropy", ":"), ("C", "differential", ":")):
        band = share_bands(results, source, head, "test", "l2")
        if band is None:
            continue
        color = LOSS_COLORS[head]
        ax.plot(band["eps"], band["share"], color=color, ls=style,
                label=f"{'heads (A)' if source == 'A' else 'networks (C)'}: {head.replace('_', '-')}")
        ax.fill_between(band["eps"], band["low"], band["high"], color=color, alpha=0.15, lw=0)
    ax.set(xlabel="ε", ylabel="share with adversarial example ≤ ε",
           title=f"(d) test, {norm_label('l2')}, 95% bootstrap bands", ylim=(-0.02, 1.02))
    ax.legend(fontsize=7, loc="lower right")
    proto = results["protocol"]
    fig.suptitle(f"real features: {proto['dataset']}, {proto['classes'][0]} vs {proto['classes'][1]} "
                 f"({proto['mode']}, {len(results['seeds'])} seed(s); bands: min-max over seeds "
                 "in a-c)")
    return save_figure(fig, out, name)

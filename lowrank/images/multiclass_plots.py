"""The multi-class image figure: margins against the exact predictions, robustness bands."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..plotting import LOSS_COLORS, apply_style, save_figure
from .multiclass import share_bands
from .plots import norm_label
from .real_features_plots import _band

__all__ = ["plot_image_multiclass"]

#: Panel (a): (label, source, key) of the margin ratios shown, per network.
_RATIOS = (("CE limit (predicted)", "feature_space", "ratio_predicted"),
           ("one-vs-rest limit (predicted)", "feature_space", "ratio_ovr_predicted"),
           ("network's own head", "feature_space", "network_head_ratio"))


def _interval(ax, x, stat, color, marker, label=None):
    if not stat:
        return
    est = stat["estimate"]
    ax.errorbar([x], [est], yerr=[[est - stat["low"]], [stat["high"] - est]], color=color,
                marker=marker, ms=6, capsize=3, ls="none", label=label)


def plot_image_multiclass(results: Mapping[str, Any], out: str | Path, name: str) -> list[Path]:
    """Four panels: (a) margin ratios to the optimal multi-class margin, predicted and measured,
    with 95% intervals; (b) retrained heads' signed margins over normalized-GD steps against
    their predicted limits;
    (c), (d) share of test images with an adversarial example vs eps (L2, L-infinity), 95%
    bootstrap bands, for both networks and both retrained heads.

    Parameters
    ----------
    results : mapping
        Results of :func:`lowrank.images.multiclass.compute_study` (or their JSON).
    out : path-like
    name : str

    Returns
    -------
    list of Path

    Examples
    --------
    >>> plot_image_multiclass(load_json("figures/image_multiclass_fashion_mnist_all.json"),
    ...                       "figures", "image_multiclass_fashion_mnist_all")  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    apply_style()
    s = results["summary"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5), layout="constrained")
    ax = axes[0, 0]
    ticks = []
    for i, (label, _, key) in enumerate(_RATIOS):
        ticks.append(label)
        for loss, dx in (("cross_entropy", -0.12), ("differential", 0.12)):
            _interval(ax, i + dx, s["feature_space"][loss][key], LOSS_COLORS[loss], "o",
                      f"{loss.replace('_', '-')} network" if i == 0 else None)
    for j, loss in enumerate(("cross_entropy", "differential")):
        ticks.append(f"retrained {loss.replace('_', '-')} head")
        _interval(ax, len(_RATIOS) + j, s["heads"][loss]["ratio_to_optimal"], LOSS_COLORS[loss], "s")
        n_sep, n_all = s["heads"][loss]["n_separated"], s["heads"]["n_seeds"]
        if n_sep < n_all:
            ax.annotate(f"no margin on\n{n_all - n_sep}/{n_all} seeds", (len(_RATIOS) + j, 0.02),
                        ha="center", fontsize=7, color=LOSS_COLORS[loss])
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set_xticks(range(len(ticks)), ticks, rotation=20, ha="right", fontsize=7)
    ax.set(ylabel="margin / optimal margin", title="(a) feature space, 95% intervals over seeds")
    ax.legend(fontsize=7, loc="center right")

    ax = axes[0, 1]
    seeds = [e for e in results["seeds"] if e["heads"]]
    for loss in ("cross_entropy", "differential"):
        runs = [e["heads"][loss] for e in seeds]
        if not runs:
            continue
        steps = np.asarray(runs[0]["history"]["step"], dtype=float)
        n = min(len(r["history"]["margin"]) for r in runs)
        opt = [e["feature_space"]["cross_entropy"]["optimal_margin"] for e in seeds]
        # signed margins: below 0 the head misclassifies some of its training features
        rel = [np.asarray([np.nan if m is None else m for m in r["history"]["margin"][:n]], float) / o
               for r, o in zip(runs, opt, strict=True)]
        n_sep = sum(bool(r["separated"]) for r in runs)
        _band(ax, np.maximum(steps[:n], 0.5), rel, LOSS_COLORS[loss],
              f"{loss.replace('_', '-')} head ({n_sep}/{len(runs)} separate)")
        preds = [r["predicted_margin"] / o for r, o in zip(runs, opt, strict=True)
                 if r["prediction"] != "optimal" or loss == "cross_entropy"]
        if preds:  # the differential head's own limit exists only where one-vs-rest separates
            ax.axhline(np.mean(preds), color=LOSS_COLORS[loss], ls="--", lw=1)
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_ylim(-2.0, 1.1)  # the early, large negative margins are cut off
    ax.set(xscale="log", xlabel="normalized GD step (0 drawn at 0.5)",
           ylabel="signed margin / optimal margin",
           title="(b) heads on the CE network's features (band: min-max)")
    if seeds:
        ax.legend(title="dashed: predicted limits", fontsize=7, loc="lower left")

    for ax, norm, letter in ((axes[1, 0], "l2", "c"), (axes[1, 1], "linf", "d")):
        for source, style in (("networks", ":"), ("heads", "-")):
            for loss in ("cross_entropy", "differential"):
                band = share_bands(results, source, loss, "test", norm)
                if band is None:
                    continue
                color = LOSS_COLORS[loss]
                what = "network" if source == "networks" else "retrained head"
                ax.plot(band["eps"], band["share"], color=color, ls=style,
                        label=f"{loss.replace('_', '-')} {what}")
                ax.fill_between(band["eps"], band["low"], band["high"], color=color, alpha=0.15, lw=0)
        ax.set(xlabel="ε", ylabel="share with adversarial example ≤ ε", ylim=(-0.02, 1.02),
               title=f"({letter}) test, {norm_label(norm)}, 95% bootstrap bands")
        ax.legend(fontsize=7, loc="lower right")
    proto = results["protocol"]
    fig.suptitle(f"{proto['n_classes']} classes: {proto['dataset']} ({proto['mode']}, "
                 f"{len(results['seeds'])} seed(s))")
    return save_figure(fig, out, name)

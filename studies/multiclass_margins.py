"""Multi-class margins against the distance of the data's subspace from the origin.

C classes (3 to 10) at the vertices of a regular polygon in a k-dimensional affine subspace
of R^d (:func:`lowrank.data.multiclass_subspace_data`); raising the offset translates the
whole data set along ``(e + normal)/sqrt(2)``. For each (k, C, offset): the exact
predictions (:mod:`lowrank.theory.multiclass`): the optimal Crammer–Singer separator (free
biases; translation invariant), the cross-entropy limit (augmented points, biases
penalised) and the one-vs-rest differential limit (per-class free-bias SVMs with midpoint
offsets); and the measured multi-class geometric margins of softmax cross-entropy and of
the one-vs-rest differential loss after plain gradient descent (filled markers, several
budgets T) and normalized gradient descent (hollow markers), all divided by the optimal
margin. Results: ``multiclass_margins.json`` / ``.csv``; finished configurations are cached
in ``multiclass_margins_cache.json`` (rerun resumes).

    python studies/multiclass_margins.py [--quick] [--out runs/multiclass_margins] [--seed 0] [--jobs 2]
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from lowrank.cli import run_cli, run_study, study_mode
from lowrank.margin_study import finite, mark_separation, multiclass_margin_config, record_rows
from lowrank.plotting import (
    LOSS_COLORS,
    NGD_STYLE,
    NOT_SEPARATED_LABEL,
    apply_style,
    budget_colors,
    format_steps,
    not_separated_handle,
    plot_run_ratios,
    save_figure,
)
from lowrank.sweep import ResultCache, run_configs

NAME = "multiclass_margins"


def settings(args) -> dict:
    """Sizes and budgets of each mode."""
    if args.tiny:
        return {"dim": 6, "n_per_class": 4, "classes": [3, 5], "ranks": [2],
                "offsets": [0.0, 8.0], "ce_steps": [100, 1000], "diff_steps": [100, 1000],
                "ngd_steps": [1000, 4000], "ngd_factor": 1.0, "gap": 1.0, "spread": 0.5}
    if args.quick:
        return {"dim": 20, "n_per_class": 8, "classes": [3, 5, 10], "ranks": [3],
                "offsets": [0.0, 1.0, 3.0, 10.0], "ce_steps": [100, 1000, 10_000],
                "diff_steps": [100, 1000, 10_000], "ngd_steps": [1000, 10_000],
                "ngd_factor": 1.0, "gap": 1.0, "spread": 0.5}
    return {"dim": 50, "n_per_class": 8, "classes": [3, 5, 10], "ranks": [2, 5],
            "offsets": [0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0],
            "ce_steps": [100, 1000, 10_000, 30_000], "diff_steps": [100, 1000, 10_000],
            "ngd_steps": [1000, 10_000, 30_000], "ngd_factor": 1.0, "gap": 1.0, "spread": 0.5}


def configs(st: dict, seed: int) -> list[dict]:
    """Every (rank, classes, offset) configuration."""
    keys = ("dim", "n_per_class", "ce_steps", "diff_steps", "ngd_steps", "ngd_factor", "gap",
            "spread")
    return [{**{k: st[k] for k in keys}, "rank": k, "n_classes": C, "offset": off, "seed": seed}
            for k in st["ranks"] for C in st["classes"] for off in st["offsets"]]


def compute(args) -> dict:
    """Run (or resume) every configuration; return the results dict."""
    st = settings(args)
    cache = ResultCache(Path(args.out) / f"{NAME}_cache.json")
    recs = run_configs(configs(st, args.seed), multiclass_margin_config, cache=cache,
                       jobs=args.jobs, desc=NAME, quiet=args.quiet)
    recs = [mark_separation(r) for r in recs]  # also for cached records of older versions
    return {"study": NAME, "seed": args.seed, "mode": study_mode(args), "settings": st,
            "records": recs,
            "notes": "margins are multi-class geometric margins (smallest distance from a "
                     "training point to a boundary between its class and another); *_ratio = "
                     "margin / optimal (free-bias Crammer-Singer) margin, lists aligned with "
                     "ce_steps / diff_steps / ngd_steps; ce_limit_* = exact cross-entropy-limit "
                     "solver (augmented points), ovr_limit_* = exact limit of one-vs-rest "
                     "differential training; ngd_* = normalized gradient descent (step "
                     "ngd_*_lr), ngd_*_cosine = cosine of the class-centred weights to the "
                     "predicted limit's."}


def plot(res: dict, out_dir) -> list:
    """Draw the figure from the results dict: rows = ranks, columns = numbers of classes."""
    apply_style()
    st, recs = res["settings"], res["records"]
    ranks, classes = st["ranks"], st["classes"]
    cols = budget_colors(st["ce_steps"])
    dcol = budget_colors(st["diff_steps"], cmap="Blues")
    fig, axes = plt.subplots(len(ranks), len(classes), figsize=(3.4 * len(classes), 3.3 * len(ranks) + 1.2),
                             sharey=True, squeeze=False, layout="constrained")
    for i, k in enumerate(ranks):
        for j, C in enumerate(classes):
            ax = axes[i][j]
            rs = sorted((r for r in recs if r["rank"] == k and r["n_classes"] == C),
                        key=lambda r: r["offset"])
            if not rs:
                continue
            xs = np.asarray([r["offset"] for r in rs], dtype=float)
            ax.plot(xs, finite(r["ratio_ce_predicted"] for r in rs), color=LOSS_COLORS["predicted"],
                    lw=2.2, ls="--", marker="D", ms=4, label="predicted: cross-entropy limit")
            ax.plot(xs, finite(r["ratio_ovr_predicted"] for r in rs), color=LOSS_COLORS["differential"],
                    lw=2.0, ls="-.", label="predicted: one-vs-rest differential limit")
            rs = [mark_separation(r) for r in rs]  # runs without a margin: crosses on the axis
            for t_i, T in enumerate(st["ce_steps"]):
                plot_run_ratios(ax, xs, rs, "ce", t_i, color=cols[T], marker="o", ms=3.5, lw=1,
                                label=f"GD cross-entropy, T={format_steps(T)}")
            for t_i, T in enumerate(st["diff_steps"]):
                plot_run_ratios(ax, xs, rs, "diff", t_i, color=dcol[T], marker="s", ms=3.5, lw=1,
                                label=f"GD differential, T={format_steps(T)}")
            T = format_steps(st["ngd_steps"][-1])
            for loss, key, name in (("cross_entropy", "ce", "cross-entropy"),
                                    ("differential", "diff", "differential")):
                plot_run_ratios(ax, xs, rs, f"ngd_{key}", -1,
                                label=f"normalized GD {name}, T={T}", **NGD_STYLE[loss])
            ax.axhline(1.0, color=LOSS_COLORS["optimal"], lw=1.2, alpha=0.7,
                       label="optimal (Crammer–Singer, free biases)")
            ax.set_xscale("symlog", linthresh=1.0, linscale=0.8)
            ticks = [t for t in (0, 1, 3, 10, 20) if t <= xs.max()]
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.set_title(f"C = {C} classes, k = {k} in $\\mathbb{{R}}^{{{st['dim']}}}$", fontsize=9)
            ax.set_xlabel("offset of the subspace", fontsize=8.5)
            ax.set_ylim(0, 1.15)
            if j == 0:
                ax.set_ylabel("margin / optimal margin")
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles, labels = handles + [not_separated_handle()], labels + [NOT_SEPARATED_LABEL]
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    return save_figure(fig, out_dir, NAME)


def report(res: dict):
    """One line per configuration: measured against predicted (ratios to the optimal margin)."""
    def ratio(v) -> str:
        return "not separated" if v is None else f"{v:.4f}"

    for r in map(mark_separation, res["records"]):
        yield (f"k={r['rank']} C={r['n_classes']:2d} offset={r['offset']:<5g} optimal "
               f"{r['optimal_margin']:.4f} | predicted CE {r['ratio_ce_predicted']:.4f} "
               f"OvR {r['ratio_ovr_predicted']:.4f} | GD CE {ratio(r['ce_ratio'][-1])} "
               f"diff {ratio(r['diff_ratio'][-1])} | normalized GD CE {ratio(r['ngd_ce_ratio'][-1])} "
               f"(cos {r['ngd_ce_cosine'][-1]:.5f}) diff {ratio(r['ngd_diff_ratio'][-1])} "
               f"(cos {r['ngd_diff_cosine'][-1]:.5f})")


def main(argv=None) -> dict:
    """Run the study (or redraw it with ``--replot``) and return the results dict."""
    return run_study(NAME, __doc__.splitlines()[0], compute, plot, record_rows, report, argv)


if __name__ == "__main__":
    run_cli(main)

"""Margin ratio (cross-entropy / optimal) against the subspace dimension k and off-subspace noise.

The data sit in a k-dimensional affine subspace of R^d at distance ``offset`` from the
origin (class midpoint at ``center`` along the separating direction); (a) k grows up to
d - 1 with no noise; (b) k is fixed and Gaussian noise of standard deviation sigma is
added orthogonally to the subspace, so the data become full rank. Shown: the exact
cross-entropy-limit prediction, gradient descent after several budgets T, differential
training, normalized gradient descent for both losses (hollow markers: the same limits,
reached in far fewer steps), and (bottom) how much of each weight vector points out of
the subspace. A run whose weights do not separate the training data has no margin: it is
drawn as a cross on the axis, and its margin and ratio are null in the JSON
(``*_separated`` false).
Results: ``margin_vs_rank.json`` / ``.csv``; finished configurations are cached in
``margin_vs_rank_cache.json`` (rerun resumes).

    python studies/margin_vs_rank.py [--quick] [--out figures] [--seed 0] [--jobs 2]
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from lowrank.cli import run_cli, run_study, study_mode
from lowrank.margin_study import (
    finite,
    mark_separation,
    ratio_summary,
    record_rows,
    sweep_records,
    sweep_settings,
)
from lowrank.plotting import (
    LOSS_COLORS,
    NGD_STYLE,
    apply_style,
    budget_colors,
    figure_legend,
    format_steps,
    plot_sweep_ratios,
    save_figure,
)
from lowrank.theory import line_pair_ratio

NAME = "margin_vs_rank"
OFFSET, CENTER = 1.0, 4.0
NGD = (("cross_entropy", "ce", "cross-entropy"), ("differential", "diff", "differential"))


def settings(args) -> dict:
    """Sizes and budgets of each mode: the shared sweep settings, the ranks and the noises."""
    sweeps = {"tiny": {"ranks": [1, 3, 9], "noises": [0.0, 0.3]},
              "quick": {"ranks": [1, 2, 5, 20, 49], "noises": [0.0, 0.03, 0.3, 3.0]},
              "full": {"ranks": [1, 2, 5, 10, 20, 50, 99],
                       "noises": [0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]}}
    mode = study_mode(args)
    return {**sweep_settings(mode), "noise_rank": 2, **sweeps[mode]}


def configs(st: dict, seed: int) -> list[dict]:
    """Every (sweep, k, noise) configuration."""
    base = {"kind": "subspace", "n_per_class": st["n_per_class"], "dim": st["dim"],
            "offset": OFFSET, "center": CENTER, "gap": 1.0, "seed": seed,
            "ce_steps": st["ce_steps"], "diff_steps": st["diff_steps"]}
    out = [{"sweep": "rank", **base, "rank": k, "noise": 0.0} for k in st["ranks"]]
    out += [{"sweep": "noise", **base, "rank": st["noise_rank"], "noise": s}
            for s in st["noises"]]
    return out


def compute(args) -> dict:
    """Run (or resume) every configuration; return the results dict."""
    st = settings(args)
    recs = sweep_records(NAME, args, st, configs(st, args.seed))
    return {"study": NAME, "seed": args.seed, "mode": study_mode(args), "settings": st,
            "offset": OFFSET, "center": CENTER,
            "two_point_closed_form_ratio": line_pair_ratio(CENTER, OFFSET), "records": recs,
            "notes": "ratio = margin / optimal (free-bias SVM) margin of the same data; "
                     "*_ratio lists align with ce_steps / diff_steps; *_tilt = fraction of "
                     "the weight vector orthogonal to the (noise-free) subspace; ngd_* = "
                     "normalized gradient descent (gradient descent on log L, step ngd_lr per "
                     "loss; same limits, reached sooner), lists aligned with ngd_steps; "
                     "*_separated false: those weights do not separate the training data, so "
                     "margin and ratio are null."}


def plot(res: dict, out_dir) -> list:
    """Draw the figure from the results dict."""
    apply_style()
    st = res["settings"]
    recs = [mark_separation(r) for r in res["records"]]  # also for JSON of older versions
    cols = budget_colors(st["ce_steps"])
    dcol = budget_colors(st["diff_steps"], cmap="Blues")
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), layout="constrained", sharex="col")
    sweeps = [("rank", "rank", f"subspace dimension k (d = {st['dim']}, no noise)",
               f"(a) growing rank k, offset {res['offset']:g}, centre {res['center']:g}"),
              ("noise", "noise", f"off-subspace noise $\\sigma$ (k = {st['noise_rank']})",
               f"(b) full rank by noise, k = {st['noise_rank']}, offset {res['offset']:g}")]
    for j, (sweep, key, xlabel, title) in enumerate(sweeps):
        rs = sorted((r for r in recs if r["sweep"] == sweep), key=lambda r: r[key])
        xs = np.asarray([r[key] for r in rs], dtype=float)
        ax, axt = axes[0, j], axes[1, j]
        ax.axhline(res["two_point_closed_form_ratio"], color="0.35", ls=":", lw=1.2,
                   label="sympy closed form, two points at the same offset/centre")
        ax.axhline(1.0, color=LOSS_COLORS["optimal"], lw=1.2, alpha=0.7,
                   label="optimal SVM (ratio 1)")
        plot_sweep_ratios(ax, xs, rs, st)
        ngd = format_steps(st["ngd_steps"][-1]) if st.get("ngd_steps") else None
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("margin / optimal margin")
        ax.set_title(title, fontsize=10)
        axt.plot(xs, finite(r.get("ce_limit_tilt", np.nan) for r in rs),
                 color=LOSS_COLORS["predicted"], lw=2.2, ls="--", marker="D", ms=4,
                 label="CE limit (solver)")
        axt.plot(xs, finite(r.get("ce_tilt", np.nan) for r in rs), color=cols[st["ce_steps"][-1]],
                 marker="o", ms=3.5, lw=1,
                 label=f"GD cross-entropy, T={format_steps(st['ce_steps'][-1])}")
        axt.plot(xs, finite(r.get("optimal_tilt", np.nan) for r in rs),
                 color=LOSS_COLORS["optimal"], lw=1.2, marker="^", ms=4, label="optimal SVM")
        axt.plot(xs, finite(r.get("diff_tilt", np.nan) for r in rs),
                 color=dcol[st["diff_steps"][-1]], marker="s", ms=3.5, lw=1,
                 label=f"differential, T={format_steps(st['diff_steps'][-1])}")
        for loss, key, lname in NGD:
            if ngd:
                axt.plot(xs, finite(r.get(f"ngd_{key}_tilt", np.nan) for r in rs),
                         label=f"normalized GD {lname}, T={ngd}", **NGD_STYLE[loss])
        axt.set_ylim(-0.03, 1.03)
        axt.set_ylabel("fraction of $w$ orthogonal to the subspace")
        if sweep == "rank":
            ax.set_xscale("log")
            ticks = [int(k) for k in xs]
            axt.set_xticks(ticks, [str(k) for k in ticks])
            axt.set_xlabel(f"{xlabel}\n(logarithmic axis)")
        else:
            ax.set_xscale("symlog", linthresh=0.01, linscale=0.5)
            ax.set_xlim(-0.002, xs.max() * 1.4)
            axt.set_xticks(list(xs), [f"{s:g}" for s in xs])
            axt.tick_params(axis="x", labelsize=8)
            axt.set_xlabel(f"{xlabel}\n(axis linear up to 0.01, logarithmic above)")
        axt.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(0.0, 0.86))  # between the curves
    figure_legend(fig, axes[0, 0], recs, ncol=3)
    return save_figure(fig, out_dir, NAME)


def report(res: dict):
    """One line per configuration: measured against predicted."""
    for r in map(mark_separation, res["records"]):
        yield (f"{r['sweep']:5s} k={r['rank']:<3d} noise={r['noise']:<5g} predicted "
               f"{r['ratio_predicted']:.4f} {ratio_summary(r)} | "
               f"tilt(CE limit) {r.get('ce_limit_tilt', float('nan')):.3f}")


def main(argv=None) -> dict:
    """Run the study (or redraw it with ``--replot``) and return the results dict."""
    return run_study(NAME, __doc__.splitlines()[0], compute, plot, record_rows, report, argv)


if __name__ == "__main__":
    run_cli(main)

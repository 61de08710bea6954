"""Margin ratio (cross-entropy / optimal) against the distance of the data's subspace from the origin.

Two sweeps (rows of the figure):

(a) *translation*: ``offset = center`` (the default of ``affine_subspace_data``): raising the
    offset moves the whole data set along ``(e + normal)/sqrt(2)``; the optimal SVM is
    unchanged, the cross-entropy limit's ratio falls (toward 1/sqrt(2) for two points);
(b) *height at a fixed centre*: the class midpoint stays at ``center`` along the separating
    direction and only the subspace's distance from the origin changes: the ratio dips
    (to ``1/sqrt(1 + m^2/4)`` at offset 1 for two points) and returns to 1 as the offset
    goes to 0 or to infinity.

Columns: two points on a line in R^2 (sympy closed form, exact solver, GD, differential),
then multi-point data in a k-dimensional affine subspace of R^d for several k (exact
solver, GD after several budgets T, differential; the two-point closed form at the same
offset and centre drawn for reference). Hollow markers: normalized gradient descent
(gradient descent on log L), which reaches the same limits in far fewer steps. A run whose
weights do not separate the training data has no margin: it is drawn as a cross on the
axis, and its margin and ratio are null in the JSON (``*_separated`` false). Results:
``margin_vs_offset.json`` / ``.csv``; finished configurations are cached in
``margin_vs_offset_cache.json`` (rerun resumes).

    python studies/margin_vs_offset.py [--quick] [--out figures] [--seed 0] [--jobs 2]
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from lowrank.cli import run_cli, run_study, study_mode
from lowrank.margin_study import (
    mark_separation,
    ratio_summary,
    record_rows,
    sweep_records,
    sweep_settings,
)
from lowrank.plotting import (
    LOSS_COLORS,
    apply_style,
    figure_legend,
    plot_sweep_ratios,
    save_figure,
)
from lowrank.theory import line_pair_ratio

NAME = "margin_vs_offset"
FIXED_CENTER = 4.0


def settings(args) -> dict:
    """Sizes and budgets of each mode: the shared sweep settings, the ranks and the offsets."""
    sweeps = {"tiny": {"ranks": [1, 3], "offsets_a": [0.0, 2.0], "offsets_b": [0.0, 1.0]},
              "quick": {"ranks": [1, 2, 5], "offsets_a": [0.0, 1.0, 3.0, 8.0],
                        "offsets_b": [0.0, 0.5, 1.0, 4.0]},
              "full": {"ranks": [1, 2, 5, 10], "offsets_a": [0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0],
                       "offsets_b": [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]}}
    mode = study_mode(args)
    return {**sweep_settings(mode), **sweeps[mode]}


def configs(st: dict, seed: int) -> list[dict]:
    """Every (sweep, data, offset) configuration."""
    out = []
    budgets = {"ce_steps": st["ce_steps"], "diff_steps": st["diff_steps"]}
    for sweep, offsets in (("translation", st["offsets_a"]), ("height", st["offsets_b"])):
        for off in offsets:
            center = off if sweep == "translation" else FIXED_CENTER
            # two points (a, c), (a + 2g, c) with midpoint m = a + g = center, gap 2g = 1
            out.append({"sweep": sweep, "kind": "line_pair", "a": center - 0.5, "g": 0.5,
                        "c": off, **budgets})
            for k in st["ranks"]:
                out.append({"sweep": sweep, "kind": "subspace", "n_per_class": st["n_per_class"],
                            "dim": st["dim"], "rank": k, "offset": off, "center": center,
                            "gap": 1.0, "seed": seed, **budgets})
    return out


def compute(args) -> dict:
    """Run (or resume) every configuration; return the results dict."""
    st = settings(args)
    recs = sweep_records(NAME, args, st, configs(st, args.seed))
    return {"study": NAME, "seed": args.seed, "mode": study_mode(args), "settings": st,
            "fixed_center": FIXED_CENTER, "records": recs,
            "notes": "ratio = margin / optimal (free-bias SVM) margin; *_ratio lists align "
                     "with ce_steps / diff_steps; ratio_predicted = exact CE-limit solver; "
                     "closed_form_ratio = sympy two-point formula at the same centre and "
                     "offset (exact for kind=line_pair); ngd_* = normalized gradient descent "
                     "(gradient descent on log L, step ngd_lr per loss; same limits, reached "
                     "sooner), lists aligned with ngd_steps; *_separated false: those weights "
                     "do not separate the training data, so margin and ratio are null."}


def _series(recs, sweep, match):
    rs = sorted((r for r in recs if r["sweep"] == sweep and match(r)),
                key=lambda r: r["c"] if r["kind"] == "line_pair" else r["offset"])
    xs = [r["c"] if r["kind"] == "line_pair" else r["offset"] for r in rs]
    return np.asarray(xs, dtype=float), rs


def plot(res: dict, out_dir) -> list:
    """Draw the figure from the results dict."""
    apply_style()
    st = res["settings"]
    recs = [mark_separation(r) for r in res["records"]]  # also for JSON of older versions
    panels = [("two points in $\\mathbb{R}^2$", lambda r: r["kind"] == "line_pair")]
    panels += [(f"k = {k} in $\\mathbb{{R}}^{{{st['dim']}}}$, {2 * st['n_per_class']} points",
                lambda r, k=k: r["kind"] == "subspace" and r["rank"] == k) for k in st["ranks"]]
    sweeps = [("translation", "(a) data translated along $(e+n)/\\sqrt{2}$: offset = centre"),
              ("height", f"(b) fixed centre {res['fixed_center']:g}: subspace moved off the "
                         "origin")]
    fig = plt.figure(figsize=(3.0 * len(panels), 7.6), layout="constrained")
    subfigs = fig.subfigures(2, 1, hspace=0.04)
    first = None
    for sub, (sweep, row_title) in zip(subfigs, sweeps, strict=True):
        axes = sub.subplots(1, len(panels), sharey=True)
        sub.suptitle(row_title, fontsize=10, fontweight="bold", x=0.02, ha="left")
        for j, (title, match) in enumerate(panels):
            ax = axes[j]
            first = first or ax
            xs, rs = _series(recs, sweep, match)
            if not rs:
                continue
            fine = np.linspace(0, max(xs.max(), 1e-9), 300)
            center = rs[0]["center"] if rs[0]["kind"] == "subspace" else rs[0]["a"] + rs[0]["g"]
            cfy = [line_pair_ratio(x if sweep == "translation" else center, x) for x in fine]
            ax.plot(fine, cfy, color="0.35", lw=1.2, ls="-" if j == 0 else ":",
                    label="sympy closed form (two points; exact in the first column)")
            plot_sweep_ratios(ax, xs, rs, st)
            ax.axhline(1.0, color=LOSS_COLORS["optimal"], lw=1.2, alpha=0.7,
                       label="optimal SVM (ratio 1)")
            xlabel = "offset $c$ of the subspace"
            if sweep == "height":
                ax.set_xscale("symlog", linthresh=1.0, linscale=1.0)
                ticks = [t for t in (0, 0.5, 1, 2, 4, 8) if t <= xs.max()]
                ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
                ax.set_xlim(right=xs.max() * 1.5)  # the last markers whole, not cut by the edge
                xlabel += "\n(axis linear up to 1, logarithmic above)"
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(xlabel, fontsize=8.5)
            ax.set_ylim(0, 1.05)
            if j == 0:
                ax.set_ylabel("margin / optimal margin")
    figure_legend(fig, first, recs, ncol=4)
    return save_figure(fig, out_dir, NAME)


def report(res: dict):
    """One line per configuration: measured against predicted."""
    for r in map(mark_separation, res["records"]):
        k = r.get("rank", "2pt")
        off = r.get("offset", r.get("c"))
        yield (f"{r['sweep']:11s} k={k!s:3s} offset={off:<5g} predicted "
               f"{r['ratio_predicted']:.4f} closed-form {r['closed_form_ratio']:.4f} "
               f"{ratio_summary(r)}")


def main(argv=None) -> dict:
    """Run the study (or redraw it with ``--replot``) and return the results dict."""
    return run_study(NAME, __doc__.splitlines()[0], compute, plot, record_rows, report, argv)


if __name__ == "__main__":
    run_cli(main)

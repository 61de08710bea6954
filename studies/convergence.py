"""Convergence in direction: gradient descent approaches the predicted limits, slowly (~1/log t).

Over log-spaced steps up to T (1e6; quick mode 1e4): the angle between the weights of
gradient descent on cross-entropy and the predicted cross-entropy limit (augmented-point
SVM), and its margin approaching the predicted margin; the same for differential training
toward the optimal (free-bias) SVM. Random initialisation: the part of the initial weights
orthogonal to the span the updates live in (the data for cross-entropy, the class
differences for differential training) never moves, while ``||w||`` grows like log t, so
its influence fades only as 1/log t. Two data sets: the paper's two points and 50 points
in a 2-dimensional affine subspace of R^20. Dotted: normalized gradient descent (gradient
descent on log L) from zero weights, which reaches the same limits in far fewer steps.
Margins are drawn only at steps where the weights separate the training data; the other
recorded steps are crosses on the margin axis (no margin), and a final margin is null in
the JSON when the final weights do not separate (``separated`` false).
Results: ``convergence.json`` / ``.csv``.

    python studies/convergence.py [--quick] [--out figures] [--seed 0] [--jobs 2]
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np

from lowrank.cli import run_cli, run_study, study_mode
from lowrank.margin_study import finite, format_measurement, training_run
from lowrank.plotting import (
    LOSS_COLORS,
    NGD_STYLE,
    apply_style,
    format_steps,
    mark_not_separated,
    not_separated_handle,
    save_figure,
)
from lowrank.sweep import ResultCache, run_configs
from lowrank.train import NORMALIZED_LR

NAME = "convergence"
STYLE = {("cross_entropy", "zeros"): dict(color=LOSS_COLORS["cross_entropy"], ls="-"),
         ("cross_entropy", "random"): dict(color="#f1948a", ls="--"),
         ("differential", "zeros"): dict(color=LOSS_COLORS["differential"], ls="-"),
         ("differential", "random"): dict(color="#7fb3d5", ls="--")}
ANGLE_FLOOR = 1e-6
LABEL = {"cross_entropy": "cross-entropy", "differential": "differential"}


def settings(args) -> dict:
    """Budgets of each mode."""
    if args.tiny:
        return {"steps": 2000, "record": 25, "ngd_steps": 1000, "ngd_lr": NORMALIZED_LR}
    if args.quick:
        return {"steps": 10_000, "record": 40, "ngd_steps": 2000, "ngd_lr": NORMALIZED_LR}
    return {"steps": 1_000_000, "record": 80, "ngd_steps": 10_000, "ngd_lr": NORMALIZED_LR}


def datasets(seed: int) -> list[tuple[str, str, dict]]:
    """The paper's pair and a 2-dimensional affine subspace of R^20."""
    return [("paper_pair", "two points (3,1)$\\to$-1, (5,1)$\\to$+1",
             {"kind": "line_pair", "a": 3.0, "g": 1.0, "c": 1.0}),
            ("subspace", "50 points, k = 2 in $\\mathbb{R}^{20}$, offset 1, centre 4",
             {"kind": "subspace", "n_per_class": 25, "dim": 20, "rank": 2, "offset": 1.0,
              "center": 4.0, "gap": 1.0, "seed": seed})]


def configs(st: dict, seed: int) -> list[dict]:
    """Every run: data set x loss x init (x reference)."""
    out = []
    for key, _, data in datasets(seed):
        for loss in ("cross_entropy", "differential"):
            for init in ("zeros", "random"):
                base = {"dataset": key, **data, "loss": loss, "steps": st["steps"],
                        "record": st["record"], "init": init, "init_seed": seed + 1}
                out.append({**base, "reference": "prediction"})
                # two points in R^2 span the plane: nothing is frozen for cross-entropy there
                if init == "random" and not (key == "paper_pair" and loss == "cross_entropy"):
                    out.append({**base, "reference": "frozen"})
            if st.get("ngd_steps"):  # normalized gradient descent: the same limits, sooner
                out.append({"dataset": key, **data, "loss": loss, "steps": st["ngd_steps"],
                            "record": st["record"], "init": "zeros", "init_seed": seed + 1,
                            "reference": "prediction", "schedule": "normalized",
                            "lr": st["ngd_lr"]})
    return out


def compute(args) -> dict:
    """Run (or resume) every configuration; return the results dict."""
    st = settings(args)
    cache = ResultCache(args.out / f"{NAME}_cache.json")
    recs = run_configs(configs(st, args.seed), worker=training_run, cache=cache, jobs=args.jobs,
                       desc=NAME, quiet=args.quiet)
    summary = []
    for r in recs:
        if r["reference"] != "prediction":
            continue
        separated = _separated(r)[-1]
        summary.append({"dataset": r["dataset"], "loss": r["loss"], "init": r["init"],
                        "schedule": r.get("schedule", "constant"), "steps": r["steps"],
                        "lr": r["lr"], "separated": separated,
                        "measured_margin": r["history"]["margin"][-1] if separated else None,
                        "predicted_margin": r["predicted_margin"],
                        "final_angle_deg": r["angle_deg"][-1],
                        "frozen_norm_init": r["frozen_norm_init"],
                        "frozen_change": r["frozen_change"]})
    return {"study": NAME, "seed": args.seed, "mode": study_mode(args), "settings": st,
            "titles": {k: t for k, t, _ in datasets(args.seed)}, "summary": summary,
            "runs": recs,
            "notes": "predicted_margin: CE-limit margin for cross_entropy, optimal-SVM margin "
                     "for differential; angle_deg: angle between w(t) and the predicted w; "
                     "frozen_component: w(t) . r, r = unit part of w(0) orthogonal to the span "
                     "of the updates; frozen_change = ||P w(T) - P w(0)|| for that projection; "
                     "schedule=normalized: normalized gradient descent (gradient descent on "
                     "log L, step ngd_lr per loss) for ngd_steps steps from zero weights; "
                     "history.margin is the signed geometric margin, a margin only where "
                     "history.separated is true; measured_margin / final_margin are null "
                     "when the final weights do not separate the training data."}


def _separated(run: dict) -> list[bool]:
    """Whether the weights separate the data at each recorded step (JSON of older versions
    has no flags: a positive signed margin then)."""
    h = run["history"]
    return h.get("separated") or [m is not None and m > 0 for m in h["margin"]]


def plot(res: dict, out_dir) -> list:
    """Draw the figure from the results dict."""
    apply_style()
    runs = res["runs"]
    keys = list(res["titles"])
    any_unseparated = False
    fig, axes = plt.subplots(len(keys), 3, figsize=(15, 4.3 * len(keys)), layout="constrained",
                             squeeze=False)
    for i, key in enumerate(keys):
        ax_a, ax_m, ax_f = axes[i]
        r0 = next(r for r in runs if r["dataset"] == key)
        top = r0["optimal_margin"]
        bottom = -0.1 * top  # the lower limit of the margin axis: crosses for "no margin"
        exact = False  # a run whose angle is exactly 0 (drawn at the floor)
        for r in (r for r in runs if r["dataset"] == key and r["reference"] == "prediction"):
            steps = np.asarray(r["history"]["step"], float)
            ok = steps > 0
            if r.get("schedule", "constant") == "normalized":
                st = {"color": NGD_STYLE[r["loss"]]["color"], "ls": ":"}
                lab = f"{LABEL[r['loss']]}, normalized GD, init {r['init']}"
            else:
                st = STYLE[(r["loss"], r["init"])]
                lab = f"{LABEL[r['loss']]}, init {r['init']}"
            ang = np.maximum(np.asarray(finite(r["angle_deg"])), ANGLE_FLOOR)[ok]
            exact |= bool(np.all(ang <= ANGLE_FLOOR))
            lw = 2.2 if st["ls"] == ":" else 1.6
            ax_a.plot(steps[ok], ang, lw=lw, label=lab, **st)
            sep = np.asarray(_separated(r), bool)
            margin = np.where(sep, np.asarray(finite(r["history"]["margin"])), np.nan)
            ax_m.plot(steps[ok], margin[ok], lw=lw, label=lab, **st)
            mark_not_separated(ax_m, steps[ok], sep[ok], y=bottom, color=st["color"], ms=6,
                               mew=1.4)
            any_unseparated |= not sep[ok].all()
        for value, color, label in ((r0["ce_limit_margin"], LOSS_COLORS["predicted"],
                                     "predicted CE limit"),
                                    (r0["optimal_margin"], LOSS_COLORS["optimal"], "optimal SVM")):
            ax_m.axhline(value, color=color, ls=":", lw=2, label=label)
            ax_m.annotate(f"{label} {value:.4f}", (0.01, value), xycoords=("axes fraction", "data"),
                          xytext=(0, 2), textcoords="offset points", va="bottom", fontsize=7.5,
                          color=color)
        ax_m.set_ylim(bottom, 1.1 * top)
        if exact:
            ax_a.annotate("differential: angle exactly 0 (the classes differ by one vector), "
                          f"drawn at {ANGLE_FLOOR:g}", (0.01, ANGLE_FLOOR),
                          xycoords=("axes fraction", "data"), xytext=(0, 3),
                          textcoords="offset points", va="bottom", fontsize=7.5,
                          color=LOSS_COLORS["differential"])
        for ax in (ax_a, ax_m):
            ax.set_xscale("log")
            ax.set_xlabel("gradient steps t")
        ax_a.set_yscale("log")
        ax_a.set_ylabel("angle to the predicted direction (degrees)")
        ax_a.set_title(f"{res['titles'][key]}\nangle: CE → CE limit, differential → optimal SVM",
                       fontsize=9.5)
        ax_m.set_ylabel("geometric margin")
        ax_m.set_title("margin approaching its prediction", fontsize=9.5)
        for r in (r for r in runs if r["dataset"] == key and r["reference"] == "frozen"):
            st = STYLE[(r["loss"], r["init"])]
            steps = np.asarray(r["history"]["step"], float)
            ok = steps > 0
            ax_f.plot(steps[ok], np.asarray(r["frozen_component"])[ok], lw=2.2, color=st["color"],
                      label=f"{LABEL[r['loss']]}: $w(t)\\cdot r$ (orthogonal part, "
                            f"{r['complement_dim']} dims)")
            ax_f.plot(steps[ok], np.asarray(r["history"]["w_norm"])[ok], lw=1.2, ls="--",
                      color=st["color"], label=f"{LABEL[r['loss']]}: $\\|w(t)\\|$")
        ax_f.set_xscale("log")
        ax_f.set_yscale("log")
        ax_f.set_xlabel("gradient steps t")
        ax_f.set_ylabel("size")
        # ticks at 1, 2 and 5 times the powers of ten: a panel spanning less than a decade
        # still has several labels
        ax_f.yaxis.set_major_locator(mticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax_f.yaxis.set_major_formatter(mticker.FormatStrFormatter("%g"))
        ax_f.yaxis.set_minor_formatter(mticker.NullFormatter())
        ax_f.set_title("random init: the part of $w(0)$ outside the update span never moves",
                       fontsize=9.5)
        ax_f.legend(fontsize=7.5, loc="upper left")
    # one legend for the angle and margin panels of every row, below the figure
    handles, labels = axes[0, 1].get_legend_handles_labels()
    if any_unseparated:
        handles.append(not_separated_handle())
        labels.append("$\\times$ at the bottom of a margin panel: not separated at that step "
                      "(no margin)")
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    title = (f"Convergence in direction over {format_steps(res['settings']['steps'])} steps "
             "of gradient descent")
    if res["settings"].get("ngd_steps"):
        title += (f" (dotted: normalized GD, {format_steps(res['settings']['ngd_steps'])} "
                  "steps)")
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, out_dir, NAME)


def csv_rows(res: dict) -> list[dict]:
    """Rows of the CSV table."""
    return res["summary"]


def report(res: dict):
    """One line per configuration: measured against predicted."""
    for s in res["summary"]:
        yield (f"{s['dataset']:10s} {s['loss']:13s} init {s['init']:6s} "
               f"{s.get('schedule', 'constant'):10s} T={s['steps']}: "
               f"margin {format_measurement(s['measured_margin'], '.5f')} "
               f"(predicted {s['predicted_margin']:.5f}), "
               f"angle {s['final_angle_deg']:.3g} deg, frozen part moved "
               f"{s['frozen_change']:.1e}")


def main(argv=None) -> dict:
    """Run the study (or redraw it with ``--replot``) and return the results dict."""
    return run_study(NAME, __doc__.splitlines()[0], compute, plot, csv_rows, report, argv)


if __name__ == "__main__":
    run_cli(main)

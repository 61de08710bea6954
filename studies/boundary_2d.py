"""Decision boundaries on an offset line in the plane: cross-entropy tilts, differential does not.

Two data sets on a line at distance ``c`` from the origin: the paper's two points
(3, 1) -> -1 and (5, 1) -> +1, and a few random points per class on a randomly oriented
offset line. Drawn: gradient descent on cross-entropy after several step counts T, the
predicted cross-entropy limit (augmented-point SVM, exact solver; sympy closed form for
the two points), differential training, and the optimal (free-bias) SVM, margins in the
legend. Results: ``boundary_2d.json`` / ``.csv`` beside the figure.

    python studies/boundary_2d.py [--quick] [--out figures] [--seed 0]
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from lowrank.cli import run_cli, run_study, study_mode
from lowrank.margin_study import format_measurement, make_data, measure, predicted_margins
from lowrank.plotting import LOSS_COLORS, apply_style, budget_colors, draw_boundary, format_steps, save_figure
from lowrank.progress import progress
from lowrank.theory.closed_form import line_pair_margins

NAME = "boundary_2d"


def settings(args) -> dict:
    """Budgets of each mode."""
    if args.tiny:
        return {"budgets": [10, 100, 1000], "diff_steps": 200}
    if args.quick:
        return {"budgets": [10, 100, 1000, 10_000], "diff_steps": 2000}
    return {"budgets": [10, 100, 1000, 10_000, 100_000, 1_000_000], "diff_steps": 10_000}


def datasets(seed: int) -> list[tuple[str, str, dict]]:
    """The two data sets: the paper's pair and random points on an offset line."""
    return [
        ("paper_pair", "two points (3,1)$\\to$-1, (5,1)$\\to$+1 on the line $x_2=1$",
         {"kind": "line_pair", "a": 3.0, "g": 1.0, "c": 1.0}),
        ("random_line", "8+8 points on a random line at distance 1.5 (centre 3)",
         {"kind": "subspace", "n_per_class": 8, "dim": 2, "rank": 1, "offset": 1.5,
          "center": 3.0, "gap": 1.0, "spread": 0.7, "seed": seed}),
    ]


def compute(args) -> dict:
    """Train and solve every data set; return the results dict."""
    st = settings(args)
    out = {"study": NAME, "seed": args.seed, "mode": study_mode(args), **st, "datasets": []}
    for key, title, cfg in progress(datasets(args.seed), desc=NAME, quiet=args.quiet):
        data = make_data(cfg)
        pred = predicted_margins(data.X, data.y, data.basis)
        entry = {"key": key, "title": title, "config": cfg, "X": data.X.tolist(),
                 "y": data.y.tolist(), "foot": data.foot.tolist(),
                 "direction": data.direction.tolist(), "predicted": pred, "gd": []}
        if cfg["kind"] == "line_pair":
            cf = line_pair_margins().values(cfg["a"], cfg["g"], cfg["c"])
            entry["closed_form"] = cf
        for T in st["budgets"]:  # one run per budget: the boundary needs w at T
            r = measure(data.X, data.y, "cross_entropy", [T])
            entry["gd"].append({"T": T, "w": r["w"], "b": r["b"], "margin": r["margin"][0],
                                "separated": r["separated"][0], "lr": r["lr"],
                                "predicted_margin": pred["ce_limit_margin"]})
        r = measure(data.X, data.y, "differential", [st["diff_steps"]])
        entry["differential"] = {"T": st["diff_steps"], "w": r["w"], "b": r["b"],
                                 "margin": r["margin"][0], "separated": r["separated"][0],
                                 "lr": r["lr"],
                                 "predicted_margin": pred["optimal_margin"]}
        out["datasets"].append(entry)
    return out


def csv_rows(res: dict) -> list[dict]:
    """Flat table: one row per (data set, method, T)."""
    table = []
    for e in res["datasets"]:
        p = e["predicted"]
        for g in e["gd"]:
            table.append({"dataset": e["key"], "method": "gd_cross_entropy", "T": g["T"],
                          "lr": g["lr"], "measured_margin": g["margin"],
                          "separated": g.get("separated"),
                          "predicted_margin": g["predicted_margin"],
                          "optimal_margin": p["optimal_margin"]})
        d = e["differential"]
        table.append({"dataset": e["key"], "method": "gd_differential", "T": d["T"],
                      "lr": d["lr"], "measured_margin": d["margin"],
                      "separated": d.get("separated"),
                      "predicted_margin": d["predicted_margin"],
                      "optimal_margin": p["optimal_margin"]})
        table.append({"dataset": e["key"], "method": "ce_limit_solver", "T": None, "lr": None,
                      "measured_margin": None, "predicted_margin": p["ce_limit_margin"],
                      "optimal_margin": p["optimal_margin"]})
    return table


def _margin_text(run: dict) -> str:
    """``margin 0.4472``, or ``not separated (no margin)`` for weights that misclassify a
    point (also for JSON of older versions, which stored the negative signed margin)."""
    m = run["margin"]
    if m is None or m <= 0 or run.get("separated") is False:
        return "not separated (no margin)"
    return f"margin {format_measurement(m)}"


def plot(res: dict, out_dir) -> list:
    """Draw the figure from the results dict."""
    apply_style()
    n = len(res["datasets"])
    fig, axes = plt.subplots(1, n, figsize=(6.2 * n, 5.6))
    axes = np.atleast_1d(axes)
    for ax, e in zip(axes, res["datasets"], strict=True):
        X, y = np.asarray(e["X"]), np.asarray(e["y"])
        p = e["predicted"]
        lo = np.minimum(X.min(axis=0), 0.0) - 1.0
        hi = np.maximum(X.max(axis=0), 0.0) + 1.0
        span = max(hi - lo)
        mid = (hi + lo) / 2
        xlim, ylim = (mid[0] - span / 2, mid[0] + span / 2), (mid[1] - span / 2, mid[1] + span / 2)
        # the data's line and the origin
        foot, e1 = np.asarray(e["foot"]), np.asarray(e["direction"])
        tt = np.array([-3 * span, 3 * span])
        ax.plot(foot[0] + tt * e1[0], foot[1] + tt * e1[1], color="0.6", lw=0.8, ls=":",
                zorder=0, label=f"the data's line (distance {np.linalg.norm(foot):.2g})")
        ax.plot([0], [0], marker="+", color="k", ms=12, mew=1.5, ls="none")
        ax.annotate("origin", (0, 0), xytext=(5, -12), textcoords="offset points", fontsize=8)
        cols = budget_colors([g["T"] for g in e["gd"]])
        for g in e["gd"]:
            draw_boundary(ax, g["w"], g["b"], xlim, ylim, color=cols[g["T"]], lw=1.3,
                          label=f"GD cross-entropy, T={format_steps(g['T'])}: "
                                f"{_margin_text(g)}")
        cf = e.get("closed_form")
        cf_txt = f" (sympy {cf['cross_entropy_margin']:.4f})" if cf else ""
        draw_boundary(ax, p["ce_limit_w"], p["ce_limit_b"], xlim, ylim,
                      color=LOSS_COLORS["predicted"], lw=2.4, ls="--",
                      label=f"predicted CE limit (solver): margin {p['ce_limit_margin']:.4f}"
                            f"{cf_txt}")
        draw_boundary(ax, p["optimal_w"], p["optimal_b"], xlim, ylim,
                      color=LOSS_COLORS["optimal"], lw=4.0, alpha=0.45,
                      label=f"optimal SVM: margin {p['optimal_margin']:.4f}")
        d = e["differential"]
        draw_boundary(ax, d["w"], d["b"], xlim, ylim, color=LOSS_COLORS["differential"],
                      lw=1.6, ls=(0, (4, 2)),
                      label=f"differential, T={format_steps(d['T'])}: {_margin_text(d)}")
        ax.scatter(X[y > 0, 0], X[y > 0, 1], marker="o", s=55, color="#2c3e50",
                   edgecolor="white", zorder=5, label="class +1")
        ax.scatter(X[y < 0, 0], X[y < 0, 1], marker="X", s=65, color="#e67e22",
                   edgecolor="white", zorder=5, label="class -1")
        ax.set_xlim(xlim)
        ax.set_ylim(ylim)
        ax.set_aspect("equal")
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        ax.set_title(e["title"], fontsize=10)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=7.5, ncol=1,
                  frameon=False)
    fig.suptitle("Cross-entropy GD tilts toward the predicted limit; differential training "
                 "recovers the optimal boundary", fontsize=11)
    return save_figure(fig, out_dir, NAME)


def report(res: dict):
    """One line per configuration: measured against predicted."""
    for e in res["datasets"]:
        p = e["predicted"]
        yield (f"{e['key']}: optimal {p['optimal_margin']:.4f}, CE limit "
               f"{p['ce_limit_margin']:.4f}, GD T={e['gd'][-1]['T']} "
               f"{format_measurement(e['gd'][-1]['margin'])}, differential "
               f"{format_measurement(e['differential']['margin'])}")


def main(argv=None) -> dict:
    """Run the study (or redraw it with ``--replot``) and return the results dict."""
    return run_study(NAME, __doc__.splitlines()[0], compute, plot, csv_rows, report, argv)


if __name__ == "__main__":
    run_cli(main)

r"""
Decision boundaries in the plane
================================

Data on a line at a distance from the origin, in :math:`\mathbb R^2`, where every
boundary can be drawn. Left: the paper's two points :math:`(3, 1) \to -1` and
:math:`(5, 1) \to +1`. Right: a few random points per class on a randomly oriented line
away from the origin. Drawn are gradient descent on cross-entropy stopped after several
step counts :math:`T`, the predicted cross-entropy limit (the augmented-point SVM,
:func:`lowrank.theory.cross_entropy_limit`; for the two points also the sympy closed
form, :func:`lowrank.theory.line_pair_margins`), differential training
(:func:`lowrank.train.fit_linear` with ``loss="differential"``), and the optimal
free-bias SVM (:func:`lowrank.theory.max_margin_separator`).

**Protocol.** Full-batch gradient descent in float64 from zero weights
(:func:`lowrank.train.fit_linear`); the step size is half the stability bound at the
starting point. Cross-entropy is run once per budget :math:`T` in ``budgets``;
differential training for ``diff_steps`` steps, its bias set by the midpoint rule. The
exact separators are solved by Clarabel and polished on the active set.

**What to look for.** The cross-entropy boundaries rotate, as :math:`T` grows, toward
the predicted tilted limit and away from the optimal boundary, which is perpendicular to
the data's line; the differential boundary lies on the optimal one.

The results were computed by ``python studies/boundary_2d.py --out figures``.
"""

# %%
# The committed results and the study's plotting function
# --------------------------------------------------------
# The results are read from ``figures/boundary_2d.json``; the study script is loaded
# by path, without running it, for its ``plot`` function.
import tempfile
from pathlib import Path

import lowrank
from lowrank.analysis import geometric_margin
from lowrank.cli import load_script
from lowrank.io import load_json
from lowrank.theory import line_pair_margins

ROOT = Path(lowrank.__file__).resolve().parents[1]  # the clone (pip install -e .)
results = load_json(ROOT / "figures" / "boundary_2d.json")
study = load_script(ROOT / "studies" / "boundary_2d.py")
print(f"mode {results['mode']}, seed {results['seed']}, budgets T = {results['budgets']}, "
      f"differential steps {results['diff_steps']}")

# %%
# The figure
# ----------
# ``plot`` writes the PNG and PDF (here into a temporary folder) and returns their paths.
figure_files = study.plot(results, Path(tempfile.mkdtemp()))

# %%
# Key numbers
# -----------
# Per data set, the optimal margin and the predicted cross-entropy limit, then the
# margin of every cross-entropy run, one per budget :math:`T`, which approaches the
# predicted limit, not the optimal margin, and that of differential training. Each margin
# is recomputed here from the committed weights with
# :func:`lowrank.analysis.geometric_margin`; a run whose weights still misclassify a point
# (cross-entropy after 10 steps) has no margin and is reported as not separated.
for data in results["datasets"]:
    print(f"{data['key']}: optimal {data['predicted']['optimal_margin']:.4f}, "
          f"predicted cross-entropy limit {data['predicted']['ce_limit_margin']:.4f}")
    for run in data["gd"] + [data["differential"]]:
        name = "differential" if run is data["differential"] else "cross-entropy"
        again = geometric_margin(run["w"], run["b"], data["X"], data["y"])
        if run["margin"] is None:  # a point on the wrong side: no margin (signed value shown)
            print(f"  {name:13s} T = {run['T']:>9,}: not separated (signed margin {again:.4f})")
        else:
            print(f"  {name:13s} T = {run['T']:>9,}: margin {run['margin']:.4f} "
                  f"(recomputed {again:.4f})")

# %%
# For the two points the predicted limit also has a closed form (sympy):
pair = next(d for d in results["datasets"] if d["key"] == "paper_pair")
cfg = pair["config"]
closed = line_pair_margins().values(cfg["a"], cfg["g"], cfg["c"])
print(f"closed form: optimal {closed['optimal_margin']:.4f}, cross-entropy limit "
      f"{closed['cross_entropy_margin']:.4f} (committed: {pair['closed_form']['cross_entropy_margin']:.4f})")

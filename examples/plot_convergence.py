r"""
Convergence in direction
========================

How gradient descent approaches its predicted limit: the angle between the weights
:math:`w(t)` and the predicted weights, and the margin of :math:`w(t)`, over log-spaced
steps, for cross-entropy (predicted: the augmented-point SVM,
:func:`lowrank.theory.cross_entropy_limit`) and differential training (predicted: the
optimal SVM, :func:`lowrank.theory.max_margin_separator`), from zero and from random
initial weights. Two data sets: the paper's two points and points in a low-dimensional
affine subspace of a higher-dimensional space.

**Protocol.** Full-batch gradient descent in float64 (:func:`lowrank.train.fit_linear`,
``init="zeros"`` or ``"random"``) up to ``settings.steps`` steps, recorded at about
``settings.record`` log-spaced steps. From a random start, the part of :math:`w(0)`
orthogonal to the span the updates live in (the data for cross-entropy, the class
differences for differential training) never moves; the study measures that part at the
start (``frozen_norm_init``) and how much it changed (``frozen_change``). Dotted curves
(``schedule = normalized``): normalized gradient descent from zero weights
(``fit_linear(..., schedule="normalized")``, gradient descent on :math:`\log L`, step
``settings.ngd_lr``) for ``settings.ngd_steps`` steps: the same limits, reached far
sooner.

**What to look for.** Both losses converge to their predicted directions, slowly (the
angle decays roughly like :math:`1/\log t`); cross-entropy's margin approaches the
*smaller* predicted margin, differential training's the optimal one.

The results were computed by ``python studies/convergence.py --out figures``.
"""

# %%
# The committed results and the study's plotting function
# --------------------------------------------------------
# The results are read from ``figures/convergence.json``; the study script is loaded by
# path, without running it, for its ``plot`` and ``report`` functions.
import tempfile
from pathlib import Path

import lowrank
from lowrank.analysis import geometric_margin
from lowrank.cli import load_script
from lowrank.data import line_pair
from lowrank.io import load_json

ROOT = Path(lowrank.__file__).resolve().parents[1]  # the clone (pip install -e .)
results = load_json(ROOT / "figures" / "convergence.json")
study = load_script(ROOT / "studies" / "convergence.py")
for key, value in results["settings"].items():
    print(f"{key}: {value}")

# %%
# The figure
# ----------
# ``plot`` writes the PNG and PDF (here into a temporary folder) and returns their paths.
figure_files = study.plot(results, Path(tempfile.mkdtemp()))

# %%
# Key numbers
# -----------
# One line per run: the margin after the last step against the predicted one, the final
# angle to the predicted direction, and how far the frozen part of the initial weights
# moved (zero up to rounding).
for line in study.report(results):
    print(line)

# %%
# The final margins of the runs on the paper's two points, recomputed from the committed
# final weights on the same data (:func:`lowrank.data.line_pair`; runs measured against
# the prediction, not the repeated ones measured against their frozen part):
for run in results["runs"]:
    if run["kind"] == "line_pair" and run["reference"] == "prediction":
        pair = line_pair(a=run["a"], g=run["g"], c=run["c"])
        again = geometric_margin(run["final_w"], run["final_b"], pair.X, pair.y)
        print(f"{run['loss']:13s} init {run['init']:6s} {run.get('schedule', 'constant'):10s} "
              f"margin {run['final_margin']:.5f} (recomputed {again:.5f})")

r"""
Margin against the distance from the origin
===========================================

The margin ratio (cross-entropy limit or gradient descent, divided by the optimal margin)
as the data's affine subspace moves away from the origin, in two sweeps:

- *translation* (``sweep = translation``): the whole data set is translated away from the
  origin (the class midpoint's position along the subspace equals the subspace's
  distance, ``center = offset``). The optimal separator only translates with the data;
  the cross-entropy limit's ratio falls, toward :math:`1/\sqrt2` for two points
  (:eq:`eq-line-ratio` with :math:`a + g = c`).
- *height at a fixed centre* (``sweep = height``): the midpoint stays at a fixed position
  along the subspace (``fixed_center``) and only the subspace's distance from the origin
  changes. The ratio dips, with its minimum at distance 1 for two points, and returns to
  1 as the distance goes to 0 or to infinity.

Each sweep is run for two points on a line (``kind = line_pair``: sympy closed form
:func:`lowrank.theory.line_pair_margins`, exact solver, gradient descent, differential
training) and for many points in affine subspaces of several dimensions ``rank``
(``kind = subspace``, :func:`lowrank.data.affine_subspace_data`).

**Protocol.** Exact separators by :func:`lowrank.theory.max_margin_separator` and
:func:`lowrank.theory.cross_entropy_limit`; full-batch gradient descent from zero
weights (:func:`lowrank.train.fit_linear`) recorded after each budget in
``settings.ce_steps`` (cross-entropy) and ``settings.diff_steps`` (differential, bias by
the midpoint rule). Plain gradient descent approaches its limit direction only like
:math:`1/\log t`, so for ``rank`` :math:`\geq 2` the differential ratios stay visibly
below 1 at these budgets. The hollow markers are *normalized* gradient descent (gradient
descent on :math:`\log L`, ``fit_linear(..., schedule="normalized")``, step
``settings.ngd_lr``, budgets ``settings.ngd_steps``): the same limits, reached in
thousands of steps, which shows the limits themselves rather than the pace of plain
gradient descent.

The results were computed by ``python studies/margin_vs_offset.py --out figures``.
"""

# %%
# The committed results and the study's plotting function
# --------------------------------------------------------
# The results are read from ``figures/margin_vs_offset.json``; the study script is loaded
# by path, without running it, for its ``plot`` and ``report`` functions.
import tempfile
from pathlib import Path

import lowrank
from lowrank.cli import load_script
from lowrank.io import load_json
from lowrank.theory import line_pair_margins

ROOT = Path(lowrank.__file__).resolve().parents[1]  # the clone (pip install -e .)
results = load_json(ROOT / "figures" / "margin_vs_offset.json")
study = load_script(ROOT / "studies" / "margin_vs_offset.py")
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
# One line per configuration: the predicted ratio of the cross-entropy limit (exact
# solver), the two-point closed form at the same offset and centre, and the ratios
# measured after the longest plain and normalized gradient-descent runs.
for line in study.report(results):
    print(line)

# %%
# For two points the predicted ratio has a closed form: the points :math:`(a, c) \to -1`
# and :math:`(a + 2g, c) \to +1`. The sympy formula agrees with the exact solver's ratio
# committed in the JSON.
ratio = line_pair_margins()
print("sweep        offset  solver   closed form")
for rec in results["records"]:
    if rec["kind"] == "line_pair":
        closed = ratio.values(rec["a"], rec["g"], rec["c"])["ratio"]
        print(f"{rec['sweep']:11s} {rec['c']:7.3g}  {rec['ratio_predicted']:.4f}   {closed:.4f}")

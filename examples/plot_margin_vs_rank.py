r"""
Margin against the rank of the data
===================================

The margin ratio and the tilt of the weights (the share of :math:`w` orthogonal to the
data's subspace, :func:`lowrank.analysis.subspace_split`) as the data's affine subspace
grows in dimension (``sweep = rank``: dimension ``rank`` up to one less than the ambient
dimension, no noise), and as Gaussian noise orthogonal to a fixed subspace makes the data
full rank (``sweep = noise``, standard deviation ``noise``). The subspace sits at a fixed
distance ``offset`` from the origin, the class midpoint at ``center`` along it; the
two-point formula :eq:`eq-line-ratio` at that offset and centre is drawn for reference.

**Protocol.** Data from :func:`lowrank.data.affine_subspace_data`; exact separators by
:func:`lowrank.theory.max_margin_separator` and
:func:`lowrank.theory.cross_entropy_limit`; gradient descent from zero weights
(:func:`lowrank.train.fit_linear`) after each budget in ``settings.ce_steps`` and
``settings.diff_steps``, and normalized gradient descent (gradient descent on
:math:`\log L`, ``fit_linear(..., schedule="normalized")``, hollow markers) after each
budget in ``settings.ngd_steps``, which reaches the same limits far sooner. The tilts are
the orthogonal share of the weights of the predicted limit, of cross-entropy gradient
descent, of differential gradient descent and of their normalized runs
(``SubspaceSplit.orthogonal_fraction``, measured against the noise-free subspace).

**What to look for.** Low rank is what lets cross-entropy tilt: its ratio is smallest
for rank 1 and approaches 1 as the rank or the off-subspace noise grows.

The results were computed by ``python studies/margin_vs_rank.py --out figures``.
"""

# %%
# The committed results and the study's plotting function
# --------------------------------------------------------
# The results are read from ``figures/margin_vs_rank.json``; the study script is loaded
# by path, without running it, for its ``plot`` and ``report`` functions.
import tempfile
from pathlib import Path

import lowrank
from lowrank.cli import load_script
from lowrank.io import load_json
from lowrank.theory import line_pair_margins

ROOT = Path(lowrank.__file__).resolve().parents[1]  # the clone (pip install -e .)
results = load_json(ROOT / "figures" / "margin_vs_rank.json")
study = load_script(ROOT / "studies" / "margin_vs_rank.py")
print(f"offset {results['offset']}, centre {results['center']}")
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
# solver), the ratios after the longest plain and normalized gradient-descent runs, and
# the tilt of the predicted limit.
for line in study.report(results):
    print(line)

# %%
# The reference line: two points :math:`(a, c) \to -1` and :math:`(a + 2g, c) \to +1`
# with :math:`g = 1`, their midpoint :math:`a + g` at the same centre and :math:`c` at
# the same offset (sympy closed form).
g = 1.0
closed = line_pair_margins().values(results["center"] - g, g, results["offset"])["ratio"]
print(f"two-point closed-form ratio {closed:.4f} "
      f"(committed: {results['two_point_closed_form_ratio']:.4f})")

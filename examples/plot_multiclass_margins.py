r"""
Multi-class margins against the offset of the subspace
======================================================

:math:`C` classes (3, 5 and 10) at the vertices of a regular polygon in a
:math:`k`-dimensional affine subspace of :math:`\mathbb{R}^{50}`, translated away from the
origin. Gradient descent on softmax cross-entropy with biases converges in direction to
the Crammer–Singer hard-margin SVM of the augmented points :math:`(x, 1)`
(:func:`lowrank.theory.multiclass_cross_entropy_limit`), whose multi-class margin
collapses as the data move away from the origin, while the optimal separator with free
biases (:func:`lowrank.theory.multiclass_max_margin`) does not move; one-vs-rest
differential training (:func:`lowrank.losses.multiclass_differential_loss`) is
translation invariant and converges to per-class free-bias SVMs
(:func:`lowrank.theory.one_vs_rest_limit`).

**Protocol.** Data from :func:`lowrank.data.multiclass_subspace_data`; certified exact
predictions; plain gradient descent (filled markers, budgets ``settings.ce_steps`` and
``settings.diff_steps``) and normalized gradient descent (hollow markers,
``settings.ngd_steps``) from zero with :func:`lowrank.train.fit_multiclass`; margins are
multi-class geometric margins (:func:`lowrank.analysis.multiclass_margin`) divided by the
optimal margin. A run that does not separate the training data has no margin: it is a
cross on the axis.

The results were computed by ``python studies/multiclass_margins.py --out figures``.
"""

# %%
# The committed results and the study's plotting function
# --------------------------------------------------------
import tempfile
from pathlib import Path

import lowrank
from lowrank.cli import load_script
from lowrank.io import load_json

ROOT = Path(lowrank.__file__).resolve().parents[1]  # the clone (pip install -e .)
results = load_json(ROOT / "figures" / "multiclass_margins.json")
study = load_script(ROOT / "studies" / "multiclass_margins.py")
for key, value in results["settings"].items():
    print(f"{key}: {value}")

# %%
# The figure
# ----------
figure_files = study.plot(results, Path(tempfile.mkdtemp()))

# %%
# Key numbers
# -----------
# One line per configuration: the predicted ratios (cross-entropy limit and one-vs-rest
# differential limit, to the optimal margin) and the measured ratios after the longest
# plain and normalized runs, with the cosines of the normalized runs to their limits.
for line in study.report(results):
    print(line)

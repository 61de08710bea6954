r"""
Ten classes: predictions and robustness on real features
========================================================

Does the mechanism carry over to ten classes? Softmax cross-entropy with offsets converges
in direction to the Crammer–Singer hard-margin separator of the augmented points
(:func:`lowrank.theory.multiclass_cross_entropy_limit`); one-vs-rest differential training
(:func:`lowrank.losses.multiclass_differential_loss`) converges to the per-class free-bias
separators (:func:`lowrank.theory.one_vs_rest_limit`). This study trains one
ten-class CNN on Fashion-MNIST with each loss, compares each network's last layer with the
exact predictions on its own training features, retrains both kinds of head on the
cross-entropy network's features, and measures input-space minimum-norm perturbations
through the multi-class decision (:func:`lowrank.attacks.min_norm_attack`). Intervals: 95%
bootstrap over seeds and images; the library code is :mod:`lowrank.images.multiclass`.

The results were computed by ``python studies/image_multiclass.py --data-dir
/usr/share/datasets/fashion-mnist --out figures``.
"""

# %%
# The committed results and the study's plotting function
# --------------------------------------------------------
import tempfile
from pathlib import Path

import lowrank
from lowrank.cli import load_script
from lowrank.images.multiclass import report_lines
from lowrank.io import load_json

ROOT = Path(lowrank.__file__).resolve().parents[1]  # the clone (pip install -e .)
study = load_script(ROOT / "studies" / "image_multiclass.py")
results = load_json(ROOT / "figures" / "image_multiclass_fashion_mnist_all.json")
print(f"{len(results['seeds'])} seeds; {results['protocol']['n_classes']} classes; "
      f"mode {results['protocol']['mode']}")

# %%
# The figure
# ----------
figure_files = study.plot(results, Path(tempfile.mkdtemp()))

# %%
# Key numbers
# -----------
# Clean accuracy, the predicted and measured feature-space margin ratios, the retrained
# heads against their predictions, and the paired input-space comparison of the two losses.
for line in report_lines(results):
    print(line)

r"""
Real features meet the theory
=============================

The paper's mechanism lives in the last layer: a linear head on penultimate features.
Arm A trains a CNN with cross-entropy and, on its training features, compares the exact
predictions (:func:`lowrank.theory.max_margin_separator`,
:func:`lowrank.theory.cross_entropy_limit`) with heads retrained on the frozen features
with each loss, then puts each head back on the backbone and measures input-space
minimum-norm perturbations (:func:`lowrank.attacks.min_norm_attack`). Arm B shifts the
features (``phi + c u``, u the optimal unit normal or the unit feature mean) so that the
predicted ratio falls, and repeats the measurements per c: the cross-entropy head is
retrained at every c; the differential head, whose pair loss cannot see the shift, is arm
A's (a short retraining at the largest c measures the invariance: weights equal to 1e-12).
Arm C trains the network end to end with each loss. Bands and intervals: 95% bootstrap over seeds and images
(:mod:`lowrank.analysis.bootstrap`); the library code is :mod:`lowrank.images.real_features`
and :mod:`lowrank.images.heads`.

The results were computed by ``python studies/real_features.py --dataset fashion_mnist
--classes Sneaker Sandal --data-dir /usr/share/datasets/fashion-mnist --out figures``
(and ``--classes Shirt T-shirt/top``, ``--classes Pullover Coat``).
"""

# %%
# The committed results and the study's plotting function
# --------------------------------------------------------
import tempfile
from pathlib import Path

import lowrank
from lowrank.cli import load_script
from lowrank.images.real_features import report_lines
from lowrank.io import load_json

ROOT = Path(lowrank.__file__).resolve().parents[1]  # the clone (pip install -e .)
study = load_script(ROOT / "studies" / "real_features.py")
RUNS = ("real_features_fashion_mnist_sneaker_vs_sandal.json",
        "real_features_fashion_mnist_shirt_vs_t-shirt-top.json",
        "real_features_fashion_mnist_pullover_vs_coat.json")
runs = {name: load_json(ROOT / "figures" / name) for name in RUNS}
for name, results in runs.items():
    print(f"{name}: {len(results['seeds'])} seeds; mode {results['protocol']['mode']}")

# %%
# The figures
# -----------
figure_files = [path for results in runs.values()
                for path in study.plot(results, Path(tempfile.mkdtemp()))]

# %%
# Key numbers
# -----------
# Per arm: the predicted and measured feature-space margins, the input-space comparison of
# the two heads (paired, with 95% intervals) and the verdict on the paper's claim.
for name, results in runs.items():
    print(name)
    for line in report_lines(results):
        print(line)

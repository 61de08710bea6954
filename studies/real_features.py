"""Real features meet the theory: the mechanism measured on trained networks, over seeds.

Arm A trains a backbone with cross-entropy and, on its training features (the points it
classifies correctly), compares the exact predictions (optimal margin, cross-entropy
limit) with heads retrained from one initialisation with each loss, then puts each head
back on the backbone and measures input-space minimum-norm perturbations. Arm B shifts the
features (``phi + c u``, u the optimal unit normal or the unit mean) until the predicted
ratio falls to 0.5 and repeats the measurements per c. Arm C trains the network end to end
with each loss. Intervals: 95% bootstrap over seeds and images. Writes
``<out>/real_features_<dataset>_<pair>.json`` (``protocol``, ``seeds``, ``summary``),
``.csv`` and the figure; every piece is cached in ``<out>/<name>_cache.json`` (resumable per
seed and per c). The pieces live in :mod:`lowrank.images`.

Examples
--------
python studies/real_features.py --dataset fashion_mnist --classes Shirt T-shirt/top \
    --data-dir /usr/share/datasets/fashion-mnist --out figures
python studies/real_features.py --classes Sneaker Sandal --data-dir ~/data --quick
"""

from __future__ import annotations

from lowrank.cli import run_cli, run_study
from lowrank.images.real_features import compute_study, curve_rows, report_lines, study_name
from lowrank.images.real_features_plots import plot_real_features
from lowrank.images.tasks import add_image_arguments, pair_slug


def options(parser) -> None:
    """The image-study options plus ``--seeds``."""
    add_image_arguments(parser)
    parser.add_argument("--seeds", type=int, default=None,
                        help="number of seeds (--seed, --seed + 1, ...); default: the mode's")


def plot(results: dict, out) -> list:
    """The study's figure, named like its JSON."""
    proto = results["protocol"]
    name = f"real_features_{proto['dataset']}_{pair_slug(proto['classes'])}"
    return plot_real_features(results, out, name + ("" if proto["mode"] == "full"
                                                    else f"_{proto['mode']}"))


def main(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` and run (or, with ``--replot``, redraw) the study."""
    return run_study(study_name, __doc__.splitlines()[0], compute_study, plot, curve_rows,
                     report_lines, argv=argv, options=options, folder="real_features")


if __name__ == "__main__":
    run_cli(main)

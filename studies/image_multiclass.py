"""Ten classes: softmax cross-entropy against one-vs-rest differential training, predictions and robustness.

Trains one C-class network with each loss from one initialisation (all ten Fashion-MNIST or
CIFAR-10 classes by default), compares the multi-class margin of each network's last layer
with the exact predictions on its own training features (optimal Crammer–Singer margin,
cross-entropy limit, one-vs-rest differential limit), retrains both kinds of head on the
cross-entropy network's features, and measures input-space minimum-norm perturbations (L2,
L-infinity; train and test) of both networks and both heads. Intervals: 95% bootstrap over
seeds and images. Writes ``<out>/image_multiclass_<dataset>_<classes>.json`` (``protocol``,
``seeds``, ``summary``), ``.csv`` and the figure; every piece is cached in
``<out>/<name>_cache.json`` (a rerun resumes). The pieces live in :mod:`lowrank.images.multiclass`.

Examples
--------
python studies/image_multiclass.py --data-dir /usr/share/datasets/fashion-mnist --out figures
python studies/image_multiclass.py --data-dir ~/data --classes Shirt T-shirt/top Pullover --quick
"""

from __future__ import annotations

from lowrank.cli import run_cli, run_study
from lowrank.images.multiclass import compute_study, curve_rows, report_lines, study_name
from lowrank.images.multiclass_plots import plot_image_multiclass
from lowrank.images.tasks import add_image_arguments


def options(parser) -> None:
    """The image-study options (``--classes`` takes two or more classes) plus ``--seeds``."""
    add_image_arguments(parser, pair=False)
    parser.add_argument("--seeds", type=int, default=None,
                        help="number of seeds (--seed, --seed + 1, ...); default: the mode's")


def plot(results: dict, out) -> list:
    """The study's figure, named like its JSON."""
    proto = results["protocol"]
    return plot_image_multiclass(results, out, proto.get("name") or "image_multiclass")


def main(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` and run (or, with ``--replot``, redraw) the study."""
    return run_study(study_name, __doc__.splitlines()[0], compute_study, plot, curve_rows,
                     report_lines, argv=argv, options=options, folder="image_multiclass")


if __name__ == "__main__":
    run_cli(main)

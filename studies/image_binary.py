"""Cross-entropy vs differential training of a deep model on a binary image task.

Trains the same network, from the same initialisation and seed, once with cross-entropy
and once with the differential (all positive/negative pairs) loss, then measures clean
accuracy, the effective rank of the penultimate features per epoch, each image's smallest
adversarial perturbation found (L2 and L-infinity, train and test subsamples) and the share
of images with an adversarial example within eps, with a fixed-eps PGD cross-check.
Writes ``<out>/<name>.json`` (protocol first), ``.csv`` and two figures; finished attacks
are kept in ``<out>/<name>_cache.json`` and training checkpoints under
``<out>/.runs/<name>/`` so that a rerun skips finished work. ``--replot`` redraws the
figures from ``<out>/<name>.json`` (the same options name the same run).
The pieces live in :mod:`lowrank.images`.

Examples
--------
python studies/image_binary.py --dataset fashion_mnist --classes Shirt T-shirt/top \
    --data-dir /usr/share/datasets/fashion-mnist --out figures
python studies/image_binary.py --dataset cifar10 --classes cat dog --data-dir ~/data --quick
"""

from __future__ import annotations

from lowrank.cli import run_cli, run_study
from lowrank.images.binary import compute_study, curve_rows, plot_study, report_lines, study_name
from lowrank.images.tasks import add_image_arguments


def main(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` and run (or, with ``--replot``, redraw) the study."""
    return run_study(study_name, __doc__.splitlines()[0], compute_study, plot_study, curve_rows,
                     report_lines, argv=argv, options=add_image_arguments, folder="image_binary")


if __name__ == "__main__":
    run_cli(main)

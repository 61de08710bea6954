"""CIFAR-10 binary task: cross-entropy vs differential training (see image_binary.py).

The image study with ``--dataset cifar10`` first; every other option is passed through,
e.g. ``python studies/cifar_binary.py --data-dir ~/data --classes cat dog``
(``--device auto|cpu|cuda``, default auto: CUDA when available).
"""

from __future__ import annotations

import sys

from lowrank.cli import run_cli, run_study
from lowrank.images.binary import compute_study, curve_rows, plot_study, report_lines, study_name
from lowrank.images.tasks import add_image_arguments


def main(argv: list[str] | None = None) -> dict:
    """Run the image study on CIFAR-10 (``--dataset cifar10`` prepended to ``argv``)."""
    argv = ["--dataset", "cifar10", *(sys.argv[1:] if argv is None else argv)]
    return run_study(study_name, __doc__.splitlines()[0], compute_study, plot_study, curve_rows,
                     report_lines, argv=argv, options=add_image_arguments, folder="image_binary")


if __name__ == "__main__":
    run_cli(main)

"""CIFAR-10 binary task: cross-entropy vs differential training (see image_binary.py).

Runs :mod:`image_binary` with ``--dataset cifar10``; every other option is passed
through, e.g. ``python studies/cifar_binary.py --data-dir ~/data --classes cat dog``
(``--device auto|cpu|cuda``, default auto: CUDA when available).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from image_binary import main as _main  # noqa: E402

from lowrank.cli import run_cli  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    """Run the image study on CIFAR-10 (``--dataset cifar10`` prepended to ``argv``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return _main(["--dataset", "cifar10", *argv])


if __name__ == "__main__":
    run_cli(main)

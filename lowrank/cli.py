"""Command-line arguments shared by every script in ``studies/``.

Every study takes ``--seed``, ``--out`` (directory for the figure and its
JSON/CSV), ``--quick`` (minutes on 2 CPU cores) and ``--quiet`` (no progress
bars). Studies on real images also take ``--data-dir`` (default: the
``LOWRANK_DATA`` environment variable).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["study_parser", "data_dir_from"]

DEFAULT_FIGURES = Path(__file__).resolve().parent.parent / "figures"


def study_parser(description: str, data: bool = False) -> argparse.ArgumentParser:
    """Return an :class:`argparse.ArgumentParser` with the common study options.

    Parameters
    ----------
    description : str
        What the study shows (printed by ``--help``).
    data : bool, default False
        Add ``--data-dir`` for studies that read a dataset from disk.

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> args = study_parser("demo").parse_args(["--quick", "--seed", "3"])
    >>> args.quick, args.seed, args.quiet
    (True, 3, False)
    """
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", type=Path, default=DEFAULT_FIGURES,
                   help="directory for the figure (PNG, PDF) and its results (JSON, CSV)")
    p.add_argument("--quick", action="store_true", help="small budgets: minutes on 2 CPU cores")
    p.add_argument("--quiet", action="store_true", help="hide progress bars")
    if data:
        p.add_argument("--data-dir", type=Path, default=None,
                       help="dataset directory (default: $LOWRANK_DATA)")
    return p


def data_dir_from(arg: os.PathLike | str | None) -> Path:
    """Resolve the dataset directory from ``--data-dir`` or ``$LOWRANK_DATA``.

    Parameters
    ----------
    arg : path-like or None
        The value of ``--data-dir``; takes precedence over the environment.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        If neither is given.

    Examples
    --------
    >>> data_dir_from("/data/cifar").as_posix()
    '/data/cifar'
    """
    if arg is not None:
        return Path(arg)
    env = os.environ.get("LOWRANK_DATA")
    if env:
        return Path(env)
    raise ValueError("no dataset directory: pass --data-dir PATH or set the LOWRANK_DATA "
                     "environment variable")

"""Command-line arguments shared by every script in ``studies/``.

Every study takes ``--seed``, ``--out`` (directory for the figure and its
JSON/CSV; default ``runs/<study>`` under the current directory, so the committed
``figures/`` change only when ``--out figures`` is given), ``--quick`` (minutes on
2 CPU cores) and ``--quiet`` (no progress bars). Studies on real images also take
``--data-dir`` (default: the ``LOWRANK_DATA`` environment variable).

:func:`run_cli` is the entry point of every study script: a bad argument or a missing
data set is reported as one line and exit status 2, as argparse does, not as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["study_parser", "data_dir_from", "default_out", "run_cli", "USER_ERRORS"]

#: Exceptions that mean "the input is wrong" (bad argument, missing or corrupt data file);
#: :func:`run_cli` prints their message and exits with status 2 instead of a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


def default_out(name: str) -> Path:
    """The default output directory of study ``name``: ``runs/<name>`` (relative to the cwd).

    Parameters
    ----------
    name : str
        The study's name (its script's stem).

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> default_out("boundary_2d").as_posix()
    'runs/boundary_2d'
    """
    return Path("runs") / name


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show ``(default: X)`` only for options with a meaningful default (not None/False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if (action.default is None or action.default is False or action.default == argparse.SUPPRESS
                or "default:" in (action.help or "")):
            return action.help or ""
        return super()._get_help_string(action)


def study_parser(description: str, data: bool = False, name: str | None = None) -> argparse.ArgumentParser:
    """Return an :class:`argparse.ArgumentParser` with the common study options.

    Parameters
    ----------
    description : str
        What the study shows (printed by ``--help``).
    data : bool, default False
        Add ``--data-dir`` for studies that read a dataset from disk.
    name : str, optional
        The study's name: ``--out`` defaults to :func:`default_out` of it (``runs/<name>``);
        without a name, to ``runs/``.

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> args = study_parser("demo").parse_args(["--quick", "--seed", "3"])
    >>> args.quick, args.seed, args.quiet
    (True, 3, False)
    """
    p = argparse.ArgumentParser(description=description, formatter_class=_DefaultsFormatter)
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", type=Path, default=default_out(name) if name else Path("runs"),
                   help="directory for the figure (PNG, PDF) and its results (JSON, CSV); "
                        "the committed figures are regenerated only with --out figures")
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


def run_cli(main: Callable[..., Any], argv: list[str] | None = None) -> int:
    """Run a study's ``main(argv)`` as a command: user errors become one line and exit 2.

    A :data:`USER_ERRORS` exception (a wrong class name, a missing data directory, a bad
    option value) is printed as ``<prog>: error: <message>`` on stderr, the way argparse
    reports a bad option, and the process exits with status 2; set ``LOWRANK_TRACEBACK=1``
    to see the traceback instead. Any other exception propagates (a bug, not an input
    error). ``KeyboardInterrupt`` exits with status 130.

    Parameters
    ----------
    main : callable
        The study's ``main``; called as ``main(argv)``.
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 when ``main`` returns; otherwise the process exits.

    Examples
    --------
    >>> def main(argv):
    ...     raise ValueError("--classes: unknown class 'Shirts'")
    >>> try:
    ...     run_cli(main, [])
    ... except SystemExit as e:
    ...     print("exit", e.code)
    exit 2
    """
    prog = Path(sys.argv[0]).name or "study"
    try:
        main(argv)
    except USER_ERRORS as err:
        if os.environ.get("LOWRANK_TRACEBACK"):
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    return 0

"""The command line of the scripts in ``studies/``: arguments, the shared ``main``, exit codes.

Every study takes ``--seed``, ``--out`` (directory for the figure and its
JSON/CSV; default ``runs/<study>`` under the current directory, so the committed
``figures/`` change only when ``--out figures`` is given), ``--quick`` (minutes on
2 CPU cores) and ``--quiet`` (no progress bars). Studies on real images also take
``--data-dir`` (default: the ``LOWRANK_DATA`` environment variable).

:func:`study_arguments` adds ``--tiny`` (the tests' seconds-long mode), ``--jobs`` and
``--replot`` for the synthetic studies, and :func:`run_study` is their shared ``main``:
compute (or reload with ``--replot``), save the JSON and CSV, draw, report.
:func:`run_cli` is the entry point of every study script: a bad argument or a missing
data set is reported as one line and exit status 2, as argparse does, not as a traceback.
:func:`load_script` imports a study script by path (for ``run_all``, the tests and the
gallery), without running it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from .io import load_json, save_csv, save_json

__all__ = ["study_parser", "study_arguments", "study_mode", "run_study", "data_dir_from",
           "default_out", "run_cli", "load_script", "USER_ERRORS"]

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
    error). ``KeyboardInterrupt`` exits with status 130. Figures are drawn with matplotlib's
    Agg backend unless ``MPLBACKEND`` names another
    (:func:`lowrank.plotting.use_file_backend`).

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
    from .plotting import use_file_backend  # here, not at import: matplotlib is heavy

    use_file_backend()
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


def study_arguments(description: str, name: str | None = None) -> argparse.ArgumentParser:
    """The common study options plus ``--tiny`` (tests), ``--jobs`` and ``--replot``.

    Parameters
    ----------
    description : str
        What the study shows.
    name : str, optional
        The study's name; ``--out`` defaults to ``runs/<name>``.

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> args = study_arguments("demo").parse_args(["--tiny", "--jobs", "3"])
    >>> args.tiny, args.jobs, args.replot, args.quick
    (True, 3, False, False)
    """
    p = study_parser(description, name=name)
    p.add_argument("--tiny", action="store_true",
                   help="seconds-long smoke run (used by the tests)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes for independent configurations")
    p.add_argument("--replot", action="store_true",
                   help="redraw the figure from the saved JSON without training")
    return p


def study_mode(args: argparse.Namespace) -> str:
    """The budget mode of parsed study arguments: ``"tiny"``, ``"quick"`` or ``"full"``.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed :func:`study_arguments` (``--tiny`` wins over ``--quick``).

    Returns
    -------
    str

    Examples
    --------
    >>> study_mode(study_arguments("demo").parse_args(["--quick"]))
    'quick'
    """
    return "tiny" if args.tiny else "quick" if args.quick else "full"


def run_study(name: str | Callable[[argparse.Namespace], str], description: str,
              compute: Callable[[argparse.Namespace], dict],
              plot: Callable[[dict, Path], object],
              csv_rows: Callable[[dict], list[dict]],
              report: Callable[[dict], Iterable[str]] | None = None,
              argv: Sequence[str] | None = None,
              options: Callable[[argparse.ArgumentParser], object] | None = None,
              folder: str | None = None) -> dict:
    """The shared ``main`` of every study: compute (or reload), save, draw, report.

    Parses :func:`study_arguments`; unless ``--replot`` is given, runs ``compute(args)``,
    stores its wall time under ``"seconds"`` and saves ``<out>/<name>.json`` and
    ``<out>/<name>.csv`` atomically; with ``--replot`` it reloads the JSON instead. Then it
    draws the figure with ``plot(results, out)`` and, unless ``--quiet``, prints the lines
    of ``report(results)``.

    Parameters
    ----------
    name : str or callable
        File stem of the study's outputs, or ``name(args)`` for a stem that depends on the
        parsed arguments (e.g. the dataset and classes of an image study).
    description : str
        Shown by ``--help``.
    compute : callable
        ``compute(args) -> dict`` of results (measured and predicted side by side).
    plot : callable
        ``plot(results, out_dir)``: draws and saves the figure.
    csv_rows : callable
        ``csv_rows(results) -> list of flat dicts`` for the CSV table.
    report : callable, optional
        ``report(results) -> lines`` printed at the end.
    argv : sequence of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).
    options : callable, optional
        ``options(parser)`` adds the study's own arguments to :func:`study_arguments`.
    folder : str, optional
        ``--out`` defaults to ``runs/<folder>``; default: ``name`` when it is a string.

    Returns
    -------
    dict
        The results.

    Raises
    ------
    FileNotFoundError
        With ``--replot`` when ``<out>/<name>.json`` does not exist.

    Examples
    --------
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> res = run_study("demo", "demo", lambda a: {"seed": a.seed}, lambda r, o: None,
    ...                 lambda r: [r], argv=["--out", out, "--seed", "4", "--quiet"])
    >>> res["seed"], sorted(p.name for p in Path(out).iterdir())
    (4, ['demo.csv', 'demo.json'])
    """
    parser = study_arguments(description, name=folder or (name if isinstance(name, str) else None))
    if options is not None:
        options(parser)
    args = parser.parse_args(argv)
    name = name if isinstance(name, str) else name(args)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.replot:
        saved = out_dir / f"{name}.json"
        if not saved.is_file():
            raise FileNotFoundError(f"--replot needs the saved results {saved}; run the study "
                                    f"without --replot first (same --out)")
        res = load_json(saved)
    else:
        t0 = time.perf_counter()
        res = compute(args)
        res["seconds"] = time.perf_counter() - t0
        save_json(out_dir / f"{name}.json", res)
        save_csv(out_dir / f"{name}.csv", csv_rows(res))
    plot(res, out_dir)
    if not args.quiet and report is not None:
        for line in report(res):
            print(f"[{name}] {line}")
    return res


def load_script(path: str | os.PathLike) -> ModuleType:
    """Import a study script (or another script) by path as a module, without running its command line.

    The module is named ``<folder>_<stem>`` (``studies_convergence`` for
    ``studies/convergence.py``); its ``main``, ``plot``, ``report`` (and
    whatever else it defines) are then attributes. Used by ``studies/run_all.py``, the
    tests and the gallery examples.

    Parameters
    ----------
    path : path-like
        The script, e.g. ``studies/convergence.py``.

    Returns
    -------
    types.ModuleType

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "studies"
    >>> folder.mkdir()
    >>> script = folder / "demo.py"
    >>> _ = script.write_text("NAME = 'demo'; RAN = __name__ == '__main__'")
    >>> mod = load_script(script)
    >>> mod.__name__, mod.NAME, mod.RAN
    ('studies_demo', 'demo', False)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no study script at {path}")
    spec = importlib.util.spec_from_file_location(f"{path.parent.name}_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

"""Resumable, parallel sweeps: run a worker on many configurations, skipping finished ones.

:func:`config_key` names a configuration, :class:`ResultCache` keeps finished results in a
JSON file written atomically, and :func:`run_configs` runs a module-level worker on every
configuration not yet in the cache (in worker processes with ``jobs > 1``). Nothing here
knows what a configuration means: the margin studies pass
:func:`lowrank.margin_study.margin_config` or :func:`lowrank.margin_study.training_run`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from .io import load_json, save_json
from .progress import progress

__all__ = ["config_key", "ResultCache", "run_configs"]


def config_key(cfg: Mapping[str, Any]) -> str:
    """A stable string key of a configuration (sorted JSON).

    Parameters
    ----------
    cfg : mapping
        JSON-serialisable configuration (other values are converted with ``str``).

    Returns
    -------
    str
        The same string for equal configurations, whatever their key order.

    Examples
    --------
    >>> config_key({"b": 1, "a": [2, 3]})
    '{"a": [2, 3], "b": 1}'
    """
    return json.dumps(cfg, sort_keys=True, default=str)


class ResultCache:
    """Finished configurations of a sweep, kept in a JSON file written atomically.

    Parameters
    ----------
    path : str or Path, optional
        The cache file; ``None`` keeps results in memory only. An unreadable file is
        treated as empty.

    Attributes
    ----------
    piece_seconds : float
        Compute seconds of the results used through
        :func:`lowrank.images.robustness.cached` since this object was made, whether
        computed now or read back: what a resumed study's results cost to compute.

    Examples
    --------
    >>> cache = ResultCache(None)
    >>> cache.put({"a": 1}, 0.5)
    >>> {"a": 1} in cache, {"a": 2} in cache
    (True, False)
    >>> cache.get({"a": 1})
    0.5
    """

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path is not None else None
        self.results: dict[str, Any] = {}
        self.piece_seconds = 0.0
        if self.path is not None and self.path.exists():
            try:
                self.results = dict(load_json(self.path))
            except (ValueError, OSError):
                self.results = {}

    def __contains__(self, cfg: Mapping[str, Any]) -> bool:
        return config_key(cfg) in self.results

    def get(self, cfg: Mapping[str, Any]) -> Any:
        """The stored result of ``cfg`` (KeyError if absent)."""
        return self.results[config_key(cfg)]

    def put(self, cfg: Mapping[str, Any], result: Any) -> None:
        """Store ``result`` for ``cfg`` and rewrite the file."""
        self.results[config_key(cfg)] = result
        if self.path is not None:
            save_json(self.path, self.results)


def run_configs(configs: Iterable[Mapping[str, Any]],
                worker: Callable[[Mapping[str, Any]], Any],
                cache: ResultCache | None = None, jobs: int = 1, desc: str = "configs",
                quiet: bool = False) -> list[Any]:
    """Run ``worker`` on every configuration not already in ``cache``; results in input order.

    Parameters
    ----------
    configs : iterable of mapping
    worker : callable
        A module-level function (it is sent to worker processes when ``jobs > 1``).
    cache : ResultCache, optional
        Finished results are skipped on a rerun and saved as soon as they complete.
    jobs : int, default 1
        Worker processes (spawned, one BLAS thread each).
    desc : str
        Progress-bar label.
    quiet : bool
        Hide the progress bar.

    Returns
    -------
    list
        One result per configuration.

    Examples
    --------
    >>> cache = ResultCache(None)
    >>> run_configs([{"x": 2}, {"x": 1}], worker=config_key, cache=cache, quiet=True)
    ['{"x": 2}', '{"x": 1}']
    >>> len(cache.results)  # a rerun with this cache would skip both
    2
    """
    configs = [dict(c) for c in configs]
    cache = cache if cache is not None else ResultCache(None)
    todo = [i for i, c in enumerate(configs) if c not in cache]
    if len(todo) < len(configs) and not quiet:
        where = f" from {cache.path}" if cache.path is not None else ""
        print(f"[{desc}] {len(configs) - len(todo)} of {len(configs)} configurations loaded "
              f"from cache{where}", flush=True)
    bar = progress(range(len(todo)), desc=desc, total=len(todo), quiet=quiet or not todo)
    ticks = iter(bar)
    if jobs > 1 and len(todo) > 1:
        saved = {k: os.environ.get(k) for k in _THREAD_VARS}
        os.environ.update({k: "1" for k in _THREAD_VARS})
        try:
            with ProcessPoolExecutor(max_workers=min(jobs, len(todo)),
                                     mp_context=get_context("spawn")) as pool:
                futures = {pool.submit(worker, configs[i]): i for i in todo}
                for fut in as_completed(futures):
                    cache.put(configs[futures[fut]], fut.result())
                    next(ticks, None)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    else:
        for i in todo:
            cache.put(configs[i], worker(configs[i]))
            next(ticks, None)
    if hasattr(bar, "close"):
        bar.close()
    return [cache.get(c) for c in configs]


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

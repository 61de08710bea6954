"""Tables and report lines of the margin studies' records.

:func:`flatten_record` turns a record (lists aligned with the step budgets) into one CSV
row, :func:`record_rows` does it for a study's results, :func:`format_measurement` writes
a margin or ratio for a report line (``"not separated"`` where there is none) and
:func:`finite` prepares values for plotting.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["flatten_record", "record_rows", "format_measurement", "ratio_summary", "finite"]


def flatten_record(rec: Mapping[str, Any]) -> dict[str, Any]:
    """One CSV row from a record: list entries become one column per budget.

    A record is what :func:`~lowrank.margin_study.binary.margin_config` (or another worker
    of the margin studies) returns.

    Parameters
    ----------
    rec : mapping
        A record; a list under ``"<prefix>_<name>"`` is split along ``"<prefix>_steps"``
        (or numbered 0, 1, ... when that key is absent). The ``*_steps`` keys are dropped.
        A mapping (e.g. per-loss steps ``ngd_lr``) becomes one column per key.

    Returns
    -------
    dict
        Scalar values under their own key, list entries under ``"<key>_T<step>"``, mapping
        entries under ``"<key>_<subkey>"``. ``None`` (a margin of a run that does not
        separate the data) stays ``None``: an empty CSV cell beside its ``separated``
        column ``False``.

    Examples
    --------
    >>> flatten_record({"ce_steps": [10, 100], "ce_margin": [None, 0.2],
    ...                 "ce_separated": [False, True]})
    {'ce_margin_T10': None, 'ce_margin_T100': 0.2, 'ce_separated_T10': False, 'ce_separated_T100': True}
    >>> flatten_record({"ngd_lr": {"cross_entropy": 0.1, "differential": 1.0}})
    {'ngd_lr_cross_entropy': 0.1, 'ngd_lr_differential': 1.0}
    """
    row: dict[str, Any] = {}
    for key, val in rec.items():
        if key.endswith("_steps"):
            continue
        if isinstance(val, Mapping):
            row.update({f"{key}_{k}": v for k, v in val.items()})
        elif isinstance(val, list):
            prefix = key.split("_", 1)[0]
            steps = rec.get(f"{prefix}_steps", list(range(len(val))))
            for t, v in zip(steps, val, strict=False):
                row[f"{key}_T{t}"] = v
        else:
            row[key] = val
    return row


def record_rows(res: Mapping[str, Any]) -> list[dict]:
    """CSV rows of a sweep's results: one flattened row per record (:func:`flatten_record`).

    Parameters
    ----------
    res : mapping
        Results holding a ``"records"`` list.

    Returns
    -------
    list of dict

    Examples
    --------
    >>> record_rows({"records": [{"k": 1, "ce_steps": [10], "ce_ratio": [0.5]}]})
    [{'k': 1, 'ce_ratio_T10': 0.5}]
    """
    return [flatten_record(r) for r in res["records"]]


def format_measurement(value: float | None, spec: str = ".4f") -> str:
    """A margin or ratio for a report line; ``"not separated"`` for ``None``.

    Parameters
    ----------
    value : float or None
        The measurement (``None``: the run does not separate the training data).
    spec : str, default ".4f"
        Format specification of a number.

    Returns
    -------
    str

    Examples
    --------
    >>> format_measurement(0.44721), format_measurement(None), format_measurement(float("nan"))
    ('0.4472', 'not separated', 'nan')
    """
    return "not separated" if value is None else format(float(value), spec)


def ratio_summary(rec: Mapping[str, Any]) -> str:
    """The measured ratios of a record after each run's largest budget, for a report line.

    Parameters
    ----------
    rec : mapping
        A record of :func:`~lowrank.margin_study.binary.margin_records` (missing runs
        print ``nan``).

    Returns
    -------
    str

    Examples
    --------
    >>> ratio_summary({"ce_ratio": [0.2, 0.31], "diff_ratio": [1.0], "ngd_ce_ratio": [None]})
    'GD 0.3100 differential 1.0000 | normalized GD not separated differential nan'
    """
    last = {run: (rec.get(f"{run}_ratio") or [float("nan")])[-1]
            for run in ("ce", "diff", "ngd_ce", "ngd_diff")}
    return (f"GD {format_measurement(last['ce'])} differential {format_measurement(last['diff'])} "
            f"| normalized GD {format_measurement(last['ngd_ce'])} "
            f"differential {format_measurement(last['ngd_diff'])}")


def finite(values: Iterable[float]) -> list[float]:
    """Replace non-finite entries by NaN (for plotting).

    Parameters
    ----------
    values : iterable of float or None
        Numbers; ``None``, ``inf`` and ``nan`` entries are allowed.

    Returns
    -------
    list of float
        The values as floats, with ``nan`` for every ``None`` or non-finite entry.

    Examples
    --------
    >>> finite([1, None, float("inf"), 2.5])
    [1.0, nan, nan, 2.5]
    """
    return [float(v) if v is not None and math.isfinite(float(v)) else float("nan")
            for v in values]

"""Shared logic of the synthetic studies in ``studies/``: measured vs predicted margins.

Each study is a short composition of the calls below:

* :func:`default_lr` picks a stable gradient-descent step size from the data;
* :func:`predicted_margins` solves for the optimal (free-bias) SVM and the cross-entropy
  limit (augmented-point SVM) exactly;
* :func:`measure` trains by gradient descent and records the margin after several budgets;
* :func:`margin_config` does all of it for one configuration (a picklable worker);
* :func:`margin_records` runs a sweep of them, with normalized gradient descent beside
  plain gradient descent;
* :class:`ResultCache` and :func:`run_configs` make long sweeps resumable and parallel;
* :func:`study_arguments` adds ``--tiny``, ``--jobs``, ``--replot`` to the common CLI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._validation import check_matrix, check_real, signed_labels
from .analysis.margins import subspace_split
from .cli import study_parser
from .data.synthetic import LowRankData, affine_subspace_data, line_pair
from .io import load_json, save_csv, save_json
from .progress import progress
from .theory.closed_form import line_pair_margins
from .theory.svm import cross_entropy_limit, max_margin_separator
from .train.linear import NORMALIZED_LR, fit_linear, log_spaced_steps

__all__ = [
    "default_lr",
    "predicted_margins",
    "measure",
    "make_data",
    "line_pair_ratio",
    "margin_config",
    "margin_records",
    "config_key",
    "ResultCache",
    "run_configs",
    "study_arguments",
    "run_study",
    "study_mode",
    "sweep_records",
    "record_rows",
    "flatten_record",
    "span_complement",
    "training_run",
    "finite",
    "NORMALIZED_LR",
    "step_size",
    "separated_margins",
    "mark_separation",
    "format_measurement",
    "RUN_PREFIXES",
]

#: Step size as a fraction of the stability bound at the initial point (zeros):
#: cross-entropy / logistic pair loss have Hessian ``G / 4`` there, so ``lr < 8 / lambda_max(G)``;
#: we take half of it. The exponential pair loss has Hessian ``G``: ``lr < 2 / lambda_max(G)``.
LR_FACTOR = {"cross_entropy": 4.0, "logistic": 4.0, "exponential": 1.0}



def step_size(lr: float | Mapping[str, float] | None, loss: str, schedule: str = "normalized",
              X=None, y=None, pair_loss: str = "logistic") -> float:
    """The step of one run: ``lr`` itself, ``lr[loss]`` for a per-loss mapping, or the default.

    Parameters
    ----------
    lr : float, mapping of loss to float, or None
        A step for every loss, one per loss (e.g. :data:`NORMALIZED_LR`), or None for the
        default: :data:`NORMALIZED_LR` for ``schedule="normalized"``, :func:`default_lr`
        of ``(X, y)`` for ``schedule="constant"``.
    loss : {"cross_entropy", "differential"}
    schedule : {"constant", "normalized"}
    X, y : array-like, optional
        The data (needed for the default constant step only).
    pair_loss : {"logistic", "exponential"}

    Returns
    -------
    float

    Raises
    ------
    KeyError
        If a mapping has no entry for ``loss``.

    Examples
    --------
    >>> step_size(None, "cross_entropy"), step_size(None, "differential")
    (0.1, 1.0)
    >>> step_size({"cross_entropy": 0.2, "differential": 0.5}, "differential"), step_size(0.3, "x")
    (0.5, 0.3)
    """
    if lr is None:
        if schedule == "constant":
            return default_lr(X, y, loss, pair_loss)
        lr = NORMALIZED_LR
    if isinstance(lr, Mapping):
        if loss not in lr:
            raise KeyError(f"lr has no step for loss {loss!r}: {dict(lr)}")
        return float(lr[loss])
    return float(lr)


def separated_margins(margins: Iterable[float]) -> tuple[list[float | None], list[bool]]:
    """Margins of the runs that separate the training data, ``None`` for the others.

    A weight vector whose signed geometric margin is not positive (some training point on
    the wrong side or on the boundary, or ``w = 0``) has no margin: reporting its negative
    number as a margin would be wrong, so it becomes ``None`` (JSON ``null``) and its flag
    ``False``.

    Parameters
    ----------
    margins : iterable of float
        Signed geometric margins (NaN allowed).

    Returns
    -------
    (list of float or None, list of bool)
        The margins with ``None`` where not separated, and the ``separated`` flags.

    Examples
    --------
    >>> separated_margins([-0.5, 0.0, 0.25, float("nan")])
    ([None, None, 0.25, None], [False, False, True, False])
    """
    margins = list(margins)
    flags = [bool(m is not None and m > 0) for m in margins]
    return [float(m) if ok else None for m, ok in zip(margins, flags, strict=True)], flags


def _numpy_xy(X, y) -> tuple[np.ndarray, np.ndarray]:
    Xn = check_matrix(X, "X", dtype=torch.float64, detach=True).cpu().numpy()
    yn = signed_labels(y, "y", dtype=torch.float64).cpu().numpy()
    yn = np.where(yn > 0, 1.0, -1.0)
    return Xn, yn


def default_lr(X, y, loss: str = "cross_entropy", pair_loss: str = "logistic") -> float:
    """A stable step size for mean-reduced full-batch gradient descent, read off the data.

    Cross-entropy: ``4 / lambda_max(Z^T Z / n)`` with ``Z = [X, 1]`` the augmented points
    (the Hessian at zero is ``Z^T Z / (4 n)``; ``4/lambda`` is half the stability bound).
    Differential training: the same with the second moment of the pair differences,
    ``G = mean_{i+, j-} (x_i - x_j)(x_i - x_j)^T`` (factor 1 instead of 4 for the
    exponential pair loss). Later in training the Hessian only shrinks.

    Parameters
    ----------
    X : array-like, shape (n, d)
    y : array-like, shape (n,)
        Labels in {-1, +1} (or {0, 1}).
    loss : {"cross_entropy", "differential"}
    pair_loss : {"logistic", "exponential"}
        Pair loss of differential training.

    Returns
    -------
    float
        ``LR_FACTOR[...] / lambda_max`` of the second-moment matrix.

    Raises
    ------
    ValueError
        If ``loss`` is neither ``"cross_entropy"`` nor ``"differential"``.

    Examples
    --------
    >>> round(default_lr([[3.0, 1.0], [5.0, 1.0]], [-1, 1]), 4)
    0.2117
    """
    Xn, yn = _numpy_xy(X, y)
    if loss == "cross_entropy":
        Z = np.hstack([Xn, np.ones((Xn.shape[0], 1))])
        G = Z.T @ Z / Z.shape[0]
        factor = LR_FACTOR["cross_entropy"]
    elif loss == "differential":
        P, Q = Xn[yn > 0], Xn[yn < 0]
        mp, mq = P.mean(axis=0), Q.mean(axis=0)
        G = P.T @ P / len(P) + Q.T @ Q / len(Q) - np.outer(mp, mq) - np.outer(mq, mp)
        factor = LR_FACTOR[pair_loss]
    else:
        raise ValueError(f"loss must be 'cross_entropy' or 'differential', got {loss!r}")
    lam = float(np.linalg.eigvalsh(G).max())
    return factor / lam


def predicted_margins(X, y, basis=None) -> dict[str, Any]:
    """Exact margins of the optimal SVM and of the cross-entropy limit.

    Parameters
    ----------
    X : array-like, shape (n, d)
    y : array-like, shape (n,)
    basis : array-like, shape (d, k), optional
        Directions of the data's subspace; adds ``ce_limit_tilt``, the fraction of the
        limit's weight vector orthogonal to it.

    Returns
    -------
    dict
        ``separable``, ``optimal_margin``, ``ce_limit_margin``, ``ratio_predicted``,
        ``optimal_w``/``optimal_b``, ``ce_limit_w``/``ce_limit_b``, support sizes and duality
        gaps. Margins are NaN when the data are not separable.

    Examples
    --------
    The paper's two points (3, 1) -> -1 and (5, 1) -> +1: optimal margin 1, cross-entropy
    limit ``1 / sqrt(5)``.

    >>> pred = predicted_margins([[3.0, 1.0], [5.0, 1.0]], [-1, 1])
    >>> pred["separable"], round(pred["optimal_margin"], 4), round(pred["ce_limit_margin"], 4)
    (True, 1.0, 0.4472)
    >>> predicted_margins([[0.0], [0.0]], [-1, 1])["separable"]
    False
    """
    try:
        opt = max_margin_separator(X, y)
        ce = cross_entropy_limit(X, y)
    except ValueError:
        nan = float("nan")
        return {"separable": False, "optimal_margin": nan, "ce_limit_margin": nan,
                "ratio_predicted": nan}
    out = {"separable": True, "optimal_margin": opt.margin, "ce_limit_margin": ce.margin,
           "ratio_predicted": ce.margin / opt.margin,
           "optimal_w": opt.w.tolist(), "optimal_b": opt.b,
           "ce_limit_w": ce.w.tolist(), "ce_limit_b": ce.b,
           "optimal_support": int(opt.support.numel()), "ce_limit_support": int(ce.support.numel()),
           "optimal_duality_gap": opt.duality_gap, "ce_limit_duality_gap": ce.duality_gap}
    if basis is not None:
        out["ce_limit_tilt"] = subspace_split(ce.w, basis).orthogonal_fraction
        out["optimal_tilt"] = subspace_split(opt.w, basis).orthogonal_fraction
    return out


def measure(X, y, loss: str, budgets: Sequence[int], lr: float | None = None,
            init: str = "zeros", seed: int | None = None, reference=None,
            pair_loss: str = "logistic", record: int | Sequence[int] | None = None,
            schedule: str = "constant", quiet: bool = True) -> dict[str, Any]:
    """Train by gradient descent once and read the margin after each budget ``T``.

    Parameters
    ----------
    X, y : array-like
        Data.
    loss : {"cross_entropy", "differential"}
    budgets : sequence of int
        Step counts ``T`` at which to read the margin (the run lasts ``max(budgets)``).
    lr : float or mapping of loss to float, optional
        Step size (or one per loss); default :func:`default_lr` for
        ``schedule="constant"`` and ``NORMALIZED_LR[loss]`` for ``schedule="normalized"``
        (see :func:`step_size`).
    init : {"zeros", "random"}
    seed : int, optional
        Seed of a random initialisation.
    reference : array-like, shape (d,), optional
        Direction to which the cosine is recorded.
    pair_loss : {"logistic", "exponential"}
    record : int or sequence of int, optional
        Extra steps to record (e.g. log-spaced); the budgets are always recorded.
    schedule : {"constant", "normalized"}, default "constant"
        Plain gradient descent (the dynamics of the theory, slow in direction) or normalized
        gradient descent (gradient descent on ``log L``: the same limit, reached much
        sooner); see :func:`lowrank.train.fit_linear`.
    quiet : bool, default True
        Hide the progress bar of the run.

    Returns
    -------
    dict
        ``loss``, ``lr``, ``init``, ``pair_loss``, ``schedule``, ``budgets``, ``margin`` (at
        each budget; ``None`` where the weights do not separate the training data, see
        :func:`separated_margins`), ``separated`` (flags aligned with ``budgets``),
        ``history`` (the full recorded history, with signed margins and ``separated``
        flags), ``w``, ``b`` (final), ``seconds``.

    Examples
    --------
    On the paper's two points, differential training reaches the optimal margin 1 at once,
    while cross-entropy creeps towards its limit ``1 / sqrt(5) = 0.4472``:

    >>> X, y = [[3.0, 1.0], [5.0, 1.0]], [-1, 1]
    >>> [round(m, 4) for m in measure(X, y, "differential", [10, 100])["margin"]]
    [1.0, 1.0]
    >>> res = measure(X, y, "cross_entropy", [10, 1000])
    >>> res["budgets"], res["separated"], round(res["margin"][1], 4)
    ([10, 1000], [False, True], 0.4194)

    After 10 steps that run still misclassifies a point (signed margin -0.7492 in its
    history): it has no margin there, so ``res["margin"][0]`` is ``None``.

    Normalized gradient descent (step 0.1 for cross-entropy, see :data:`NORMALIZED_LR`)
    gets closer in 1000 steps:

    >>> res = measure(X, y, "cross_entropy", [1000], schedule="normalized")
    >>> round(res["margin"][0], 4), res["lr"], res["separated"]
    (0.4396, 0.1, [True])
    """
    budgets = sorted({int(t) for t in budgets})
    lr = step_size(lr, loss, schedule, X, y, pair_loss)
    steps = budgets[-1]
    rec: set[int] = set(budgets)
    if isinstance(record, int):
        rec.update(log_spaced_steps(steps, record))
    elif record is not None:
        rec.update(int(s) for s in record)
    t0 = time.perf_counter()
    fit = fit_linear(X, y, loss=loss, steps=steps, lr=lr, init=init, seed=seed,
                     record=sorted(rec), reference=reference, pair_loss=pair_loss,
                     schedule=schedule, quiet=quiet)
    seconds = time.perf_counter() - t0
    hist = fit.history
    at = {s: i for i, s in enumerate(hist["step"])}
    margins, separated = separated_margins(hist["margin"][at[t]] for t in budgets)
    return {"loss": loss, "lr": float(lr), "init": init, "seed": seed, "pair_loss": pair_loss,
            "schedule": schedule, "budgets": budgets, "margin": margins, "separated": separated,
            "history": hist, "w": fit.w.tolist(), "b": fit.b, "seconds": seconds}


def make_data(cfg: Mapping[str, Any]) -> LowRankData:
    """Build the data set of one configuration.

    Parameters
    ----------
    cfg : mapping
        ``kind="line_pair"`` with ``a, g, c``; or ``kind="subspace"`` with the arguments of
        :func:`lowrank.data.synthetic.affine_subspace_data` (``n_per_class, dim, rank, offset,
        gap`` and optionally ``noise, seed, center, spread``).

    Returns
    -------
    LowRankData

    Raises
    ------
    ValueError
        For an unknown ``kind`` (or invalid data parameters).
    KeyError
        If a required parameter of the chosen ``kind`` is missing.

    Examples
    --------
    >>> make_data({"kind": "line_pair", "a": 3.0, "g": 1.0, "c": 1.0}).X.tolist()
    [[3.0, 1.0], [5.0, 1.0]]
    >>> cfg = {"kind": "subspace", "n_per_class": 5, "dim": 4, "rank": 2, "offset": 1.0,
    ...        "gap": 0.5, "seed": 0}
    >>> make_data(cfg).X.shape
    torch.Size([10, 4])
    """
    if cfg["kind"] == "line_pair":
        return line_pair(cfg["a"], cfg["g"], cfg["c"])
    if cfg["kind"] == "subspace":
        keys = ("noise", "seed", "center", "spread")
        return affine_subspace_data(cfg["n_per_class"], cfg["dim"], cfg["rank"], cfg["offset"],
                                    cfg["gap"], **{k: cfg[k] for k in keys if k in cfg})
    raise ValueError(f"unknown data kind {cfg['kind']!r}")


def line_pair_ratio(center: float, offset: float) -> float:
    """Closed-form ratio (cross-entropy limit / optimal margin) of two points on a line.

    For ``(a, c) -> -1`` and ``(a + 2g, c) -> +1`` the ratio depends only on the midpoint
    ``m = a + g`` (here ``center``) and the height ``c`` (here ``offset``):
    ``(c^2 + 1) / sqrt(c^2 m^2 + (c^2 + 1)^2)`` (evaluated from the sympy expression).

    Parameters
    ----------
    center : float
        Midpoint ``m = a + g`` of the two points along the line.
    offset : float
        Height ``c`` of the line (its distance from the origin).

    Returns
    -------
    float
        Cross-entropy limit margin divided by the optimal margin, in (0, 1].

    Examples
    --------
    >>> round(line_pair_ratio(4.0, 1.0) ** -2, 12)
    5.0
    """
    return line_pair_margins().values(center - 1.0, 1.0, offset)["ratio"]


def margin_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Measured and predicted margins of one configuration (a picklable worker).

    Parameters
    ----------
    cfg : mapping
        Data parameters (see :func:`make_data`) plus ``ce_steps`` (budgets of gradient
        descent on cross-entropy), ``diff_steps`` (budgets of differential training) and
        optionally ``pair_loss``, ``ngd_steps`` (budgets of *normalized* gradient descent,
        run for both losses; default none) and ``ngd_lr`` (its step size: one float, or
        one per loss; default :data:`NORMALIZED_LR`, 0.1 for cross-entropy and 1 for
        differential training).

    Returns
    -------
    dict
        The configuration, then the predictions of :func:`predicted_margins`, the closed-form
        two-point ratio at the same centre and offset (``closed_form_ratio``; exact for
        ``kind="line_pair"``, a reference curve otherwise), and for each loss its ``lr``,
        margins and ratios (``ce_margin``, ``ce_ratio``, ``diff_margin``, ``diff_ratio``,
        aligned with the budgets), the flags ``ce_separated`` / ``diff_separated`` (a
        budget after which the weights do not separate the training data has
        ``separated`` false and margin and ratio ``None``: it is no margin measurement) and
        the tilt of the final weights out of the subspace.
        With ``ngd_steps``, the same for normalized gradient descent under the prefix
        ``ngd_`` (``ngd_ce_margin``, ``ngd_ce_ratio``, ``ngd_diff_margin``,
        ``ngd_diff_ratio``, ... aligned with ``ngd_steps``).

    Examples
    --------
    >>> cfg = {"kind": "line_pair", "a": 3.0, "g": 1.0, "c": 1.0,
    ...        "ce_steps": [100], "diff_steps": [100]}
    >>> out = margin_config(cfg)
    >>> round(out["ratio_predicted"], 4), round(out["closed_form_ratio"], 4)
    (0.4472, 0.4472)
    >>> [round(r, 4) for r in out["ce_ratio"]], [round(r, 4) for r in out["diff_ratio"]]
    ([0.3188], [1.0])
    >>> margin_config({**cfg, "ce_steps": [10, 100]})["ce_separated"]
    [False, True]
    >>> ngd = margin_config({**cfg, "ce_steps": [], "diff_steps": [], "ngd_steps": [1000]})
    >>> round(ngd["ngd_ce_ratio"][0], 4), round(ngd["ngd_diff_ratio"][0], 4), "ce_ratio" in ngd
    (0.4396, 1.0, False)
    >>> ngd["ngd_ce_lr"], ngd["ngd_diff_lr"]
    (0.1, 1.0)
    """
    t0 = time.perf_counter()
    data = make_data(cfg)
    out: dict[str, Any] = dict(cfg)
    pred = predicted_margins(data.X, data.y, data.basis)
    out.update({k: v for k, v in pred.items() if not k.endswith(("_w", "_b"))})
    center = data.center if cfg["kind"] == "subspace" else cfg["a"] + cfg["g"]
    out["closed_form_ratio"] = line_pair_ratio(center, data.offset)
    if cfg["kind"] == "line_pair":
        cf = line_pair_margins().values(cfg["a"], cfg["g"], cfg["c"])
        out["closed_form_optimal_margin"] = cf["optimal_margin"]
        out["closed_form_ce_margin"] = cf["cross_entropy_margin"]
    if pred["separable"]:
        pair_loss = cfg.get("pair_loss", "logistic")
        runs = [(loss, key, cfg[f"{key}_steps"], "constant", None, key)
                for loss, key in (("cross_entropy", "ce"), ("differential", "diff"))]
        runs += [(loss, key, cfg.get("ngd_steps") or [], "normalized",
                  cfg.get("ngd_lr", NORMALIZED_LR), f"ngd_{key}")
                 for loss, key in (("cross_entropy", "ce"), ("differential", "diff"))]
        for loss, key, budgets, schedule, lr, name in runs:
            if not budgets:
                continue
            ref = pred["ce_limit_w"] if key == "ce" else pred["optimal_w"]
            res = measure(data.X, data.y, loss, budgets, lr=lr, pair_loss=pair_loss,
                          reference=ref, schedule=schedule)
            out[f"{name}_lr"] = res["lr"]
            out[f"{name}_margin"] = res["margin"]
            out[f"{name}_separated"] = res["separated"]
            out[f"{name}_ratio"] = [None if m is None else m / pred["optimal_margin"]
                                    for m in res["margin"]]
            hist = res["history"]
            at = {s: i for i, s in enumerate(hist["step"])}
            out[f"{name}_cosine"] = [hist["cosine"][at[t]] for t in res["budgets"]]
            out[f"{name}_tilt"] = subspace_split(res["w"], data.basis).orthogonal_fraction
            out[f"{name}_seconds"] = res["seconds"]
        out["pair_loss"] = pair_loss
    out["seconds"] = time.perf_counter() - t0
    return out


def margin_records(configs: Iterable[Mapping[str, Any]], ngd_steps: Sequence[int] = (),
                   ngd_lr: float | Mapping[str, float] = NORMALIZED_LR,
                   cache: ResultCache | None = None,
                   jobs: int = 1, desc: str = "configs", quiet: bool = False) -> list[dict]:
    """:func:`margin_config` over a sweep, with normalized gradient descent beside plain GD.

    Every configuration runs as given (plain gradient descent at its ``ce_steps`` /
    ``diff_steps``) and, when ``ngd_steps`` is given, once more as a *twin* with empty plain
    budgets and ``ngd_steps`` / ``ngd_lr`` added; the twin's ``ngd_*`` entries are merged into
    the record. Both go through one :func:`run_configs` call (one worker pool), and each has
    its own cache key: the plain results of an earlier sweep are reused from ``cache``, and
    changing ``ngd_steps`` or ``ngd_lr`` recomputes only the twins.

    Parameters
    ----------
    configs : iterable of mapping
        Configurations of :func:`margin_config` (without ``ngd_*`` keys).
    ngd_steps : sequence of int, optional
        Budgets of normalized gradient descent (both losses); empty: plain runs only.
    ngd_lr : float or mapping of loss to float, default :data:`NORMALIZED_LR`
        Its step size: one for both losses, or one per loss (``"cross_entropy"``,
        ``"differential"``).
    cache : ResultCache, optional
        Shared by the plain runs and the twins.
    jobs : int, default 1
        Worker processes.
    desc : str
        Progress-bar label.
    quiet : bool
        Hide the progress bar.

    Returns
    -------
    list of dict
        One record per configuration, in input order: the plain record plus ``ngd_steps``,
        ``ngd_lr`` and the ``ngd_ce_*`` / ``ngd_diff_*`` measurements (margins, ratios,
        ``separated`` flags and cosines aligned with ``ngd_steps``, tilts, seconds). A
        margin and its ratio are ``None`` where that run does not separate the data.

    Examples
    --------
    >>> cfg = {"kind": "line_pair", "a": 3.0, "g": 1.0, "c": 1.0,
    ...        "ce_steps": [100], "diff_steps": [100]}
    >>> cache = ResultCache(None)
    >>> [rec] = margin_records([cfg], ngd_steps=[1000], cache=cache, quiet=True)
    >>> round(rec["ce_ratio"][0], 4), rec["ngd_ce_ratio"][0] > rec["ce_ratio"][0], rec["ngd_steps"]
    (0.3188, True, [1000])
    >>> len(cache.results)  # the plain run and its normalized twin
    2
    """
    base = [dict(c) for c in configs]
    twins = []
    if ngd_steps:
        steps = sorted({int(t) for t in ngd_steps})
        twins = [{**c, "ce_steps": [], "diff_steps": [], "ngd_steps": steps,
                  "ngd_lr": _lr_config(ngd_lr)} for c in base]
    recs = run_configs(base + twins, margin_config, cache=cache, jobs=jobs, desc=desc,
                       quiet=quiet)
    out = [mark_separation(r) for r in recs[:len(base)]]
    for rec, twin in zip(out, recs[len(base):], strict=False):
        rec.update({k: v for k, v in mark_separation(twin).items() if k.startswith("ngd_")})
    return out


#: Prefixes of the runs of a :func:`margin_config` record.
RUN_PREFIXES = ("ce", "diff", "ngd_ce", "ngd_diff")


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


def mark_separation(rec: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a :func:`margin_config` record with every run's ``separated`` flags set.

    For each run (``ce``, ``diff``, ``ngd_ce``, ``ngd_diff``) with a ``<run>_margin`` list,
    a margin that is not positive (or missing) becomes ``None`` with its ``<run>_ratio``,
    and ``<run>_separated`` holds the flags (see :func:`separated_margins`). Records of the
    current :func:`margin_config` are returned unchanged; records of older versions (e.g.
    from a result cache, with negative margins) are brought up to date.

    Parameters
    ----------
    rec : mapping
        A record.

    Returns
    -------
    dict

    Examples
    --------
    >>> mark_separation({"ce_margin": [-0.7, 0.4], "ce_ratio": [-1.4, 0.8]})
    {'ce_margin': [None, 0.4], 'ce_ratio': [None, 0.8], 'ce_separated': [False, True]}
    """
    out = dict(rec)
    for run in RUN_PREFIXES:
        if not isinstance(out.get(f"{run}_margin"), list):
            continue
        margins, flags = separated_margins(out[f"{run}_margin"])
        if f"{run}_separated" in out:  # both must hold: a recorded flag and a positive margin
            flags = [bool(a and b) for a, b in zip(flags, out[f"{run}_separated"], strict=True)]
            margins = [m if ok else None for m, ok in zip(margins, flags, strict=True)]
        out[f"{run}_margin"] = margins
        if isinstance(out.get(f"{run}_ratio"), list):
            out[f"{run}_ratio"] = [r if ok else None for r, ok in zip(out[f"{run}_ratio"], flags,
                                                                      strict=True)]
        out[f"{run}_separated"] = flags
    return out


def _lr_config(lr: float | Mapping[str, float]) -> float | dict[str, float]:
    """A step size (or per-loss steps) as plain JSON values, checked finite and positive."""
    if isinstance(lr, Mapping):
        return {str(k): check_real(v, f"lr[{k!r}]", minimum=0.0, strict=True)
                for k, v in sorted(lr.items())}
    return check_real(lr, "ngd_lr", minimum=0.0, strict=True)


def flatten_record(rec: Mapping[str, Any]) -> dict[str, Any]:
    """One CSV row from a :func:`margin_config` record: list entries become one column per budget.

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
                worker: Callable[[Mapping[str, Any]], Any] = margin_config,
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


def sweep_records(name: str, args: argparse.Namespace, settings: Mapping[str, Any],
                  configs: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Run (or resume from ``<out>/<name>_cache.json``) a margin sweep with its normalized twins.

    Parameters
    ----------
    name : str
        The study's name (cache file stem and progress label).
    args : argparse.Namespace
        Parsed :func:`study_arguments` (``out``, ``jobs``, ``quiet``).
    settings : mapping
        Holds ``ngd_steps`` and ``ngd_lr``, passed to :func:`margin_records`.
    configs : iterable of mapping
        Configurations of :func:`margin_config`.

    Returns
    -------
    list of dict
        The records of :func:`margin_records`, in input order.

    Examples
    --------
    >>> import tempfile
    >>> args = study_arguments("demo").parse_args(["--out", tempfile.mkdtemp(), "--quiet"])
    >>> cfg = {"kind": "line_pair", "a": 3.0, "g": 1.0, "c": 1.0,
    ...        "ce_steps": [100], "diff_steps": [100]}
    >>> [rec] = sweep_records("demo", args, {"ngd_steps": [], "ngd_lr": 1.0}, [cfg])
    >>> round(rec["ce_ratio"][0], 4), (args.out / "demo_cache.json").is_file()
    (0.3188, True)
    """
    cache = ResultCache(Path(args.out) / f"{name}_cache.json")
    return margin_records(configs, ngd_steps=settings["ngd_steps"], ngd_lr=settings["ngd_lr"],
                          cache=cache, jobs=args.jobs, desc=name, quiet=args.quiet)


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


def run_study(name: str | Callable[[argparse.Namespace], str], description: str,
              compute: Callable[[argparse.Namespace], dict],
              plot: Callable[[dict, Path], object],
              csv_rows: Callable[[dict], list[dict]],
              report: Callable[[dict], Iterable[str]] | None = None,
              argv: Sequence[str] | None = None,
              options: Callable[[argparse.ArgumentParser], object] | None = None) -> dict:
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
    parser = study_arguments(description, name=name if isinstance(name, str) else None)
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


def span_complement(M: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Orthonormal basis (columns) of the orthogonal complement of the row space of ``M``.

    Parameters
    ----------
    M : numpy.ndarray, shape (m, d)
        Rows spanning a subspace of R^d.
    tol : float, default 1e-10
        Singular values below ``tol`` times the largest count as zero (rank cut-off).

    Returns
    -------
    numpy.ndarray, shape (d, d - rank(M))
        Orthonormal columns orthogonal to every row of ``M``.

    Examples
    --------
    >>> span_complement(np.array([[1.0, 0.0, 0.0]])).shape
    (3, 2)
    """
    _, s, vt = np.linalg.svd(M, full_matrices=True)
    r = int((s > tol * max(s.max(), 1e-300)).sum()) if s.size else 0
    return vt[r:].T


def training_run(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """One long gradient-descent run with its prediction, for convergence plots (a worker).

    Parameters
    ----------
    cfg : mapping
        Data parameters (see :func:`make_data`) plus ``loss``, ``steps``, ``init``,
        ``init_seed``, ``record`` (number of log-spaced records) and ``reference``:
        ``"prediction"`` (cosine to the predicted limit: the cross-entropy limit for
        cross-entropy, the optimal SVM for differential training) or ``"frozen"`` (cosine to
        the part of the initial weights orthogonal to the span the updates live in: the data
        for cross-entropy, the class differences for differential training). Optionally
        ``schedule`` (``"constant"``, the default, or ``"normalized"``) and ``lr`` (one
        float, or one per loss; default: :func:`default_lr`, or :data:`NORMALIZED_LR` for
        the normalized schedule).

    Returns
    -------
    dict
        The configuration, the predictions, the ``history`` (signed margins with their
        ``separated`` flags), ``final_margin`` (``None`` when the final weights do not
        separate the training data) and ``final_separated``, and, for random initialisations,
        ``frozen_norm_init`` / ``frozen_change`` (norm of that orthogonal part at step 0 and
        how much it moved by the last step) and ``frozen_component`` (``w(t) . r`` at every
        record when ``reference="frozen"``, with ``r`` its unit direction).

    Raises
    ------
    ValueError
        If ``reference="frozen"`` but the initial weights have no part orthogonal to the
        span (zero initialisation, or a span that fills the space).

    Examples
    --------
    >>> cfg = {"kind": "line_pair", "a": 3.0, "g": 1.0, "c": 1.0,
    ...        "loss": "cross_entropy", "steps": 200, "record": 5}
    >>> out = training_run(cfg)
    >>> round(out["final_margin"], 4), round(out["predicted_margin"], 4)
    (0.3773, 0.4472)
    >>> out["history"]["step"][-1], len(out["angle_deg"]) == len(out["history"]["step"])
    (200, True)
    >>> ngd = training_run({**cfg, "steps": 1000, "schedule": "normalized"})
    >>> round(ngd["final_margin"], 4), ngd["lr"], ngd["final_separated"]
    (0.4396, 0.1, True)
    >>> training_run({**cfg, "steps": 5})["final_margin"] is None  # still misclassifies a point
    True
    """
    t0 = time.perf_counter()
    data = make_data(cfg)
    pred = predicted_margins(data.X, data.y, data.basis)
    Xn, yn = _numpy_xy(data.X, data.y)
    loss = cfg["loss"]
    if loss == "cross_entropy":
        span_rows = Xn
        target_w, target_margin = pred["ce_limit_w"], pred["ce_limit_margin"]
    else:
        span_rows = Xn - Xn[yn < 0][0]
        target_w, target_margin = pred["optimal_w"], pred["optimal_margin"]
    comp = span_complement(span_rows)
    init, seed = cfg.get("init", "zeros"), cfg.get("init_seed")
    w0 = fit_linear(data.X, data.y, loss=loss, steps=0, init=init, seed=seed).w.numpy()
    frozen0 = comp @ (comp.T @ w0) if comp.size else np.zeros_like(w0)
    ref = target_w
    if cfg.get("reference", "prediction") == "frozen":
        if np.linalg.norm(frozen0) == 0:
            raise ValueError("reference='frozen' needs a random init and a non-trivial complement")
        ref = (frozen0 / np.linalg.norm(frozen0)).tolist()
    res = measure(data.X, data.y, loss, [cfg["steps"]], lr=cfg.get("lr"), init=init, seed=seed,
                  reference=ref, record=cfg.get("record", 60),
                  pair_loss=cfg.get("pair_loss", "logistic"),
                  schedule=cfg.get("schedule", "constant"))
    hist = res["history"]
    wT = np.asarray(res["w"])
    frozenT = comp @ (comp.T @ wT) if comp.size else np.zeros_like(wT)
    out: dict[str, Any] = dict(cfg)
    out.update({"lr": res["lr"], "predicted_margin": target_margin,
                "optimal_margin": pred["optimal_margin"],
                "ce_limit_margin": pred["ce_limit_margin"],
                "complement_dim": int(comp.shape[1]) if comp.size else 0,
                "frozen_norm_init": float(np.linalg.norm(frozen0)),
                "frozen_change": float(np.linalg.norm(frozenT - frozen0)),
                "final_margin": res["margin"][-1], "final_separated": res["separated"][-1],
                "final_w": wT.tolist(), "final_b": res["b"],
                "history": hist})
    cos = np.clip(np.asarray([np.nan if c is None else c for c in hist["cosine"]], float), -1, 1)
    if cfg.get("reference", "prediction") == "frozen":
        out["frozen_component"] = (cos * np.asarray(hist["w_norm"])).tolist()
    else:
        out["angle_deg"] = np.degrees(np.arccos(cos)).tolist()
    out["seconds"] = time.perf_counter() - t0
    return out

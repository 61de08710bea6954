"""Measured against predicted margins of binary linear classifiers, one configuration at a time.

* :func:`predicted_margins` solves for the optimal (free-bias) SVM and the cross-entropy
  limit (augmented-point SVM) exactly;
* :func:`measure` trains by gradient descent once and reads the margin after several
  budgets;
* :func:`margin_config` does both for one configuration (a picklable worker for
  :func:`lowrank.sweep.run_configs`), :func:`margin_records` for a sweep of them, with
  normalized gradient descent beside plain gradient descent, and :func:`sweep_records`
  for a study's command-line arguments (cache in the output folder);
* :func:`training_run` records one long run against its prediction (the convergence
  study).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_real
from ..analysis.margins import separated_margins, span_complement, subspace_split
from ..data.synthetic import LowRankData, affine_subspace_data, line_pair
from ..sweep import ResultCache, run_configs
from ..theory.closed_form import line_pair_margins, line_pair_ratio
from ..theory.svm import cross_entropy_limit, max_margin_separator
from ..train.linear import NORMALIZED_LR, fit_linear, log_spaced_steps
from ..train.step_sizes import numpy_xy, step_size

__all__ = ["predicted_margins", "measure", "make_data", "margin_config", "margin_records",
           "sweep_records", "sweep_settings", "mark_separation", "training_run", "RUN_PREFIXES"]


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
        Step size (or one per loss); default :func:`~lowrank.train.step_sizes.default_lr` for
        ``schedule="constant"`` and ``NORMALIZED_LR[loss]`` for ``schedule="normalized"``
        (see :func:`~lowrank.train.step_sizes.step_size`).
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
        :func:`~lowrank.analysis.margins.separated_margins`), ``separated`` (flags aligned with ``budgets``),
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

    Normalized gradient descent (step 0.1 for cross-entropy, see :data:`~lowrank.train.linear.NORMALIZED_LR`)
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


def margin_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Measured and predicted margins of one configuration (a picklable worker).

    Parameters
    ----------
    cfg : mapping
        Data parameters (see :func:`make_data`) plus ``ce_steps`` (budgets of gradient
        descent on cross-entropy), ``diff_steps`` (budgets of differential training) and
        optionally ``pair_loss``, ``ngd_steps`` (budgets of *normalized* gradient descent,
        run for both losses; default none) and ``ngd_lr`` (its step size: one float, or
        one per loss; default :data:`~lowrank.train.linear.NORMALIZED_LR`, 0.1 for cross-entropy and 1 for
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
    the record. Both go through one :func:`~lowrank.sweep.run_configs` call (one worker pool), and each has
    its own cache key: the plain results of an earlier sweep are reused from ``cache``, and
    changing ``ngd_steps`` or ``ngd_lr`` recomputes only the twins.

    Parameters
    ----------
    configs : iterable of mapping
        Configurations of :func:`margin_config` (without ``ngd_*`` keys).
    ngd_steps : sequence of int, optional
        Budgets of normalized gradient descent (both losses); empty: plain runs only.
    ngd_lr : float or mapping of loss to float, default :data:`~lowrank.train.linear.NORMALIZED_LR`
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


def mark_separation(rec: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a :func:`margin_config` record with every run's ``separated`` flags set.

    For each run (``ce``, ``diff``, ``ngd_ce``, ``ngd_diff``) with a ``<run>_margin`` list,
    a margin that is not positive (or missing) becomes ``None`` with its ``<run>_ratio``,
    and ``<run>_separated`` holds the flags (see
    :func:`~lowrank.analysis.margins.separated_margins`). Records of the current
    :func:`margin_config` are returned unchanged; records of older versions (e.g. from a
    result cache, with negative margins) are brought up to date.

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


#: Data sizes and step budgets of the margin sweeps in each mode of the studies' command line.
_SWEEP_MODES = {
    "tiny": {"dim": 10, "n_per_class": 8, "ce_steps": [10, 100, 1000], "diff_steps": [1000],
             "ngd_steps": [2000]},
    "quick": {"dim": 50, "n_per_class": 25, "ce_steps": [100, 1000, 10_000],
              "diff_steps": [1000, 10_000], "ngd_steps": [2000]},
    "full": {"dim": 100, "n_per_class": 50, "ce_steps": [100, 1000, 10_000, 100_000],
             "diff_steps": [1000, 10_000, 100_000], "ngd_steps": [1000, 10_000]},
}


def sweep_settings(mode: str) -> dict[str, Any]:
    """Data sizes and step budgets shared by the margin sweeps, for one budget mode.

    Parameters
    ----------
    mode : {"tiny", "quick", "full"}
        As returned by :func:`lowrank.cli.study_mode`.

    Returns
    -------
    dict
        ``dim``, ``n_per_class``, ``ce_steps``, ``diff_steps``, ``ngd_steps`` and ``ngd_lr``
        (:data:`~lowrank.train.linear.NORMALIZED_LR`), a fresh copy.

    Raises
    ------
    ValueError
        For an unknown mode.

    Examples
    --------
    >>> st = sweep_settings("quick")
    >>> st["dim"], st["ce_steps"], st["ngd_lr"]["differential"]
    (50, [100, 1000, 10000], 1.0)
    """
    if mode not in _SWEEP_MODES:
        raise ValueError(f"mode must be one of {sorted(_SWEEP_MODES)}, got {mode!r}")
    return {**{k: list(v) if isinstance(v, list) else v for k, v in _SWEEP_MODES[mode].items()},
            "ngd_lr": dict(NORMALIZED_LR)}


def sweep_records(name: str, args: argparse.Namespace, settings: Mapping[str, Any],
                  configs: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Run (or resume from ``<out>/<name>_cache.json``) a margin sweep with its normalized twins.

    Parameters
    ----------
    name : str
        The study's name (cache file stem and progress label).
    args : argparse.Namespace
        Parsed :func:`~lowrank.cli.study_arguments` (``out``, ``jobs``, ``quiet``).
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
    >>> from lowrank.cli import study_arguments
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
        float, or one per loss; default: :func:`~lowrank.train.step_sizes.default_lr`, or
        :data:`~lowrank.train.linear.NORMALIZED_LR` for the normalized schedule).

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
    Xn, yn = numpy_xy(data.X, data.y)
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

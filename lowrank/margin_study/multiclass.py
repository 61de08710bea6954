"""Measured against predicted multi-class margins, one configuration at a time.

The multi-class counterpart of :func:`lowrank.margin_study.binary.margin_config`:

* :func:`multiclass_predictions` solves the three exact predictions (optimal Crammer–Singer
  separator, cross-entropy limit, one-vs-rest differential limit);
* :func:`multiclass_margin_config` builds one data set
  (:func:`lowrank.data.multiclass_subspace_data`), predicts, trains with both losses under
  plain and normalized gradient descent (:func:`lowrank.train.fit_multiclass`) and reads
  the margins after every budget (a picklable worker for
  :func:`lowrank.sweep.run_configs`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..analysis.margins import separated_margins
from ..data.multiclass import MulticlassData, multiclass_subspace_data
from ..theory.multiclass import (
    multiclass_cross_entropy_limit,
    multiclass_max_margin,
    one_vs_rest_limit,
)
from ..train.multiclass import fit_multiclass, multiclass_default_lr

__all__ = ["multiclass_predictions", "make_multiclass_data", "multiclass_margin_config"]

_DATA_KEYS = ("n_per_class", "n_classes", "dim", "rank", "offset")
_OPTIONAL_KEYS = ("gap", "spread", "seed", "center")


def multiclass_predictions(X, y) -> dict[str, Any]:
    """Exact multi-class margins: optimal, cross-entropy limit, one-vs-rest differential limit.

    Parameters
    ----------
    X : array-like, shape (n, d)
    y : array-like, shape (n,)
        Labels in {0, ..., C-1}, every class present.

    Returns
    -------
    dict
        ``optimal_margin``, ``ce_limit_margin``, ``ovr_limit_margin``, their ratios to the
        optimal margin (``ratio_ce_predicted``, ``ratio_ovr_predicted``), the duality gaps of
        the two certified solutions, and the separators under ``"separators"`` (not
        JSON-serialisable; dropped by :func:`multiclass_margin_config`).

    Raises
    ------
    NotSeparableError
        If the data (or one class against the rest) are not linearly separable.

    Examples
    --------
    One point per class at the corners of a unit diamond centred at (3, 3):

    >>> X = [[4.0, 3.0], [3.0, 4.0], [2.0, 3.0], [3.0, 2.0]]
    >>> pred = multiclass_predictions(X, [0, 1, 2, 3])
    >>> [round(pred[k], 4) for k in ("optimal_margin", "ce_limit_margin", "ovr_limit_margin")]
    [0.7071, 0.5522, 0.7071]
    """
    opt = multiclass_max_margin(X, y)
    ce = multiclass_cross_entropy_limit(X, y)
    ovr = one_vs_rest_limit(X, y)
    return {"optimal_margin": opt.margin, "ce_limit_margin": ce.margin,
            "ovr_limit_margin": ovr.margin,
            "ratio_ce_predicted": ce.margin / opt.margin,
            "ratio_ovr_predicted": ovr.margin / opt.margin,
            "optimal_duality_gap": opt.certificate.duality_gap,
            "ce_limit_duality_gap": ce.certificate.duality_gap,
            "separators": {"optimal": opt, "ce_limit": ce, "ovr_limit": ovr}}


def make_multiclass_data(cfg: Mapping[str, Any]) -> MulticlassData:
    """The data set of one configuration (the arguments of :func:`lowrank.data.multiclass_subspace_data`).

    Parameters
    ----------
    cfg : mapping
        ``n_per_class, n_classes, dim, rank, offset`` and optionally ``gap, spread, seed, center``.

    Returns
    -------
    MulticlassData

    Raises
    ------
    KeyError
        If a required key is missing.

    Examples
    --------
    >>> cfg = {"n_per_class": 3, "n_classes": 4, "dim": 6, "rank": 2, "offset": 1.0, "seed": 0}
    >>> tuple(make_multiclass_data(cfg).X.shape)
    (12, 6)
    """
    return multiclass_subspace_data(*(cfg[k] for k in _DATA_KEYS),
                                    **{k: cfg[k] for k in _OPTIONAL_KEYS if k in cfg})


def multiclass_margin_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Predict and measure the multi-class margins of one configuration (a worker).

    Trains four runs from zero: cross-entropy and one-vs-rest differential, each under plain
    gradient descent (step :func:`lowrank.train.multiclass_default_lr`, margins read at
    ``ce_steps`` / ``diff_steps``) and normalized gradient descent (margins read at
    ``ngd_steps``; step ``ngd_factor`` times the normalized default of
    :func:`lowrank.train.multiclass_default_lr`, factor 1 if absent).

    Parameters
    ----------
    cfg : mapping
        Data keys (see :func:`make_multiclass_data`) plus ``ce_steps``, ``diff_steps`` and
        ``ngd_steps`` (lists of budgets; an empty list skips that run).

    Returns
    -------
    dict
        The configuration, the predictions of :func:`multiclass_predictions` (without the
        separators), and per run the margins (``ce_margin``, ``diff_margin``,
        ``ngd_ce_margin``, ``ngd_diff_margin``; ``None`` where the weights do not separate the
        training data, with ``*_separated`` flags), the same divided by the optimal margin
        (``*_ratio``), for the normalized runs the cosine of the class-centred weights to the
        predicted limit (``ngd_ce_cosine`` to the cross-entropy limit, ``ngd_diff_cosine`` to
        the one-vs-rest limit) and their step sizes, and ``seconds``.

    Examples
    --------
    >>> cfg = {"n_per_class": 3, "n_classes": 3, "dim": 5, "rank": 2, "offset": 2.0, "seed": 0,
    ...        "ce_steps": [10], "diff_steps": [10], "ngd_steps": [100]}
    >>> rec = multiclass_margin_config(cfg)
    >>> len(rec["ce_margin"]), len(rec["ngd_diff_margin"]), rec["ratio_ce_predicted"] < 1
    (1, 1, True)
    """
    t0 = time.perf_counter()
    data = make_multiclass_data(cfg)
    pred = multiclass_predictions(data.X, data.y)
    seps = pred.pop("separators")
    out: dict[str, Any] = dict(cfg)
    out.update(pred)
    out["radius"] = data.radius
    opt = pred["optimal_margin"]
    refs = {"cross_entropy": seps["ce_limit"].W, "differential": seps["ovr_limit"].W}
    factor = float(cfg.get("ngd_factor", 1.0))
    for loss, key in (("cross_entropy", "ce"), ("differential", "diff")):
        for prefix, steps_key, schedule in ((key, f"{key}_steps", "constant"),
                                            (f"ngd_{key}", "ngd_steps", "normalized")):
            budgets = sorted({int(t) for t in cfg.get(steps_key, [])})
            if not budgets:
                continue
            lr = multiclass_default_lr(data.X, data.y, loss, schedule)
            lr = lr * factor if schedule == "normalized" else lr
            fit = fit_multiclass(data.X, data.y, loss=loss, steps=budgets[-1], lr=lr,
                                 record=budgets, reference=refs[loss], schedule=schedule)
            at = {s: i for i, s in enumerate(fit.history["step"])}
            # a run that misclassifies a training point has no margin: None, flag False
            margins, flags = separated_margins(fit.history["margin"][at[t]] for t in budgets)
            out[f"{prefix}_margin"] = margins
            out[f"{prefix}_ratio"] = [None if m is None else m / opt for m in margins]
            out[f"{prefix}_separated"] = flags
            out[f"{prefix}_lr"] = lr
            if schedule == "normalized":
                out[f"{prefix}_cosine"] = [fit.history["cosine"][at[t]] for t in budgets]
    out["seconds"] = time.perf_counter() - t0
    return out

"""The last layer of a C-class network on its frozen features: exact predictions, retrained heads.

The multi-class counterpart of :mod:`lowrank.images.heads`. On the penultimate features of
the training points a network classifies correctly (:func:`~lowrank.images.heads.separable_subset`),
:func:`multiclass_feature_predictions` computes the three exact predictions of
:mod:`lowrank.theory.multiclass` -- the optimal Crammer–Singer separator (free offsets), the
softmax cross-entropy limit (offsets penalised: the SVM of the augmented points) and the
limit of one-vs-rest differential training -- with the features' geometry;
:func:`retrain_multiclass_head` trains a new C-class head on the same features with either
loss (:func:`lowrank.train.fit_multiclass`), to be put back on the backbone with
:func:`~lowrank.images.heads.head_on_backbone`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch

from .._validation import check_int, check_matrix, class_labels
from ..analysis.multiclass import multiclass_margin
from ..theory.multiclass import (
    multiclass_cross_entropy_limit,
    multiclass_max_margin,
    one_vs_rest_limit,
)
from ..theory.svm import CertificationError, NotSeparableError
from ..train.linear import log_spaced_steps
from ..train.multiclass import fit_multiclass
from .heads import feature_geometry

__all__ = ["multiclass_feature_predictions", "origin_distances", "retrain_multiclass_head"]

_SOLVER_ERRORS = (CertificationError, NotSeparableError, ValueError)


def origin_distances(W, b, margin: float) -> dict[str, float]:
    """How far the pairwise boundaries of ``argmax_c (w_c . x + b_c)`` pass from the origin.

    The boundary between classes ``a`` and ``c`` is ``(w_a - w_c) . x + b_a - b_c = 0``; its
    distance from the origin is ``|b_a - b_c| / ||w_a - w_c||``. In units of ``margin`` this
    is the multi-class analogue of the binary δ of :func:`lowrank.images.heads.feature_predictions`.

    Parameters
    ----------
    W : array-like, shape (C, k)
    b : array-like, shape (C,)
    margin : float
        The unit (e.g. the separator's geometric margin).

    Returns
    -------
    dict
        ``max``, ``median`` over the ``C (C - 1) / 2`` boundaries (pairs with ``w_a = w_c``
        skipped).

    Examples
    --------
    >>> d = origin_distances([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], [3.0, 1.0, 0.0], 0.5)
    >>> round(d["max"] ** 2, 9), d["median"]     # pairs: 2, 3 sqrt(2), sqrt(2)
    (18.0, 2.0)
    """
    Wt = check_matrix(W, "W", dtype=torch.float64)
    bt = torch.as_tensor(b, dtype=torch.float64).reshape(-1)
    vals = []
    for a, c in itertools.combinations(range(Wt.shape[0]), 2):
        n = float(torch.linalg.vector_norm(Wt[a] - Wt[c]))
        if n > 0:
            vals.append(abs(float(bt[a] - bt[c])) / n / margin)
    t = torch.tensor(vals, dtype=torch.float64)
    return {"max": float(t.max()), "median": float(t.quantile(0.5))} if vals else {
        "max": math.nan, "median": math.nan}


def _outside_span(W: torch.Tensor, basis: torch.Tensor, rank: int) -> float:
    """Share of ``||W||_F^2`` outside the span of ``basis`` (1 when the span is {0})."""
    if not rank:
        return 1.0
    inside = W @ basis @ basis.T
    total = float((W ** 2).sum())
    return float(((W - inside) ** 2).sum()) / total if total > 0 else math.nan


def multiclass_feature_predictions(F, y, rank_tol: float = 1e-9) -> dict[str, Any]:
    """The exact multi-class predictions on a feature set, and its geometry.

    Parameters
    ----------
    F : array-like, shape (n, k)
        Features of points that a C-class linear classifier separates (see
        :func:`lowrank.images.heads.separable_subset`).
    y : array-like, shape (n,)
        Labels in {0, ..., C-1}, every class present.
    rank_tol : float
        Relative singular-value cut-off of the centred features' span.

    Returns
    -------
    dict
        The geometry of :func:`lowrank.images.heads.feature_geometry`; ``optimal_margin``,
        ``ce_limit_margin``, ``ratio_predicted`` (their ratio), ``ovr_limit_margin`` and
        ``ratio_ovr_predicted`` (one-vs-rest differential limit; ``None`` with
        ``ovr_error`` when some class is not linearly separable from the rest),
        ``origin_distance_max`` / ``origin_distance_median`` (the optimal separator's pairwise
        boundaries' distances from the origin, in margins: :func:`origin_distances`),
        ``ce_limit_outside_span`` (share of the limit's squared weight outside the span of
        the centred features), the separators' ``optimal_W``, ``optimal_b``, ``ce_limit_W``,
        ``ce_limit_b``, ``ovr_limit_W``, ``ovr_limit_b`` (lists), and ``certified`` (True) --
        or, when the optimal or cross-entropy-limit solver fails, ``certified`` False and
        ``error`` (the message; nothing is hidden).

    Examples
    --------
    One point per class at the corners of a unit diamond centred at (3, 3):

    >>> p = multiclass_feature_predictions([[4.0, 3.0], [3.0, 4.0], [2.0, 3.0], [3.0, 2.0]],
    ...                                    [0, 1, 2, 3])
    >>> [round(p[k], 4) for k in ("optimal_margin", "ce_limit_margin", "ovr_limit_margin")]
    [0.7071, 0.5522, 0.7071]
    """
    F = check_matrix(F, "F", dtype=torch.float64, detach=True).cpu()
    labels = class_labels(y, "y").cpu()
    out, basis = feature_geometry(F, rank_tol)
    out["n_classes"] = int(labels.max()) + 1
    try:
        opt = multiclass_max_margin(F, labels)
        ce = multiclass_cross_entropy_limit(F, labels)
    except _SOLVER_ERRORS as err:
        out.update({"certified": False, "error": f"{type(err).__name__}: {err}"})
        return out
    dist = origin_distances(opt.W, opt.b, opt.margin)
    out.update({"certified": True, "optimal_margin": opt.margin, "ce_limit_margin": ce.margin,
                "ratio_predicted": ce.margin / opt.margin,
                "origin_distance_max": dist["max"], "origin_distance_median": dist["median"],
                "ce_limit_outside_span": _outside_span(ce.W, basis, out["span_rank"]),
                "optimal_W": opt.W.tolist(), "optimal_b": opt.b.tolist(),
                "ce_limit_W": ce.W.tolist(), "ce_limit_b": ce.b.tolist()})
    try:
        ovr = one_vs_rest_limit(F, labels)
        out.update({"ovr_limit_margin": ovr.margin, "ratio_ovr_predicted": ovr.margin / opt.margin,
                    "ovr_limit_W": ovr.W.tolist(), "ovr_limit_b": ovr.b.tolist()})
    except _SOLVER_ERRORS as err:
        out.update({"ovr_limit_margin": None, "ratio_ovr_predicted": None,
                    "ovr_error": f"{type(err).__name__}: {err}"})
    return out


def retrain_multiclass_head(F, y, loss: str, steps: int, seed: int = 0, reference=None,
                            schedule: str = "normalized", records: int = 30,
                            quiet: bool = True) -> dict[str, Any]:
    """Train a C-class linear head on frozen features with :func:`lowrank.train.fit_multiclass`.

    Every head starts from the same random initialisation (``init="random"``, ``seed``); the
    differential head runs over all one-vs-rest pairs, its offsets set by
    :func:`lowrank.train.multiclass_offsets`.

    Parameters
    ----------
    F : array-like, shape (n, k)
    y : array-like, shape (n,)
        Labels in {0, ..., C-1}.
    loss : {"cross_entropy", "differential"}
    steps : int
    seed : int
        Seed of the common initialisation.
    reference : array-like, shape (C, k), optional
        The predicted limit; the history then holds the cosine of the class-centred weights to it.
    schedule : {"constant", "normalized"}
    records : int
        Log-spaced steps recorded.
    quiet : bool
        Hide the progress bar.

    Returns
    -------
    dict
        ``loss``, ``schedule``, ``steps``, ``lr``, ``W``, ``b``, ``margin`` (final multi-class
        geometric margin; ``None`` when the head misclassifies a point, with ``separated``
        False and the value in ``signed_margin``), ``cosine`` (final, to ``reference``),
        ``history`` (``step``, ``margin``, ``cosine``).

    Examples
    --------
    >>> h = retrain_multiclass_head([[-1.0], [0.0], [1.0]], [0, 1, 2], "differential", 50)
    >>> round(h["margin"], 6)
    0.5
    """
    steps = check_int(steps, "steps", minimum=0)
    fit = fit_multiclass(F, y, loss=loss, steps=steps, init="random", seed=seed,
                         record=log_spaced_steps(steps, records) if steps else [0],
                         reference=reference, schedule=schedule, quiet=quiet)
    h = fit.history
    try:
        signed = multiclass_margin(fit.W, fit.b, F, y)
    except ValueError:  # two equal rows of W: no boundary between them
        signed = math.nan
    separated = bool(signed > 0)
    return {"loss": loss, "schedule": schedule, "steps": steps, "lr": fit.config["lr"],
            "W": fit.W.tolist(), "b": fit.b.tolist(), "margin": signed if separated else None,
            "separated": separated, "signed_margin": signed,
            "cosine": h["cosine"][-1] if "cosine" in h else None,
            "history": {k: h[k] for k in ("step", "margin", "cosine") if k in h}}

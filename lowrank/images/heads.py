"""The last layer on frozen penultimate features: predictions, retrained heads, shifts.

The paper's mechanism lives in the last layer: a linear classifier on features. Given a
trained backbone, :func:`extract_features` reads the features, :func:`separable_subset`
applies the stated separability rule (the training points the network classifies
correctly; all-zero feature rows counted), :func:`feature_predictions` computes the exact
predictions (optimal margin, cross-entropy limit, their ratio, the optimal hyperplane's
distance from the origin in margins, effective rank, ...), :func:`retrain_head` trains a
new head with either loss, and :func:`head_on_backbone` puts a head, optionally behind a
fixed feature shift ``phi + c * u`` (:func:`offset_grid`), back on the backbone for the
input-space attacks.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import (
    check_int,
    check_matrix,
    check_real,
    check_same_length,
    check_vector,
    class_labels,
    signed_labels,
)
from ..analysis.features import spectrum_summary
from ..analysis.margins import cosine, geometric_margin, subspace_split
from ..theory.svm import (
    CertificationError,
    NotSeparableError,
    cross_entropy_limit,
    max_margin_separator,
)
from ..train.bias import calibrate_bias
from ..train.deep import predict_scores
from ..train.linear import fit_linear, log_spaced_steps

__all__ = ["extract_features", "separable_subset", "feature_geometry", "feature_predictions", "HeadNet",
           "head_on_backbone", "retrain_head", "offset_directions", "shift_features",
           "offset_grid", "predicted_ratio", "differential_head_on_shift",
           "differential_shift_invariance"]


@torch.no_grad()
def extract_features(model: nn.Module, x: torch.Tensor, batch_size: int = 1024
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores and penultimate features of ``x`` (eval mode), as float64 CPU tensors.

    Parameters
    ----------
    model : nn.Module
        A :class:`lowrank.models.OneScoreNet` (``forward(x, return_features=True)``).
    x : torch.Tensor
        Inputs.
    batch_size : int
        Forward batch size.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        Scores, shape (n,), and features, shape (n, k).

    Examples
    --------
    >>> from lowrank.models import MLP
    >>> s, f = extract_features(MLP(4, (3,)), torch.zeros(5, 4))
    >>> s.dtype, f.shape
    (torch.float64, torch.Size([5, 3]))
    """
    s, f = predict_scores(model, x, batch_size=batch_size, features=True)
    return s.double().cpu(), f.double().cpu()


def separable_subset(F, y, scores) -> dict[str, Any]:
    """The stated separability rule: keep the training points the network classifies correctly.

    The network's own head separates exactly these points, so the exact solvers apply to
    them. Reported beside them: how many were dropped, and the all-zero feature rows (such
    a point sits at the origin, where every hyperplane's score is its bias: it pins the bias
    of the cross-entropy limit).

    Parameters
    ----------
    F : array-like, shape (n, k)
        Features.
    y : array-like, shape (n,)
        Labels in {-1, +1} for one score per point; classes 0..C-1 for class scores.
    scores : array-like, shape (n,) or (n, C)
        The network's scores: one per point (correct when ``y * s > 0``) or C class scores
        (correct when the score of class ``y`` is strictly the highest).

    Returns
    -------
    dict
        ``indices`` (kept), ``n_total``, ``n_kept``, ``n_misclassified`` (score of the wrong
        sign or zero; another class scoring at least as high), ``all_zero_rows`` (count over
        all points), ``all_zero_rows_kept``.

    Examples
    --------
    >>> r = separable_subset([[1.0], [0.0], [2.0]], [1, -1, -1], [0.5, -1.0, 0.3])
    >>> r["indices"].tolist(), r["n_misclassified"], r["all_zero_rows"], r["all_zero_rows_kept"]
    ([0, 1], 1, 1, 1)
    >>> separable_subset([[1.0], [2.0]], [0, 2], [[1.0, 0.0, 0.0], [3.0, 0.0, 1.0]])["indices"].tolist()
    [0]
    """
    F = check_matrix(F, "F", dtype=torch.float64, detach=True).cpu()
    S = torch.as_tensor(scores).detach().to(torch.float64).cpu()
    if S.ndim == 2 and S.shape[1] >= 2:
        S = check_matrix(S, "scores")
        labels = class_labels(y, "y", n_classes=S.shape[1], require_all=False).cpu()
        check_same_length(S, labels, "scores", "y")
        own = S.gather(1, labels[:, None])[:, 0]
        other = S.scatter(1, labels[:, None], float("-inf")).max(dim=1).values
        ok = own > other  # strictly: a tie is on the boundary, as a zero binary score
    else:
        ys = signed_labels(y, "y", dtype=torch.float64).cpu()
        ok = ys * check_vector(S, "scores", dtype=torch.float64) > 0
    check_same_length(F, ok, "F", "scores")
    zero = (F == 0).all(dim=1)
    return {"indices": torch.nonzero(ok).flatten(), "n_total": int(len(ok)),
            "n_kept": int(ok.sum()), "n_misclassified": int((~ok).sum()),
            "all_zero_rows": int(zero.sum()), "all_zero_rows_kept": int((zero & ok).sum())}


def predicted_ratio(F, y) -> float:
    """Cross-entropy-limit margin over optimal margin of ``(F, y)`` (exact solvers).

    Parameters
    ----------
    F : array-like, shape (n, k)
    y : array-like, shape (n,)

    Returns
    -------
    float

    Raises
    ------
    CertificationError, NotSeparableError
        From the solvers.

    Examples
    --------
    >>> round(predicted_ratio([[3.0, 1.0], [5.0, 1.0]], [-1, 1]) ** -2, 8)
    5.0
    """
    return cross_entropy_limit(F, y).margin / max_margin_separator(F, y).margin


def feature_geometry(F, rank_tol: float = 1e-9) -> tuple[dict[str, Any], torch.Tensor]:
    """Where a feature set lies: its spectrum, span and offset from the origin.

    Parameters
    ----------
    F : array-like, shape (n, k)
    rank_tol : float
        Relative singular-value cut-off of the centred features' span.

    Returns
    -------
    (dict, torch.Tensor)
        ``n_points``, ``effective_rank``, ``span_rank``, ``offset_norm`` (norm of the
        feature mean), ``offset_in_spreads`` (that over the RMS distance from the mean);
        and an orthonormal basis (k, span_rank) of the centred features' span (one zero
        column when the span is {0}).

    Examples
    --------
    >>> g, basis = feature_geometry([[3.0, 1.0], [5.0, 1.0]])
    >>> g["span_rank"], g["offset_norm"] ** 2, g["offset_in_spreads"] ** 2, tuple(basis.shape)
    (1, 17.0, 17.0, (2, 1))
    """
    F = check_matrix(F, "F", dtype=torch.float64, detach=True).cpu()
    mean = F.mean(dim=0)
    C = F - mean
    spread = float(torch.sqrt((C ** 2).sum(dim=1).mean()))
    spec = spectrum_summary(F, center=True)
    s = torch.tensor(spec["singular_values"], dtype=torch.float64)
    rank = int((s > rank_tol * s.max()).sum()) if s.numel() and s.max() > 0 else 0
    _, _, vt = torch.linalg.svd(C, full_matrices=False)
    basis = vt[:rank].T if rank else torch.zeros(F.shape[1], 1, dtype=torch.float64)
    return ({"n_points": int(F.shape[0]), "effective_rank": spec["effective_rank"],
             "span_rank": rank, "offset_norm": float(mean.norm()),
             "offset_in_spreads": float(mean.norm()) / spread if spread > 0 else math.inf}, basis)


def feature_predictions(F, y, rank_tol: float = 1e-9) -> dict[str, Any]:
    """The exact predictions of the theory on a feature set, and its geometry.

    Parameters
    ----------
    F : array-like, shape (n, k)
        Features of linearly separable points (see :func:`separable_subset`).
    y : array-like, shape (n,)
    rank_tol : float
        Relative singular-value cut-off of the centred features' span.

    Returns
    -------
    dict
        ``optimal_margin``, ``ce_limit_margin``, ``ratio_predicted``, ``optimal_w``,
        ``optimal_b``, ``ce_limit_w``, ``ce_limit_b``; ``hyperplane_origin_distance``
        (δ: the optimal hyperplane's distance from the origin in units of its margin,
        ``|b| / ||w|| / margin``), ``ratio_lower_bound`` (``1 / sqrt(1 + δ^2)``),
        ``effective_rank``, ``span_rank``, ``offset_norm`` (norm of the feature mean),
        ``offset_in_spreads`` (that over the RMS distance from the mean),
        ``ce_limit_outside_span`` (share of the limit's weight outside the span of the
        centred features), ``certified`` (True) — or, when a solver fails (or a class has
        no point left), ``certified`` False and ``error`` (the message; nothing is hidden).

    Examples
    --------
    >>> p = feature_predictions([[3.0, 1.0], [5.0, 1.0]], [-1, 1])
    >>> round(p["ratio_predicted"] ** -2, 8), round(p["hyperplane_origin_distance"], 8)
    (5.0, 4.0)
    """
    F = check_matrix(F, "F", dtype=torch.float64, detach=True).cpu()
    ys = signed_labels(y, "y", dtype=torch.float64).cpu()
    out, basis = feature_geometry(F, rank_tol)
    try:
        opt = max_margin_separator(F, ys)
        ce = cross_entropy_limit(F, ys)
    except (CertificationError, NotSeparableError, ValueError) as err:  # e.g. a class missing
        out.update({"certified": False, "error": f"{type(err).__name__}: {err}"})
        return out
    w_norm = float(opt.w.norm())
    delta = abs(opt.b) / w_norm / opt.margin
    rank = out["span_rank"]
    out.update({"certified": True, "optimal_margin": opt.margin, "ce_limit_margin": ce.margin,
                "ratio_predicted": ce.margin / opt.margin,
                "hyperplane_origin_distance": delta,
                "ratio_lower_bound": 1.0 / math.sqrt(1.0 + delta ** 2),
                "ce_limit_outside_span": subspace_split(ce.w, basis).orthogonal_fraction
                if rank else 1.0,
                "optimal_w": opt.w.tolist(), "optimal_b": opt.b,
                "ce_limit_w": ce.w.tolist(), "ce_limit_b": ce.b})
    return out


class HeadNet(nn.Module):
    """A backbone's features, a fixed shift, and a linear head: ``w . (phi(x) + shift) + b``.

    With a weight vector ``w`` the network returns one score per image; with a weight
    matrix ``W`` of shape (C, k), C >= 2, and offsets ``b`` of shape (C,) it returns the C
    class scores ``W (phi(x) + shift) + b`` (a multi-class head). The shift enters the
    scores as the constant ``W shift``, added to the bias in float64 (adding a large shift
    to float32 features and subtracting it again through the bias would cancel
    catastrophically); :meth:`features` returns the shifted features.

    Parameters
    ----------
    body : nn.Module
        Images -> features (e.g. ``model.body`` of a :class:`lowrank.models.OneScoreNet`).
    w : array-like, shape (k,) or (C, k)
    b : float or array-like, shape (C,)
    shift : array-like, shape (k,), optional
        Added to the features before the head (default zeros).

    Examples
    --------
    >>> net = HeadNet(nn.Flatten(), [1.0, -1.0], 0.5, shift=[0.0, 2.0])
    >>> net(torch.tensor([[[3.0, 1.0]]])).tolist()
    [0.5]
    >>> HeadNet(nn.Flatten(), [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.0, 1.0, -1.0])(
    ...     torch.tensor([[[3.0, 1.0]]])).tolist()
    [[3.0, 2.0, 3.0]]
    """

    def __init__(self, body: nn.Module, w, b, shift=None) -> None:
        super().__init__()
        self.body = body
        w = torch.as_tensor(np.asarray(w, dtype=np.float64))
        if w.ndim not in (1, 2) or (w.ndim == 2 and w.shape[0] < 2):
            raise ValueError(f"w must have shape (k,) or (C, k) with C >= 2, got {tuple(w.shape)}")
        self.multiclass = w.ndim == 2
        W = w.reshape(-1, w.shape[-1])
        bias = torch.as_tensor(np.asarray(b, dtype=np.float64)).reshape(-1)
        if bias.numel() != W.shape[0]:
            raise ValueError(f"b must hold {W.shape[0]} offset(s), got {bias.numel()}")
        ref = next(iter(body.parameters()), None)
        dtype = ref.dtype if ref is not None else torch.float32
        device = ref.device if ref is not None else torch.device("cpu")
        self.head = nn.Linear(W.shape[1], W.shape[0]).to(device=device, dtype=dtype)
        sh = torch.zeros(W.shape[1], dtype=torch.float64) if shift is None else torch.as_tensor(
            np.asarray(shift, dtype=np.float64))
        with torch.no_grad():
            self.head.weight.copy_(W.to(dtype))
            self.head.bias.copy_((bias + W @ sh).to(dtype))
        self.register_buffer("shift", sh.to(device=device, dtype=dtype))
        self.requires_grad_(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Shifted features ``phi(x) + shift``."""
        return self.body(x) + self.shift

    def forward(self, x: torch.Tensor, return_features: bool = False):  # noqa: D102
        f = self.body(x)
        s = self.head(f)  # the shift is folded into the bias
        s = s if self.multiclass else s[:, 0]
        return (s, f + self.shift) if return_features else s


def head_on_backbone(model: nn.Module, w, b, shift=None) -> HeadNet:
    """:class:`HeadNet` on a copy of ``model.body`` (eval mode): the network with a new head.

    Parameters
    ----------
    model : nn.Module
        A :class:`lowrank.models.OneScoreNet`.
    w : array-like, shape (k,) or (C, k)
    b : float or array-like, shape (C,)
    shift : array-like, shape (k,), optional
        Feature shift in front of the head.

    Returns
    -------
    HeadNet

    Examples
    --------
    >>> from lowrank.models import MLP
    >>> m = MLP(4, (3,))
    >>> net = head_on_backbone(m, m.head.weight[0].tolist(), float(m.head.bias))
    >>> x = torch.rand(2, 4)
    >>> torch.allclose(net(x), m(x))
    True
    """
    return HeadNet(copy.deepcopy(model.body), w, b, shift).eval()


def retrain_head(F, y, loss: str, schedule: str, steps: int, seed: int = 0, reference=None,
                 records: int = 40, lr: float | None = None, quiet: bool = True) -> dict[str, Any]:
    """Train a linear head on frozen features with :func:`lowrank.train.fit_linear`.

    Every head starts from the same random initialisation (``init="random"``, ``seed``).
    The differential loss runs over all positive/negative pairs (through
    :mod:`lowrank.kernels` for large plain-GD problems).

    Parameters
    ----------
    F, y
        Features and labels.
    loss : {"cross_entropy", "differential"}
    schedule : {"constant", "normalized"}
    steps : int
    seed : int
        Seed of the common initialisation.
    reference : array-like, optional
        The predicted direction; the history then holds the cosine to it.
    records : int
        Log-spaced steps recorded.
    lr : float, optional
        Default: :func:`lowrank.train.fit_linear`'s (per loss for the normalized schedule).
    quiet : bool
        Hide the progress bar.

    Returns
    -------
    dict
        ``loss``, ``schedule``, ``steps``, ``lr``, ``w``, ``b``, ``margin`` (final
        feature-space geometric margin; ``None`` when the head does not separate the
        points, with ``separated`` False and the negative value in ``signed_margin``),
        ``cosine`` (final, to ``reference``), ``history``
        (``step``, ``margin``, ``cosine``).

    Examples
    --------
    >>> h = retrain_head([[3.0, 1.0], [5.0, 1.0]], [-1, 1], "differential", "normalized", 200)
    >>> round(h["margin"], 5)
    1.0
    """
    steps = check_int(steps, "steps", minimum=0)
    fit = fit_linear(F, y, loss=loss, steps=steps, lr=lr, init="random", seed=seed,
                     record=log_spaced_steps(steps, records) if steps else [0],
                     reference=reference, schedule=schedule, quiet=quiet)
    h = fit.history
    w = fit.w.cpu()
    signed = geometric_margin(w, fit.b, F, y) if float(w.abs().max()) > 0 else float("nan")
    separated = bool(signed > 0)
    return {"loss": loss, "schedule": schedule, "steps": steps, "lr": fit.config["lr"],
            "w": w.tolist(), "b": fit.b, "margin": signed if separated else None,
            "separated": separated, "signed_margin": signed,
            "cosine": cosine(w, reference) if reference is not None else None,
            "history": {k: h[k] for k in ("step", "margin", "cosine") if k in h}}


def offset_directions(F, predictions: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The two shift directions of the offset sweep: the optimal unit normal, the unit mean.

    Parameters
    ----------
    F : array-like, shape (n, k)
        Features.
    predictions : mapping
        Holds ``optimal_w`` (:func:`feature_predictions`).

    Returns
    -------
    dict of str to torch.Tensor
        ``optimal_normal`` and ``feature_mean``.

    Raises
    ------
    ValueError
        If the feature mean is zero.

    Examples
    --------
    >>> d = offset_directions([[0.0, 2.0], [2.0, 2.0]], {"optimal_w": [3.0, 0.0]})
    >>> d["optimal_normal"].tolist(), d["feature_mean"].tolist()
    ([1.0, 0.0], [0.4472135954999579, 0.8944271909999159])
    """
    F = check_matrix(F, "F", dtype=torch.float64, detach=True).cpu()
    w = torch.as_tensor(predictions["optimal_w"], dtype=torch.float64)
    m = F.mean(dim=0)
    if float(m.norm()) == 0:
        raise ValueError("the feature mean is zero: no mean direction to shift along")
    return {"optimal_normal": w / w.norm(), "feature_mean": m / m.norm()}


def shift_features(F, c: float, u) -> torch.Tensor:
    """``F + c * u`` (float64).

    Parameters
    ----------
    F : array-like, shape (n, k)
    c : float
    u : array-like, shape (k,)

    Returns
    -------
    torch.Tensor

    Examples
    --------
    >>> shift_features([[1.0, 0.0]], 2.0, [0.0, 1.0]).tolist()
    [[1.0, 2.0]]
    """
    F = check_matrix(F, "F", dtype=torch.float64, detach=True).cpu()
    u = check_vector(u, "u", dtype=torch.float64, detach=True).cpu()
    return F + check_real(c, "c") * u


def differential_head_on_shift(w, F, y, c: float, u) -> dict[str, Any]:
    """A differential head's weights on the shifted features ``F + c u``, bias by the midpoint rule.

    The all-pairs differential loss sees only differences ``phi_i - phi_j``, which a common
    shift leaves unchanged: training on ``F + c u`` gives the weights trained on ``F`` (up
    to rounding; :func:`differential_shift_invariance` measures it), and the midpoint bias
    moves by ``-c w.u``. So the offset sweep measures the arm-A head on every shifted
    feature set instead of retraining it.

    Parameters
    ----------
    w : array-like, shape (k,)
        Weights of a differential head.
    F, y
        Features (unshifted) and labels.
    c : float
    u : array-like, shape (k,)

    Returns
    -------
    dict
        ``b`` (midpoint bias on the shifted features), ``margin`` (geometric margin there;
        ``None`` when the head does not separate them), ``separated``, ``signed_margin``.

    Examples
    --------
    >>> h = differential_head_on_shift([1.0, 0.0], [[3.0, 1.0], [5.0, 1.0]], [-1, 1], 2.0, [1.0, 0.0])
    >>> h["b"], h["margin"]
    (-6.0, 1.0)
    """
    w = check_vector(w, "w", dtype=torch.float64, detach=True).cpu()
    Fc = shift_features(F, c, u)
    ys = signed_labels(y, "y", dtype=torch.float64).cpu()
    check_same_length(Fc, ys, "F", "y")
    b = calibrate_bias(w, Fc, ys)
    signed = geometric_margin(w, b, Fc, ys)
    return {"b": b, "margin": signed if signed > 0 else None, "separated": bool(signed > 0),
            "signed_margin": signed}


def differential_shift_invariance(F, y, c: float, u, steps: int, seed: int = 0,
                                  lr: float | None = None) -> dict[str, Any]:
    """Train the differential head on ``F`` and on ``F + c u``: how far apart do the weights end?

    Parameters
    ----------
    F, y
        Features and labels.
    c : float
    u : array-like, shape (k,)
    steps : int
        Normalized gradient-descent steps of both heads (same initialisation, ``seed``).
    seed : int
    lr : float, optional
        Normalized step (default :data:`lowrank.train.linear.NORMALIZED_LR`).

    Returns
    -------
    dict
        ``c``, ``steps``, ``lr``, ``relative_w_difference`` (``max |w_c - w_0| / max |w_0|``),
        ``margins`` (of each head on its own features: ``unshifted``, ``shifted``).

    Examples
    --------
    >>> r = differential_shift_invariance([[3.0, 1.0], [5.0, 1.0]], [-1, 1], 100.0, [0.6, 0.8],
    ...                                   steps=50, lr=0.3)
    >>> r["relative_w_difference"] < 1e-12
    True
    """
    heads = {name: retrain_head(Fk, y, "differential", "normalized", steps, seed=seed, lr=lr,
                                records=2)
             for name, Fk in (("unshifted", F), ("shifted", shift_features(F, c, u)))}
    w0, wc = (torch.tensor(heads[k]["w"], dtype=torch.float64) for k in ("unshifted", "shifted"))
    return {"c": float(c), "steps": int(steps), "lr": heads["shifted"]["lr"],
            "relative_w_difference": float((wc - w0).abs().max() / w0.abs().max()),
            "margins": {k: h["margin"] for k, h in heads.items()}}


def offset_grid(F, y, u, n: int, target: float = 0.5, start: float | None = None,
                max_doublings: int = 16) -> dict[str, Any]:
    """Shifts ``c`` along ``u`` taking the predicted ratio from its value at 0 to ``target``.

    Doubles ``c`` from ``start`` (default: a tenth of the features' RMS spread) until the
    predicted ratio (:func:`predicted_ratio` of ``F + c u``) is at most ``target``, then
    returns ``0`` and ``n - 1`` log-spaced values up to that ``c``.

    Parameters
    ----------
    F, y
        Separable features and labels.
    u : array-like, shape (k,)
        Unit shift direction.
    n : int
        Grid size (>= 2).
    target : float
        Ratio to reach.
    start : float, optional
        First ``c`` tried.
    max_doublings : int
        Give up after this many doublings (``reached`` is then False and the grid ends at
        the last ``c`` tried).

    Returns
    -------
    dict
        ``c`` (list), ``reached`` (bool), ``c_max``, ``ratio_at_c_max``, ``solver_errors``
        (the shifts where the solvers raised :class:`~lowrank.theory.svm.CertificationError`:
        skipped, and listed here).

    Raises
    ------
    CertificationError
        If no shift at all could be certified.

    Examples
    --------
    Two points ``(-1, 1)``, ``(1, 1)``: shifting along the optimal normal ``(1, 0)`` moves
    the optimal hyperplane away from the origin, and the predicted ratio falls:

    >>> g = offset_grid([[-1.0, 1.0], [1.0, 1.0]], [-1, 1], [1.0, 0.0], n=3)
    >>> g["reached"], g["ratio_at_c_max"] <= 0.5, g["c"][0]
    (True, True, 0.0)
    """
    n = check_int(n, "n", minimum=2)
    F = check_matrix(F, "F", dtype=torch.float64, detach=True).cpu()
    if start is None:
        C = F - F.mean(dim=0)
        start = 0.1 * float(torch.sqrt((C ** 2).sum(dim=1).mean())) or 0.1
    c, ratio, errors = float(start), math.inf, []
    for k in range(max_doublings + 1):
        if k:
            c *= 2.0
        try:
            ratio = predicted_ratio(shift_features(F, c, u), y)
        except CertificationError as err:  # reported, and the search goes on
            errors.append({"c": c, "error": f"CertificationError: {err}"})
            continue
        if ratio <= target:
            break
    if not math.isfinite(ratio):
        raise CertificationError(f"no shift along u could be certified: {errors[-1]['error']}")
    lo = min(float(start), c)
    grid = [0.0] + (np.geomspace(lo, c, n - 1).tolist() if n > 2 else [c])
    return {"c": grid, "reached": bool(ratio <= target), "c_max": c, "ratio_at_c_max": ratio,
            "solver_errors": errors}

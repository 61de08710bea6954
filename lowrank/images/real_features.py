"""Real features meet the theory: the three arms of the real-features study, per seed.

Arm A (the theory's own setting): a backbone trained end to end with cross-entropy; on its
training features (the points it classifies correctly, :func:`~lowrank.images.heads.separable_subset`)
the exact predictions, heads retrained from one initialisation with each loss (plain and
normalized gradient descent), and input-space minimum norms of each head put back on the
backbone. Arm B (the causal test): the same on shifted features ``phi + c u`` for ``u``
the optimal unit normal and the unit feature mean, ``c`` on a grid that takes the
predicted ratio to 0.5 or below. Arm C: a second network trained end to end with the
differential loss, with arm A's measurements on its own features. :func:`run_seed` does
all three for one seed (every piece cached in a :class:`ResultCache`: a rerun resumes per
seed and per ``c``); :func:`summarise` adds bootstrap intervals over seeds and images.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..analysis.margins import cosine, geometric_margin
from ..cli import study_mode
from ..models import build_model
from ..progress import progress
from ..theory.svm import CertificationError
from .binary import LOSSES, prepare, run_name, run_seeds, train_networks, with_threads
from .comparison import (
    claim_verdict,
    compare_norms,
    comparison_lines,
    format_interval,
    runtime_line,
    seed_interval,
    share_band,
    share_rows,
)
from .heads import (
    differential_head_on_shift,
    differential_shift_invariance,
    extract_features,
    feature_predictions,
    head_on_backbone,
    offset_directions,
    offset_grid,
    retrain_head,
    separable_subset,
    shift_features,
)
from .protocol import attack_protocol, software_protocol, training_protocol
from .robustness import cached, norms_of, robustness
from .tasks import DEFAULT_CLASSES, EPS, NORMS, SPLITS, balanced_subset

__all__ = ["MODES", "FEATURE_KEYS", "study_name", "compute_study", "run_seed", "summarise",
           "heads_on_predictions", "curve_rows", "report_lines"]

#: Normalized steps (step 0.3) of the full-mode differential head on frozen features.
DIFF_STEPS_FULL = 200_000

#: Budgets per mode. Heads are trained on at most ``head_points`` training points per
#: class (a class-balanced subsample of the correctly classified ones); ``sweep_norms`` /
#: ``sweep_splits`` are attacked at every offset. Full mode trains on a class-balanced
#: 6,000-image subsample (3,000 per class) for 10 epochs: 5 seeds take about 40 min of one
#: CPU core (measured: 2,340-2,470 s of cached pieces per Fashion-MNIST pair, plus the
#: networks' training, checkpointed rather than cached). Normalized heads use
#: ``head_lr``: 0.1 for cross-entropy, 0.3 for the differential head (at the package's
#: default step 1 its trajectory is chaotic on real features; see
#: ``scripts/differential_head_steps.py``). The arm-B sweep retrains the cross-entropy head
#: at every shift (``sweep_steps``); the differential head, blind to the shift, is arm A's
#: (``shift_check_steps``: the short retraining that measures it). "tiny" is for the test
#: suite only.
MODES = {
    "full": {"model": "cnn", "width": 8, "feature_dim": 32, "epochs": 10, "batch_size": 128,
             "lr": 1e-3, "max_train": 6000, "spectrum_samples": 1000, "seeds": 5,
             "n_attack": 100, "attack_steps": 60, "head_points": 400,
             "steps": {"constant": {"cross_entropy": 100000, "differential": 2000},
                       "normalized": {"cross_entropy": 500000, "differential": DIFF_STEPS_FULL}},
             "head_lr": {"cross_entropy": 0.1, "differential": 0.3},
             "sweep_steps": {"cross_entropy": 500000}, "shift_check_steps": 2000,
             "n_offsets": 3, "sweep_norms": ["l2", "linf"], "sweep_splits": ["test"],
             "n_boot": 2000},
    "quick": {"model": "cnn", "width": 8, "feature_dim": 32, "epochs": 3, "batch_size": 128,
              "lr": 1e-3, "max_train": 2000, "spectrum_samples": 500, "seeds": 1,
              "n_attack": 16, "attack_steps": 20, "head_points": 250,
              "steps": {"constant": {"cross_entropy": 20000, "differential": 300},
                        "normalized": {"cross_entropy": 200000, "differential": 50000}},
              "head_lr": {"cross_entropy": 0.1, "differential": 0.3},
              "sweep_steps": {"cross_entropy": 200000}, "shift_check_steps": 500,
              "n_offsets": 3, "sweep_norms": ["l2"], "sweep_splits": ["test"], "n_boot": 1000},
    "tiny": {"model": "mlp", "width": 8, "feature_dim": 8, "epochs": 3, "batch_size": 8,
             "lr": 3e-3, "max_train": 64, "spectrum_samples": 32, "seeds": 1,
             "n_attack": 4, "attack_steps": 15, "head_points": 32,
             "steps": {"constant": {"cross_entropy": 200, "differential": 50},
                       "normalized": {"cross_entropy": 300, "differential": 100}},
             "head_lr": {"cross_entropy": 0.1, "differential": 0.3},
             "sweep_steps": {"cross_entropy": 300}, "shift_check_steps": 50,
             "n_offsets": 3, "sweep_norms": ["l2"], "sweep_splits": ["test"], "n_boot": 200},
}

#: Budget entries that only the retrained heads (and the attacks on them) depend on.
HEAD_BUDGETS = ("steps", "sweep_steps", "head_lr", "shift_check_steps")

#: Feature-space scalars of each seed that the summary gives with intervals.
FEATURE_KEYS = ("optimal_margin", "ce_limit_margin", "ratio_predicted", "ce_head_margin",
                "differential_head_margin", "network_head_margin", "effective_rank",
                "offset_norm", "offset_in_spreads", "hyperplane_origin_distance",
                "ce_limit_outside_span")


def study_name(args: argparse.Namespace) -> str:
    """``real_features_<dataset>_<pair>`` (plus ``_quick`` / ``_tiny``).

    Parameters
    ----------
    args : argparse.Namespace
        ``dataset``, ``classes``, ``tiny``, ``quick``.

    Returns
    -------
    str

    Examples
    --------
    >>> a = argparse.Namespace(dataset="fashion_mnist", classes=None, tiny=False, quick=False)
    >>> study_name(a)
    'real_features_fashion_mnist_shirt_vs_t-shirt-top'
    """
    return run_name("real_features", args, study_mode(args))


def _fs_of(model, x, y, head_points: int, seed: int) -> dict:
    """Features of the training points, the separability rule, the head subsample."""
    scores, F = extract_features(model, x)
    y = y.double().cpu()
    rule = separable_subset(F, y, scores)
    kept = rule.pop("indices")
    sub = kept[balanced_subset(y[kept], 2 * head_points, seed)]
    w = model.head.weight.detach().double().cpu()[0]
    b = float(model.head.bias.detach())
    return {"F": F[sub], "y": y[sub], "rule": dict(rule, n_head_points=int(len(sub))),
            "head": (w, b)}


def _feature_space(fs: Mapping, pred: Mapping) -> dict:
    """Predictions and the network's own head on a feature subset (JSON-ready)."""
    w, b = fs["head"]
    out = {k: v for k, v in pred.items() if not k.endswith(("_w", "_b"))}
    out["separability"] = fs["rule"]
    own = geometric_margin(w, b, fs["F"], fs["y"]) if float(w.abs().max()) > 0 else math.nan
    out["network_head_margin"] = own
    out["network_head_origin_distance"] = abs(b) / float(w.norm()) / own if own > 0 else None
    return out


def _heads(fs: Mapping, pred: Mapping, budget: Mapping, seed: int, cache, key: Mapping, quiet: bool,
           schedules: Sequence[str] = ("constant", "normalized"), losses: Sequence[str] = LOSSES,
           steps: Mapping[str, int] | None = None) -> dict:
    """Retrained heads per schedule and loss (normalized steps: ``budget["head_lr"]``)."""
    out = {}
    for schedule in schedules:
        for loss in losses:
            ref = pred.get("ce_limit_w" if loss == "cross_entropy" else "optimal_w")
            n = (budget["steps"][schedule] if steps is None else steps)[loss]
            lr = budget["head_lr"][loss] if schedule == "normalized" else None
            out[f"{schedule}_{loss}"] = cached(
                cache, dict(key, head=loss, schedule=schedule, steps=n, lr=lr),
                lambda loss=loss, schedule=schedule, n=n, lr=lr, ref=ref: retrain_head(
                    fs["F"], fs["y"], loss, schedule, n, seed=seed, reference=ref, lr=lr,
                    quiet=quiet))
    return out


def _attack_key(head: Mapping, **what) -> dict:
    """What identifies an attacked retrained head in the cache."""
    return {"net": "cross_entropy", "head": head["loss"], "head_steps": head["steps"],
            "head_lr": head["lr"], **what}


def run_seed(ctx: Mapping[str, Any], seed: int) -> dict:
    """Arms A, B and C for one seed (cached piece by piece).

    Parameters
    ----------
    ctx : mapping
        ``args``, ``budget``, ``device``, ``cache``, ``out``, ``name``, ``eps_cfg``.
    seed : int

    Returns
    -------
    dict
        The seed's entry of the results (``feature_space``, ``offset_sweep``,
        ``input_space``, ``end_to_end``, ``backbone``).

    Examples
    --------
    Called by :func:`compute_study` for each seed; ``tests/test_real_features.py`` runs it
    on tiny archives.

    >>> entry = run_seed(ctx, 0)  # doctest: +SKIP
    >>> entry["feature_space"]["ratio_predicted"]  # doctest: +SKIP
    """
    args, budget, device, cache = ctx["args"], ctx["budget"], ctx["device"], ctx["cache"]
    sargs = argparse.Namespace(**{**vars(args), "seed": seed})
    prep = prepare(sargs, budget, device)
    splits, att_idx = prep["splits"], prep["attack_indices"]
    x_tr, y_tr = splits["train"]
    torch.manual_seed(seed)
    init = build_model(budget["model"], tuple(x_tr.shape[1:]), width=budget["width"],
                       feature_dim=budget["feature_dim"], device=device)
    nets = train_networks(init, x_tr, y_tr, budget, seed, Path(ctx["out"]) / ".runs" / ctx["name"]
                          / f"seed{seed}", device, quiet=args.quiet)
    # the head step budgets key only the pieces they change (the heads and the attacks on
    # them), so raising them reruns those pieces alone
    key = {"seed": seed, "dataset": args.dataset, "classes": list(prep["task"].classes),
           "n_train": int(len(x_tr)),
           "budget": {k: v for k, v in budget.items() if k not in ("n_boot", *HEAD_BUDGETS)}}
    eps_cfg = ctx["eps_cfg"]

    def attack(model, what: Mapping, norms=NORMS, split_names=SPLITS) -> dict:
        sp = {s: splits[s] for s in split_names}
        r = robustness(model, sp, att_idx, eps_cfg, budget["attack_steps"], dict(key, **what),
                       cache, norms=norms, seed=seed, quiet=args.quiet)
        return r["attacks"]

    entry: dict[str, Any] = {"seed": seed, "backbone": {}}
    for loss, res in nets.items():
        h = res.history[-1] if res.history else {}
        entry["backbone"][loss] = {"epochs": len(res.history), "train_acc": h.get("train_acc"),
                                   "bias_rule": res.bias_rule}
    # arm A: the cross-entropy backbone's features
    model = nets["cross_entropy"].model.eval()
    fs = _fs_of(model, x_tr, y_tr, budget["head_points"], seed + 5)
    pred = cached(cache, dict(key, what="predictions"), lambda: feature_predictions(fs["F"], fs["y"]))
    feat = _feature_space(fs, pred)
    entry["feature_space"] = feat
    # the schema names these at the seed level too (the same values as in feature_space)
    entry.update({k: feat.get(k) for k in ("effective_rank", "offset_norm",
                                            "hyperplane_origin_distance")})
    entry["input_space"] = {"network_head": attack(model, {"net": "cross_entropy"})}
    if pred.get("certified"):
        heads = _heads(fs, pred, budget, seed, cache, dict(key, what="head"), args.quiet)
        feat["heads"] = heads
        feat["ce_head_margin"] = heads["normalized_cross_entropy"]["margin"]
        feat["differential_head_margin"] = heads["normalized_differential"]["margin"]
        for loss in LOSSES:
            h = heads[f"normalized_{loss}"]
            entry["input_space"][loss] = attack(head_on_backbone(model, h["w"], h["b"]),
                                                _attack_key(h))
        entry["offset_sweep"] = _offset_sweep(fs, pred, budget, seed, cache, key, model, attack,
                                              heads["normalized_differential"],
                                              entry["input_space"]["differential"], args.quiet)
    # arm C: the network trained end to end with the differential loss
    dmodel = nets["differential"].model.eval()
    dfs = _fs_of(dmodel, x_tr, y_tr, budget["head_points"], seed + 5)
    dpred = cached(cache, dict(key, what="predictions_differential_net"),
                   lambda: feature_predictions(dfs["F"], dfs["y"]))
    entry["end_to_end"] = {
        "feature_space": {"cross_entropy": feat if not feat.get("heads") else
                          {k: v for k, v in feat.items() if k != "heads"},
                          "differential": _feature_space(dfs, dpred)},
        "input_space": {"cross_entropy": entry["input_space"]["network_head"],
                        "differential": attack(dmodel, {"net": "differential"})}}
    return entry


def _offset_sweep(fs, pred, budget, seed, cache, key, model, attack, diff_head: Mapping,
                  diff_attacks: Mapping, quiet: bool) -> dict:
    """Arm B: the cross-entropy head retrained at every shift; the differential head is arm A's.

    The pair loss cannot see the shift, so the arm-A differential head is measured on every
    shifted feature set (:func:`differential_head_on_shift`) and its network, unchanged as a
    function of the image, keeps arm A's input-space results; a short retraining on the
    largest shift of each direction measures the invariance (``differential_shift_check``).
    """
    out = {}
    lr = budget["head_lr"]["differential"]
    same_network = {split: {norm: diff_attacks[split][norm] for norm in budget["sweep_norms"]}
                    for split in budget["sweep_splits"]}
    for u_name, u in offset_directions(fs["F"], pred).items():
        gkey = dict(key, what="offset_grid", u=u_name)
        try:
            grid = cached(cache, gkey, lambda u=u: offset_grid(fs["F"], fs["y"], u,
                                                               budget["n_offsets"]))
        except CertificationError as err:
            out[u_name] = {"error": f"{type(err).__name__}: {err}"}
            continue
        points = []
        for c in progress(grid["c"], desc=f"offsets {u_name}", quiet=quiet):
            Fc = shift_features(fs["F"], c, u)
            ckey = dict(key, u=u_name, c=c)
            p = cached(cache, dict(ckey, what="predictions"),
                       lambda Fc=Fc: feature_predictions(Fc, fs["y"]))
            point = {"c": c, **{k: v for k, v in p.items() if not k.endswith(("_w", "_b"))}}
            if p.get("certified"):
                ce = _heads({"F": Fc, "y": fs["y"]}, p, budget, seed, cache,
                            dict(ckey, what="head"), quiet, schedules=("normalized",),
                            losses=("cross_entropy",),
                            steps=budget["sweep_steps"])["normalized_cross_entropy"]
                diff = differential_head_on_shift(diff_head["w"], fs["F"], fs["y"], c, u)
                point["ce_head_margin"] = ce["margin"]
                point["ce_head_history"] = ce["history"]
                point["differential_head_margin"] = diff["margin"]
                point["head_cosines"] = {"cross_entropy": ce["cosine"],
                                         "differential": cosine(diff_head["w"], p["optimal_w"])}
                point["input_space"] = {
                    "cross_entropy": attack(head_on_backbone(model, ce["w"], ce["b"],
                                                             shift=(c * u).tolist()),
                                            _attack_key(ce, u=u_name, c=c),
                                            norms=budget["sweep_norms"],
                                            split_names=budget["sweep_splits"]),
                    "differential": same_network}
            points.append(point)
        check = cached(cache, dict(key, what="shift_check", u=u_name, c=grid["c"][-1],
                                   steps=budget["shift_check_steps"], lr=lr),
                       lambda u=u, c=grid["c"][-1]: differential_shift_invariance(
                           fs["F"], fs["y"], c, u, budget["shift_check_steps"], seed=seed, lr=lr))
        out[u_name] = {"direction": u.tolist(), "grid": {k: v for k, v in grid.items() if k != "c"},
                       "points": points, "differential_shift_check": check}
    return out


def compute_study(args: argparse.Namespace) -> dict:
    """All seeds of the study for parsed arguments, with the protocol and the summary.

    Parameters
    ----------
    args : argparse.Namespace
        The common study options, :func:`lowrank.images.tasks.add_image_arguments` and
        ``seeds``.

    Returns
    -------
    dict
        ``protocol``, ``seeds`` (one :func:`run_seed` entry each), ``summary``
        (:func:`summarise`), ``runtime_seconds``, ``cached_piece_seconds`` (see
        :func:`lowrank.images.binary.run_seeds`).

    Examples
    --------
    >>> res = compute_study(args)  # doctest: +SKIP
    >>> list(res)[:3]  # doctest: +SKIP
    ['protocol', 'seeds', 'summary']
    """
    return with_threads(args.threads, _compute, args)


def _compute(args: argparse.Namespace) -> dict:
    return run_seeds(args, MODES, study_name(args), run_seed, _protocol, summarise)


def _protocol(args, mode: str, budget: Mapping, seeds: Sequence[int], device, ctx=None) -> dict:
    classes = list(args.classes) if args.classes else list(DEFAULT_CLASSES[args.dataset])
    return {
        "study": "real_features", "mode": mode, "dataset": args.dataset, "classes": classes,
        "seeds": list(seeds), "budget": dict(budget),
        "labels": "+1 for classes[0], -1 for classes[1]",
        "training": training_protocol(LOSSES, budget["lr"], budget["epochs"], budget["batch_size"]),
        "separability_rule": "exact predictions on the training points the network classifies "
                             "correctly (its own head separates them); dropped points and "
                             "all-zero feature rows are counted per seed",
        "heads": {"data": f"class-balanced subsample of at most {budget['head_points']} kept "
                          "training points per class",
                  "initialisation": "the same random (w, b) for every head (fit_linear "
                                    "init='random', seed = the run's seed)",
                  "differential": "all positive/negative pairs of the subsample, bias by the "
                                  "midpoint rule",
                  "steps": budget["steps"], "sweep_steps (normalized)": budget["sweep_steps"],
                  "lr": {"normalized": budget["head_lr"],
                         "constant": "fit_linear's default (half the stability bound at 0)"},
                  "predictions": "cross-entropy head -> cross_entropy_limit; differential head "
                                 "-> max_margin_separator (certified; a CertificationError "
                                 "is recorded as 'error')"},
        "offset_sweep": {"shift": "phi + c u in front of the head",
                         "directions": ["optimal_normal (unit normal of the optimal "
                                        "separator)", "feature_mean (unit mean feature)"],
                         "grid": f"0 and {budget['n_offsets'] - 1} log-spaced c up to the first "
                                 "doubling (from 0.1 RMS spread) with predicted ratio <= 0.5",
                         "heads": "cross-entropy: retrained at every c (normalized GD, "
                                  "sweep_steps); differential: the arm-A head with its midpoint "
                                  "bias on the shifted features (the pair loss cannot see the "
                                  "shift, so retraining gives the same weights up to rounding: "
                                  "measured per direction at the largest c with "
                                  f"{budget['shift_check_steps']} steps, "
                                  "'differential_shift_check'); its network is the same "
                                  "function of the image, so its input-space results are arm "
                                  "A's",
                         "norms": budget["sweep_norms"],
                         "splits": budget["sweep_splits"]},
        "attack": attack_protocol(budget["attack_steps"], EPS[args.dataset],
                                  {s: budget["n_attack"] for s in SPLITS}),
        "statistics": {"interval": "95% percentile bootstrap, resampling seeds then images",
                       "n_boot": budget["n_boot"],
                       "median": "numpy median of the pooled per-image norms (mean of the two "
                                 "middle values; a record's own median_norm is torch's lower "
                                 "median)",
                       "paired_difference": "cross-entropy minus differential, per image "
                                            "(same images for both heads of a seed)"},
        "software": software_protocol(device),
    }


def summarise(results: Mapping[str, Any]) -> dict:
    """Means and 95% bootstrap intervals of every arm; paired CE - differential differences.

    Parameters
    ----------
    results : mapping
        ``protocol`` and ``seeds`` as written by :func:`compute_study`.

    Returns
    -------
    dict
        ``feature_space`` (per key of :data:`FEATURE_KEYS`), ``input_space`` (arm A:
        retrained heads), ``end_to_end`` (arm C: feature space of both networks, input
        space), ``offset_sweep`` (arm B, per direction and grid point), ``claim`` (per arm,
        whether differential training lowered the share with an adversarial example at the
        middle reported eps, on every split and norm, with intervals excluding 0).

    Examples
    --------
    >>> res["summary"] = summarise(res)  # doctest: +SKIP
    """
    proto, seeds = results["protocol"], results["seeds"]
    n_boot = proto["budget"]["n_boot"]
    report = {n: proto["attack"]["eps_reported"][n] for n in NORMS}
    out: dict[str, Any] = {"n_seeds": len(seeds), "feature_space": {}}
    for k in FEATURE_KEYS:
        out["feature_space"][k] = seed_interval([s["feature_space"].get(k) for s in seeds], n_boot)
    certified = [s for s in seeds if "cross_entropy" in s["input_space"]]
    out["feature_space"]["n_seeds_certified"] = len(certified)
    out["feature_space"]["errors"] = [s["feature_space"]["error"] for s in seeds
                                      if "error" in s["feature_space"]]
    out["feature_space"]["errors"] += [
        f"seed {s['seed']}, offset sweep {u}: {v['error']}" for s in seeds
        for u, v in s.get("offset_sweep", {}).items() if "error" in v]
    out["feature_space"]["errors"] += [
        f"seed {s['seed']}, offset sweep {u}, c={p['c']:.4g}: {p['error']}" for s in seeds
        for u, v in s.get("offset_sweep", {}).items() for p in v.get("points", []) if "error" in p]
    out["feature_space"]["errors"] += [
        f"seed {s['seed']}, offset grid search {u}, c={e['c']:.4g}: {e['error']}" for s in seeds
        for u, v in s.get("offset_sweep", {}).items()
        for e in v.get("grid", {}).get("solver_errors", [])]

    def arm(getter, pool) -> dict:
        res = {}
        for split in SPLITS:
            for norm in NORMS:
                recs = [getter(s) for s in pool]
                if not recs or any(r is None or split not in r[0] or norm not in r[0][split]
                                   for r in recs):
                    continue
                res.setdefault(split, {})[norm] = compare_norms(
                    [r[0][split][norm] for r in recs], [r[1][split][norm] for r in recs],
                    report[norm], n_boot)
        return res

    out["input_space"] = arm(lambda s: (s["input_space"]["cross_entropy"],
                                        s["input_space"]["differential"]), certified)
    out["end_to_end"] = {
        "feature_space": {loss: {k: seed_interval([s["end_to_end"]["feature_space"][loss].get(k)
                                           for s in seeds], n_boot)
                                 for k in ("optimal_margin", "ce_limit_margin", "ratio_predicted",
                                           "network_head_margin", "effective_rank",
                                           "hyperplane_origin_distance")} for loss in LOSSES},
        "input_space": arm(lambda s: (s["end_to_end"]["input_space"]["cross_entropy"],
                                      s["end_to_end"]["input_space"]["differential"]), seeds)}
    out["offset_sweep"] = _sweep_summary(certified, n_boot, report)
    out["heads_on_predictions"] = heads_on_predictions(certified)
    out["claim"] = {name: claim_verdict(out[name] if name != "end_to_end" else out[name]["input_space"],
                                 report) for name in ("input_space", "end_to_end")}
    out["claim"]["offset_sweep_tracks_prediction"] = out["offset_sweep"].get("tracking")
    return out


def heads_on_predictions(seeds: Sequence[Mapping], tol: float = 1e-3) -> dict:
    """Do the retrained heads sit on the predictions, in arm A and at every arm-B shift?

    Parameters
    ----------
    seeds : sequence of mapping
        Seed entries with certified predictions.
    tol : float
        Relative distance of the differential head's margin from the optimal margin.

    Returns
    -------
    dict
        ``tol``; ``differential``: ``n``, ``n_within_tol``, ``worst_ratio`` (margin /
        optimal margin, the farthest from 1); ``cross_entropy``: ``n``, ``n_separated``
        (heads that separate their features), ``n_at_or_below`` (of those, margin <=
        CE-limit margin (1 + 1e-9)), ``lowest_ratio``, ``highest_ratio`` (margin / CE-limit
        margin), ``n_approaching`` (heads whose signed margin at the last step is at least
        the one recorded at a tenth of the steps; from the head's history, where the
        results hold it).

    Examples
    --------
    >>> fs = {"optimal_margin": 2.0, "ce_limit_margin": 1.0, "differential_head_margin": 1.999,
    ...       "ce_head_margin": 0.98}
    >>> r = heads_on_predictions([{"feature_space": fs, "offset_sweep": {}}])
    >>> r["differential"]["n_within_tol"], r["differential"]["worst_ratio"]
    (1, 0.9995)
    >>> r["cross_entropy"]["n_at_or_below"], r["cross_entropy"]["lowest_ratio"]
    (1, 0.98)
    """
    pts, histories = [], []
    for s in seeds:
        fs = s["feature_space"]
        pts.append(fs)
        histories.append(fs.get("heads", {}).get("normalized_cross_entropy", {}).get("history"))
        for v in s.get("offset_sweep", {}).values():
            for p in v.get("points", []):
                if "ce_head_margin" in p:
                    pts.append(p)
                    histories.append(p.get("ce_head_history"))
    diff = [p["differential_head_margin"] / p["optimal_margin"]
            if p.get("differential_head_margin") is not None else None for p in pts]
    ce = [p["ce_head_margin"] / p["ce_limit_margin"] if p.get("ce_head_margin") is not None
          else None for p in pts]
    d_ok, c_ok = [r for r in diff if r is not None], [r for r in ce if r is not None]
    approaching = [_rising(h) for h in histories if h]
    return {"tol": tol,
            "differential": {"n": len(diff), "n_within_tol": sum(abs(r - 1) <= tol for r in d_ok),
                             "worst_ratio": max(d_ok, key=lambda r: abs(r - 1)) if d_ok else None},
            "cross_entropy": {"n": len(ce), "n_separated": len(c_ok),
                              "n_at_or_below": sum(r <= 1 + 1e-9 for r in c_ok),
                              "lowest_ratio": min(c_ok) if c_ok else None,
                              "highest_ratio": max(c_ok) if c_ok else None,
                              "n_with_history": len(approaching),
                              "n_approaching": sum(approaching)}}


def _rising(history: Mapping) -> bool:
    """Signed margin at the last recorded step >= the one at about a tenth of the steps."""
    steps, margins = history["step"], history["margin"]
    early = max((k for k, st in enumerate(steps) if st <= steps[-1] / 10), default=0)
    return bool(margins[-1] >= margins[early])


def _sweep_summary(seeds: Sequence[Mapping], n_boot: int, report: Mapping) -> dict:
    out: dict[str, Any] = {}
    pairs = []
    for u_name in ("optimal_normal", "feature_mean"):
        runs = [s["offset_sweep"].get(u_name, {}) for s in seeds if "offset_sweep" in s]
        runs = [r for r in runs if "points" in r]
        if not runs:
            continue
        n_pts = min(len(r["points"]) for r in runs)
        rows = []
        for i in range(n_pts):
            pts = [r["points"][i] for r in runs]
            row = {"c": seed_interval([p["c"] for p in pts], n_boot),
                   "ratio_predicted": seed_interval([p.get("ratio_predicted") for p in pts], n_boot),
                   "ratio_lower_bound": seed_interval([p.get("ratio_lower_bound") for p in pts], n_boot),
                   "hyperplane_origin_distance": seed_interval(
                       [p.get("hyperplane_origin_distance") for p in pts], n_boot)}
            for loss in LOSSES:
                row[f"{loss}_head_ratio"] = seed_interval(
                    [p.get("ce_head_margin" if loss == "cross_entropy" else
                           "differential_head_margin") / p["optimal_margin"]
                     if p.get("optimal_margin") and p.get("ce_head_margin" if loss == "cross_entropy"
                                                         else "differential_head_margin")
                     is not None else None for p in pts], n_boot)
            sp = [p for p in pts if "input_space" in p]
            if sp:
                split = next(iter(sp[0]["input_space"]["cross_entropy"]))
                norm = next(iter(sp[0]["input_space"]["cross_entropy"][split]))
                ce = [norms_of(p["input_space"]["cross_entropy"][split][norm]) for p in sp]
                df = [norms_of(p["input_space"]["differential"][split][norm]) for p in sp]
                # only where both heads separate their features and both medians are finite
                ok = [p.get("ce_head_margin") is not None and p.get("differential_head_margin")
                      is not None for p in sp]
                ratio = [float(np.median(b) / np.median(a))
                         if good and 0 < np.median(a) < np.inf and np.isfinite(np.median(b))
                         else None for a, b, good in zip(ce, df, ok, strict=True)]
                row["median_norm_ratio_differential_over_ce"] = {
                    "split": split, "norm": norm, **(seed_interval(ratio, n_boot) or {})}
                pairs += [(p.get("ratio_predicted"), r) for p, r in zip(sp, ratio, strict=True)]
            rows.append(row)
        out[u_name] = rows
    good = [(a, b) for a, b in pairs if a is not None and b is not None and np.isfinite(b)]
    if len(good) >= 3:
        a, b = np.array(good).T
        rho = float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])
        out["tracking"] = {"spearman_predicted_ratio_vs_median_norm_ratio": rho,
                           "n_points": len(good),
                           "reading": "the theory predicts a negative correlation: a lower "
                                      "predicted ratio, a larger differential/CE norm ratio"}
    return out


def curve_rows(results: Mapping[str, Any]) -> list[dict]:
    """CSV rows: one per seed, arm, head, split, norm and eps (share with an adversarial example).

    Parameters
    ----------
    results : mapping
        Holds ``seeds``.

    Returns
    -------
    list of dict

    Examples
    --------
    >>> rec = {"test": {"l2": {"eps": [0.0, 1.0], "share": [0.0, 0.5]}}}
    >>> seed = {"seed": 0, "input_space": {"differential": rec},
    ...         "end_to_end": {"input_space": {}}}
    >>> curve_rows({"seeds": [seed]})[1]["share_adversarial"]
    0.5
    """
    rows = []
    for s in results["seeds"]:
        sources = [("A", k, v) for k, v in s["input_space"].items()]
        sources += [("C", k, v) for k, v in s["end_to_end"]["input_space"].items()]
        for arm, head, recs in sources:
            rows += share_rows({"seed": s["seed"], "arm": arm, "head": head}, recs)
    return rows


def report_lines(results: Mapping[str, Any]) -> list[str]:
    """Headline numbers with 95% intervals, per arm.

    Parameters
    ----------
    results : mapping
        Results with their ``summary``.

    Returns
    -------
    list of str

    Examples
    --------
    >>> for line in report_lines(res):  # doctest: +SKIP
    ...     print(line)
    """
    s = results["summary"]
    fmt = format_interval
    fs = s["feature_space"]
    lines = [f"seeds: {s['n_seeds']} (certified predictions: {fs['n_seeds_certified']})"]
    lines += [f"solver error (reported, not hidden): {e}" for e in fs["errors"]]
    for k in FEATURE_KEYS:
        lines.append(f"A {k:28s} {fmt(fs[k])}")
    lines += comparison_lines("A heads", s["input_space"])
    lines += comparison_lines("C networks", s["end_to_end"]["input_space"])
    for u_name in ("optimal_normal", "feature_mean"):
        for row in s["offset_sweep"].get(u_name, []):
            nr = row.get("median_norm_ratio_differential_over_ce")
            lines.append(f"B {u_name} c={fmt(row['c'], '.3g')}: predicted {fmt(row['ratio_predicted'])}"
                         f"  CE head {fmt(row['cross_entropy_head_ratio'])}"
                         f"  diff head {fmt(row['differential_head_ratio'])}"
                         + (f"  norm ratio diff/CE {fmt(nr, '.3f')}" if nr and "estimate" in nr else ""))
    hp = s.get("heads_on_predictions")
    if hp:
        d, c = hp["differential"], hp["cross_entropy"]
        lines.append(f"A+B heads: differential within {hp['tol']:g} of optimal in "
                     f"{d['n_within_tol']}/{d['n']} (ratio farthest from 1: "
                     f"{d['worst_ratio']:.5f}); CE separating in {c['n_separated']}/{c['n']}, "
                     f"at or below its limit in {c['n_at_or_below']}/{c['n_separated']} (ratio "
                     f"{c['lowest_ratio']:.4f} .. {c['highest_ratio']:.4f}), margin still "
                     f"rising in {c['n_approaching']}/{c['n_with_history']}")
    for k, v in s["claim"].items():
        if isinstance(v, dict) and "statement" in v:
            lines.append(f"claim, {k}: {v['statement']}")
    if s["claim"].get("offset_sweep_tracks_prediction"):
        t = s["claim"]["offset_sweep_tracks_prediction"]
        lines.append(f"B tracking: Spearman {t['spearman_predicted_ratio_vs_median_norm_ratio']:+.2f} "
                     f"over {t['n_points']} points")
    lines.append(runtime_line(results))
    return lines


def share_bands(results: Mapping[str, Any], source: str, head: str, split: str, norm: str,
                n_boot: int = 500) -> dict | None:
    """Share-vs-eps curve with a bootstrap band over seeds and images (for the figures)."""
    return share_band([r for s in results["seeds"] if (r := (
        s["input_space"] if source == "A" else s["end_to_end"]["input_space"]).get(
            head, {}).get(split, {}).get(norm)) is not None], n_boot)

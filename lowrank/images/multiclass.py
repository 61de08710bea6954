"""Ten classes: cross-entropy against one-vs-rest differential training on a real image task.

The multi-class counterpart of :mod:`lowrank.images.real_features`, per seed:

* **End to end** (arm C): one C-class network trained from one initialisation with softmax
  cross-entropy and with the one-vs-rest differential loss
  (:func:`lowrank.losses.multiclass_differential_loss`, offsets set after training by
  :func:`lowrank.train.multiclass_offsets`); clean accuracy on train and test.
* **Feature space**, for each network: on the penultimate features of the training points
  it classifies correctly (class-balanced subsample), the exact predictions
  (:func:`~lowrank.images.multiclass_heads.multiclass_feature_predictions`: optimal
  Crammer–Singer margin, cross-entropy limit, one-vs-rest differential limit) against the
  multi-class margin of the network's own head.
* **Last layer** (arm A), on the cross-entropy network's features: C-class heads retrained
  from one initialisation with each loss (normalized gradient descent), their margins
  against the predictions, and each head put back on the backbone.
* **Input space**: minimum-norm adversarial perturbations (L2, L-infinity; train and test
  subsamples) of both networks and both retrained heads, through the multi-class
  decision ``argmax`` (:func:`lowrank.attacks.min_norm_attack`).

:func:`summarise` gives every quantity with a 95% bootstrap interval over seeds and images
and the paired cross-entropy minus differential differences of the share of images with
an adversarial example; every piece is cached (a rerun resumes per seed).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..analysis.multiclass import multiclass_margin
from ..cli import study_mode
from ..models import build_model
from ..train import fitted_offsets, multiclass_offsets, predict_scores
from .binary import LOSSES, run_name, run_seeds, train_networks, with_threads
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
from .heads import head_on_backbone, separable_subset
from .multiclass_heads import multiclass_feature_predictions, retrain_multiclass_head
from .protocol import attack_protocol, software_protocol, training_protocol
from .robustness import cached, robustness
from .tasks import EPS, NORMS, SPLITS, balanced_subset, classes_slug, load_multiclass_task, subsample_indices

__all__ = ["MODES", "FEATURE_KEYS", "HEAD_KEYS", "study_name", "compute_study", "run_seed",
           "summarise", "curve_rows", "report_lines", "share_bands"]

#: Budgets per mode. ``max_train`` training images (class-balanced), ``head_points`` kept
#: training points per class for the exact predictions and the retrained heads,
#: ``n_attack`` images per split attacked. Full mode: about 8 min per seed on one CPU core
#: (attacks about half of it: targeted PGD towards every other class). "tiny" is for the
#: test suite only.
MODES = {
    "full": {"model": "cnn", "width": 8, "feature_dim": 32, "epochs": 15, "batch_size": 120,
             "lr": 1e-3, "max_train": 10000, "spectrum_samples": 1000, "seeds": 5,
             "n_attack": 50, "attack_steps": 60, "head_points": 60,
             "head_steps": {"cross_entropy": 200000, "differential": 3000}, "n_boot": 2000,
             "offset_rule": "fitted"},
    "quick": {"model": "cnn", "width": 8, "feature_dim": 32, "epochs": 2, "batch_size": 120,
              "lr": 1e-3, "max_train": 3000, "spectrum_samples": 500, "seeds": 1,
              "n_attack": 20, "attack_steps": 30, "head_points": 20,
              "head_steps": {"cross_entropy": 20000, "differential": 1000}, "n_boot": 500,
              "offset_rule": "fitted"},
    "tiny": {"model": "mlp", "width": 8, "feature_dim": 8, "epochs": 3, "batch_size": 12,
             "lr": 3e-3, "max_train": 90, "spectrum_samples": 32, "seeds": 1,
             "n_attack": 4, "attack_steps": 10, "head_points": 6,
             "head_steps": {"cross_entropy": 300, "differential": 100}, "n_boot": 100,
             "offset_rule": "fitted"},
}

#: Per-network feature-space scalars that the summary gives with intervals.
FEATURE_KEYS = ("train_acc", "test_acc", "optimal_margin", "ce_limit_margin", "ratio_predicted",
                "ovr_limit_margin", "ratio_ovr_predicted", "network_head_margin",
                "network_head_ratio", "effective_rank", "offset_in_spreads",
                "origin_distance_max", "origin_distance_median", "ce_limit_outside_span")
#: Retrained-head scalars (arm A) that the summary gives with intervals.
HEAD_KEYS = ("margin", "ratio_to_optimal", "ratio_to_prediction", "cosine")


def study_name(args: argparse.Namespace) -> str:
    """``image_multiclass_<dataset>_<classes>`` (``all`` for every class; plus ``_quick`` / ``_tiny``).

    Parameters
    ----------
    args : argparse.Namespace
        ``dataset``, ``classes``, ``tiny``, ``quick``.

    Returns
    -------
    str

    Examples
    --------
    >>> a = argparse.Namespace(dataset="fashion_mnist", classes=None, tiny=False, quick=True)
    >>> study_name(a)
    'image_multiclass_fashion_mnist_all_quick'
    """
    return run_name("image_multiclass", args, study_mode(args), classes_slug(args.dataset, args.classes))


def _features_of(model, scores, F, y, head_points: int, n_classes: int, seed: int) -> dict:
    """The separability rule and the class-balanced subsample of one network's training features."""
    scores, F, y = scores.double().cpu(), F.double().cpu(), y.cpu()
    rule = separable_subset(F, y, scores)
    kept = rule.pop("indices")
    sub = kept[balanced_subset(y[kept], n_classes * head_points, seed)]
    present = torch.bincount(y[sub], minlength=n_classes)
    W = model.head.weight.detach().double().cpu()
    b = model.head.bias.detach().double().cpu()
    return {"F": F[sub], "y": y[sub], "head": (W, b),
            "rule": dict(rule, n_head_points=int(len(sub)), per_class=present.tolist())}


def _feature_space(fs: Mapping, pred: Mapping) -> dict:
    """Predictions and the network's own head on its feature subsample (JSON-ready)."""
    out = {k: v for k, v in pred.items() if not k.endswith(("_W", "_b"))}
    out["separability"] = fs["rule"]
    W, b = fs["head"]
    own = multiclass_margin(W, b, fs["F"], fs["y"])
    out["network_head_margin"] = own
    opt = pred.get("optimal_margin")
    out["network_head_ratio"] = own / opt if opt else None
    return out


def run_seed(ctx: Mapping[str, Any], seed: int) -> dict:
    """Both networks, their feature-space predictions, the retrained heads and the attacks.

    Parameters
    ----------
    ctx : mapping
        ``args``, ``budget``, ``device``, ``cache``, ``out``, ``name``, ``task``, ``eps_cfg``.
    seed : int

    Returns
    -------
    dict
        The seed's entry (``networks``, ``feature_space``, ``heads``, ``input_space``).

    Examples
    --------
    Called by :func:`compute_study` for each seed; ``tests/test_image_multiclass.py`` runs
    it on tiny archives.

    >>> entry = run_seed(ctx, 0)  # doctest: +SKIP
    """
    args, budget, device, cache, task = (ctx[k] for k in ("args", "budget", "device", "cache", "task"))
    C = len(task.classes)
    keep = balanced_subset(task.y_train, budget["max_train"], seed + 3)
    x_tr, y_tr = task.x_train[keep].to(device), task.y_train[keep].to(device)
    x_te, y_te = task.x_test.to(device), task.y_test.to(device)
    splits = {"train": (x_tr, y_tr), "test": (x_te, y_te)}
    att_idx = {"train": subsample_indices(len(x_tr), budget["n_attack"], seed + 1),
               "test": subsample_indices(len(x_te), budget["n_attack"], seed + 2)}
    torch.manual_seed(seed)
    init = build_model(budget["model"], tuple(x_tr.shape[1:]), width=budget["width"],
                       feature_dim=budget["feature_dim"], n_classes=C, device=device)
    nets = train_networks(init, x_tr, y_tr, budget, seed,
                          Path(ctx["out"]) / ".runs" / ctx["name"] / f"seed{seed}", device,
                          quiet=args.quiet)
    # the head step budget keys only the heads and the attacks on them (raising it reruns those)
    key = {"seed": seed, "dataset": args.dataset, "classes": list(task.classes),
           "n_train": int(len(x_tr)),
           "budget": {k: v for k, v in budget.items() if k not in ("n_boot", "head_steps")}}

    def attack(model, what: Mapping) -> dict:
        return robustness(model, splits, att_idx, ctx["eps_cfg"], budget["attack_steps"],
                          dict(key, **what), cache, seed=seed, quiet=args.quiet)["attacks"]

    entry: dict[str, Any] = {"seed": seed, "networks": {}, "feature_space": {}, "heads": {},
                             "input_space": {"networks": {}, "heads": {}}}
    subsets = {}
    for loss, res in nets.items():
        model = res.model.eval()
        train_scores, train_features = predict_scores(model, x_tr, features=True)
        test_scores = predict_scores(model, x_te)
        test_pred = test_scores.argmax(dim=1)
        entry["networks"][loss] = {
            "epochs": len(res.history), "bias_rule": res.bias_rule,
            "train_acc": res.history[-1]["train_acc"] if res.history else None,
            "test_acc": float((test_pred == y_te).double().mean()),
            "history": [{k: h[k] for k in ("epoch", "loss", "train_acc", "effective_rank") if k in h}
                        for h in res.history]}
        if loss == "differential":  # the accuracy the theory's midpoint offsets would give
            entry["networks"][loss]["midpoint_offsets"] = _midpoint_accuracy(
                train_scores, y_tr, test_scores, y_te, model.head.bias.detach())
        fs = _features_of(model, train_scores, train_features, y_tr, budget["head_points"], C, seed + 5)
        subsets[loss] = fs
        if min(fs["rule"]["per_class"]) == 0:
            pred = {"certified": False, "error": "ValueError: a class has no correctly classified "
                                                 "training point"}
        else:
            pred = cached(cache, dict(key, what="predictions", net=loss),
                          lambda fs=fs: multiclass_feature_predictions(fs["F"], fs["y"]))
        feat = _feature_space(fs, pred)
        feat.update({k: entry["networks"][loss][k] for k in ("train_acc", "test_acc")})
        entry["feature_space"][loss] = feat
        if loss == "cross_entropy" and pred.get("certified"):
            entry["heads"] = _retrained_heads(fs, pred, budget, seed, cache, key, args.quiet)
            for head_loss, h in entry["heads"].items():
                entry["input_space"]["heads"][head_loss] = attack(
                    head_on_backbone(model, h["W"], h["b_on_backbone"]),
                    {"net": loss, "head": head_loss, "offsets": h.get("offset_rule", "trained"),
                     "head_steps": h["steps"]})
        entry["input_space"]["networks"][loss] = attack(model, {"net": loss})
    return entry


def _midpoint_accuracy(train_scores, y_train, test_scores, y_test, bias) -> dict:
    """Train and test accuracy with the network's offsets replaced by the per-class midpoints."""
    raw = train_scores - bias
    mid = multiclass_offsets(raw, y_train).to(raw)
    out = {"offsets": mid.tolist(),
           "train_acc": float(((raw + mid).argmax(1) == y_train).double().mean())}
    out["test_acc"] = float(((test_scores - bias + mid).argmax(1) == y_test).double().mean())
    return out


def _retrained_heads(fs: Mapping, pred: Mapping, budget: Mapping, seed: int, cache, key: Mapping,
                     quiet: bool) -> dict:
    """Both heads on the cross-entropy network's features, with their margins against the predictions."""
    out = {}
    for loss in LOSSES:
        # the cross-entropy head tends to the cross-entropy limit; the differential head to
        # the one-vs-rest limit (the optimal separator where one class is not separable from
        # the rest and that limit is undefined)
        name = "ce_limit" if loss == "cross_entropy" else (
            "ovr_limit" if pred.get("ovr_limit_margin") is not None else "optimal")
        steps = budget["head_steps"][loss]
        h = cached(cache, dict(key, what="head", head=loss, steps=steps),
                   lambda loss=loss, steps=steps, name=name: retrain_multiclass_head(
                       fs["F"], fs["y"], loss, steps, seed=seed, reference=pred[f"{name}_W"],
                       quiet=quiet))
        m = h["margin"]
        out[loss] = dict(h, prediction=name, predicted_margin=pred[f"{name}_margin"],
                         ratio_to_optimal=m / pred["optimal_margin"] if m is not None else None,
                         ratio_to_prediction=m / pred[f"{name}_margin"] if m is not None else None)
        if loss == "differential":  # the offsets the network gets on the backbone (budget rule)
            W = torch.tensor(h["W"], dtype=torch.float64)
            b = (fitted_offsets(fs["F"] @ W.T, fs["y"]) if budget.get("offset_rule") == "fitted"
                 else torch.tensor(h["b"], dtype=torch.float64))
            out[loss].update(b_on_backbone=b.tolist(), offset_rule=budget.get("offset_rule", "midpoint"),
                             signed_margin_on_backbone=multiclass_margin(W, b, fs["F"], fs["y"]))
        else:
            out[loss]["b_on_backbone"] = h["b"]
    return out


def compute_study(args: argparse.Namespace) -> dict:
    """All seeds of the study for parsed arguments, with the protocol and the summary.

    Parameters
    ----------
    args : argparse.Namespace
        The common study options, :func:`lowrank.images.tasks.add_image_arguments` (with
        ``pair=False``) and ``seeds``.

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
    return run_seeds(args, MODES, study_name(args), run_seed, _protocol, summarise, setup=_setup)


def _setup(args: argparse.Namespace, budget: dict) -> dict:
    """Load the task once for all seeds; at least one image of each class per batch."""
    if args.classes is not None and len(args.classes) < 3:
        raise ValueError(f"--classes: the multi-class study needs at least three classes, got "
                         f"{list(args.classes)}; for two classes use studies/real_features.py")
    task = load_multiclass_task(args.dataset, args.classes, args.data_dir, args.checksums,
                                args.download, args.quiet)
    if budget["batch_size"] < len(task.classes):
        budget["batch_size"] = 2 * len(task.classes)
    return {"task": task}


def _protocol(args, mode: str, budget: Mapping, seeds: Sequence[int], device, ctx) -> dict:
    task = ctx["task"]
    C = len(task.classes)
    training = training_protocol(LOSSES, budget["lr"], budget["epochs"], budget["batch_size"])
    training.update({
        "batches": f"class-balanced: batch_size // C = {budget['batch_size'] // C} images of each class",
        "cross_entropy": "softmax cross-entropy, mean over the batch, offsets trained",
        "differential_loss": "one-vs-rest: for every class c, mean over the batch's pairs (i in c, "
                             "j not in c) of log(1 + exp(-(s_c(x_i) - s_c(x_j)))), summed as "
                             "lowrank.losses.multiclass_differential_loss does",
        "bias": "cross-entropy: trained; differential: offsets by the budget's offset_rule "
                "('fitted': minimising the softmax cross-entropy over the offsets alone, "
                "lowrank.train.fitted_offsets; 'midpoint': lowrank.train.multiclass_offsets); "
                "the accuracy with midpoint offsets is recorded beside it"})
    return {
        "name": ctx["name"], "study": "image_multiclass", "mode": mode, "dataset": args.dataset,
        "classes": list(task.classes), "n_classes": C, "seeds": list(seeds), "budget": dict(budget),
        "labels": "class c is classes[c]", "data": task.summary(),
        "training_subset": f"class-balanced, {budget['max_train']} images ({budget['max_train'] // C} "
                           "per class), drawn per seed",
        "training": training,
        "separability_rule": "exact predictions on the training points the network classifies "
                             "correctly (argmax; its own head separates them), a class-balanced "
                             f"subsample of at most {budget['head_points']} per class",
        "predictions": {"optimal": "Crammer-Singer hard margin, free offsets (certified)",
                        "ce_limit": "the same with offsets penalised (augmented points), the "
                                    "direction of softmax cross-entropy (certified)",
                        "ovr_limit": "one-vs-rest differential limit: per class the free-bias "
                                     "binary SVM against the rest; undefined (None, reason "
                                     "recorded) when a class is not separable from the rest"},
        "heads": {"backbone": "the cross-entropy network", "initialisation":
                  "the same random (W, b) for both heads (fit_multiclass init='random', seed = "
                  "the run's seed)", "schedule": "normalized gradient descent (fit_multiclass "
                                                 "defaults)", "steps": budget["head_steps"],
                  "references": "cross-entropy head -> ce_limit; differential head -> ovr_limit",
                  "offsets": "margins against the predictions with the theory's offsets "
                             "(trained; midpoint); on the backbone the differential head gets "
                             "offsets by the budget's offset_rule"},
        "attack": attack_protocol(budget["attack_steps"], EPS[args.dataset],
                                  {s: budget["n_attack"] for s in SPLITS}),
        "multiclass_attack": "decision argmax_c s_c(x); attacks see s(x) / |s_y(x_clean) - "
                             "max_{c != y} s_c(x_clean)| (scale-free); an adversarial example is "
                             "any misclassification (untargeted)",
        "statistics": {"interval": "95% percentile bootstrap, resampling seeds then images",
                       "n_boot": budget["n_boot"],
                       "paired_difference": "cross-entropy minus differential, per image (the "
                                            "same images for every model of a seed)"},
        "software": software_protocol(device),
    }


def summarise(results: Mapping[str, Any]) -> dict:
    """Means and 95% bootstrap intervals; paired cross-entropy - differential differences.

    Parameters
    ----------
    results : mapping
        ``protocol`` and ``seeds`` as written by :func:`compute_study`.

    Returns
    -------
    dict
        ``feature_space`` (per network, per key of :data:`FEATURE_KEYS`), ``heads`` (per
        retrained head, per key of :data:`HEAD_KEYS`), ``input_space`` (``networks`` and
        ``heads``: median norms of both and the paired share differences per split, norm
        and reported eps), ``claim`` (per comparison: whether differential training lowered
        the share with an adversarial example at the middle reported eps on every split and
        norm, intervals excluding 0), ``errors`` (solver failures, listed).

    Examples
    --------
    >>> res["summary"] = summarise(res)  # doctest: +SKIP
    """
    proto, seeds = results["protocol"], results["seeds"]
    n_boot = proto["budget"]["n_boot"]
    report = {n: proto["attack"]["eps_reported"][n] for n in NORMS}
    out: dict[str, Any] = {"n_seeds": len(seeds), "feature_space": {}, "heads": {}, "input_space": {}}
    for loss in LOSSES:
        out["feature_space"][loss] = {
            k: seed_interval([s["feature_space"][loss].get(k) for s in seeds], n_boot)
            for k in FEATURE_KEYS}
    with_heads = [s for s in seeds if s["heads"]]
    for loss in LOSSES:
        out["heads"][loss] = {k: seed_interval([s["heads"][loss].get(k) for s in with_heads], n_boot)
                              for k in HEAD_KEYS}
        out["heads"][loss]["n_separated"] = sum(bool(s["heads"][loss]["separated"]) for s in with_heads)
    out["heads"]["n_seeds"] = len(with_heads)
    out["errors"] = [f"seed {s['seed']}, {loss} network: {s['feature_space'][loss][e]}" for s in seeds
                     for loss in LOSSES for e in ("error", "ovr_error") if e in s["feature_space"][loss]]
    for source, pool in (("networks", seeds), ("heads", with_heads)):
        res: dict = {}
        for split in SPLITS:
            for norm in NORMS:
                recs = [s["input_space"][source] for s in pool]
                if recs and all(split in r.get(loss, {}) and norm in r[loss][split]
                                for r in recs for loss in LOSSES):
                    res.setdefault(split, {})[norm] = compare_norms(
                        [r["cross_entropy"][split][norm] for r in recs],
                        [r["differential"][split][norm] for r in recs], report[norm], n_boot)
        out["input_space"][source] = res
    out["claim"] = {source: claim_verdict(out["input_space"][source], report)
                    for source in ("networks", "heads")}
    return out


def curve_rows(results: Mapping[str, Any]) -> list[dict]:
    """CSV rows: one per seed, source (network or retrained head), loss, split, norm and eps.

    Parameters
    ----------
    results : mapping
        Holds ``seeds``.

    Returns
    -------
    list of dict
        ``seed``, ``source``, ``loss``, ``split``, ``norm``, ``eps``, ``share_adversarial``.

    Examples
    --------
    >>> rec = {"test": {"l2": {"eps": [0.0, 1.0], "share": [0.0, 0.5]}}}
    >>> seed = {"seed": 0, "input_space": {"networks": {"differential": rec}, "heads": {}}}
    >>> curve_rows({"seeds": [seed]})[1]["share_adversarial"]
    0.5
    """
    rows = []
    for s in results["seeds"]:
        for source, per_loss in s["input_space"].items():
            for loss, recs in per_loss.items():
                rows += share_rows({"seed": s["seed"], "source": source, "loss": loss}, recs)
    return rows


def report_lines(results: Mapping[str, Any]) -> list[str]:
    """Headline numbers with 95% intervals.

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
    lines = [f"seeds: {s['n_seeds']} (retrained heads on {s['heads']['n_seeds']})"]
    lines += [f"solver (reported, not hidden): {e}" for e in s["errors"]]
    for loss in LOSSES:
        fs = s["feature_space"][loss]
        lines.append(f"{loss} network: train acc {fmt(fs['train_acc'])}  test acc {fmt(fs['test_acc'])}")
        lines.append(f"    predicted ratio CE-limit/optimal {fmt(fs['ratio_predicted'])}  "
                     f"OvR-limit/optimal {fmt(fs['ratio_ovr_predicted'])}  own head/optimal "
                     f"{fmt(fs['network_head_ratio'])}  "
                     f"offset/spread {fmt(fs['offset_in_spreads'], '.3g')}")
    for loss in LOSSES:
        h = s["heads"][loss]
        lines.append(f"retrained {loss} head: margin/prediction {fmt(h['ratio_to_prediction'])}  "
                     f"margin/optimal {fmt(h['ratio_to_optimal'])}  cosine {fmt(h['cosine'])}")
    for source, arm in s["input_space"].items():
        lines += comparison_lines(source, arm)
    lines += [f"claim, {k}: {v['statement']}" for k, v in s["claim"].items()]
    lines.append(runtime_line(results))
    return lines


def share_bands(results: Mapping[str, Any], source: str, loss: str, split: str, norm: str,
                n_boot: int = 500) -> dict | None:
    """Share-vs-eps curve with a 95% bootstrap band over seeds and images (for the figure).

    Parameters
    ----------
    results : mapping
    source : {"networks", "heads"}
    loss : {"cross_entropy", "differential"}
    split : {"train", "test"}
    norm : {"l2", "linf"}
    n_boot : int

    Returns
    -------
    dict or None
        :func:`lowrank.analysis.bootstrap.bootstrap_curve` of the per-seed norms (None if
        no seed has that record).

    Examples
    --------
    >>> rec = {"eps": [0.0, 1.0], "norms": [0.5, 2.0]}
    >>> seed = {"input_space": {"networks": {"differential": {"test": {"l2": rec}}}}}
    >>> share_bands({"seeds": [seed]}, "networks", "differential", "test", "l2", 50)["share"]
    [0.0, 0.5]
    """
    return share_band([r for s in results["seeds"] if (
        r := s["input_space"].get(source, {}).get(loss, {}).get(split, {}).get(norm))], n_boot)

"""Cross-entropy against differential training of one network, end to end, on an image task.

The library side of ``studies/image_binary.py``: the budgets of each mode
(:data:`MODES`), the run's name (:func:`run_name`), training both networks from one
initialisation (:func:`train_networks`), and :func:`compare_losses`, which measures clean
accuracy, feature spectra and input-space robustness of both and returns the results
dict (protocol first). :func:`summary`, :func:`curve_rows` and :func:`report_lines`
derive the summary, the CSV rows and the printed lines from it.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..cli import study_mode
from ..device import resolve_device
from ..models import build_model
from ..progress import progress
from ..sweep import ResultCache
from ..train import DeepTrainConfig, DeepTrainResult, predict_scores, train_deep
from .protocol import attack_protocol, software_protocol, training_protocol
from .robustness import robustness
from .tasks import EPS, NORMS, SPLITS, balanced_subset, load_task, pair_slug, subsample_indices

__all__ = ["LOSSES", "MODES", "train_networks", "run_seeds", "study_name", "compute_study", "plot_study",
           "compare_losses", "summary", "curve_rows", "report_lines"]

LOSSES = ("cross_entropy", "differential")

#: Budgets per mode of the end-to-end comparison. "tiny" is for the test suite only.
MODES = {
    "full": {"model": "cnn", "width": 8, "feature_dim": 32, "epochs": 8, "batch_size": 128,
             "lr": 1e-3, "n_attack": 250, "attack_steps": 60, "pgd_steps": 20,
             "max_train": None, "spectrum_samples": 2000},
    "quick": {"model": "cnn", "width": 8, "feature_dim": 32, "epochs": 3, "batch_size": 128,
              "lr": 1e-3, "n_attack": 100, "attack_steps": 50, "pgd_steps": 20,
              "max_train": 4000, "spectrum_samples": 1000},
    "tiny": {"model": "mlp", "width": 8, "feature_dim": 8, "epochs": 3, "batch_size": 8,
             "lr": 3e-3, "n_attack": 8, "attack_steps": 40, "pgd_steps": 5,
             "max_train": 64, "spectrum_samples": 64},
}


def budget_of(modes: Mapping[str, Mapping[str, Any]], mode: str,
              args: argparse.Namespace) -> dict:
    """The budget of ``mode`` with the command-line overrides (``--model``, ``--epochs``, ...).

    Examples
    --------
    >>> a = argparse.Namespace(model=None, epochs=5, n_attack=None)
    >>> budget_of(MODES, "tiny", a)["epochs"], budget_of(MODES, "tiny", a)["model"]
    (5, 'mlp')
    """
    budget = dict(modes[mode])
    for k in ("model", "epochs", "n_attack"):
        if getattr(args, k, None) is not None:
            budget[k] = getattr(args, k)
    return budget


def run_name(prefix: str, args: argparse.Namespace, mode: str, slug: str | None = None) -> str:
    """``<prefix>_<dataset>_<pair>`` (plus ``_<mode>`` outside full mode).

    ``slug`` replaces the pair's part (e.g. :func:`lowrank.images.tasks.classes_slug` of a
    multi-class run).

    Examples
    --------
    >>> a = argparse.Namespace(dataset="fashion_mnist", classes=None)
    >>> run_name("image", a, "quick")
    'image_fashion_mnist_shirt_vs_t-shirt-top_quick'
    """
    from .tasks import DEFAULT_CLASSES

    if slug is None:
        slug = pair_slug(tuple(args.classes) if args.classes else DEFAULT_CLASSES[args.dataset])
    return f"{prefix}_{args.dataset}_{slug}" + ("" if mode == "full" else f"_{mode}")


def with_threads(threads: int | None, fn, *a, **kw):
    """``fn(*a, **kw)`` with torch's CPU thread count set to ``threads`` (restored afterwards)."""
    old = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        return fn(*a, **kw)
    finally:
        torch.set_num_threads(old)


def run_seeds(args: argparse.Namespace, modes: Mapping[str, Mapping[str, Any]], name: str,
              run_seed: Callable[[Mapping[str, Any], int], dict],
              make_protocol: Callable[..., dict], summarise: Callable[[Mapping[str, Any]], dict],
              setup: Callable[[argparse.Namespace, dict], Mapping[str, Any]] | None = None) -> dict:
    """The shared driver of the seeded image studies: budget, cache, seeds, protocol, summary.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed study options (``seed``, ``seeds``, ``device``, ``out``, ``dataset``, ...).
    modes : mapping
        The study's budgets per mode (``seeds`` gives the default number of seeds).
    name : str
        The run's name (cache ``<out>/<name>_cache.json``, checkpoints under ``<out>/.runs/<name>``).
    run_seed : callable
        ``run_seed(ctx, seed) -> dict``, one entry of ``seeds``.
    make_protocol : callable
        ``make_protocol(args, mode, budget, seeds, device, ctx) -> dict``.
    summarise : callable
        ``summarise(results) -> dict`` from ``protocol`` and ``seeds``.
    setup : callable, optional
        ``setup(args, budget) -> mapping`` of extra context (e.g. the loaded task); it may
        adjust ``budget`` in place.

    Returns
    -------
    dict
        ``protocol``, ``seeds``, ``summary``, ``runtime_seconds`` (this invocation),
        ``cached_piece_seconds`` (the compute time of every cached piece the results use,
        whenever it was computed; network training, checkpointed rather than cached, is
        not in it).

    Examples
    --------
    :func:`lowrank.images.real_features.compute_study` and
    :func:`lowrank.images.multiclass.compute_study` are this with their own pieces:

    >>> run_seeds(args, MODES, study_name(args), run_seed, _protocol, summarise)  # doctest: +SKIP
    """
    mode = study_mode(args)
    budget = budget_of(modes, mode, args)
    n_seeds = args.seeds if getattr(args, "seeds", None) else budget["seeds"]
    device = resolve_device(getattr(args, "device", "auto"))
    out = Path(args.out)
    ctx = {"args": args, "budget": budget, "device": device, "out": out, "name": name,
           "cache": ResultCache(out / f"{name}_cache.json"), "eps_cfg": EPS[args.dataset]}
    if setup is not None:
        ctx.update(setup(args, budget))
    seeds = [args.seed + k for k in range(n_seeds)]
    protocol = make_protocol(args, mode, budget, seeds, device, ctx)
    t0 = time.perf_counter()
    entries = [run_seed(ctx, s) for s in progress(seeds, desc="seeds", quiet=args.quiet)]
    res = {"protocol": protocol, "seeds": entries}
    res["summary"] = summarise(res)
    res["runtime_seconds"] = time.perf_counter() - t0
    # a resumed run is fast; what its results cost is the sum over their cached pieces
    res["cached_piece_seconds"] = ctx["cache"].piece_seconds
    return res


def train_networks(init: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, budget: Mapping,
                   seed: int, run_dir: Path, device, losses: Sequence[str] = LOSSES,
                   quiet: bool = True) -> dict[str, DeepTrainResult]:
    """Train a copy of ``init`` with each loss (checkpointed and resumed under ``run_dir``).

    Parameters
    ----------
    init : torch.nn.Module
        The common initialisation (not modified).
    x, y : torch.Tensor
        Training images and labels in {-1, +1}.
    budget : mapping
        ``lr``, ``epochs``, ``batch_size``, ``spectrum_samples`` and optionally
        ``offset_rule`` (default ``"midpoint"``; see :class:`lowrank.train.DeepTrainConfig`).
    seed : int
        Seed of the batch sampling.
    run_dir : Path
        Checkpoints ``<loss>.pt`` (a rerun resumes from them).
    device : torch.device
    losses : sequence of str
    quiet : bool

    Returns
    -------
    dict of str to DeepTrainResult

    Examples
    --------
    >>> import tempfile
    >>> from lowrank.models import MLP
    >>> x, y = torch.rand(8, 4), torch.tensor([1.0, -1.0] * 4)
    >>> budget = {"lr": 1e-2, "epochs": 1, "batch_size": 4, "spectrum_samples": 0}
    >>> nets = train_networks(MLP(4, (3,)), x, y, budget, 0, Path(tempfile.mkdtemp()), "cpu")
    >>> sorted(nets), nets["differential"].bias_rule
    (['cross_entropy', 'differential'], 'midpoint')
    """
    out = {}
    for loss in losses:
        cfg = DeepTrainConfig(loss=loss, optimizer="adam", lr=budget["lr"],
                              epochs=budget["epochs"], batch_size=budget["batch_size"],
                              seed=seed, spectrum_samples=budget["spectrum_samples"],
                              offset_rule=budget.get("offset_rule", "midpoint"))
        out[loss] = train_deep(copy.deepcopy(init), x, y, cfg, checkpoint=Path(run_dir) / f"{loss}.pt",
                               resume=True, quiet=quiet, desc=f"train {loss}", device=device)
    return out


def prepare(args: argparse.Namespace, budget: Mapping, device) -> dict:
    """Load the task, take the training subset and the attacked subsamples of a seed."""
    task = load_task(args.dataset, args.classes, args.data_dir, args.checksums, args.download,
                     args.quiet)
    keep = balanced_subset(task.y_train, budget["max_train"], args.seed + 3)
    x_tr, y_tr = task.x_train[keep], task.y_train[keep]
    x_te, y_te = task.x_test, task.y_test
    # subsets are chosen on the CPU (the same images on every device), then moved
    x_tr, y_tr, x_te, y_te = (t.to(device) for t in (x_tr, y_tr, x_te, y_te))
    att_idx = {"train": subsample_indices(len(x_tr), budget["n_attack"], args.seed + 1),
               "test": subsample_indices(len(x_te), budget["n_attack"], args.seed + 2)}
    return {"task": task, "splits": {"train": (x_tr, y_tr), "test": (x_te, y_te)},
            "attack_indices": att_idx}


def compare_losses(args: argparse.Namespace, mode: str, name: str) -> dict:
    """Train with both losses from one initialisation; measure accuracy, spectra, robustness.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed study arguments (:func:`lowrank.images.tasks.add_image_arguments` plus the
        common study options).
    mode : {"full", "quick", "tiny"}
    name : str
        The run's name (cache ``<out>/<name>_cache.json``, checkpoints
        ``<out>/.runs/<name>/seed<seed>/``).

    Returns
    -------
    dict
        ``protocol``, ``data``, ``models`` (per loss: accuracies, bias, history, final
        spectrum, ``attacks`` and ``pgd`` per split and norm), ``summary``,
        ``runtime_seconds``.

    Examples
    --------
    ``studies/image_binary.py`` calls it through :func:`compute_study`; the tests run it on
    tiny archives (``tests/test_image_study.py``):

    >>> name = "image_fashion_mnist_shirt_vs_t-shirt-top_quick"
    >>> res = compare_losses(args, "quick", name)  # doctest: +SKIP
    >>> res["summary"]["per_loss"]["differential"]["clean_test_acc"]  # doctest: +SKIP
    """
    budget = budget_of(MODES, mode, args)
    device = resolve_device(getattr(args, "device", "auto"))
    out = Path(args.out)
    cache = ResultCache(out / f"{name}_cache.json")
    run_dir = out / ".runs" / name / f"seed{args.seed}"
    prep = prepare(args, budget, device)
    task, splits, att_idx = prep["task"], prep["splits"], prep["attack_indices"]
    x_tr, y_tr = splits["train"]
    eps_cfg = EPS[args.dataset]
    torch.manual_seed(args.seed)
    init = build_model(budget["model"], tuple(x_tr.shape[1:]), width=budget["width"],
                       feature_dim=budget["feature_dim"], device=device)
    protocol = {
        "study": "image_binary", "mode": mode, "seed": args.seed, "dataset": args.dataset,
        "classes": list(task.classes), "positive_class": task.classes[0],
        "labels": "+1 for classes[0], -1 for classes[1]",
        "data_dir": str(task.source), "checksums": args.checksums,
        "n_train_used": int(len(x_tr)), "n_test": int(len(splits["test"][0])),
        "pixel_range": [0.0, 1.0], "preprocessing": "none (pixels / 255)",
        "model": {"name": budget["model"], "width": budget["width"],
                  "feature_dim": budget["feature_dim"],
                  "n_params": int(sum(p.numel() for p in init.parameters())),
                  "score": "head(features(x)), head = Linear(feature_dim, 1)"},
        "training": training_protocol(LOSSES, budget["lr"], budget["epochs"], budget["batch_size"]),
        "features": {"spectrum_samples": budget["spectrum_samples"], "centered": True,
                     "effective_rank": "exp(entropy of s / sum(s)) (Roy & Vetterli 2007)",
                     "energy_rank": "number of singular values holding 99% of sum s^2"},
        "attack": attack_protocol(budget["attack_steps"], eps_cfg,
                                  {s: len(att_idx[s]) for s in SPLITS}, budget["pgd_steps"]),
        "software": software_protocol(device),
    }
    results: dict = {"protocol": protocol, "data": task.summary(), "models": {},
                     "runtime_seconds": {}}
    nets = train_networks(init, x_tr, y_tr, budget, args.seed, run_dir, device,
                          quiet=args.quiet)
    key = {k: protocol[k] for k in ("seed", "dataset", "classes", "n_train_used", "model",
                                    "training")}
    for loss, res in nets.items():
        t0 = time.perf_counter()
        model = res.model.eval()
        acc = {s: float(((predict_scores(model, xs) > 0) == (ys > 0)).double().mean())
               for s, (xs, ys) in splits.items()}
        rob = robustness(model, splits, att_idx, eps_cfg, budget["attack_steps"],
                         dict(key, loss=loss), cache, pgd_steps=budget["pgd_steps"],
                         seed=args.seed, quiet=args.quiet)
        train_seconds = sum(h["seconds"] for h in res.history)
        results["models"][loss] = {
            "clean_train_acc": acc["train"], "clean_test_acc": acc["test"],
            "bias": res.bias, "bias_rule": res.bias_rule, "train_seconds": train_seconds,
            "history": [{k: h[k] for k in ("epoch", "loss", "train_acc", "effective_rank",
                                            "energy_rank") if k in h} for h in res.history],
            "final_singular_values": res.history[-1].get("singular_values", [])
            if res.history else [], **rob}
        results["runtime_seconds"][loss] = {
            "train": train_seconds,
            "attacks": sum(a["seconds"] for s in rob["attacks"].values() for a in s.values()),
            "pgd": sum(a["seconds"] for s in rob["pgd"].values() for a in s.values()),
            "wall_this_call_incl_eval": time.perf_counter() - t0}
    results["summary"] = summary(results)
    results["runtime_seconds"]["total_compute"] = sum(
        v["train"] + v["attacks"] + v["pgd"] for v in results["runtime_seconds"].values())
    return results


def summary(results: Mapping[str, Any]) -> dict:
    """Per-loss accuracies, effective rank, shares at the reported eps and median norms.

    Parameters
    ----------
    results : mapping
        Holds ``models`` as written by :func:`compare_losses`.

    Returns
    -------
    dict
        ``per_loss``, ``share_differential_minus_cross_entropy`` (per split, norm and eps),
        ``clean_test_acc_differential_minus_cross_entropy``.

    Examples
    --------
    >>> att = {s: {n: {"share_at_reported_eps": {"1": 0.5}, "median_norm": 1.0} for n in NORMS}
    ...        for s in SPLITS}
    >>> m = {"clean_train_acc": 1.0, "clean_test_acc": 0.9, "history": [], "attacks": att}
    >>> s = summary({"models": {"cross_entropy": m, "differential": m}})
    >>> s["share_differential_minus_cross_entropy"]["test"]["l2"]
    {'1': 0.0}
    """
    m = results["models"]
    rows = {}
    for loss in LOSSES:
        rows[loss] = {"clean_train_acc": m[loss]["clean_train_acc"],
                      "clean_test_acc": m[loss]["clean_test_acc"],
                      "final_effective_rank": (m[loss]["history"][-1].get("effective_rank")
                                               if m[loss]["history"] else None),
                      "share": {s: {n: m[loss]["attacks"][s][n]["share_at_reported_eps"]
                                    for n in NORMS} for s in SPLITS},
                      "median_norm": {s: {n: m[loss]["attacks"][s][n]["median_norm"]
                                          for n in NORMS} for s in SPLITS}}
    ce, df = rows["cross_entropy"]["share"], rows["differential"]["share"]
    diff = {s: {n: {e: df[s][n][e] - ce[s][n][e] for e in ce[s][n]} for n in NORMS}
            for s in SPLITS}
    return {"per_loss": rows, "share_differential_minus_cross_entropy": diff,
            "clean_test_acc_differential_minus_cross_entropy":
                rows["differential"]["clean_test_acc"] - rows["cross_entropy"]["clean_test_acc"]}


def curve_rows(results: Mapping[str, Any]) -> list[dict]:
    """CSV rows: one per loss, split, norm and eps.

    Parameters
    ----------
    results : mapping
        Holds ``models`` with their ``attacks``.

    Returns
    -------
    list of dict

    Examples
    --------
    >>> a = {s: {n: {"eps": [0.0], "share": [0.25]} for n in NORMS} for s in SPLITS}
    >>> curve_rows({"models": {"cross_entropy": {"attacks": a}}})[0]
    {'loss': 'cross_entropy', 'split': 'train', 'norm': 'l2', 'eps': 0.0, 'share_adversarial': 0.25}
    """
    rows = []
    for loss, entry in results["models"].items():
        for split in SPLITS:
            for norm in NORMS:
                a = entry["attacks"][split][norm]
                rows += [{"loss": loss, "split": split, "norm": norm, "eps": float(e),
                          "share_adversarial": float(s)} for e, s in zip(a["eps"], a["share"],
                                                                         strict=True)]
    return rows


def report_lines(results: Mapping[str, Any]) -> list[str]:
    """Printed summary: accuracies, effective rank, shares at the reported eps, runtime.

    Parameters
    ----------
    results : mapping
        Results of :func:`compare_losses` (or their JSON).

    Returns
    -------
    list of str

    Examples
    --------
    >>> import lowrank
    >>> from lowrank.io import load_json
    >>> root = Path(lowrank.__file__).resolve().parents[1]
    >>> res = load_json(root / "figures" / "image_fashion_mnist_sneaker_vs_sandal.json")
    >>> report_lines(res)[0].split(":")[0].strip()
    'cross_entropy'
    """
    lines = []
    for loss, r in results["summary"]["per_loss"].items():
        rank = r["final_effective_rank"]
        lines.append(f"{loss:>14}: clean acc train {r['clean_train_acc']:.4f} test "
                     f"{r['clean_test_acc']:.4f}  eff. rank "
                     f"{float('nan') if rank is None else float(rank):.2f}")
        for split in SPLITS:
            for norm in NORMS:
                vals = ", ".join(f"eps={float(e):.4g}: {v:.3f}"
                                 for e, v in r["share"][split][norm].items())
                lines.append(f"{'':>16}{split:>5} {norm:>4}: {vals}")
    secs = results["runtime_seconds"]
    lines.append("runtime (s): " + ", ".join(
        f"{k} (train {v['train']:.1f}, attacks {v['attacks']:.1f}, pgd {v['pgd']:.1f})"
        if isinstance(v, dict) else f"{k} {float(v):.1f}" for k, v in secs.items()))
    return lines


def study_name(args: argparse.Namespace) -> str:
    """File stem of an ``image_binary`` run: ``image_<dataset>_<pair>`` (+ ``_quick``/``_tiny``).

    Parameters
    ----------
    args : argparse.Namespace
        ``dataset``, ``classes``, ``tiny``, ``quick``.

    Returns
    -------
    str

    Examples
    --------
    >>> a = argparse.Namespace(dataset="cifar10", classes=["cat", "dog"], tiny=True, quick=False)
    >>> study_name(a)
    'image_cifar10_cat_vs_dog_tiny'
    """
    return run_name("image", args, study_mode(args))


def compute_study(args: argparse.Namespace) -> dict:
    """:func:`compare_losses` for parsed study arguments (``--threads`` for this call only).

    Parameters
    ----------
    args : argparse.Namespace
        The common study options and :func:`lowrank.images.tasks.add_image_arguments`.

    Returns
    -------
    dict
        As :func:`compare_losses`.

    Examples
    --------
    >>> compute_study(args)["protocol"]["mode"]  # doctest: +SKIP
    'quick'
    """
    return with_threads(args.threads, compare_losses, args, study_mode(args), study_name(args))


def plot_study(results: Mapping[str, Any], out: str | Path) -> list[Path]:
    """Both figures of a run, named like its JSON (:func:`study_name` of its protocol).

    Parameters
    ----------
    results : mapping
        Results of :func:`compare_losses` (or their JSON).
    out : path-like
        Output directory.

    Returns
    -------
    list of Path

    Examples
    --------
    >>> import tempfile
    >>> import lowrank
    >>> from lowrank.io import load_json
    >>> root = Path(lowrank.__file__).resolve().parents[1]
    >>> res = load_json(root / "figures" / "image_fashion_mnist_sneaker_vs_sandal.json")
    >>> sorted(p.name for p in plot_study(res, tempfile.mkdtemp()))[:2]
    ['image_fashion_mnist_sneaker_vs_sandal.pdf', 'image_fashion_mnist_sneaker_vs_sandal.png']
    """
    from .plots import plot_image_binary

    proto = results["protocol"]
    a = argparse.Namespace(dataset=proto["dataset"], classes=proto["classes"],
                           tiny=proto["mode"] == "tiny", quick=proto["mode"] == "quick")
    return plot_image_binary(results, out, study_name(a))

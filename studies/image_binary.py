"""Cross-entropy vs differential training of a deep model on a binary image task.

Trains the same network, from the same initialisation and seed, once with
cross-entropy and once with the differential (all positive/negative pairs) loss,
then measures clean accuracy, the effective rank of the penultimate features per
epoch, each image's smallest adversarial perturbation found (L2 and L-infinity,
train and test subsamples), and the share of images with an adversarial example
within eps, with a fixed-eps PGD cross-check. Writes a figure of the curves, a
figure of the feature spectra, and the results (JSON with the protocol on top, CSV
of the curves) to ``--out``. Checkpoints and attack results go to a run directory
(``--run-dir``, default ``<out>/.runs/<name>``) so that a re-run skips finished work.

Examples
--------
python studies/image_binary.py --dataset fashion_mnist --classes Shirt T-shirt/top \
    --data-dir /usr/share/datasets/fashion-mnist
python studies/image_binary.py --dataset cifar10 --classes cat dog --data-dir ~/data --quick
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import re
import time
from pathlib import Path

import numpy as np
import torch

from lowrank.attacks import PGDBisection, adversarial_share, min_norm_attack, pgd_success
from lowrank.cli import data_dir_from, run_cli, study_parser
from lowrank.data import load_cifar10_binary, load_fashion_mnist_binary
from lowrank.device import add_device_argument, device_info, resolve_device
from lowrank.io import load_json, load_torch, save_csv, save_json, save_torch
from lowrank.models import build_model
from lowrank.plotting import LOSS_COLORS, apply_style, save_figure
from lowrank.train import DeepTrainConfig, predict_scores, train_deep

DATASETS = ("cifar10", "fashion_mnist")
LOSSES = ("cross_entropy", "differential")
NORMS = ("l2", "linf")
SPLITS = ("train", "test")
DEFAULT_CLASSES = {"cifar10": ("cat", "dog"), "fashion_mnist": ("Shirt", "T-shirt/top")}

#: Budgets per mode. "tiny" is for the test suite only.
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

#: eps grids (start, stop, points) and the eps values reported in the summary / checked by PGD.
EPS = {
    "cifar10": {"l2": (0.0, 2.0, 81), "linf": (0.0, 0.1, 81),
                "report": {"l2": [0.25, 0.5, 1.0], "linf": [2 / 255, 4 / 255, 8 / 255]},
                "pgd": {"l2": 0.5, "linf": 4 / 255}},
    "fashion_mnist": {"l2": (0.0, 4.0, 81), "linf": (0.0, 0.3, 61),
                      "report": {"l2": [0.5, 1.0, 2.0], "linf": [0.05, 0.1, 0.2]},
                      "pgd": {"l2": 1.0, "linf": 0.1}},
}


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (common study options plus this study's)."""
    p = study_parser(__doc__.splitlines()[0], data=True, name="image_binary")
    p.add_argument("--dataset", choices=DATASETS, default="fashion_mnist")
    p.add_argument("--classes", nargs=2, default=None, metavar=("POSITIVE", "NEGATIVE"),
                   help="class names or indices (default: cat dog / Shirt T-shirt/top)")
    p.add_argument("--model", choices=("cnn", "mlp"), default=None, help="override the mode's model")
    p.add_argument("--epochs", type=int, default=None, help="override the mode's epochs")
    p.add_argument("--n-attack", type=int, default=None,
                   help="override the train/test subsample size for the attacks")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="checkpoints and attack results (default <out>/.runs/<name>)")
    p.add_argument("--checksums", default="official",
                   help="'official', 'none', or a JSON manifest file name -> md5")
    p.add_argument("--download", action="store_true", help="fetch the official files if absent")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--replot", type=Path, default=None, metavar="RESULTS_JSON",
                   help="redraw the figures from a saved results JSON (no data, no training)")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    add_device_argument(p)
    return p


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def _load(args, classes):
    root = data_dir_from(args.data_dir)
    sums = None if args.checksums == "none" else (
        "official" if args.checksums == "official" else Path(args.checksums))
    loader = load_cifar10_binary if args.dataset == "cifar10" else load_fashion_mnist_binary
    return loader(root, classes, checksums=sums, download=args.download, quiet=args.quiet)


def _subsample(n_total: int, n: int | None, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n_total, generator=g)
    return torch.sort(idx[: n_total if n is None else min(n, n_total)]).values


def _cached(path: Path, key: dict, compute):
    """Return ``compute()``, reusing ``path`` when it was written for the same ``key``."""
    if path.is_file():
        obj = load_torch(path)
        if obj.get("key") == key:
            return obj["value"], obj["seconds"], True
    t0 = time.perf_counter()
    value = compute()
    seconds = time.perf_counter() - t0
    save_torch(path, {"key": key, "value": value, "seconds": seconds})
    return value, seconds, False


def run(args) -> dict:
    """Run the study for parsed ``args``; return the results dict (also written to disk).

    ``--threads`` sets torch's CPU thread count for the run and restores it afterwards.
    """
    old_threads = torch.get_num_threads()
    try:
        return _run(args)
    finally:
        torch.set_num_threads(old_threads)


def _run(args) -> dict:
    t_start = time.perf_counter()
    mode = "tiny" if args.tiny else ("quick" if args.quick else "full")
    budget = dict(MODES[mode])
    for k, v in (("model", args.model), ("epochs", args.epochs), ("n_attack", args.n_attack)):
        if v is not None:
            budget[k] = v
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(getattr(args, "device", "auto"))
    classes = tuple(args.classes) if args.classes else DEFAULT_CLASSES[args.dataset]
    task = _load(args, classes)
    pair = f"{_slug(task.classes[0])}_vs_{_slug(task.classes[1])}"
    name = f"image_{args.dataset}_{pair}" + ("" if mode == "full" else f"_{mode}")
    out = Path(args.out)
    run_dir = Path(args.run_dir) if args.run_dir else out / ".runs" / f"{name}_seed{args.seed}"

    # Training subset (quick / tiny): class-stratified, fixed by the seed.
    x_tr, y_tr = task.x_train, task.y_train
    if budget["max_train"] is not None and len(x_tr) > budget["max_train"]:
        keep = []
        for sign in (1.0, -1.0):
            cls_idx = torch.nonzero(y_tr == sign).flatten()
            sub = _subsample(len(cls_idx), budget["max_train"] // 2, args.seed + 3)
            keep.append(cls_idx[sub])
        keep = torch.sort(torch.cat(keep)).values
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    x_te, y_te = task.x_test, task.y_test
    # subsets are chosen on the CPU (the same images on every device), then moved
    x_tr, y_tr, x_te, y_te = (t.to(device) for t in (x_tr, y_tr, x_te, y_te))
    att_idx = {"train": _subsample(len(x_tr), budget["n_attack"], args.seed + 1),
               "test": _subsample(len(x_te), budget["n_attack"], args.seed + 2)}
    eps_cfg = EPS[args.dataset]
    grids = {n: np.linspace(*eps_cfg[n]) for n in NORMS}

    torch.manual_seed(args.seed)
    init = build_model(budget["model"], tuple(x_tr.shape[1:]), width=budget["width"],
                       feature_dim=budget["feature_dim"], device=device)
    n_params = sum(p.numel() for p in init.parameters())
    protocol = {
        "study": "image_binary", "mode": mode, "seed": args.seed, "dataset": args.dataset,
        "classes": list(task.classes), "positive_class": task.classes[0],
        "labels": "+1 for classes[0], -1 for classes[1]",
        "data_dir": str(task.source), "checksums": args.checksums,
        "n_train_used": int(len(x_tr)), "n_test": int(len(x_te)),
        "pixel_range": [0.0, 1.0], "preprocessing": "none (pixels / 255)",
        "model": {"name": budget["model"], "width": budget["width"],
                  "feature_dim": budget["feature_dim"], "n_params": int(n_params),
                  "score": "head(features(x)), head = Linear(feature_dim, 1)"},
        "training": {"losses": list(LOSSES), "same_initialisation": True,
                     "optimizer": "adam", "lr": budget["lr"], "weight_decay": 0.0,
                     "epochs": budget["epochs"], "batch_size": budget["batch_size"],
                     "batches": "class-balanced: half positives, half negatives",
                     "differential_loss": "mean over all (positive, negative) pairs of the batch "
                                          "of log(1 + exp(-(s_i - s_j)))",
                     "bias": "cross-entropy: trained; differential: midpoint between the smallest "
                             "positive and largest negative training score"},
        "features": {"spectrum_samples": budget["spectrum_samples"], "centered": True,
                     "effective_rank": "exp(entropy of s / sum(s)) (Roy & Vetterli 2007)",
                     "energy_rank": "number of singular values holding 99% of sum s^2"},
        "attack": {"library": "foolbox " + _version("foolbox"),
                   "l2": "DDN (Rony et al. 2019), then PGD with bisection on eps",
                   "linf": "FMN (Pintor et al. 2021), then PGD with bisection on eps",
                   "steps": budget["attack_steps"],
                   "pgd_bisection": {"steps": PGDBisection().steps,
                                     "bisection_steps": PGDBisection().bisection_steps,
                                     "start": "clean image",
                                     "step": "2.5 * eps / steps",
                                     "upper": "smallest norm found by DDN/FMN, else the whole box"},
                   "norm_per_image": "minimum over the attacks (method records which)",
                   "score_scale": "attacks see s(x) / |s(x_clean)| (scale-free)",
                   "refinement": "30-step bisection on the scale of each found perturbation",
                   "bounds": [0.0, 1.0], "n_images_per_split": {
                       s: int(len(att_idx[s])) for s in SPLITS},
                   "subsample": "uniform random without replacement, fixed by seed; the same "
                                "images for both models",
                   "conventions": "norm 0 for images misclassified clean, inf (listed in "
                                  "failed_indices) if no attack found an adversarial "
                                  "example; share(eps) = mean(norm <= eps) over all "
                                  "attacked images (so share(0) = clean error)",
                   "eps_grid": {n: list(eps_cfg[n]) for n in NORMS},
                   "eps_reported": eps_cfg["report"],
                   "pgd_check": {"eps": eps_cfg["pgd"], "steps": budget["pgd_steps"],
                                 "step": "2.5 * eps / steps", "random_start": True}},
        "software": {"torch": torch.__version__, "python": platform.python_version(),
                     "threads": torch.get_num_threads(), **device_info(device)},
    }
    key_train = {k: protocol[k] for k in ("seed", "dataset", "classes", "n_train_used", "model",
                                          "training")}
    results: dict = {"protocol": protocol, "data": task.summary(), "models": {},
                     "runtime_seconds": {}}

    for loss in LOSSES:
        cfg = DeepTrainConfig(loss=loss, optimizer="adam", lr=budget["lr"],
                              epochs=budget["epochs"], batch_size=budget["batch_size"],
                              seed=args.seed, spectrum_samples=budget["spectrum_samples"])
        t0 = time.perf_counter()
        res = train_deep(copy.deepcopy(init), x_tr, y_tr, cfg, checkpoint=run_dir / f"{loss}.pt",
                         resume=True, quiet=args.quiet, desc=f"train {loss}", device=device)
        model = res.model.eval()
        train_seconds = sum(h["seconds"] for h in res.history)
        acc = {}
        for split, (xs, ys) in (("train", (x_tr, y_tr)), ("test", (x_te, y_te))):
            acc[split] = float(((predict_scores(model, xs) > 0) == (ys > 0)).double().mean())
        entry = {"clean_train_acc": acc["train"], "clean_test_acc": acc["test"],
                 "bias": res.bias, "bias_rule": res.bias_rule,
                 "train_seconds": train_seconds,
                 "history": [{k: h[k] for k in ("epoch", "loss", "train_acc", "effective_rank",
                                                 "energy_rank") if k in h} for h in res.history],
                 "final_singular_values": res.history[-1].get("singular_values", [])
                 if res.history else [],
                 "attacks": {}, "pgd": {}}
        key = dict(key_train, attack=protocol["attack"], loss=loss)
        for split, (xs, ys) in (("train", (x_tr, y_tr)), ("test", (x_te, y_te))):
            idx = att_idx[split]
            xa, ya = xs[idx.to(device)], ys[idx.to(device)]
            entry["attacks"][split] = {}
            entry["pgd"][split] = {}
            for norm in NORMS:
                found, secs, _ = _cached(
                    run_dir / f"attack_{loss}_{split}_{norm}.pt", dict(key, split=split, norm=norm),
                    lambda xa=xa, ya=ya, norm=norm, model=model: _min_norm(
                        model, xa, ya, norm, steps=budget["attack_steps"], seed=args.seed,
                        quiet=args.quiet))
                norms = found["norms"]
                share = adversarial_share(norms, grids[norm])
                finite = norms[torch.isfinite(norms)]
                entry["attacks"][split][norm] = {
                    "eps": grids[norm], "share": share, "seconds": secs,
                    "share_at_reported_eps": {f"{e:.4g}": float(adversarial_share(norms, [e])[0])
                                              for e in eps_cfg["report"][norm]},
                    "median_norm": float(norms.median()),
                    "mean_finite_norm": float(finite.mean()) if len(finite) else math.inf,
                    "n_failed": int(torch.isinf(norms).sum()), "n_images": int(len(norms)),
                    "failed_indices": idx[torch.isinf(norms)],
                    "method_counts": found["method_counts"], "method": found["method"],
                    "indices": idx, "norms": norms}
                e_pgd = eps_cfg["pgd"][norm]
                ok, secs, _ = _cached(
                    run_dir / f"pgd_{loss}_{split}_{norm}.pt", dict(key, split=split, norm=norm),
                    lambda xa=xa, ya=ya, norm=norm, e_pgd=e_pgd, model=model: pgd_success(
                        model, xa, ya, e_pgd, norm, steps=budget["pgd_steps"], seed=args.seed).cpu())
                entry["pgd"][split][norm] = {
                    "eps": e_pgd, "pgd_share": float(ok.double().mean()),
                    "min_norm_share": float(adversarial_share(norms, [e_pgd])[0]),
                    "pgd_found_but_min_norm_missed": int((ok & (norms > e_pgd)).sum()),
                    "seconds": secs}
        results["models"][loss] = entry
        results["runtime_seconds"][loss] = {
            "train": train_seconds,
            "attacks": sum(a["seconds"] for s in entry["attacks"].values() for a in s.values()),
            "pgd": sum(a["seconds"] for s in entry["pgd"].values() for a in s.values()),
            "wall_this_call_incl_eval": time.perf_counter() - t0}

    results["summary"] = _summary(results, eps_cfg)
    results["runtime_seconds"]["total_this_call"] = time.perf_counter() - t_start
    results["runtime_seconds"]["total_compute"] = sum(
        v["train"] + v["attacks"] + v["pgd"] for k, v in results["runtime_seconds"].items()
        if isinstance(v, dict))
    out.mkdir(parents=True, exist_ok=True)
    save_json(out / f"{name}.json", results)
    save_csv(out / f"{name}.csv", _curve_rows(results))
    _figures(results, out, name)
    if not args.quiet:
        _print_summary(results)
    return results


def _min_norm(model, x, y, norm: str, **kw) -> dict:
    """Per-image smallest adversarial norm over the attacks, which attack found it (CPU)."""
    r = min_norm_attack(model, x, y, norm, **kw)
    return {"norms": r.norms.cpu(), "method": list(r.method), "method_counts": r.counts()}


def _version(pkg: str) -> str:
    try:
        from importlib.metadata import version

        return version(pkg)
    except Exception:  # noqa: BLE001
        return "unknown"


def _summary(results: dict, eps_cfg: dict) -> dict:
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
    diff = {s: {n: {e: rows["differential"]["share"][s][n][e] - rows["cross_entropy"]["share"][s][n][e]
                    for e in rows["cross_entropy"]["share"][s][n]} for n in NORMS} for s in SPLITS}
    return {"per_loss": rows, "share_differential_minus_cross_entropy": diff,
            "clean_test_acc_differential_minus_cross_entropy":
                rows["differential"]["clean_test_acc"] - rows["cross_entropy"]["clean_test_acc"]}


def _curve_rows(results: dict) -> list[dict]:
    rows = []
    for loss, entry in results["models"].items():
        for split in SPLITS:
            for norm in NORMS:
                a = entry["attacks"][split][norm]
                for e, s in zip(a["eps"], a["share"]):
                    rows.append({"loss": loss, "split": split, "norm": norm, "eps": float(e),
                                 "share_adversarial": float(s)})
    return rows


def _figures(results: dict, out: Path, name: str) -> None:
    import matplotlib.pyplot as plt

    apply_style()
    proto = results["protocol"]
    title = f"{proto['dataset']}: {proto['classes'][0]} vs {proto['classes'][1]} ({proto['mode']})"
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), sharey=True, layout="constrained")
    for i, split in enumerate(SPLITS):
        for j, norm in enumerate(NORMS):
            ax = axes[i, j]
            for loss in LOSSES:
                a = results["models"][loss]["attacks"][split][norm]
                ax.plot(a["eps"], a["share"], color=LOSS_COLORS[loss],
                        label=loss.replace("_", "-"))
                p = results["models"][loss]["pgd"][split][norm]
                ax.plot([p["eps"]], [p["pgd_share"]], marker="x", ls="none", ms=8,
                        color=LOSS_COLORS[loss])
            ax.set_title(f"{split}, {'L2' if norm == 'l2' else 'L∞'}")
            ax.set_xlabel("ε")
            if j == 0:
                ax.set_ylabel("share with adversarial example ≤ ε")
            ax.set_ylim(-0.02, 1.02)
    axes[0, 0].legend(title="× = PGD at fixed ε", loc="lower right")
    fig.suptitle(title)
    save_figure(fig, out, name)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), layout="constrained")
    for loss in LOSSES:
        e = results["models"][loss]
        s = np.asarray(e["final_singular_values"], dtype=float)
        if s.size and s[0] > 0:
            axes[0].semilogy(np.arange(1, s.size + 1), s / s[0], marker=".",
                             color=LOSS_COLORS[loss], label=loss.replace("_", "-"))
        ep = [h["epoch"] for h in e["history"] if "effective_rank" in h]
        er = [h["effective_rank"] for h in e["history"] if "effective_rank" in h]
        axes[1].plot(ep, er, marker="o", color=LOSS_COLORS[loss], label=loss.replace("_", "-"))
    axes[0].set(title="penultimate features, final epoch", xlabel="index i",
                ylabel="s_i / s_1 (centred)")
    axes[1].set(title="effective rank per epoch", xlabel="epoch", ylabel="exp(entropy)")
    axes[0].legend()
    fig.suptitle(title)
    save_figure(fig, out, name + "_spectrum")


def _print_summary(results: dict) -> None:
    s = results["summary"]["per_loss"]
    for loss, r in s.items():
        print(f"{loss:>14}: clean acc train {r['clean_train_acc']:.4f} test {r['clean_test_acc']:.4f}"
              f"  eff. rank {float(r['final_effective_rank']):.2f}")
        for split in SPLITS:
            for norm in NORMS:
                vals = ", ".join(f"eps={float(e):.4g}: {v:.3f}" for e, v in r["share"][split][norm].items())
                print(f"{'':>16}{split:>5} {norm:>4}: {vals}")
    print(f"runtime (s): {_format_seconds(results['runtime_seconds'])}")


def _format_seconds(value) -> str:
    """``{"a": {"train": 141.63}, "total": 338.1}`` -> ``"a (train 141.6), total 338.1"``."""
    if isinstance(value, dict):
        return ", ".join(f"{k} ({_format_seconds(v)})" if isinstance(v, dict) else
                         f"{k} {_format_seconds(v)}" for k, v in value.items())
    return f"{float(value):.1f}"


def main(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` and run the study."""
    args = build_parser().parse_args(argv)
    if args.replot is not None:
        if not args.replot.is_file():
            raise FileNotFoundError(f"--replot needs a results JSON written by this study, "
                                    f"got {args.replot}")
        results = load_json(args.replot)
        _figures(results, args.replot.parent, args.replot.stem)
        return results
    return run(args)


if __name__ == "__main__":
    run_cli(main)

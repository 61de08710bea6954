"""The GPU half of ``scripts/gpu_check.sh``: the deep path on CUDA and the kernel timings.

Writes ``gpu_check.json`` and ``gpu_check.md`` to ``--out`` (default ``$OUT``):

* ``deep``: ``train_deep`` for a few steps with each loss on the device (CNN on random
  images), the per-epoch feature spectrum, ``feature_spectrum``, one minimum-norm attack
  (DDN, L2) and one PGD check, with the devices of everything they return;
* ``kernel``: one forward + backward step of ``pairwise_logistic`` (``reduction="mean"``,
  float32, P = N) per backend (naive, compile, torch, triton, auto) and the raw Triton
  kernel call, timed with ``triton.testing.do_bench`` (median; a single timed call for
  steps over ~0.3 s), the peak extra memory, the fraction of the special-function bound,
  the host time to enqueue one ``auto`` step, the bit-determinism of two Triton calls,
  and the ``CUDA_TABLE`` that these timings give for ``lowrank.kernels._auto``;
* ``tiles``: the raw kernel call (loss and both gradient sums) with every tile
  configuration of ``TILE_CANDIDATES`` at P = N in 4,096 ... 262,144, its fraction of the
  special-function bound, its worst relative error against float64 at 4,096, and the
  ``TILE_TABLE`` that these timings give for ``lowrank.kernels._triton``;
* ``grid_slots``: the programs per SM the kernel read from each compiled configuration,
  which size its grid (or why it could not, and used the fixed grid);
* ``determinism`` also checks that far pairs (d = -100) give a loss of exactly 0
  (``lg2.approx(1) = 0``, which the kernel's far pairs rely on).

Runs on the CPU too (``--device cpu``; the Triton rows are skipped), which is how it is
tested without a GPU.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lowrank.cli import load_script  # noqa: E402
from lowrank.device import device_info, resolve_device  # noqa: E402
from lowrank.kernels import pairwise_logistic, resolve_backend, triton_available  # noqa: E402
from lowrank.kernels._torch_chunked import pairwise_logistic_sums_chunked  # noqa: E402

_harness = load_script(ROOT / "tests" / "benchmarks" / "kernel_harness.py")
NAIVE_MATRICES = _harness.NAIVE_MATRICES
available_bytes = _harness.available_bytes
make_scores = _harness.make_scores
peak_extra_memory_cuda = _harness.peak_extra_memory_cuda
step = _harness.step
time_step = _harness.time_step

SIZES = (64, 1024, 4096, 16384, 65536, 262144)
BACKENDS = ("naive", "compile", "torch", "triton", "auto")
MUFU_OPS_PER_PAIR = 3
MUFU_PER_CLOCK_PER_SM = 16


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _guard(fn, *args, **kwargs) -> dict:
    """Run one section; record its error instead of stopping the check."""
    t0 = time.perf_counter()
    try:
        out = fn(*args, **kwargs)
        out["ok"] = True
    except Exception as err:  # noqa: BLE001 - a report, not a library
        out = {"ok": False, "error": f"{type(err).__name__}: {err}",
               "traceback": traceback.format_exc()[-3000:]}
        print(out["traceback"], file=sys.stderr, flush=True)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


# ----------------------------------------------------------------------------- deep path
def deep_path(dev: torch.device, attack: bool = True) -> dict:
    """A few training steps per loss on ``dev``, the spectrum, one attack and one PGD check."""
    from lowrank.analysis import feature_spectrum
    from lowrank.models import build_model
    from lowrank.train import DeepTrainConfig, predict_scores, train_deep

    g = torch.Generator().manual_seed(0)
    n = 256
    y = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0)
    x = torch.rand(n, 3, 32, 32, generator=g) * 0.6
    x[y > 0, :, :16] += 0.3  # positives: brighter top half (learnable in a few steps)
    x, y = x.to(dev), y.to(dev)
    torch.manual_seed(0)
    init = build_model("cnn", (3, 32, 32), width=8, feature_dim=16, device=dev)
    res: dict = {"device": device_info(dev), "losses": {}}
    for loss in ("cross_entropy", "differential"):
        cfg = DeepTrainConfig(loss=loss, epochs=2, batch_size=64, lr=3e-3, seed=1,
                              spectrum_samples=128)
        t0 = time.perf_counter()
        out = train_deep(copy.deepcopy(init), x, y, cfg, quiet=True, device=dev)
        _sync(dev)
        seconds = time.perf_counter() - t0
        model = out.model
        scores = predict_scores(model, x)
        spec = feature_spectrum(model, x, batch_size=100)
        entry = {"train_seconds": seconds, "bias_rule": out.bias_rule, "bias": out.bias,
                 "history": [{k: h[k] for k in ("epoch", "loss", "train_acc", "effective_rank",
                                                "energy_rank")} for h in out.history],
                 "param_devices": sorted({str(p.device) for p in model.parameters()}),
                 "score_device": str(scores.device),
                 "train_acc": float(((scores > 0) == (y > 0)).float().mean()),
                 "feature_effective_rank": spec["effective_rank"],
                 "feature_energy_rank": spec["energy_rank"]}
        assert all(math.isfinite(h["loss"]) for h in out.history), entry["history"]
        assert entry["param_devices"] == [str(x.device)], entry["param_devices"]
        if attack:
            entry["attack"] = _attack(model, x[:16], y[:16])
        res["losses"][loss] = entry
        print(f"deep path {loss}: {seconds:.2f} s, acc {entry['train_acc']:.3f}, "
              f"eff. rank {spec['effective_rank']:.2f}", flush=True)
    return res


def _attack(model, x, y) -> dict:
    try:
        from lowrank.attacks import min_norm_perturbations, pgd_success
    except ImportError as err:  # foolbox missing: carry the wheels (scripts/gpu_wheels.sh)
        return {"ok": False, "error": f"ImportError: {err}"}
    t0 = time.perf_counter()
    norms = min_norm_perturbations(model, x, y, "l2", steps=20, refine_steps=10, seed=0)
    ok = pgd_success(model, x, y, 0.05, "linf", steps=5, seed=0)
    return {"ok": True, "seconds": time.perf_counter() - t0,
            "norms_device": str(norms.device), "pgd_device": str(ok.device),
            "median_l2_norm": float(norms.median()), "n_failed": int(torch.isinf(norms).sum()),
            "pgd_share": float(ok.double().mean())}


# ----------------------------------------------------------------------------- kernel
def _bench(fn, dev: torch.device, slow: bool) -> float:
    """Median seconds of ``fn()``: do_bench on CUDA, a timing loop elsewhere or when slow."""
    if dev.type == "cuda" and not slow:
        from triton.testing import do_bench

        return do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e-3
    times = time_step(fn, dev, rounds=1 if slow else 5, warmup=0 if slow else 1)
    return sorted(times)[len(times) // 2]


def _estimate(fn, dev: torch.device) -> float:
    _sync(dev)
    t0 = time.perf_counter()
    fn()
    _sync(dev)
    return time.perf_counter() - t0


def _mufu_bound(dev: torch.device) -> float | None:
    if dev.type != "cuda":
        return None
    props = torch.cuda.get_device_properties(dev)
    clock_mhz = None
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(dev.index or 0)
        clock_mhz = pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)
    except Exception:  # noqa: BLE001 - optional
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=clocks.max.sm", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=20)
            clock_mhz = float(out.stdout.split()[0])
        except Exception:  # noqa: BLE001
            return None
    return props.multi_processor_count * MUFU_PER_CLOCK_PER_SM * clock_mhz * 1e6 / MUFU_OPS_PER_PAIR


def _host_enqueue_us(dev: torch.device, size: int, backend: str = "auto", calls: int = 50) -> float:
    """CPU microseconds to enqueue one forward + backward step (no synchronisation inside)."""
    pos, neg = make_scores(size, size, seed=3, device=dev)
    for _ in range(10):
        step(pos, neg, backend)
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(calls):
        step(pos, neg, backend)
    t1 = time.perf_counter()
    _sync(dev)
    return (t1 - t0) / calls * 1e6


def _step_fn(name: str, pos: torch.Tensor, neg: torch.Tensor):
    """One forward + backward step of backend ``name``, or the raw kernel call (``"kernel"``)."""
    if name == "kernel":
        from lowrank.kernels import _triton

        p, n = pos.detach(), neg.detach()
        return lambda: _triton.pairwise_logistic_sums(p, n, True)
    return lambda: step(pos, neg, name)


def kernel_timings(dev: torch.device, sizes, backends, budget_s: float) -> dict:
    """Time every backend at every size (skipping what cannot run or would blow the budget)."""
    start = time.perf_counter()
    bound = _mufu_bound(dev)
    rows, skipped = [], []
    raw_kernel = dev.type == "cuda" and triton_available()
    if "compile" in backends:  # compile once, outside the timings (dynamic shapes)
        t0 = time.perf_counter()
        try:
            step(*make_scores(64, 64, seed=1, device=dev), "compile")
            _sync(dev)
            print(f"torch.compile warm-up: {time.perf_counter() - t0:.1f} s", flush=True)
        except Exception as err:  # noqa: BLE001
            skipped.append({"backend": "compile", "P": None, "reason": f"{type(err).__name__}: {err}"[:300]})
            backends = [b for b in backends if b != "compile"]
    for size in sizes:
        pairs = size * size
        pos, neg = make_scores(size, size, seed=0, device=dev)
        names = list(backends) + (["kernel"] if raw_kernel else [])
        for name in names:
            if time.perf_counter() - start > budget_s:
                skipped.append({"backend": name, "P": size, "reason": "time budget of the check"})
                continue
            if name == "triton" and not raw_kernel:
                skipped.append({"backend": name, "P": size, "reason": "no CUDA device or no triton"})
                continue
            if name == "naive" and NAIVE_MATRICES * pairs * 4 > 0.8 * available_bytes(dev):
                skipped.append({"backend": name, "P": size, "reason": "naive: does not fit"})
                continue
            if name in ("naive", "compile") and dev.type != "cuda" and pairs > 2**26:
                skipped.append({"backend": name, "P": size, "reason": "too slow on the CPU"})
                continue
            if name == "torch" and dev.type != "cuda" and pairs > 2**28:
                skipped.append({"backend": name, "P": size, "reason": "too slow on the CPU"})
                continue
            fn = _step_fn(name, pos, neg)
            try:
                first = _estimate(fn, dev)  # also the warm-up
                slow = first > 0.3
                t = first if first > 2.0 else _bench(fn, dev, slow)
                peak = peak_extra_memory_cuda(fn) if dev.type == "cuda" else None
            except torch.OutOfMemoryError as err:
                torch.cuda.empty_cache()
                skipped.append({"backend": name, "P": size, "reason": f"out of memory: {err}"[:200]})
                continue
            row = {"backend": name, "P": size, "N": size, "pairs": pairs, "median_s": t,
                   "pairs_per_s": pairs / t,
                   "peak_extra_MiB": None if peak is None else peak / 2**20,
                   "resolved": resolve_backend(name, dev, torch.float32, pairs)
                   if name in ("auto", "naive", "compile", "torch", "triton") else "raw kernel"}
            if bound and name in ("triton", "kernel", "auto"):
                row["fraction_of_mufu_bound"] = row["pairs_per_s"] / bound
            rows.append(row)
            print(f"{name:>8} P=N={size:<7} {t * 1e3:10.3f} ms"
                  + ("" if peak is None else f"  {peak / 2**20:9.1f} MiB"), flush=True)
        del pos, neg
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    best = {(r["backend"], r["P"]): r["median_s"] for r in rows}
    for r in rows:
        for peer in ("naive", "compile", "torch", "triton"):
            t = best.get((peer, r["P"]))
            r[f"speedup_vs_{peer}"] = None if t is None else t / r["median_s"]
        k = best.get(("kernel", r["P"]))
        r["over_kernel_us"] = None if k is None else (r["median_s"] - k) * 1e6
    out = {"rows": rows, "skipped": skipped, "mufu_bound_pairs_per_s": bound}
    out["suggested_cuda_table"] = _suggest_table(rows)
    return out


def _suggest_table(rows: list[dict]) -> list | None:
    """Largest measured size where naive beats triton (the CUDA_TABLE bound), from the medians."""
    t = {(r["backend"], r["P"]): r["median_s"] for r in rows}
    sizes = sorted({r["P"] for r in rows if ("triton", r["P"]) in t})
    if not sizes:
        return None
    naive_wins = [s for s in sizes if ("naive", s) in t and t[("naive", s)] < t[("triton", s)]]
    bound = max(naive_wins) ** 2 if naive_wins else 0
    return [[bound, "naive"], ["inf", "triton"]] if bound else [["inf", "triton"]]


TILE_SIZES = (65536, 4096, 16384, 262144)  # the most telling first: the budget may stop it


def _relative_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float(((got.double().cpu() - ref).abs() / ref.abs().clamp_min(1e-30)).max())


def tile_sweep(dev: torch.device, sizes=TILE_SIZES, budget_s: float = 60.0) -> dict:
    """Time the raw kernel with every tile candidate at every size; suggest TILE_TABLE."""
    if dev.type != "cuda" or not triton_available():
        return {"skipped": "no CUDA device or no triton"}
    from lowrank.kernels import _triton

    start = time.perf_counter()
    bound = _mufu_bound(dev)
    rows, skipped = [], []
    for size in sizes:
        pos, neg = make_scores(size, size, seed=7, device=dev)
        p, n = pos.detach(), neg.detach()
        ref = None
        if size <= 4096:  # float64 reference: the chunked torch backend's loss, row and column sums
            ref = pairwise_logistic_sums_chunked(p.double(), n.double())
        for cfg in _triton.TILE_CANDIDATES:
            name = f"{cfg['BLOCK_P']}x{cfg['BLOCK_N']}/{cfg['num_warps']}w" + (
                f"+fma{cfg['fma_exp2_every']}" if cfg.get("fma_exp2_every") else "")
            if time.perf_counter() - start > budget_s:
                skipped.append({"tile": name, "P": size, "reason": "time budget of the check"})
                continue
            fn = functools.partial(_triton.pairwise_logistic_sums, p, n, True, **cfg)
            try:
                first = _estimate(fn, dev)  # compiles on the first size
                t = _bench(fn, dev, first > 0.3)
            except Exception as err:  # noqa: BLE001 - a report
                skipped.append({"tile": name, "P": size, "reason": f"{type(err).__name__}: {err}"[:300]})
                continue
            row = {"tile": name, "config": cfg, "P": size, "median_s": t,
                   "pairs_per_s": size * size / t,
                   "fraction_of_mufu_bound": None if not bound else size * size / t / bound}
            if ref is not None:
                loss, r, c = fn()
                row["max_rel_error"] = max(_relative_error(loss, ref[0]),
                                           _relative_error(r, ref[1]), _relative_error(c, ref[2]))
            rows.append(row)
            print(f"tile {name:>12} P=N={size:<7} {t * 1e3:9.3f} ms"
                  + ("" if not bound else f"  {row['fraction_of_mufu_bound']:.0%} of bound"), flush=True)
        del pos, neg, p, n, ref
        torch.cuda.empty_cache()
    best, table = suggest_tile_table(rows)
    return {"rows": rows, "skipped": skipped, "best": best, "suggested_tile_table": table,
            "mufu_bound_pairs_per_s": bound}


def suggest_tile_table(rows: list[dict]) -> tuple[dict, list]:
    """The fastest tile per size, and the TILE_TABLE rows it gives (neighbours merged).

    >>> rows = [{"P": 64, "tile": "a", "config": {"BLOCK_P": 64, "BLOCK_N": 64, "num_warps": 4},
    ...          "median_s": 2.0},
    ...         {"P": 64, "tile": "b", "config": {"BLOCK_P": 32, "BLOCK_N": 64, "num_warps": 2},
    ...          "median_s": 1.0},
    ...         {"P": 128, "tile": "b", "config": {"BLOCK_P": 32, "BLOCK_N": 64, "num_warps": 2},
    ...          "median_s": 3.0}]
    >>> suggest_tile_table(rows)
    ({64: 'b', 128: 'b'}, [['inf', {'BLOCK_P': 32, 'BLOCK_N': 64, 'num_warps': 2}]])
    """
    best: dict[int, dict] = {}
    for r in rows:
        if r["P"] not in best or r["median_s"] < best[r["P"]]["median_s"]:
            best[r["P"]] = r
    table: list = []  # [largest P * N, overrides]
    for size in sorted(best):
        cfg = {k: v for k, v in best[size]["config"].items()
               if k in ("BLOCK_P", "BLOCK_N", "num_warps", "fma_exp2_every")}
        if table and table[-1][1] == cfg:
            table[-1][0] = size * size
        else:
            table.append([size * size, cfg])
    if table:
        table[-1][0] = "inf"
    return {s: b["tile"] for s, b in best.items()}, table


def grid_slots() -> list[dict]:
    """The resident programs the kernel found per device and configuration (its grid rule)."""
    if not triton_available():
        return []
    from lowrank.kernels import _triton

    return [{"device": k[0], "config": dict(k[1]), "dtype": str(k[2]), "slots": v[0],
             "note": v[1]} for k, v in _triton.SLOTS.items()]


def determinism(dev: torch.device, size: int = 65536) -> dict:
    if dev.type != "cuda" or not triton_available():
        return {"skipped": "no CUDA device or no triton"}
    pos, neg = make_scores(size, size, seed=5, device=dev)
    a = pairwise_logistic(pos.detach(), neg.detach(), backend="triton")
    b = pairwise_logistic(pos.detach(), neg.detach(), backend="triton")
    flagged = pairwise_logistic(torch.cat([pos.detach(), pos.new_tensor([math.inf])]), neg.detach(),
                                backend="triton")
    far = {}
    for m in (1, 64):  # one pair among padded ones (masked), one full tile (unmasked)
        loss = pairwise_logistic(torch.full((m,), 100.0, device=dev), torch.zeros(m, device=dev),
                                 backend="triton", reduction="sum")
        far[f"P=N={m}"] = float(loss)
    return {"P": size, "bit_identical": bool(torch.equal(a, b)),
            "nan_flag_for_inf_score": bool(torch.isnan(flagged)),
            "far_pairs_loss": far, "far_pairs_exactly_zero": all(v == 0.0 for v in far.values())}


# ----------------------------------------------------------------------------- report
def markdown(report: dict) -> str:
    lines = [f"# gpu_check on {report['device'].get('gpu', report['device']['device'])}", "",
             f"torch {report['versions']['torch']}, triton {report['versions'].get('triton')}, "
             f"Python {report['versions']['python']}, commit {report['versions'].get('commit')}", ""]
    k = report.get("kernel", {})
    if k.get("rows"):
        peers = ["naive", "compile", "torch", "triton"]
        lines += ["| backend | P = N | median ms | pairs/s | " + " | ".join(f"vs {p}" for p in peers)
                  + " | over kernel (us) | peak MiB | bound |", "|" + "---|" * (8 + len(peers) - 1)]

        def f(x, fmt):
            return "-" if x is None else format(x, fmt)

        for r in sorted(k["rows"], key=lambda r: (r["P"], r["backend"])):
            lines.append(f"| {r['backend']} ({r['resolved']}) | {r['P']:,} | {r['median_s'] * 1e3:.4g} "
                         f"| {r['pairs_per_s']:.3g} | "
                         + " | ".join(f(r.get(f"speedup_vs_{p}"), ".2f") for p in peers)
                         + f" | {f(r.get('over_kernel_us'), '.0f')} | {f(r['peak_extra_MiB'], '.1f')} "
                         f"| {f(r.get('fraction_of_mufu_bound'), '.0%')} |")
        for s in k.get("skipped", []):
            lines.append(f"| {s['backend']} | {s['P']} | skipped: {s['reason']} |")
        lines += ["", f"suggested CUDA_TABLE: {k.get('suggested_cuda_table')}"]
    t = report.get("tiles", {})
    if t.get("rows"):
        lines += ["", "## tiles (raw kernel, loss and gradient sums)", "",
                  "| tile | P = N | median ms | pairs/s | bound | max rel. error |",
                  "|---|---|---|---|---|---|"]
        for r in sorted(t["rows"], key=lambda r: (r["P"], r["median_s"])):
            frac = r.get("fraction_of_mufu_bound")
            err = r.get("max_rel_error")
            lines.append(f"| {r['tile']} | {r['P']:,} | {r['median_s'] * 1e3:.4g} | {r['pairs_per_s']:.3g} "
                         f"| {'-' if frac is None else format(frac, '.0%')} "
                         f"| {'-' if err is None else format(err, '.2e')} |")
        lines += ["", f"suggested TILE_TABLE: {t.get('suggested_tile_table')}"]
    for key in ("grid_slots", "host_enqueue_us", "determinism", "deep"):
        if key in report:
            lines += ["", f"## {key}", "", "```", json.dumps(report[key], indent=1)[:4000], "```"]
    return "\n".join(lines) + "\n"


def all_ok(report: dict) -> bool:
    """Whether no section of the report failed (a section without ``ok`` did not fail)."""
    return all(report[k].get("ok", True) for k in ("deep", "determinism", "kernel", "tiles"))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_check_out")))
    p.add_argument("--device", default="auto")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    p.add_argument("--budget", type=float, default=150.0, help="seconds for the kernel timings")
    p.add_argument("--tile-budget", type=float, default=60.0,
                   help="seconds for the tile sweep")
    p.add_argument("--no-attack", action="store_true")
    args = p.parse_args(argv)
    dev = resolve_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    versions = {"torch": torch.__version__, "python": platform.python_version(),
                "cuda": torch.version.cuda}
    try:
        import triton

        versions["triton"] = triton.__version__
    except ImportError:
        versions["triton"] = None
    try:
        versions["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                            capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        versions["commit"] = None
    report = {"device": device_info(dev), "versions": versions}
    print(json.dumps(report), flush=True)
    report["deep"] = _guard(deep_path, dev, attack=not args.no_attack)
    report["determinism"] = _guard(determinism, dev)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if dev.type == "cuda":
        report["host_enqueue_us"] = _guard(lambda: {
            f"{b}_P=N={s}": _host_enqueue_us(dev, s, b) for s in (64, 4096)
            for b in ("auto", "triton", "naive")})
    report["kernel"] = _guard(kernel_timings, dev, sizes, args.backends, args.budget)
    report["tiles"] = _guard(tile_sweep, dev, budget_s=args.tile_budget)
    report["grid_slots"] = grid_slots()
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str), "utf-8")
    (args.out / "gpu_check.md").write_text(markdown(report), "utf-8")
    print(markdown(report), flush=True)
    if not all_ok(report):
        print("gpu_check: a section failed (see gpu_check.json)", file=sys.stderr)
    return report


if __name__ == "__main__":
    rep = main()
    sys.exit(0 if all_ok(rep) else 1)

"""Pairwise-logistic kernel benchmark: time, pairs per second and peak memory per backend.

Reads the JSON that pytest-benchmark saved for ``tests/benchmarks`` (or that the
built-in timer wrote, same layout) and writes ``kernel_benchmark.png`` / ``.pdf``
(three panels: time of one forward + backward step, pairs per second, peak extra
memory, each against ``P = N``; a cross on the axis marks a size where a backend
cannot run), the table ``kernel_benchmark.csv`` and ``kernel_benchmark.json``
(settings, ``summary``, rows and skipped sizes) to ``--out``. Each row has its
speed-up against every peer: ``speedup_vs_naive``, ``speedup_vs_compile`` (``torch.compile``
of the naive expression), ``speedup_vs_torch`` and ``speedup_vs_triton``.

Reproduce (see docs/benchmarks.md)::

    python -m pytest tests/benchmarks --benchmark-only -o addopts="" \\
        --benchmark-json=figures/kernel_benchmark.raw.json
    python studies/kernel_benchmark.py --input figures/kernel_benchmark.raw.json

or let the script run the benchmarks first (``--run``; ``--quick`` restricts
them to P = N in {1024, 4096}). ``--run`` uses pytest-benchmark when it is
installed (except with ``--quick``, as ``studies/run_all.py --quick`` runs it) and
otherwise times the steps itself
(``run_benchmarks`` of ``tests/benchmarks/kernel_harness.py``, the same steps and
statistics); ``--timer`` forces one or the other.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from lowrank.cli import run_cli, study_parser
from lowrank.device import add_device_argument, resolve_device
from lowrank.io import save_csv, save_json

BENCH_COMMAND = ('python -m pytest tests/benchmarks --benchmark-only -o addopts="" '
                 "--benchmark-json=figures/kernel_benchmark.raw.json")
BACKEND_ORDER = ("naive", "compile", "torch", "triton", "auto")
BACKEND_LABELS = {"naive": "naive broadcast (autograd)", "compile": "torch.compile of naive",
                  "torch": "torch chunked fallback", "triton": "Triton fused kernel",
                  "auto": "backend='auto' (size table)"}
BACKEND_COLORS = {"naive": "#c0392b", "compile": "#8e44ad", "torch": "#2471a3",
                  "triton": "#1e8449", "auto": "#111111"}
QUICK_SIZES = (1024, 4096)
FULL_SIZES = (1024, 4096, 16384, 20000, 65536)
#: MUFU (special-function unit) operations per pair in the Triton kernel: ex2, lg2, rcp.
MUFU_OPS_PER_PAIR = 3
#: MUFU operations per clock per SM on NVIDIA Volta..Hopper (4 SM sub-partitions x 4).
MUFU_PER_CLOCK_PER_SM = 16
ROOT = Path(__file__).resolve().parent.parent


def pytest_benchmark_available() -> bool:
    """Whether ``pytest`` and ``pytest-benchmark`` are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("pytest", "pytest_benchmark"))


def bench_sizes(quick: bool, sizes: str | None = None) -> list[int]:
    """``--sizes``, else ``$LOWRANK_BENCH_SIZES``, else the quick or full default."""
    raw = sizes or os.environ.get("LOWRANK_BENCH_SIZES", "")
    parsed = [int(v) for v in raw.split(",") if v.strip()]
    return parsed or list(QUICK_SIZES if quick else FULL_SIZES)


def run_benchmarks(raw: Path, quick: bool, seed: int, timer: str = "auto",
                   device: str = "auto", sizes: str | None = None,
                   backends: list[str] | None = None, memory: bool = True,
                   rounds: int = 3, min_seconds: float = 0.0) -> str:
    """Run the benchmarks, writing their JSON to ``raw``; return the timer used.

    ``timer="pytest"`` runs the pytest-benchmark suite in a subprocess,
    ``"builtin"`` times the same steps in this process
    (``run_benchmarks`` of ``tests/benchmarks/kernel_harness.py``), ``"auto"`` picks pytest
    when pytest-benchmark is installed, except for ``quick`` runs and a subset of
    ``backends``.
    """
    dev = resolve_device(device)
    size_list = bench_sizes(quick, sizes)
    if timer == "auto":  # quick runs (studies/run_all.py --quick) never need pytest
        timer = "pytest" if pytest_benchmark_available() and backends is None and not quick \
            else "builtin"
    if timer == "pytest":
        env = {**os.environ, "LOWRANK_BENCH_SIZES": ",".join(map(str, size_list)),
               "LOWRANK_BENCH_ROUNDS": str(rounds),
               "LOWRANK_BENCH_DEVICE": dev.type, "LOWRANK_BENCH_MEMORY": "1" if memory else "0"}
        cmd = [sys.executable, "-m", "pytest", "tests/benchmarks/test_bench_pairwise.py",
               "--benchmark-only", "-o", "addopts=", f"--benchmark-json={raw}", "-q"]
        print("running:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT, env=env)
        return timer
    from lowrank.cli import load_script

    _benchmark = load_script(ROOT / "tests" / "benchmarks" / "kernel_harness.py")

    print(f"timing {backends or list(_benchmark.BENCH_BACKENDS)} at P = N in {size_list} on "
          f"{dev} (built-in timer)", flush=True)
    data = _benchmark.run_benchmarks(size_list, backends or _benchmark.BENCH_BACKENDS, dev,
                                     memory=memory, rounds=rounds, min_seconds=min_seconds,
                                     memory_backends=None if not quick else ("naive", "torch",
                                                                             "triton", "auto"))
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(data, indent=1), "utf-8")
    return timer


def _add_ratios(rows: list[dict]) -> None:
    """``speedup_vs_<peer>`` = peer's best time / this row's best time (same device and size)."""
    best = {(r["backend"], r["device"], r["P"], r["N"]): r["time_min_s"] for r in rows}
    for r in rows:
        for peer in BACKEND_ORDER:
            t = best.get((peer, r["device"], r["P"], r["N"]))
            r[f"speedup_vs_{peer}"] = None if t is None else t / r["time_min_s"]


def skipped_sizes(rows: list[dict], skipped: list[dict]) -> list[dict]:
    """Sizes where a backend has no row: the recorded reason, or "not run" when none was saved.

    A backend that never ran on a device is not listed (e.g. Triton on the CPU).
    """
    ran = {(r["backend"], r["device"]) for r in rows}
    out = {(s["backend"], s.get("device", "cpu"), s["P"]): s.get("reason", "not run")
           for s in skipped if (s["backend"], s.get("device", "cpu")) in ran}
    sizes = {(r["device"], r["P"]) for r in rows}
    have = {(r["backend"], r["device"], r["P"]) for r in rows}
    for backend, device in ran:
        for dev, size in sizes:
            if dev == device and (backend, device, size) not in have:
                out.setdefault((backend, device, size), "not run (does not fit in memory)")
    return [{"backend": b, "device": d, "P": p, "N": p, "reason": why}
            for (b, d, p), why in sorted(out.items(), key=lambda kv: (kv[0][1], kv[0][2],
                                                                       BACKEND_ORDER.index(kv[0][0])))]


def load_rows(raw: Path) -> tuple[list[dict], dict]:
    """One row per benchmark of the JSON (pytest-benchmark or built-in timer), and the machine.

    The machine dict also holds ``skipped``: the sizes where a backend cannot run.
    """
    data = json.loads(raw.read_text("utf-8"))
    rows = []
    for b in data["benchmarks"]:
        info, st = b["extra_info"], b["stats"]
        if "backend" not in info:  # another suite's benchmark (e.g. the exact SVM solvers)
            continue
        peak = info.get("peak_extra_bytes")
        rows.append({
            "backend": info["backend"], "device": info["device"], "P": info["P"], "N": info["N"],
            "pairs": info["pairs"], "rounds": st["rounds"],
            "time_min_s": st["min"], "time_mean_s": st["mean"], "time_std_s": st["stddev"],
            "pairs_per_s": info["pairs"] / st["min"],
            "peak_extra_MiB": None if peak is None else peak / 2**20,
            "threads": info.get("threads"), "gpu": info.get("gpu"),
            "sm_count": info.get("sm_count"), "sm_clock_max_mhz": info.get("sm_clock_max_mhz"),
        })
    _add_ratios(rows)
    for r in rows:
        if r["backend"] == "triton" and r["sm_count"] and r["sm_clock_max_mhz"]:
            bound = r["sm_count"] * MUFU_PER_CLOCK_PER_SM * r["sm_clock_max_mhz"] * 1e6
            r["mufu_bound_pairs_per_s"] = bound / MUFU_OPS_PER_PAIR
            r["fraction_of_mufu_bound"] = r["pairs_per_s"] / r["mufu_bound_pairs_per_s"]
    rows.sort(key=lambda r: (r["device"], BACKEND_ORDER.index(r["backend"]), r["P"]))
    machine = data.get("machine_info", {})
    return rows, {"machine": machine.get("node"), "cpu": machine.get("cpu", {}).get("brand_raw"),
                  "python": machine.get("python_version"), "datetime": data.get("datetime"),
                  "timer": data.get("timer", "pytest-benchmark"),
                  "skipped": skipped_sizes(rows, data.get("skipped", []))}


def summarize(rows: list[dict]) -> dict:
    """The numbers behind the issue's performance goals (None where not measured)."""
    def pick(backend, size, key):
        for r in rows:
            if r["backend"] == backend and r["P"] == size and r["N"] == size:
                return r.get(key)
        return None

    return {
        "torch_speedup_vs_naive_at_4096": pick("torch", 4096, "speedup_vs_naive"),
        "torch_speedup_vs_compile_at_4096": pick("torch", 4096, "speedup_vs_compile"),
        "compile_speedup_vs_naive_at_4096": pick("compile", 4096, "speedup_vs_naive"),
        "triton_speedup_vs_naive_at_4096": pick("triton", 4096, "speedup_vs_naive"),
        "triton_speedup_vs_compile_at_65536": pick("triton", 65536, "speedup_vs_compile"),
        "torch_peak_extra_MiB_at_20000": pick("torch", 20000, "peak_extra_MiB"),
        "naive_peak_extra_MiB_at_20000": pick("naive", 20000, "peak_extra_MiB"),
        "torch_pairs_per_s_at_16384": pick("torch", 16384, "pairs_per_s"),
        "torch_seconds_at_65536": pick("torch", 65536, "time_min_s"),
        "triton_speedup_vs_naive_at_16384": pick("triton", 16384, "speedup_vs_naive"),
        "triton_fraction_of_mufu_bound_at_16384": pick("triton", 16384,
                                                        "fraction_of_mufu_bound"),
        "triton_seconds_at_65536": pick("triton", 65536, "time_min_s"),
    }


def plot(rows: list[dict], out: Path, title: str, skipped: list[dict] | None = None
         ) -> list[Path]:
    """Three log-log panels against P = N: step time, pairs per second, peak extra memory.

    Sizes in ``skipped`` (a backend cannot run there) get a cross in the backend's
    colour on the lower edge of the time and throughput panels.
    """
    from lowrank.plotting import apply_style, save_figure

    apply_style()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = [("time_min_s", "time of one step (s)"), ("pairs_per_s", "pairs per second"),
              ("peak_extra_MiB", "peak extra memory (MiB)")]
    for ax, (key, label) in zip(axes, panels, strict=True):
        for backend in BACKEND_ORDER:
            pts = sorted((r["P"], r[key]) for r in rows
                         if r["backend"] == backend and r.get(key) is not None)
            if not pts:
                continue
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, [max(y, 1e-7) for y in ys], marker="." if backend == "auto" else "o",
                    ls="--" if backend == "auto" else "-", color=BACKEND_COLORS[backend],
                    label=BACKEND_LABELS[backend])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("P = N")
        ax.set_ylabel(label)
    marked = False
    for ax in axes[:2]:
        for s in skipped or []:
            if s["backend"] in BACKEND_COLORS:
                ax.plot([s["P"]], [0.0], marker="x", ms=9, mew=2, ls="none", clip_on=False,
                        color=BACKEND_COLORS[s["backend"]], transform=ax.get_xaxis_transform(),
                        label=None if marked or ax is not axes[0] else "x: cannot run at this size")
                marked = True
    axes[2].axhline(64, color="0.4", ls="--", lw=1)
    axes[2].text(axes[2].get_xlim()[0], 64, " 64 MiB budget", va="bottom", fontsize=8,
                 color="0.3")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out, "kernel_benchmark")


def markdown_table(rows: list[dict], skipped: list[dict] | None = None) -> str:
    """The CSV's main columns as a Markdown table (printed for docs/benchmarks.md).

    ``vs X`` is X's best time over this row's: above 1 this backend is faster than X.
    """
    peers = [b for b in BACKEND_ORDER if any(r["backend"] == b for r in rows)]
    head = ("| backend | device | P = N | rounds | best time (s) | pairs/s | "
            + " | ".join(f"vs {p}" for p in peers) + " | peak extra memory (MiB) |")
    lines = [head, "|" + "---|" * (7 + len(peers))]

    def f(x, fmt):
        return "n/a" if x is None else format(x, fmt)

    for r in rows:
        ratios = " | ".join(f(r.get(f"speedup_vs_{p}"), ".2f") for p in peers)
        lines.append(f"| {r['backend']} | {r['device']} | {r['P']:,} | {r['rounds']} "
                     f"| {f(r['time_min_s'], '.4g')} | {f(r['pairs_per_s'], '.3g')} "
                     f"| {ratios} | {f(r['peak_extra_MiB'], '.1f')} |")
    for s in skipped or []:
        lines.append(f"| {s['backend']} | {s['device']} | {s['P']:,} | - | cannot run: "
                     f"{s['reason']} |" + " |" * (2 + len(peers)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Command line: see the module docstring and ``--help``."""
    p = study_parser(__doc__.splitlines()[0])
    p.add_argument("--input", type=Path, default=None,
                   help="pytest-benchmark JSON (default: OUT/kernel_benchmark.raw.json)")
    p.add_argument("--run", action="store_true",
                   help="run the benchmarks first, writing the --input JSON")
    p.add_argument("--timer", choices=("auto", "pytest", "builtin"), default="auto",
                   help="with --run: pytest-benchmark, the built-in timing loop, or pytest when "
                        "pytest-benchmark is installed")
    p.add_argument("--sizes", default=None,
                   help="with --run: comma-separated P = N (default: $LOWRANK_BENCH_SIZES, else "
                        f"{','.join(map(str, QUICK_SIZES))} with --quick, "
                        f"{','.join(map(str, FULL_SIZES))} otherwise)")
    p.add_argument("--backends", nargs="+", choices=BACKEND_ORDER, default=None,
                   help="with --run: only these backends (built-in timer); 'auto' is not in the "
                        "default set")
    p.add_argument("--rounds", type=int, default=3, help="with --run: timed rounds per step")
    p.add_argument("--min-seconds", type=float, default=0.0,
                   help="with --run (built-in timer): time each step for at least this long")
    p.add_argument("--no-memory", action="store_true",
                   help="with --run: skip the peak-memory measurement")
    add_device_argument(p)
    args = p.parse_args(argv)
    out = Path(args.out)
    raw = args.input or out / "kernel_benchmark.raw.json"
    if args.run:
        run_benchmarks(Path(raw).resolve(), args.quick, args.seed, timer=args.timer,
                       device=args.device, sizes=args.sizes, backends=args.backends,
                       memory=not args.no_memory, rounds=args.rounds,
                       min_seconds=args.min_seconds)
    if not Path(raw).exists():
        p.error(f"{raw} does not exist: run the benchmarks first ({BENCH_COMMAND}) or pass --run")
    rows, machine = load_rows(Path(raw))
    skipped = machine["skipped"]
    devices = sorted({r["device"] for r in rows})
    threads = sorted({r["threads"] for r in rows if r["threads"] is not None})
    title = ("pairwise logistic loss, forward + backward, float32 on "
             + ", ".join(devices) + (f" ({threads[0]} threads)" if threads else ""))
    result = {
        "mode": "quick" if args.quick else "full",
        "devices": ", ".join(devices),
        "cpu": machine["cpu"],
        "threads": threads[0] if len(threads) == 1 else threads,
        "benchmark_datetime": machine["datetime"],
        "benchmark_command": BENCH_COMMAND,
        "timer": machine["timer"],
        "time_statistic": "best of the timed rounds; pairs_per_s and the speedups use it",
        "speedup": "speedup_vs_X = best time of backend X / best time of this row",
        "summary": summarize(rows),
        "rows": rows,
        "skipped": skipped,
    }
    save_json(out / "kernel_benchmark.json", result)
    save_csv(out / "kernel_benchmark.csv", rows)
    plot(rows, out, title, skipped)
    if not args.quiet:
        print(markdown_table(rows, skipped))
        print(json.dumps(result["summary"], indent=2))
    return result


if __name__ == "__main__":
    run_cli(main)

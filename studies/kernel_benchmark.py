"""Pairwise-logistic kernel benchmark: time, pairs per second and peak memory per backend.

Reads the JSON that pytest-benchmark saved for ``tests/benchmarks`` and writes
``kernel_benchmark.png`` / ``.pdf`` (three panels: time of one forward + backward
step, pairs per second, peak extra memory, each against ``P = N``), the table
``kernel_benchmark.csv`` and ``kernel_benchmark.json`` (settings, ``summary`` and
rows) to ``--out``.

Reproduce (see docs/benchmarks.md)::

    python -m pytest tests/benchmarks --benchmark-only -o addopts="" \\
        --benchmark-json=figures/kernel_benchmark.raw.json
    python studies/kernel_benchmark.py --input figures/kernel_benchmark.raw.json

or let the script run the benchmarks first (``--run``; ``--quick`` restricts
them to P = N in {1024, 4096}).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lowrank.cli import study_parser
from lowrank.io import save_csv, save_json

BENCH_COMMAND = ('python -m pytest tests/benchmarks --benchmark-only -o addopts="" '
                 "--benchmark-json=figures/kernel_benchmark.raw.json")
BACKEND_ORDER = ("naive", "torch", "triton")
BACKEND_LABELS = {"naive": "naive broadcast (autograd)", "torch": "torch chunked fallback",
                  "triton": "Triton fused kernel"}
BACKEND_COLORS = {"naive": "#c0392b", "torch": "#2471a3", "triton": "#1e8449"}
#: MUFU (special-function unit) operations per pair in the Triton kernel: ex2, lg2, rcp.
MUFU_OPS_PER_PAIR = 3
#: MUFU operations per clock per SM on NVIDIA Volta..Hopper (4 SM sub-partitions x 4).
MUFU_PER_CLOCK_PER_SM = 16
ROOT = Path(__file__).resolve().parent.parent


def run_benchmarks(raw: Path, quick: bool, seed: int) -> None:
    """Run the pytest-benchmark suite, writing its JSON to ``raw``."""
    env = dict(os.environ)
    if quick:
        env.setdefault("LOWRANK_BENCH_SIZES", "1024,4096")
    cmd = [sys.executable, "-m", "pytest", "tests/benchmarks/test_bench_pairwise.py",
           "--benchmark-only", "-o", "addopts=", f"--benchmark-json={raw}", "-q"]
    print("running:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def load_rows(raw: Path) -> tuple[list[dict], dict]:
    """One row per benchmark of the pytest-benchmark JSON, and the machine info."""
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
    naive = {(r["device"], r["P"], r["N"]): r["time_min_s"] for r in rows
             if r["backend"] == "naive"}
    for r in rows:
        t = naive.get((r["device"], r["P"], r["N"]))
        r["speedup_vs_naive"] = None if t is None else t / r["time_min_s"]
        if r["backend"] == "triton" and r["sm_count"] and r["sm_clock_max_mhz"]:
            bound = r["sm_count"] * MUFU_PER_CLOCK_PER_SM * r["sm_clock_max_mhz"] * 1e6
            r["mufu_bound_pairs_per_s"] = bound / MUFU_OPS_PER_PAIR
            r["fraction_of_mufu_bound"] = r["pairs_per_s"] / r["mufu_bound_pairs_per_s"]
    rows.sort(key=lambda r: (r["device"], BACKEND_ORDER.index(r["backend"]), r["P"]))
    machine = data.get("machine_info", {})
    return rows, {"machine": machine.get("node"), "cpu": machine.get("cpu", {}).get("brand_raw"),
                  "python": machine.get("python_version"), "datetime": data.get("datetime")}


def summarize(rows: list[dict]) -> dict:
    """The numbers behind the issue's performance goals (None where not measured)."""
    def pick(backend, size, key):
        for r in rows:
            if r["backend"] == backend and r["P"] == size and r["N"] == size:
                return r.get(key)
        return None

    return {
        "torch_speedup_vs_naive_at_4096": pick("torch", 4096, "speedup_vs_naive"),
        "torch_peak_extra_MiB_at_20000": pick("torch", 20000, "peak_extra_MiB"),
        "naive_peak_extra_MiB_at_20000": pick("naive", 20000, "peak_extra_MiB"),
        "torch_pairs_per_s_at_16384": pick("torch", 16384, "pairs_per_s"),
        "torch_seconds_at_65536": pick("torch", 65536, "time_min_s"),
        "triton_speedup_vs_naive_at_16384": pick("triton", 16384, "speedup_vs_naive"),
        "triton_fraction_of_mufu_bound_at_16384": pick("triton", 16384,
                                                        "fraction_of_mufu_bound"),
        "triton_seconds_at_65536": pick("triton", 65536, "time_min_s"),
    }


def plot(rows: list[dict], out: Path, title: str) -> list[Path]:
    """Three log-log panels against P = N: step time, pairs per second, peak extra memory."""
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
            ax.plot(xs, [max(y, 1e-3) for y in ys], marker="o", color=BACKEND_COLORS[backend],
                    label=BACKEND_LABELS[backend])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("P = N")
        ax.set_ylabel(label)
    axes[2].axhline(64, color="0.4", ls="--", lw=1)
    axes[2].text(axes[2].get_xlim()[0], 64, " 64 MiB budget", va="bottom", fontsize=8,
                 color="0.3")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out, "kernel_benchmark")


def markdown_table(rows: list[dict]) -> str:
    """The CSV's main columns as a Markdown table (printed for docs/benchmarks.md)."""
    head = ("| backend | device | P = N | rounds | best time (s) | mean time (s) | pairs/s "
            "| vs naive | peak extra memory (MiB) |")
    lines = [head, "|" + "---|" * 9]

    def f(x, fmt):
        return "n/a" if x is None else format(x, fmt)

    for r in rows:
        lines.append(f"| {r['backend']} | {r['device']} | {r['P']:,} | {r['rounds']} "
                     f"| {f(r['time_min_s'], '.4g')} | {f(r['time_mean_s'], '.4g')} "
                     f"| {f(r['pairs_per_s'], '.3g')} | {f(r['speedup_vs_naive'], '.2f')} "
                     f"| {f(r['peak_extra_MiB'], '.1f')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Command line: see the module docstring and ``--help``."""
    p = study_parser(__doc__.splitlines()[0])
    p.add_argument("--input", type=Path, default=None,
                   help="pytest-benchmark JSON (default: OUT/kernel_benchmark.raw.json)")
    p.add_argument("--run", action="store_true",
                   help="run the benchmarks first, writing the --input JSON")
    args = p.parse_args(argv)
    out = Path(args.out)
    raw = args.input or out / "kernel_benchmark.raw.json"
    if args.run:
        run_benchmarks(Path(raw).resolve(), args.quick, args.seed)
    if not Path(raw).exists():
        p.error(f"{raw} does not exist: run the benchmarks first ({BENCH_COMMAND}) or pass --run")
    rows, machine = load_rows(Path(raw))
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
        "time_statistic": "best of the timed rounds; pairs_per_s and speedup use it",
        "summary": summarize(rows),
        "rows": rows,
    }
    save_json(out / "kernel_benchmark.json", result)
    save_csv(out / "kernel_benchmark.csv", rows)
    plot(rows, out, title)
    if not args.quiet:
        print(markdown_table(rows))
        print(json.dumps(result["summary"], indent=2))
    return result


if __name__ == "__main__":
    main()

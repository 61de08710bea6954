"""Regenerate every figure: the five synthetic studies, then the other studies that exist.

    python studies/run_all.py --quick --out runs/quick     # the README's main job (minutes)
    python studies/run_all.py --out figures                # full mode, regenerating figures/

Without ``--out`` the results go to ``runs/run_all/``. The synthetic studies
(boundary_2d, margin_vs_offset, margin_vs_rank, convergence, multiclass_margins) run in
this process; ``kernel_benchmark.py`` (redrawn from ``OUT/kernel_benchmark.raw.json``, or
with ``--run`` when that file is missing) runs as a subprocess, only if its script exists.
A failing study does not stop the others: each is reported, ``run_all.json`` records its
status, and the command exits with status 1 naming the studies that failed. The image
studies need their data sets and are run on their own (see figures/README.md). Timings go
to ``run_all.json`` (with ``--only``, the entries of the other studies from an earlier run
are kept and ``last_run`` lists the studies of this one; ``total_seconds`` is this run's).
"""

from __future__ import annotations

import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from lowrank.cli import load_script, study_arguments  # noqa: E402
from lowrank.io import load_json, save_json  # noqa: E402
from lowrank.plotting import use_file_backend  # noqa: E402

SYNTHETIC = ["boundary_2d", "margin_vs_offset", "margin_vs_rank", "convergence", "multiclass_margins"]
EXTERNAL = ["kernel_benchmark"]


def main(argv=None) -> dict:
    """Run every study; return ``{name: {"seconds", "status"}}``."""
    p = study_arguments(__doc__.splitlines()[0], name="run_all")
    p.add_argument("--only", nargs="+", default=None, help="run only these studies")
    p.add_argument("--skip-external", action="store_true",
                   help="only the four synthetic studies (no kernel benchmark)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    common = ["--seed", str(args.seed), "--out", str(args.out)]
    common += ["--quick"] * args.quick + ["--quiet"] * args.quiet
    ours = common + ["--tiny"] * args.tiny + ["--replot"] * args.replot
    ours += ["--jobs", str(args.jobs)]
    names = SYNTHETIC + ([] if args.skip_external else EXTERNAL)
    if args.only:
        names = [n for n in names if n in args.only]
    report: dict = {}
    t_all = time.perf_counter()
    for name in names:
        script = HERE / f"{name}.py"
        if not script.exists():
            report[name] = {"status": "skipped (script not found)"}
            continue
        t0 = time.perf_counter()
        print(f"[run_all] {name} ...", flush=True)
        if name in SYNTHETIC:
            try:
                load_script(script).main(ours)
                status = "ok"
            except Exception as err:  # one study's failure must not hide the others' results
                traceback.print_exc()
                status = f"failed ({type(err).__name__}: {err})"
        else:
            extra = []
            if name == "kernel_benchmark" and not (args.out / f"{name}.raw.json").exists():
                extra = ["--run"]  # no saved benchmark results yet: run the benchmarks
            rc = subprocess.call([sys.executable, str(script), *common, *extra])
            status = "ok" if rc == 0 else f"failed (exit {rc})"
        report[name] = {"status": status, "seconds": round(time.perf_counter() - t0, 1)}
        print(f"[run_all] {name}: {status} in {report[name]['seconds']} s", flush=True)
    report["total_seconds"] = round(time.perf_counter() - t_all, 1)
    saved = report
    if args.only and (args.out / "run_all.json").is_file():
        # a partial rerun keeps the other studies' entries of the previous run
        previous = load_json(args.out / "run_all.json")
        saved = {k: v for k, v in previous.items() if k in names or k in SYNTHETIC + EXTERNAL}
        saved = {**{k: v for k, v in saved.items() if k not in report}, **report,
                 "last_run": list(names)}
    save_json(args.out / "run_all.json", saved)
    print(f"[run_all] total {report['total_seconds']} s")
    return report


def failed_studies(report: dict) -> list[str]:
    """The names of the studies whose status in a :func:`main` report is a failure."""
    return [name for name, entry in report.items()
            if isinstance(entry, dict) and str(entry.get("status", "")).startswith("failed")]


def cli(argv=None) -> int:
    """Run :func:`main`; exit status 1 (naming them) when any study failed, else 0."""
    failed = failed_studies(main(argv))
    if failed:
        print(f"[run_all] FAILED: {', '.join(failed)}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    use_file_backend()
    sys.exit(cli())

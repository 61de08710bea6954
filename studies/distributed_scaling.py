"""Scaling of the all-pairs loss step across CPU processes, with its communication share.

For each number of ranks ``K`` (default 1, 2, 4) the script spawns ``K`` CPU processes
(gloo backend, one thread each, rendezvous through a file, traffic on the loopback
interface). Each rank holds ``P / K`` positive and ``N / K`` negative float32 scores and
times one step of the loss: :func:`lowrank.distributed.distributed_differential_loss`
(logistic, mean) forward and ``backward()``, after a barrier. The time a step spends
inside the collectives (all-gathers of the counts, the scores and the partial losses,
and the all-reduce of the backward pass; waiting for a slower rank included) is
measured by timing every ``torch.distributed`` call the module makes. A step's time is
the slowest rank's; the table reports the median over the repeats.

Writes ``distributed_scaling.json`` and ``.csv`` to ``--out`` and prints a Markdown
table (the one in docs/distributed.md)::

    python studies/distributed_scaling.py --out runs/scaling          # P = N = 8192
    python studies/distributed_scaling.py --quick --out runs/scaling  # P = N = 2048
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lowrank.cli import run_cli, study_parser
from lowrank.io import save_csv, save_json


class _TimedDist:
    """``torch.distributed`` with its collectives timed (seconds accumulate in ``spent``)."""

    def __init__(self) -> None:
        self.spent = 0.0

    def __getattr__(self, name):
        attr = getattr(dist, name)
        if name not in ("all_gather", "all_reduce"):
            return attr

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.spent += time.perf_counter() - t0
        return timed


def _worker(rank: int, world: int, store: str, size: int, repeats: int, seed: int, out: str) -> None:
    import lowrank.distributed as ld

    os.environ["GLOO_SOCKET_IFNAME"] = "lo0" if sys.platform == "darwin" else "lo"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=300))
    try:
        timed = _TimedDist()
        ld.dist = timed  # time the module's collectives
        g = torch.Generator().manual_seed(seed + rank)
        p = size // world + (rank < size % world)
        scores = torch.cat([torch.randn(p, generator=g) + 1.0, torch.randn(p, generator=g)])
        y = torch.cat([torch.ones(p), -torch.ones(p)])
        rows = []
        for i in range(repeats + 1):  # the first step warms up
            s = scores.clone().requires_grad_(True)
            dist.barrier()
            timed.spent = 0.0
            t0 = time.perf_counter()
            loss = ld.distributed_differential_loss(s, y)
            loss.backward()
            step = time.perf_counter() - t0
            if i:
                rows.append((step, timed.spent))
        every = [None] * world
        dist.all_gather_object(every, rows)
        if rank == 0:
            torch.save({"rows": every, "loss": loss.item()}, out)
    finally:
        dist.destroy_process_group()


def measure(world: int, size: int, repeats: int, seed: int) -> dict:
    """Median step time and communication share of ``world`` ranks at ``P = N = size``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.pt"
        mp.start_processes(_worker, args=(world, str(Path(tmp) / "store"), size, repeats, seed,
                                          str(out)), nprocs=world, start_method="spawn")
        res = torch.load(out)
    steps, comms = [], []
    for i in range(repeats):
        per_rank = [r[i] for r in res["rows"]]
        slowest = max(per_rank)  # (step, comm) of the slowest rank of repeat i
        steps.append(slowest[0])
        comms.append(slowest[1])
    step = statistics.median(steps)
    comm = statistics.median(comms)
    return {"ranks": world, "P": size, "N": size, "pairs_per_rank": size * size / world,
            "step_ms": 1e3 * step, "comm_ms": 1e3 * comm, "comm_share": comm / step,
            "loss": res["loss"], "repeats": repeats}


def main(argv=None) -> dict:
    """Run the measurements, print the table, write the JSON and CSV."""
    p = study_parser(__doc__.splitlines()[0], name="distributed_scaling")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4], help="numbers of processes")
    p.add_argument("--size", type=int, default=None, help="P = N (default 8192; 2048 with --quick)")
    p.add_argument("--repeats", type=int, default=None, help="timed steps (default 10; 5 with --quick)")
    args = p.parse_args(argv)
    size = args.size or (2048 if args.quick else 8192)
    repeats = args.repeats or (5 if args.quick else 10)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rows = [measure(k, size, repeats, args.seed) for k in args.ranks]
    base = rows[0]["step_ms"] * rows[0]["ranks"]
    for r in rows:
        r["speedup"] = rows[0]["step_ms"] / r["step_ms"]
        r["efficiency"] = base / (r["step_ms"] * r["ranks"])
    print(f"P = N = {size}, float32, logistic, mean; median of {repeats} steps (slowest rank)\n")
    print("| ranks | pairs per rank | step (ms) | in collectives (ms) | communication share | speed-up |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['ranks']} | {r['pairs_per_rank']:,.0f} | {r['step_ms']:.1f} | {r['comm_ms']:.1f} "
              f"| {100 * r['comm_share']:.1f} % | {r['speedup']:.2f} |")
    command = "python studies/distributed_scaling.py " + " ".join(argv or sys.argv[1:])
    result = {"settings": {"size": size, "repeats": repeats, "seed": args.seed, "dtype": "float32",
                           "pair_loss": "logistic", "reduction": "mean", "backend": "torch (auto, CPU)",
                           "threads_per_rank": 1, "cpu_count": os.cpu_count(),
                           "machine": platform.machine(), "torch": torch.__version__,
                           "load_average_1min_before": load_before,
                           "command": command.strip()},
              "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    save_json(args.out / "distributed_scaling.json", result)
    save_csv(args.out / "distributed_scaling.csv", rows)
    return result


if __name__ == "__main__":
    run_cli(main)

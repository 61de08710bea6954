"""Helpers for the kernel benchmarks: inputs, one timed step, peak extra memory.

Used by ``tests/benchmarks/test_bench_pairwise.py``, ``tests/test_kernels.py``,
``studies/kernel_benchmark.py`` and ``scripts/gpu_check.py`` (which import it by path with
:func:`lowrank.cli.load_script`; it is not part of the installed package). The CPU peak
memory of one forward + backward step is measured in a fresh subprocess (this file run as
a script) as its peak resident set size minus the resident size just before the step,
once the inputs are allocated and the code path is warmed up::

    python tests/benchmarks/kernel_harness.py torch 20000 20000
    {"backend": "torch", "P": 20000, "N": 20000, "peak_extra_bytes": ..., "method": ...}

:func:`run_benchmarks` times the backends without pytest (a plain timing loop,
:func:`time_step`) and returns the same JSON layout as ``pytest-benchmark
--benchmark-json`` (``machine_info``, ``datetime``, ``benchmarks`` with
``stats`` and ``extra_info``), so that ``studies/kernel_benchmark.py`` reads
either. The pytest-benchmark suite (``tests/benchmarks``) stays the tool for
benchmarking; this loop lets the figure be made where pytest is not installed
(``studies/run_all.py``).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch

from lowrank.kernels import pairwise_logistic, triton_available

__all__ = ["make_scores", "step", "peak_extra_memory_cpu", "peak_extra_memory_cuda",
           "BENCH_BACKENDS", "NAIVE_MATRICES", "available_bytes", "machine_info", "skip_reason",
           "time_step", "run_benchmarks"]

#: Backends the benchmarks time: the naive broadcast, ``torch.compile`` of it, the chunked
#: torch fallback and the Triton kernel.
BENCH_BACKENDS = ("naive", "compile", "torch", "triton")
#: Live P x N float32 matrices of one naive step (measured: 3 at P = N = 4096 on the CPU).
NAIVE_MATRICES = 3


def make_scores(P: int, N: int, seed: int = 0, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32, requires_grad: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random positive and negative scores (standard normal, positives shifted by +1).

    Parameters
    ----------
    P, N : int
        Numbers of positive and negative scores.
    seed : int, default 0
        Seed of the CPU generator used to draw them.
    device, dtype
        Where and how to hold them.
    requires_grad : bool, default True
        Mark both as leaves requiring grad.

    Returns
    -------
    (pos, neg) : tuple of torch.Tensor

    Examples
    --------
    >>> from kernel_harness import make_scores
    >>> pos, neg = make_scores(3, 2)
    >>> pos.shape, neg.shape, pos.requires_grad
    (torch.Size([3]), torch.Size([2]), True)
    """
    g = torch.Generator().manual_seed(seed)
    pos = (torch.randn(P, generator=g, dtype=torch.float64) + 1.0).to(device=device, dtype=dtype)
    neg = torch.randn(N, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    return pos.requires_grad_(requires_grad), neg.requires_grad_(requires_grad)


def step(pos: torch.Tensor, neg: torch.Tensor, backend: str, reduction: str = "mean"
         ) -> torch.Tensor:
    """One training step of the loss: forward, then backward into ``pos.grad`` and ``neg.grad``.

    Parameters
    ----------
    pos, neg : torch.Tensor
        Leaves requiring grad; their ``.grad`` is reset first.
    backend : str
        Backend of :func:`lowrank.kernels.pairwise_logistic`.
    reduction : {"mean", "sum"}, default "mean"

    Returns
    -------
    torch.Tensor
        The detached loss.

    Examples
    --------
    >>> from kernel_harness import make_scores, step
    >>> pos, neg = make_scores(4, 3)
    >>> _ = step(pos, neg, "torch")
    >>> pos.grad.shape, neg.grad.shape
    (torch.Size([4]), torch.Size([3]))
    """
    pos.grad = None
    neg.grad = None
    loss = pairwise_logistic(pos, neg, reduction=reduction, backend=backend)
    loss.backward()
    return loss.detach()


def available_bytes(device: torch.device) -> int:
    """Free memory on ``device``: ``cudaMemGetInfo`` on CUDA, ``MemAvailable`` on the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return 8 * 2**30  # pragma: no cover - not Linux


def machine_info(device: torch.device) -> dict:
    """Device, threads, CPU, torch (and on CUDA the GPU, SM count and maximal SM clock)."""
    info = {"device": device.type, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, sm_count=props.multi_processor_count,
                    gpu_memory_bytes=props.total_memory, cuda=torch.version.cuda)
        try:  # SM clock for the special-function-unit bound (optional)
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
            info["sm_clock_max_mhz"] = pynvml.nvmlDeviceGetMaxClockInfo(
                handle, pynvml.NVML_CLOCK_SM)
        except Exception:  # noqa: BLE001 - optional
            pass
        try:
            import triton

            info["triton"] = triton.__version__
        except ImportError:
            pass
    return info


def skip_reason(backend: str, size: int, device: torch.device) -> str | None:
    """Why ``backend`` cannot run one step at ``P = N = size`` on ``device`` (None if it can)."""
    if backend == "triton" and device.type != "cuda":
        return "the Triton backend is benchmarked on a CUDA GPU only"
    if backend == "triton" and not triton_available():
        return "triton is not installed"
    pairs = size * size
    if backend == "naive" and NAIVE_MATRICES * pairs * 4 > 0.8 * available_bytes(device):
        return (f"naive broadcast needs ~{NAIVE_MATRICES * pairs * 4 / 2**30:.0f} GiB "
                f"at P = N = {size}: does not fit")
    return None


def time_step(fn, device: torch.device, rounds: int = 3, warmup: int = 1,
              min_seconds: float = 0.0, max_rounds: int = 1000) -> list[float]:
    """Wall-clock seconds of ``fn()``, once per round (synchronising a CUDA device).

    Parameters
    ----------
    fn : callable
        One step (e.g. a forward + backward of the loss).
    device : torch.device
        Where ``fn`` runs; CUDA is synchronised before and after each round.
    rounds : int, default 3
        Timed rounds at least.
    warmup : int, default 1
        Untimed calls first (compilation, caches, allocator).
    min_seconds : float, default 0
        Keep timing (up to ``max_rounds``) until this much time is spent.
    max_rounds : int, default 1000

    Returns
    -------
    list of float

    Examples
    --------
    >>> import torch
    >>> from kernel_harness import time_step
    >>> ts = time_step(lambda: torch.ones(4).sum(), torch.device("cpu"), rounds=2)
    >>> len(ts), all(t > 0 for t in ts)
    (2, True)
    """
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < rounds or (time.perf_counter() - start < min_seconds
                                  and len(times) < max_rounds):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def run_benchmarks(sizes, backends=BENCH_BACKENDS, device: str | torch.device = "cpu",
                   rounds: int = 3, memory: bool = True, memory_backends=None,
                   progress=print, min_seconds: float = 0.0) -> dict:
    """Time one forward + backward step per backend and size, without pytest.

    Each step is ``reduction="mean"``, float32, ``P = N = size``, as in
    ``tests/benchmarks/test_bench_pairwise.py``: the best of ``rounds`` timed
    rounds after one warm-up call (one round, no warm-up beyond ``2**28`` pairs),
    and the peak extra memory of one step (a fresh subprocess on the CPU,
    ``torch.cuda.max_memory_allocated`` on CUDA).

    Parameters
    ----------
    sizes : iterable of int
        ``P = N`` values.
    backends : iterable of str, default :data:`BENCH_BACKENDS`
        Those that cannot run (see :func:`skip_reason`) are listed under ``skipped``.
    device : str or torch.device, default "cpu"
    rounds : int, default 3
    memory : bool, default True
        Measure the peak extra memory.
    memory_backends : iterable of str, optional
        Only these backends get a memory measurement (default: all).
    progress : callable, default print
        Called with one line per measurement (``None`` for silence).
    min_seconds : float, default 0
        Keep timing a step (up to 1000 rounds) until this much time is spent: more
        rounds make the best time robust on a shared machine.

    Returns
    -------
    dict
        ``machine_info``, ``datetime``, ``timer``, ``benchmarks`` (``extra_info`` and
        ``stats``: ``min``, ``mean``, ``stddev``, ``median``, ``rounds``) and ``skipped``
        (``backend``, ``P``, ``reason``): the layout of ``pytest-benchmark``'s JSON.
    """
    dev = torch.device(device)
    machine = machine_info(dev)
    benchmarks, skipped = [], []
    for size in sizes:
        for backend in backends:
            reason = skip_reason(backend, size, dev)
            if reason is not None:
                skipped.append({"backend": backend, "P": size, "N": size, "device": dev.type,
                                "reason": reason})
                continue
            pairs = size * size
            if backend == "compile":  # compile outside the timed rounds (one graph for all sizes)
                step(*make_scores(64, 64, seed=1, device=dev), backend)
            pos, neg = make_scores(size, size, seed=0, device=dev)
            big = pairs >= 2**28
            times = time_step(lambda pos=pos, neg=neg, b=backend: step(pos, neg, b), dev,
                              rounds=1 if big else rounds, warmup=0 if big else 1,
                              min_seconds=0.0 if big else min_seconds)
            n = len(times)
            mean = sum(times) / n
            std = (sum((t - mean) ** 2 for t in times) / (n - 1)) ** 0.5 if n > 1 else 0.0
            info = {"backend": backend, "P": size, "N": size, "pairs": pairs, "dtype": "float32",
                    "reduction": "mean", "step": "forward+backward", **machine,
                    "pairs_per_second": pairs / mean, "pairs_per_second_best": pairs / min(times)}
            peak = None
            if memory and (memory_backends is None or backend in memory_backends):
                if dev.type == "cuda":
                    peak = peak_extra_memory_cuda(lambda pos=pos, neg=neg, b=backend: step(pos, neg, b))
                    info["memory_method"] = "torch.cuda.max_memory_allocated - before"
                else:
                    res = peak_extra_memory_cpu(backend, size, size, threads=torch.get_num_threads())
                    peak = res["peak_extra_bytes"]
                    info["memory_method"] = f"subprocess peak RSS ({res['method']})"
            info["peak_extra_bytes"] = peak
            benchmarks.append({"name": f"pairwise_step[{backend}-P=N={size}]",
                               "group": f"P=N={size}", "extra_info": info,
                               "stats": {"min": min(times), "max": max(times), "mean": mean,
                                         "stddev": std, "median": sorted(times)[n // 2],
                                         "rounds": n}})
            if progress is not None:
                progress(f"{backend:>8} P=N={size:<8} best {min(times) * 1e3:10.3f} ms"
                         + ("" if peak is None else f"  peak {peak / 2**20:8.1f} MiB"))
            del pos, neg
    return {"machine_info": {"node": platform.node(), "python_version": platform.python_version(),
                             "cpu": {"brand_raw": platform.processor() or platform.machine()}},
            "datetime": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "timer": "kernel_harness.time_step (best of the rounds)",
            "benchmarks": benchmarks, "skipped": skipped}


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _measure_in_this_process(backend: str, P: int, N: int, dtype: torch.dtype, seed: int,
                             repeats: int = 1) -> dict:
    warm_pos, warm_neg = make_scores(min(P, 64), min(N, 64), seed, dtype=dtype)
    step(warm_pos, warm_neg, backend)  # load code paths, start the thread pool
    pos, neg = make_scores(P, N, seed, dtype=dtype)
    del warm_pos, warm_neg
    gc.collect()
    if _reset_peak_rss() and _status_kib("VmHWM") is not None:
        method = "VmHWM after clear_refs"
        base_kib = _status_kib("VmRSS")
        for _ in range(repeats):
            step(pos, neg, backend)
        peak_kib = _status_kib("VmHWM")
    else:  # no /proc: ru_maxrss is monotone, so this only sees peaks above the earlier ones
        method = "ru_maxrss"
        base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for _ in range(repeats):
            step(pos, neg, backend)
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"backend": backend, "P": P, "N": N, "dtype": str(dtype).replace("torch.", ""),
            "peak_extra_bytes": max(0, int(peak_kib) - int(base_kib)) * 1024,
            "baseline_rss_bytes": int(base_kib) * 1024, "method": method}


def peak_extra_memory_cpu(backend: str, P: int, N: int, dtype: str = "float32", seed: int = 0,
                          timeout: float = 1800.0, threads: int | None = None) -> dict:
    """Peak extra resident memory of one CPU forward + backward step, in a fresh subprocess.

    Parameters
    ----------
    backend : {"torch", "naive"}
        Backend of :func:`lowrank.kernels.pairwise_logistic`.
    P, N : int
        Numbers of positive and negative scores.
    dtype : str, default "float32"
        Name of a torch floating dtype.
    seed : int, default 0
    timeout : float, default 1800
        Seconds before the subprocess is killed.
    threads : int, optional
        ``torch.set_num_threads`` in the subprocess (default: torch's default).

    Returns
    -------
    dict
        ``peak_extra_bytes`` (peak RSS during the step minus RSS before it, after
        the inputs are allocated), ``baseline_rss_bytes``, ``method`` and the inputs.

    Raises
    ------
    RuntimeError
        If the subprocess fails (for example, killed for lack of memory).
    """
    cmd = [sys.executable, os.path.abspath(__file__), backend, str(P), str(N),
           "--dtype", dtype, "--seed", str(seed)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe {cmd[2:]} failed with code {proc.returncode}: "
                           f"{proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peak_extra_memory_cuda(fn) -> int:
    """Peak extra CUDA memory (bytes) allocated by ``fn()``: ``max_memory_allocated`` minus before.

    Parameters
    ----------
    fn : callable
        Runs the work on the current CUDA device.

    Returns
    -------
    int
    """
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated() - base)


def main(argv: list[str] | None = None) -> None:
    """Command line of the memory probe: print one JSON line (see the module docstring)."""
    p = argparse.ArgumentParser(description="peak extra RSS of one pairwise-logistic step")
    p.add_argument("backend", choices=("torch", "naive", "auto", "compile"))
    p.add_argument("P", type=int)
    p.add_argument("N", type=int)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    print(json.dumps(_measure_in_this_process(args.backend, args.P, args.N, dtype, args.seed)))


if __name__ == "__main__":
    main()

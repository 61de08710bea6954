"""Helpers for the kernel benchmarks: inputs, one timed step, peak extra memory.

Used by ``tests/benchmarks/test_bench_pairwise.py``, ``tests/test_kernels.py`` and
``studies/kernel_benchmark.py``. The CPU peak memory of one forward + backward
step is measured in a fresh subprocess (``python -m lowrank.kernels._benchmark``)
as its peak resident set size minus the resident size just before the step,
once the inputs are allocated and the code path is warmed up::

    python -m lowrank.kernels._benchmark torch 20000 20000
    {"backend": "torch", "P": 20000, "N": 20000, "peak_extra_bytes": ..., "method": ...}
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys

import torch

from . import pairwise_logistic

__all__ = ["make_scores", "step", "peak_extra_memory_cpu", "peak_extra_memory_cuda"]


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
    >>> from lowrank.kernels._benchmark import make_scores
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
    >>> from lowrank.kernels._benchmark import make_scores, step
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
    cmd = [sys.executable, "-m", "lowrank.kernels._benchmark", backend, str(P), str(N),
           "--dtype", dtype, "--seed", str(seed)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe {cmd[3:]} failed with code {proc.returncode}: "
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
    p.add_argument("backend", choices=("torch", "naive", "auto"))
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

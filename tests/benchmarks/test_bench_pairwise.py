"""Benchmarks of lowrank.kernels.pairwise_logistic: naive broadcast, torch.compile of it,
torch fallback and Triton.

Not collected by the default test command (``addopts`` ignores this folder and
skips benchmarks). Run them with::

    python -m pytest tests/benchmarks --benchmark-only -o addopts="" \\
        --benchmark-json=figures/kernel_benchmark.raw.json
    python studies/kernel_benchmark.py --input figures/kernel_benchmark.raw.json --out figures

Each benchmark times one training step of the loss (forward and backward,
``reduction="mean"``, float32) at ``P = N = size`` and stores in ``extra_info``:
the pair count, pairs per second (pairs / mean time), the peak extra memory of
one step (``torch.cuda.max_memory_allocated`` on a GPU; peak RSS of a fresh
subprocess on the CPU) and the machine. The peers are the naive broadcast
(eager), ``torch.compile`` of the same expression (``backend="compile"``; its
first call compiles, in the untimed warm-up round), the chunked torch fallback
and the Triton kernel. Sizes that do not fit in memory, and the Triton backend
on the CPU, are skipped with the reason (the study marks them in the figure).
The same steps can be timed without pytest by
``run_benchmarks`` of ``kernel_harness.py`` (next to this file).
"""

from __future__ import annotations

import pytest
import torch
from kernel_harness import (
    BENCH_BACKENDS,
    machine_info,
    make_scores,
    peak_extra_memory_cpu,
    peak_extra_memory_cuda,
    skip_reason,
    step,
)


@pytest.mark.parametrize("backend", BENCH_BACKENDS)
def test_pairwise_step(benchmark, backend, size, device, rounds, measure_memory):
    P = N = size
    pairs = P * N
    reason = skip_reason(backend, size, device)
    if reason is not None:
        pytest.skip(reason)

    if backend == "compile":  # compile outside the timed rounds (one graph for all sizes)
        step(*make_scores(64, 64, seed=1, device=device), backend)
    pos, neg = make_scores(P, N, seed=0, device=device)

    def target():
        step(pos, neg, backend)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    big = pairs >= 2**28
    benchmark.group = f"P=N={size}"
    benchmark.extra_info.update(backend=backend, P=P, N=N, pairs=pairs, dtype="float32",
                                reduction="mean", step="forward+backward", **machine_info(device))
    benchmark.pedantic(target, rounds=1 if big else rounds, warmup_rounds=0 if big else 1,
                       iterations=1)
    stats = benchmark.stats.stats
    benchmark.extra_info["pairs_per_second"] = pairs / stats.mean
    benchmark.extra_info["pairs_per_second_best"] = pairs / stats.min

    peak = None
    if measure_memory:
        if device.type == "cuda":
            peak = peak_extra_memory_cuda(target)
            benchmark.extra_info["memory_method"] = "torch.cuda.max_memory_allocated - before"
        else:
            res = peak_extra_memory_cpu(backend, P, N, threads=torch.get_num_threads())
            peak = res["peak_extra_bytes"]
            benchmark.extra_info["memory_method"] = f"subprocess peak RSS ({res['method']})"
    benchmark.extra_info["peak_extra_bytes"] = peak

    # sanity: the step produced finite gradients of the right shapes
    assert pos.grad.shape == (P,) and neg.grad.shape == (N,)
    assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()

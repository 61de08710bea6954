"""Benchmarks of lowrank.kernels.pairwise_logistic: naive broadcast vs torch fallback vs Triton.

Not collected by the default test command (``addopts`` ignores this folder and
skips benchmarks). Run them with::

    python -m pytest tests/benchmarks --benchmark-only -o addopts="" \\
        --benchmark-json=figures/kernel_benchmark.raw.json
    python studies/kernel_benchmark.py --input figures/kernel_benchmark.raw.json --out figures

Each benchmark times one training step of the loss (forward and backward,
``reduction="mean"``, float32) at ``P = N = size`` and stores in ``extra_info``:
the pair count, pairs per second (pairs / mean time), the peak extra memory of
one step (``torch.cuda.max_memory_allocated`` on a GPU; peak RSS of a fresh
subprocess on the CPU) and the machine. Sizes that do not fit in memory, and
the Triton backend on the CPU, are skipped with the reason.
"""

from __future__ import annotations

import os
import platform

import pytest
import torch

from lowrank.kernels import triton_available
from lowrank.kernels._benchmark import (
    make_scores,
    peak_extra_memory_cpu,
    peak_extra_memory_cuda,
    step,
)

#: Live P x N float32 matrices of one naive step (measured: 3 at P = N = 4096 on the CPU).
NAIVE_MATRICES = 3


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 8 * 2**30  # pragma: no cover - not Linux


def _machine(device: torch.device) -> dict:
    info = {"device": device.type, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, sm_count=props.multi_processor_count,
                    gpu_memory_bytes=props.total_memory)
        try:  # SM clock for the special-function-unit bound (optional)
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
            info["sm_clock_max_mhz"] = pynvml.nvmlDeviceGetMaxClockInfo(
                handle, pynvml.NVML_CLOCK_SM)
        except Exception:  # noqa: BLE001 - optional
            pass
    return info


@pytest.mark.parametrize("backend", ["naive", "torch", "triton"])
def test_pairwise_step(benchmark, backend, size, device, rounds, measure_memory):
    P = N = size
    pairs = P * N
    if backend == "triton" and device.type != "cuda":
        pytest.skip("the Triton backend is benchmarked on a CUDA GPU only")
    if backend == "triton" and not triton_available():
        pytest.skip("triton is not installed")
    if backend == "naive" and NAIVE_MATRICES * pairs * 4 > 0.8 * _available_bytes(device):
        pytest.skip(f"naive broadcast needs ~{NAIVE_MATRICES * pairs * 4 / 2**30:.0f} GiB "
                    f"at P = N = {size}: does not fit")

    pos, neg = make_scores(P, N, seed=0, device=device)

    def target():
        step(pos, neg, backend)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    big = pairs >= 2**28
    benchmark.group = f"P=N={size}"
    benchmark.extra_info.update(backend=backend, P=P, N=N, pairs=pairs, dtype="float32",
                                reduction="mean", step="forward+backward", **_machine(device))
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

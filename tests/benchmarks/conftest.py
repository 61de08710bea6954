"""Settings of the pairwise-kernel benchmarks (see docs/benchmarks.md).

Environment variables:

``LOWRANK_BENCH_SIZES``
    Comma-separated ``P = N`` values (default ``1024,4096,16384,20000,65536``).
``LOWRANK_BENCH_ROUNDS``
    Timed rounds for steps under 2**28 pairs (default 3); larger steps get 1.
``LOWRANK_BENCH_MEMORY``
    ``0`` skips the peak-memory measurement (default ``1``).
``LOWRANK_BENCH_DEVICE``
    ``cpu`` or ``cuda`` (default: ``cuda`` when available).
"""

from __future__ import annotations

import os

import pytest
import torch

DEFAULT_SIZES = (1024, 4096, 16384, 20000, 65536)


def _sizes() -> list[int]:
    raw = os.environ.get("LOWRANK_BENCH_SIZES", "")
    return [int(s) for s in raw.split(",") if s.strip()] or list(DEFAULT_SIZES)


def pytest_generate_tests(metafunc):
    if "size" in metafunc.fixturenames:
        sizes = _sizes()
        metafunc.parametrize("size", sizes, ids=[f"P=N={s}" for s in sizes])


@pytest.fixture(scope="session")
def device() -> torch.device:
    name = os.environ.get("LOWRANK_BENCH_DEVICE") or ("cuda" if torch.cuda.is_available()
                                                      else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("LOWRANK_BENCH_DEVICE=cuda but no CUDA device")
    return torch.device(name)


@pytest.fixture(scope="session")
def rounds() -> int:
    return max(1, int(os.environ.get("LOWRANK_BENCH_ROUNDS", "3")))


@pytest.fixture(scope="session")
def measure_memory() -> bool:
    return os.environ.get("LOWRANK_BENCH_MEMORY", "1") not in ("0", "", "false", "no")

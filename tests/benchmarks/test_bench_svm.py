"""Time of the exact separators at the size the core issue names (2,000 points in R^100).

Run with the other benchmarks (not collected by the default test command)::

    python -m pytest tests/benchmarks/test_bench_svm.py --benchmark-only -o addopts=""

The goal (under 10 s per solve on 2 CPU cores) is read off the report, not asserted.
"""

from __future__ import annotations

import pytest

from lowrank.data import affine_subspace_data
from lowrank.theory import cross_entropy_limit, max_margin_separator


@pytest.fixture(scope="module")
def data():
    return affine_subspace_data(1000, dim=100, rank=10, offset=5.0, gap=0.5, noise=0.3, seed=1)


@pytest.mark.parametrize("solver", [max_margin_separator, cross_entropy_limit],
                         ids=["max_margin_separator", "cross_entropy_limit"])
def test_bench_exact_separator(benchmark, data, solver):
    benchmark.group = "exact separators, 2000 x 100"
    sep = benchmark.pedantic(solver, args=(data.X, data.y), rounds=3, iterations=1)
    assert sep.duality_gap <= 1e-8

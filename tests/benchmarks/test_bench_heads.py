"""Normalized differential training of a linear head on 400 + 400 points (160,000 pairs).

The size of the real-features study's heads (:mod:`lowrank.images.real_features`). Compares
:func:`lowrank.train.fit_linear` with its certified pair screen (the default) against the
full computation of every pair at every step (the screen switched off); both give the same
iterates to rounding (``tests/test_train_linear.py``). Run with the other benchmarks::

    python -m pytest tests/benchmarks/test_bench_heads.py --benchmark-only -o addopts=""

The ratio is read off the report, not asserted.
"""

from __future__ import annotations

import pytest

from lowrank.data import affine_subspace_data
from lowrank.theory import max_margin_separator
from lowrank.train import fit_linear
from lowrank.train.linear import _PairScreen

STEPS = 3000


@pytest.fixture(scope="module")
def data():
    return affine_subspace_data(400, dim=32, rank=5, offset=3.0, gap=0.5, noise=0.2, seed=2)


@pytest.mark.parametrize("screen", [True, False], ids=["screened", "all_pairs"])
def test_bench_normalized_differential_head(benchmark, data, screen, monkeypatch):
    if not screen:
        monkeypatch.setattr(_PairScreen, "MIN_PAIRS", 10 ** 12)
    benchmark.group = f"normalized differential head, 400 + 400 points in R^32, {STEPS} steps"
    fit = benchmark.pedantic(fit_linear, args=(data.X, data.y),
                             kwargs=dict(loss="differential", steps=STEPS, lr=0.3, init="random",
                                         seed=0, schedule="normalized", record=[STEPS]),
                             rounds=2, iterations=1)
    assert fit.margin > 0.99 * max_margin_separator(data.X, data.y).margin

"""scripts/gpu_check.py on the CPU: the report a GPU session will produce, minus the GPU rows.

The script is what a session with a lent GPU runs in one go (``scripts/gpu_check.sh``), so
it has to work the first time there; on the CPU its deep path, its timing rows for the
CPU backends, its report files and its table suggestions run for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lowrank.cli import load_script

gpu_check = load_script(Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py")


def test_gpu_check_on_cpu(tmp_path):  # about 5 s
    report = gpu_check.main(["--device", "cpu", "--sizes", "64,256", "--backends", "naive",
                             "torch", "auto", "--budget", "60", "--no-attack",
                             "--out", str(tmp_path)])
    assert report["device"]["device"] == "cpu"
    deep = report["deep"]
    assert deep["ok"], deep.get("traceback")
    for loss in ("cross_entropy", "differential"):
        entry = deep["losses"][loss]
        assert entry["score_device"] == "cpu" and entry["param_devices"] == ["cpu"]
        assert len(entry["history"]) == 2 and entry["train_acc"] > 0.5
    kernel = report["kernel"]
    assert kernel["ok"], kernel.get("traceback")
    rows = {(r["backend"], r["P"]): r for r in kernel["rows"]}
    assert set(rows) == {(b, s) for b in ("naive", "torch", "auto") for s in (64, 256)}
    for (_, size), r in rows.items():
        assert r["median_s"] > 0 and r["pairs"] == size * size
        assert r["speedup_vs_naive"] == pytest.approx(
            rows[("naive", size)]["median_s"] / r["median_s"])
        assert r["speedup_vs_triton"] is None  # no GPU: no Triton row
    assert rows[("auto", 64)]["resolved"] == "naive"  # the CPU table: naive up to 2**17 pairs
    assert report["tiles"]["skipped"] == "no CUDA device or no triton"
    assert report["determinism"]["skipped"] == "no CUDA device or no triton"
    assert isinstance(report["grid_slots"], list)  # filled by CUDA launches only
    saved = json.loads((tmp_path / "gpu_check.json").read_text("utf-8"))
    assert saved["kernel"]["rows"][0]["backend"] in ("naive", "torch", "auto")
    md = (tmp_path / "gpu_check.md").read_text("utf-8")
    assert "| naive (naive) | 64 |" in md and "suggested CUDA_TABLE" in md


def test_suggest_tile_table_merges_neighbouring_sizes():
    def row(size, tile, seconds):
        bp, bn, w = (int(x) for x in tile.replace("w", "").replace("/", "x").split("x"))
        return {"P": size, "tile": tile, "median_s": seconds,
                "config": {"BLOCK_P": bp, "BLOCK_N": bn, "num_warps": w, "max_groups": 32}}

    rows = [row(4096, "64x64/4w", 2.0), row(4096, "32x64/2w", 1.0),
            row(16384, "32x64/2w", 3.0), row(16384, "64x64/4w", 4.0),
            row(65536, "64x64/4w", 5.0), row(65536, "32x64/2w", 6.0),
            row(262144, "64x64/4w", 7.0)]
    best, table = gpu_check.suggest_tile_table(rows)
    assert best == {4096: "32x64/2w", 16384: "32x64/2w", 65536: "64x64/4w", 262144: "64x64/4w"}
    assert table == [[16384**2, {"BLOCK_P": 32, "BLOCK_N": 64, "num_warps": 2}],
                     ["inf", {"BLOCK_P": 64, "BLOCK_N": 64, "num_warps": 4}]]
    assert gpu_check.suggest_tile_table([]) == ({}, [])

"""studies/kernel_benchmark.py: the built-in timer (no pytest-benchmark), ratios against every
peer and the sizes where a backend cannot run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lowrank.cli import load_script

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "studies" / "kernel_benchmark.py"
_benchmark = load_script(ROOT / "tests" / "benchmarks" / "kernel_harness.py")


def _study():
    return load_script(STUDY)


def test_time_step_counts_rounds_and_respects_min_seconds():
    calls = []
    times = _benchmark.time_step(lambda: calls.append(1), torch.device("cpu"), rounds=3, warmup=2)
    assert len(times) == 3 and len(calls) == 5 and all(t >= 0 for t in times)
    times = _benchmark.time_step(lambda: None, torch.device("cpu"), rounds=1, warmup=0,
                                 min_seconds=0.01, max_rounds=50)
    assert 1 <= len(times) <= 50


def test_skip_reason():
    cpu = torch.device("cpu")
    assert "CUDA" in _benchmark.skip_reason("triton", 64, cpu)
    assert "does not fit" in _benchmark.skip_reason("naive", 10**7, cpu)  # 1 PB of matrices
    assert _benchmark.skip_reason("naive", 64, cpu) is None
    assert _benchmark.skip_reason("torch", 10**7, cpu) is None


def test_builtin_timer_without_pytest_benchmark(tmp_path, monkeypatch):
    study = _study()
    monkeypatch.setattr(study, "pytest_benchmark_available", lambda: False)
    res = study.main(["--run", "--sizes", "16,40", "--backends", "naive", "torch", "triton",
                      "--no-memory", "--device", "cpu", "--quiet", "--out", str(tmp_path)])
    raw = json.loads((tmp_path / "kernel_benchmark.raw.json").read_text())
    assert raw["timer"].startswith("kernel_harness")
    assert {b["extra_info"]["backend"] for b in raw["benchmarks"]} == {"naive", "torch"}
    rows = {(r["backend"], r["P"]): r for r in res["rows"]}
    assert set(rows) == {("naive", 16), ("naive", 40), ("torch", 16), ("torch", 40)}
    for size in (16, 40):
        naive, torch_ = rows[("naive", size)], rows[("torch", size)]
        assert naive["speedup_vs_naive"] == 1.0 and torch_["speedup_vs_torch"] == 1.0
        assert torch_["speedup_vs_naive"] == pytest.approx(naive["time_min_s"] / torch_["time_min_s"])
        assert torch_["speedup_vs_naive"] * naive["speedup_vs_torch"] == pytest.approx(1.0)
        assert naive["speedup_vs_compile"] is None and naive["pairs"] == size * size
    assert res["skipped"] == []  # triton never ran on the CPU: not a size-dependent skip
    for ext in ("png", "pdf", "csv", "json"):
        assert (tmp_path / f"kernel_benchmark.{ext}").is_file()


def test_sizes_where_a_backend_cannot_run_are_reported(tmp_path):
    study = _study()
    machine = _benchmark.machine_info(torch.device("cpu"))

    def bench(backend, size, t):
        return {"extra_info": {"backend": backend, "P": size, "N": size, "pairs": size * size,
                               **machine, "peak_extra_bytes": None},
                "stats": {"min": t, "mean": t, "stddev": 0.0, "rounds": 1}}

    raw = {"machine_info": {}, "datetime": "now",
           "benchmarks": [bench("naive", 64, 1e-4), bench("compile", 64, 2e-4),
                          bench("compile", 4096, 0.05), bench("torch", 64, 4e-4),
                          bench("torch", 4096, 0.1)],
           "skipped": [{"backend": "naive", "P": 4096, "N": 4096, "device": "cpu",
                        "reason": "naive broadcast needs ~1 GiB"}]}
    path = tmp_path / "raw.json"
    path.write_text(json.dumps(raw))
    res = study.main(["--input", str(path), "--out", str(tmp_path), "--quiet"])
    assert res["skipped"] == [{"backend": "naive", "device": "cpu", "P": 4096, "N": 4096,
                               "reason": "naive broadcast needs ~1 GiB"}]
    rows = {(r["backend"], r["P"]): r for r in res["rows"]}
    assert rows[("torch", 4096)]["speedup_vs_compile"] == pytest.approx(0.5)
    assert rows[("compile", 64)]["speedup_vs_naive"] == pytest.approx(0.5)
    assert rows[("torch", 4096)]["speedup_vs_naive"] is None
    table = study.markdown_table(res["rows"], res["skipped"])
    assert "| vs naive | vs compile | vs torch |" in table
    assert "| naive | cpu | 4,096 | - | cannot run: naive broadcast needs ~1 GiB |" in table
    # without a recorded reason (pytest-benchmark drops skipped tests) the gap is still marked
    raw.pop("skipped")
    path.write_text(json.dumps(raw))
    res = study.main(["--input", str(path), "--out", str(tmp_path), "--quiet"])
    assert [(s["backend"], s["P"]) for s in res["skipped"]] == [("naive", 4096)]

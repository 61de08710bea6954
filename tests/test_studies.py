"""The studies in studies/ run in a tiny mode, write their figures, and measure what they claim.

Checked claims (issue #4): gradient-descent cross-entropy margins lie at or below the
predicted cross-entropy-limit margin and approach it as T grows; differential margins match
the optimal margin (to 1e-3 where the class differences span one direction, closer than
cross-entropy elsewhere); figures, JSON and CSV are written. Normalized gradient descent
(gradient descent on log L, the same limits reached sooner) brings the differential margin
to within 1e-3 of the optimal margin in every configuration, and keeps cross-entropy at or
below its predicted limit.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from lowrank.experiments import (
    ResultCache,
    config_key,
    default_lr,
    flatten_record,
    line_pair_ratio,
    margin_config,
    run_configs,
    span_complement,
)
from lowrank.io import load_json

STUDIES = Path(__file__).resolve().parent.parent / "studies"
NAMES = ["boundary_2d", "margin_vs_offset", "margin_vs_rank", "convergence"]
TOL = 1e-9
#: normalized GD, differential: |margin - optimal margin| after the tiny budget (2000 steps)
NGD_DIFF_TOL = 1e-3
#: normalized GD, cross-entropy: (CE-limit margin - margin) / CE-limit margin after the tiny
#: budget. Loose because cross-entropy's bias is slow to grow where the data sit far from the
#: origin along the subspace but close to it across (fixed centre 4, offset 0: the bias must
#: reach ~4 ||w||); most configurations are within NGD_CE_CLOSE (checked as well).
NGD_CE_REL_TOL = 0.75
NGD_CE_CLOSE = 0.06


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"studies_{name}", STUDIES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Every study in tiny mode, two at a time (one process each; 2 cores), results from JSON."""
    out = tmp_path_factory.mktemp("studies")

    def run(name):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(STUDIES / f"{name}.py"), "--tiny", "--quiet",
                        "--jobs", "1", "--out", str(out)], check=True)
        return time.perf_counter() - t0

    with ThreadPoolExecutor(max_workers=2) as pool:
        seconds = dict(zip(NAMES, pool.map(run, NAMES), strict=True))
    results = {name: load_json(out / f"{name}.json") for name in NAMES}
    return out, results, seconds


@pytest.mark.parametrize("name", NAMES)
def test_outputs_written(tiny, name):
    out, results, _ = tiny
    for ext in ("png", "pdf", "json", "csv"):
        path = out / f"{name}.{ext}"
        assert path.exists() and path.stat().st_size > 0, path
    assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    assert results[name]["mode"] == "tiny"


def test_boundary_2d(tiny):
    res = tiny[1]["boundary_2d"]
    for e in res["datasets"]:
        pred = e["predicted"]
        margins = [g["margin"] for g in e["gd"]]
        assert all(m <= pred["ce_limit_margin"] + TOL for m in margins)
        assert all(b >= a - TOL for a, b in zip(margins, margins[1:], strict=False))
        assert pred["ce_limit_margin"] - margins[-1] < pred["ce_limit_margin"] - margins[0]
        # points on a line: every class difference is parallel, differential is exact
        assert abs(e["differential"]["margin"] - pred["optimal_margin"]) < 1e-3
        assert pred["ce_limit_margin"] < pred["optimal_margin"]
    pair = res["datasets"][0]
    assert pair["closed_form"]["cross_entropy_margin"] == pytest.approx(1 / math.sqrt(5), abs=1e-12)
    assert pair["predicted"]["ce_limit_margin"] == pytest.approx(1 / math.sqrt(5), abs=1e-9)
    assert pair["predicted"]["optimal_margin"] == pytest.approx(1.0, abs=1e-9)


def _check_margin_records(records):
    n_approach = 0
    for r in records:
        assert r["separable"]
        assert r["ratio_predicted"] <= 1 + TOL
        ce = np.asarray(r["ce_margin"])
        assert np.all(ce <= r["ce_limit_margin"] + TOL), r
        gap = r["ce_limit_margin"] - ce
        assert gap[-1] <= gap[0] + TOL, r   # closer after the largest budget than the smallest
        n_approach += gap[-1] < gap[0]
        assert abs(r["ce_limit_duality_gap"]) < 1e-6 and abs(r["optimal_duality_gap"]) < 1e-6
        diff = r["diff_margin"][-1]
        one_direction = r["kind"] == "line_pair" or r["rank"] == 1 and r.get("noise", 0) == 0
        if one_direction:
            assert abs(diff - r["optimal_margin"]) < 1e-3, r
        else:  # converges like 1/log t; at tiny budgets, check it beats cross-entropy
            assert diff <= r["optimal_margin"] + TOL
            assert r["diff_ratio"][-1] > r["ce_ratio"][-1]
        # normalized gradient descent: the same limits, reached in thousands of steps
        assert r["ngd_steps"] and r["ngd_lr"] > 0
        assert abs(r["ngd_diff_margin"][-1] - r["optimal_margin"]) < NGD_DIFF_TOL, r
        assert r["ngd_diff_tilt"] < 1e-6 or r.get("noise", 0) > 0, r
        ngd_ce = np.asarray(r["ngd_ce_margin"])
        assert np.all(ngd_ce <= r["ce_limit_margin"] + TOL), r
        assert r["ce_limit_margin"] - ngd_ce[-1] <= NGD_CE_REL_TOL * r["ce_limit_margin"], r
    return n_approach


def _ngd_ce_close(records) -> int:
    """How many configurations have normalized-GD cross-entropy within NGD_CE_CLOSE."""
    return sum(r["ce_limit_margin"] - r["ngd_ce_margin"][-1]
               <= NGD_CE_CLOSE * r["ce_limit_margin"] for r in records)


def test_margin_vs_offset(tiny):
    res = tiny[1]["margin_vs_offset"]
    recs = res["records"]
    assert _check_margin_records(recs) >= len(recs) - 2
    assert _ngd_ce_close(recs) >= len(recs) // 2
    for r in recs:
        if r["kind"] == "line_pair":
            assert r["ratio_predicted"] == pytest.approx(r["closed_form_ratio"], abs=1e-8)
            assert r["ce_limit_margin"] == pytest.approx(r["closed_form_ce_margin"], abs=1e-8)
        # a subspace through the origin: no tilt when the data span one direction (for k >= 2
        # the penalised bias still tilts w *inside* the subspace, so the ratio may be < 1)
        if r["kind"] == "line_pair" and r["c"] == 0 or r.get("rank") == 1 and r["offset"] == 0:
            assert r["ratio_predicted"] == pytest.approx(1.0, abs=1e-2)
    # the dip of the fixed-centre sweep: offset 1, centre 4 -> 1/sqrt(1 + 16/4)
    dip = [r for r in recs if r["kind"] == "line_pair" and r["sweep"] == "height" and r["c"] == 1]
    assert dip and dip[0]["ratio_predicted"] == pytest.approx(1 / math.sqrt(5), abs=1e-8)


def test_margin_vs_rank(tiny):
    res = tiny[1]["margin_vs_rank"]
    _check_margin_records(res["records"])
    assert _ngd_ce_close(res["records"]) >= len(res["records"]) // 2
    for r in res["records"]:
        if r["noise"] == 0:  # the CE limit tilts out of the subspace, the optimal SVM does not
            assert r["ce_limit_tilt"] > 0.3
            assert r["optimal_tilt"] < 1e-6
            assert r["diff_tilt"] < 1e-6


def test_convergence(tiny):
    res = tiny[1]["convergence"]
    for r in res["runs"]:
        h = r["history"]
        steps = np.asarray(h["step"])
        margin = np.asarray(h["margin"], float)
        early = np.searchsorted(steps, 10)
        if r["loss"] == "cross_entropy":
            assert np.all(margin[1:] <= r["predicted_margin"] + TOL)
        if r["init"] == "random":
            assert r["frozen_change"] < 1e-10 * max(1.0, r["frozen_norm_init"])
        if r["reference"] == "frozen":
            comp = np.asarray(r["frozen_component"])
            assert np.ptp(comp) < 1e-10 and comp[0] == pytest.approx(r["frozen_norm_init"])
            continue
        ang = np.asarray(r["angle_deg"])
        assert ang[-1] <= ang[early] + 1e-9
        assert (abs(r["predicted_margin"] - margin[-1])
                <= abs(r["predicted_margin"] - margin[early]) + 1e-12)
        if r["loss"] == "differential" and r["dataset"] == "paper_pair" and r["init"] == "zeros":
            assert abs(margin[-1] - r["optimal_margin"]) < 1e-3
            assert ang[-1] < 1e-6
        if r.get("schedule") == "normalized":
            assert r["steps"] == res["settings"]["ngd_steps"] and r["lr"] == res["settings"]["ngd_lr"]
            if r["loss"] == "differential":  # close to the optimum in 1000 steps
                assert abs(margin[-1] - r["optimal_margin"]) < 1e-3
                assert ang[-1] < 0.5
    # for differential training, normalized GD ends closer in angle than plain GD (which runs
    # twice as many steps); for cross-entropy its oscillating path gives no such guarantee
    final = {(r["dataset"], r["loss"], r.get("schedule", "constant")): r["angle_deg"][-1]
             for r in res["runs"] if r["reference"] == "prediction" and r["init"] == "zeros"}
    for (dataset, loss, schedule), ang in final.items():
        if schedule == "normalized" and loss == "differential":
            assert ang <= final[(dataset, loss, "constant")] + 1e-9
    assert sum(r.get("schedule") == "normalized" for r in res["runs"]) == 4


def test_replot_and_resume(tiny):
    out, results, _ = tiny
    mod = load("margin_vs_offset")
    cache = out / "margin_vs_offset_cache.json"
    stamp = cache.stat().st_mtime_ns
    again = mod.main(["--tiny", "--quiet", "--jobs", "1", "--out", str(out)])  # all cached
    assert cache.stat().st_mtime_ns == stamp  # nothing was recomputed (the cache is rewritten
    # after every finished configuration)
    assert again["records"] == results["margin_vs_offset"]["records"]
    (out / "margin_vs_offset.png").unlink()
    mod.main(["--tiny", "--quiet", "--out", str(out), "--replot"])
    assert (out / "margin_vs_offset.png").exists()


def test_run_all_only(tmp_path):
    report = load("run_all").main(["--tiny", "--quiet", "--jobs", "1", "--out", str(tmp_path),
                                   "--only", "boundary_2d", "kernel_benchmark_missing"])
    assert report["boundary_2d"]["status"] == "ok"
    assert (tmp_path / "boundary_2d.png").exists() and (tmp_path / "run_all.json").exists()


def test_helpers(tmp_path):
    assert default_lr([[3.0, 1.0], [5.0, 1.0]], [-1, 1]) == pytest.approx(0.21170577, rel=1e-6)
    # two points: one difference (2, 0); second moment 4 -> lr 4/4
    assert default_lr([[3.0, 1.0], [5.0, 1.0]], [-1, 1], "differential") == pytest.approx(1.0)
    assert line_pair_ratio(4.0, 1.0) == pytest.approx(1 / math.sqrt(5))
    assert span_complement(np.array([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])).shape == (3, 2)
    assert flatten_record({"ce_steps": [1, 2], "ce_margin": [0.5, 0.6]}) == {
        "ce_margin_T1": 0.5, "ce_margin_T2": 0.6}
    cfg = {"kind": "line_pair", "a": 3.0, "g": 1.0, "c": 1.0, "ce_steps": [5, 50],
           "diff_steps": [5]}
    cache = ResultCache(tmp_path / "cache.json")
    [rec] = run_configs([cfg], margin_config, cache=cache, quiet=True)
    assert ResultCache(tmp_path / "cache.json").get(cfg) == rec
    assert config_key(cfg) in cache.results
    assert rec["ratio_predicted"] == pytest.approx(1 / math.sqrt(5))

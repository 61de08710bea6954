"""The study command line: default output folders, file modes, help text, user errors, run_all's exit."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lowrank.cli import default_out, load_script, run_cli, run_study, study_arguments, study_parser
from lowrank.io import save_csv, save_json, save_torch
from lowrank.sweep import ResultCache, run_configs

STUDIES = Path(__file__).resolve().parent.parent / "studies"


def _load(name: str):
    return load_script(STUDIES / f"{name}.py")


def test_default_out_is_runs_study_not_figures():
    assert study_parser("x", name="boundary_2d").parse_args([]).out == Path("runs") / "boundary_2d"
    assert study_arguments("x", name="convergence").parse_args([]).out == Path("runs/convergence")
    assert default_out("image_binary") == Path("runs/image_binary")
    assert "figures" not in study_parser("x").parse_args([]).out.parts


def test_study_without_out_leaves_figures_untouched(tmp_path, monkeypatch):
    """A study run from the repository root with no --out writes under runs/<study>/."""
    monkeypatch.chdir(tmp_path)
    res = run_study("demo", "demo", lambda a: {"seed": a.seed}, lambda r, o: None, lambda r: [r],
                    argv=["--quiet"])
    assert res["seed"] == 0
    assert sorted(p.name for p in (tmp_path / "runs" / "demo").iterdir()) == ["demo.csv", "demo.json"]
    assert not (tmp_path / "figures").exists()


def test_result_files_are_0644(tmp_path):
    old = os.umask(0o022)
    try:
        paths = [save_json(tmp_path / "a.json", {"x": 1}), save_csv(tmp_path / "a.csv", [{"x": 1}]),
                 save_torch(tmp_path / "a.pt", {"x": 1})]
    finally:
        os.umask(old)
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_help_shows_each_default_once(capsys):
    with pytest.raises(SystemExit):
        study_parser("demo", data=True, name="demo").parse_args(["--help"])
    text = capsys.readouterr().out
    assert "(default: None)" not in text
    assert text.count("LOWRANK_DATA") == 1
    assert "(default: 0)" in text  # --seed keeps its default


def test_run_cli_turns_user_errors_into_one_line_and_exit_2(capsys, monkeypatch):
    def bad(argv):
        raise ValueError("--classes: unknown class 'Shirts' (expected one of ...)")

    monkeypatch.delenv("LOWRANK_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as info:
        run_cli(bad, [])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error: --classes: unknown class 'Shirts'" in err and "Traceback" not in err

    def missing(argv):
        raise FileNotFoundError("no dataset directory /nope")

    with pytest.raises(SystemExit) as info:
        run_cli(missing, [])
    assert info.value.code == 2

    def bug(argv):
        raise ZeroDivisionError("a bug, not an input error")

    with pytest.raises(ZeroDivisionError):
        run_cli(bug, [])
    monkeypatch.setenv("LOWRANK_TRACEBACK", "1")
    with pytest.raises(ValueError):
        run_cli(bad, [])


def test_study_script_reports_missing_replot_as_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(STUDIES / "boundary_2d.py"), "--replot", "--quiet",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "error: --replot needs the saved results" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cache_hit_says_so(tmp_path, capsys):
    cache = ResultCache(tmp_path / "c.json")
    run_configs([{"x": 1}, {"x": 2}], worker=str, cache=cache, quiet=True, desc="demo")
    assert capsys.readouterr().out == ""
    run_configs([{"x": 1}, {"x": 2}], worker=str, cache=ResultCache(tmp_path / "c.json"), desc="demo")
    out = capsys.readouterr()
    assert "[demo] 2 of 2 configurations loaded from cache" in out.out
    assert "0it" not in out.err


def test_run_all_fails_loudly_when_a_study_fails(tmp_path, monkeypatch, capsys):
    run_all = _load("run_all")
    real = run_all.load_script

    def broken(path):
        if Path(path).stem == "boundary_2d":
            raise RuntimeError("boom")
        return real(path)

    monkeypatch.setattr(run_all, "load_script", broken)
    code = run_all.cli(["--tiny", "--quiet", "--jobs", "1", "--out", str(tmp_path),
                        "--only", "boundary_2d"])
    assert code == 1
    assert "FAILED: boundary_2d" in capsys.readouterr().err
    assert run_all.failed_studies({"a": {"status": "ok"}, "b": {"status": "failed (exit 1)"},
                                   "total_seconds": 3}) == ["b"]


def test_image_study_summary_prints_rounded_numbers(capsys):
    """The summary of a committed image run: no 16-digit floats, no raw dicts."""
    import json
    import re

    from lowrank.images.binary import report_lines

    path = STUDIES.parent / "figures" / "image_fashion_mnist_sneaker_vs_sandal.json"
    results = json.loads(path.read_text())
    print("\n".join(report_lines(results)))
    out = capsys.readouterr().out
    train = results["runtime_seconds"]["cross_entropy"]["train"]
    assert f"runtime (s): cross_entropy (train {train:.1f}, " in out
    assert not re.search(r"\d\.\d{6,}", out) and "{" not in out

"""studies/multiclass_margins.py in its tiny mode: outputs written, and the claims it makes.

Claims checked (C = 3 and 5 classes in a 2-dimensional subspace of R^6, offsets 0 and 8):

* the exact solvers are certified and the optimal (free-bias) margin does not change when
  the data are translated, while the predicted cross-entropy-limit margin collapses;
* differential training is translation invariant (identical margins at both offsets) and
  normalized gradient descent brings it to its predicted one-vs-rest limit;
* normalized gradient descent on cross-entropy approaches its predicted limit, from below
  where the collapse is strong, and stays below the differential margin at offset 8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lowrank.cli import load_script

STUDY = Path(__file__).resolve().parent.parent / "studies" / "multiclass_margins.py"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("multiclass_margins")
    mod = load_script(STUDY)
    res = mod.main(["--tiny", "--quiet", "--jobs", "1", "--out", str(out)])
    return out, res


def _by_classes(res):
    out = {}
    for r in res["records"]:
        out.setdefault(r["n_classes"], {})[r["offset"]] = r
    return out


def test_outputs_written(tiny):
    out, res = tiny
    assert res["mode"] == "tiny"
    for ext in ("png", "pdf", "json", "csv"):
        path = out / f"multiclass_margins.{ext}"
        assert path.exists() and path.stat().st_size > 0
    assert (out / "multiclass_margins.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predictions_certified_and_collapse(tiny):
    for C, recs in _by_classes(tiny[1]).items():
        near, far = recs[0.0], recs[8.0]
        for r in (near, far):
            assert abs(r["optimal_duality_gap"]) < 1e-9 and abs(r["ce_limit_duality_gap"]) < 1e-9
        assert far["optimal_margin"] == pytest.approx(near["optimal_margin"], rel=1e-9), C
        assert far["ratio_ce_predicted"] < 0.85, C
        assert far["ratio_ce_predicted"] < near["ratio_ce_predicted"] - 0.1, C


def test_differential_is_translation_invariant_and_reaches_its_limit(tiny):
    for recs in _by_classes(tiny[1]).values():
        near, far = recs[0.0], recs[8.0]
        np.testing.assert_allclose(far["diff_margin"], near["diff_margin"], rtol=1e-9)
        np.testing.assert_allclose(far["ngd_diff_margin"], near["ngd_diff_margin"], rtol=1e-9)
        for r in (near, far):
            assert abs(r["ngd_diff_margin"][-1] - r["ovr_limit_margin"]) < 1e-3 * r["ovr_limit_margin"], r
            assert r["ngd_diff_cosine"][-1] > 0.99999
            # near the optimal margin: the one-vs-rest limit is within 10% of Crammer-Singer here
            assert r["ngd_diff_ratio"][-1] > 0.9


def test_cross_entropy_approaches_its_collapsed_limit(tiny):
    for C, recs in _by_classes(tiny[1]).items():
        for off, r in recs.items():
            pred = r["ce_limit_margin"]
            m = np.asarray(r["ngd_ce_margin"])
            assert r["ngd_ce_cosine"][-1] > 0.998, (C, off)
            assert abs(m[-1] - pred) < 0.05 * pred, (C, off)
            assert abs(m[-1] - pred) <= abs(m[0] - pred) + 1e-9, (C, off)
            # measured <= predicted (to 1e-3 relative: at offset 0 the path sits on the limit)
            assert np.all(m <= pred * (1 + 1e-3)), (C, off)
        far = recs[8.0]
        assert far["ngd_ce_margin"][-1] < far["ngd_diff_margin"][-1] - 0.1, C


def test_runs_without_a_margin_are_marked_not_plotted(tiny):
    """A run that misclassifies a training point has margin and ratio null and flag false."""
    n_flags = n_unseparated = 0
    for r in tiny[1]["records"]:
        for run in ("ce", "diff", "ngd_ce", "ngd_diff"):
            flags = r[f"{run}_separated"]
            assert len(flags) == len(r[f"{run}_margin"]) == len(r[f"{run}_ratio"])
            for ok, m, q in zip(flags, r[f"{run}_margin"], r[f"{run}_ratio"], strict=True):
                n_flags += 1
                n_unseparated += not ok
                assert (m is None) == (q is None) == (not ok), (run, r["offset"])
                assert ok is False or m > 0
    assert n_flags > 0


def test_plain_gd_at_a_small_budget_far_from_the_origin_is_not_separated():
    """The worker itself: T = 1 step of plain GD at offset 20 misclassifies (no margin)."""
    from lowrank.margin_study import multiclass_margin_config

    rec = multiclass_margin_config({"n_per_class": 4, "n_classes": 3, "dim": 6, "rank": 2,
                                    "offset": 20.0, "seed": 0, "ce_steps": [1, 3000],
                                    "diff_steps": [], "ngd_steps": []})
    assert rec["ce_separated"][0] is False and rec["ce_margin"][0] is None
    assert rec["ce_ratio"][0] is None

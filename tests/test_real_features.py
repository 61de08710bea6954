"""Library pieces of the real-features study, and the study end to end on tiny archives."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _image_fixtures import write_tiny_fashion

from lowrank.analysis.bootstrap import bootstrap_curve, bootstrap_interval, paired_differences
from lowrank.attacks import min_norm_attack
from lowrank.data.synthetic import affine_subspace_data
from lowrank.images.heads import (
    HeadNet,
    differential_head_on_shift,
    differential_shift_invariance,
    feature_predictions,
    head_on_backbone,
    offset_grid,
    retrain_head,
    separable_subset,
    shift_features,
)
from lowrank.models import MLP
from lowrank.theory import cross_entropy_limit, max_margin_separator

STUDIES = Path(__file__).resolve().parent.parent / "studies"


def _numpy_reference(groups, stat, n_boot, level, seed):
    """The two-level bootstrap written out with explicit loops."""
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        picked = rng.integers(0, len(groups), size=len(groups))
        pooled = []
        for k in picked:
            g = np.asarray(groups[k], float)
            pooled.extend(g[rng.integers(0, len(g), size=len(g))])
        stats.append(stat(np.asarray(pooled)))
    a = (1 - level) / 2
    return np.quantile(stats, [a, 1 - a])


def test_bootstrap_interval_matches_numpy_reference():
    rng = np.random.default_rng(3)
    groups = [rng.normal(k, 1.0, size=7 + k) for k in range(4)]
    for stat in (np.mean, np.median):
        got = bootstrap_interval(groups, stat, n_boot=300, level=0.9, seed=11)
        low, high = _numpy_reference(groups, stat, 300, 0.9, 11)
        assert got["low"] == pytest.approx(low, abs=1e-12)
        assert got["high"] == pytest.approx(high, abs=1e-12)
        assert got["estimate"] == pytest.approx(stat(np.concatenate(groups)))


def test_bootstrap_interval_of_a_mean_has_the_normal_width():
    x = np.random.default_rng(0).normal(2.0, 3.0, size=4000)
    r = bootstrap_interval([x], n_boot=2000, seed=1)
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)  # the normal-theory 95% interval
    assert (r["high"] - r["low"]) / 2 == pytest.approx(half, rel=0.1)
    assert r["low"] < x.mean() < r["high"]
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval([x], level=1.5)
    with pytest.raises(ValueError, match="groups"):
        bootstrap_interval([[]])


def test_bootstrap_curve_and_paired_differences():
    c = bootstrap_curve([[0.1, 0.3, np.inf], [0.2]], [0.0, 0.25, 10.0], n_boot=100)
    assert c["share"] == [0.0, 0.5, 0.75]
    assert all(lo <= s <= hi for lo, s, hi in zip(c["low"], c["share"], c["high"], strict=True))
    d = paired_differences([[1.0, np.inf]], [[0.25, np.inf]])
    assert d[0].tolist() == [0.75, 0.0]
    with pytest.raises(ValueError, match="same number"):
        paired_differences([[1.0]], [[1.0, 2.0]])


def _separable(seed=0, offset=3.0):
    d = affine_subspace_data(20, dim=5, rank=2, offset=offset, gap=1.0, seed=seed)
    return d.X.double(), d.y.double()


def test_offset_shift_leaves_the_optimal_separator_unchanged_up_to_its_bias():
    X, y = _separable()
    opt = max_margin_separator(X, y)
    for u in (opt.direction, torch.nn.functional.normalize(torch.ones(5, dtype=torch.float64), dim=0)):
        for c in (0.5, 4.0):
            sh = max_margin_separator(shift_features(X, c, u), y)
            assert sh.margin == pytest.approx(opt.margin, rel=1e-8)
            assert torch.allclose(sh.w, opt.w, rtol=1e-6, atol=1e-8)
            assert sh.b == pytest.approx(opt.b - c * float(opt.w @ u), rel=1e-6, abs=1e-8)


def _on_a_plane(seed=0, n=30, dim=4):
    """Two Gaussian blobs separated along the first axis, on the plane ``x_last = 1``.

    The constant last coordinate is what lets the cross-entropy limit trade its bias for a
    weight (the paper's mechanism): shifting such data along the optimal normal lowers the
    predicted ratio. (Full-rank blobs have no such direction, and their ratio stays 1.)
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.ones(n), -torch.ones(n)]).double()
    X = 0.3 * torch.randn(2 * n, dim, generator=g, dtype=torch.float64)
    X[:, 0] += y
    X[:, -1] = 1.0
    return X, y


def test_offset_grid_reaches_the_target_ratio_along_the_normal():
    X, y = _on_a_plane()
    opt = max_margin_separator(X, y)
    g = offset_grid(X, y, opt.direction, n=4)
    assert g["reached"] and g["ratio_at_c_max"] <= 0.5 and len(g["c"]) == 4 and g["c"][0] == 0.0
    assert g["c"][-1] == g["c_max"] and g["solver_errors"] == []
    ratio = cross_entropy_limit(shift_features(X, g["c_max"], opt.direction), y).margin / opt.margin
    assert ratio == pytest.approx(g["ratio_at_c_max"], rel=1e-9)
    # one doubling earlier the ratio was still above the target
    half = shift_features(X, g["c_max"] / 2, opt.direction)
    assert cross_entropy_limit(half, y).margin / opt.margin > 0.5


def test_feature_predictions_against_the_solvers():
    X, y = _separable()
    p = feature_predictions(X, y)
    opt, ce = max_margin_separator(X, y), cross_entropy_limit(X, y)
    assert p["certified"] and p["optimal_margin"] == pytest.approx(opt.margin, rel=1e-12)
    assert p["ratio_predicted"] == pytest.approx(ce.margin / opt.margin, rel=1e-12)
    # delta: the optimal hyperplane's distance from the origin, in margins
    dist = abs(opt.b) / float(opt.w.norm())
    assert p["hyperplane_origin_distance"] == pytest.approx(dist / opt.margin, rel=1e-12)
    assert p["ratio_predicted"] >= p["ratio_lower_bound"] - 1e-12
    assert p["offset_norm"] == pytest.approx(float(X.mean(0).norm()), rel=1e-12)
    assert p["span_rank"] <= 5


def test_separable_subset_counts_misclassified_and_zero_rows():
    F = torch.tensor([[1.0, 0.0], [0.0, 0.0], [2.0, 1.0], [0.0, 0.0]])
    r = separable_subset(F, [1, -1, -1, 1], [0.5, -0.1, 0.3, -0.2])
    assert r["indices"].tolist() == [0, 1]
    assert (r["n_kept"], r["n_misclassified"], r["all_zero_rows"], r["all_zero_rows_kept"]) == (2, 2, 2, 1)


def test_retrained_heads_reach_their_predictions():
    X, y = _separable(seed=1)
    p = feature_predictions(X, y)
    d = retrain_head(X, y, "differential", "normalized", 2000, seed=0, reference=p["optimal_w"])
    assert d["margin"] == pytest.approx(p["optimal_margin"], abs=1e-3)
    assert d["cosine"] > 0.999
    c = retrain_head(X, y, "cross_entropy", "normalized", 20000, seed=0, reference=p["ce_limit_w"])
    assert c["separated"] and c["margin"] <= p["ce_limit_margin"] * (1 + 1e-6)
    assert c["margin"] == pytest.approx(p["ce_limit_margin"], rel=0.02)
    assert c["history"]["step"][-1] == 20000


def test_the_differential_head_does_not_see_a_shift_and_its_margin_follows_it():
    X, y = _on_a_plane(seed=2)
    opt = max_margin_separator(X, y)
    u = opt.direction
    base = retrain_head(X, y, "differential", "normalized", 3000, seed=0, lr=0.3)
    assert base["margin"] == pytest.approx(opt.margin, rel=1e-3)
    for c in (3.0, 1e3):
        Xc = shift_features(X, c, u)
        retrained = retrain_head(Xc, y, "differential", "normalized", 3000, seed=0, lr=0.3)
        moved = differential_head_on_shift(base["w"], X, y, c, u)
        # retraining on the shifted features gives the same weights (the pair loss sees only
        # differences) and the same midpoint-bias margin as the arm-A head put on them
        assert torch.allclose(torch.tensor(retrained["w"]), torch.tensor(base["w"]),
                              rtol=1e-9, atol=1e-9 * max(map(abs, base["w"])))
        assert moved["margin"] == pytest.approx(retrained["margin"], rel=1e-9)
        assert moved["b"] == pytest.approx(retrained["b"], rel=1e-9, abs=1e-9 * c)
        assert moved["margin"] == pytest.approx(base["margin"], rel=1e-9)
        # while the optimal margin is unchanged, the cross-entropy limit falls
        assert max_margin_separator(Xc, y).margin == pytest.approx(opt.margin, rel=1e-8)
    check = differential_shift_invariance(X, y, 1e3, u, steps=500, seed=0, lr=0.3)
    assert check["relative_w_difference"] < 1e-9 and check["steps"] == 500 and check["lr"] == 0.3
    assert check["margins"]["shifted"] == pytest.approx(check["margins"]["unshifted"], rel=1e-9)
    # a head that does not separate the shifted points reports it
    bad = differential_head_on_shift([0.0, 0.0, 0.0, 1.0], X, y, 2.0, u)
    assert bad["margin"] is None and not bad["separated"] and bad["signed_margin"] <= 0


def test_heads_on_predictions_counts_every_arm_and_shift():
    from lowrank.images.real_features import heads_on_predictions

    fs = {"optimal_margin": 1.0, "ce_limit_margin": 0.5, "differential_head_margin": 0.9995,
          "ce_head_margin": 0.49}
    pts = [{"c": 1.0, "certified": True, "optimal_margin": 1.0, "ce_limit_margin": 0.4,
            "differential_head_margin": 0.998, "ce_head_margin": 0.41},   # CE above its limit
           {"c": 2.0, "certified": True, "optimal_margin": 1.0, "ce_limit_margin": 0.3,
            "differential_head_margin": 1.0, "ce_head_margin": None},     # CE not separated
           {"c": 4.0, "certified": False, "error": "CertificationError: x"}]
    pts[0]["ce_head_history"] = {"step": [0, 10, 100], "margin": [-1.0, 0.3, 0.41]}
    pts[1]["ce_head_history"] = {"step": [0, 10, 100], "margin": [-1.0, 0.2, 0.1]}
    r = heads_on_predictions([{"feature_space": fs, "offset_sweep": {"u": {"points": pts}}}])
    assert r["differential"] == {"n": 3, "n_within_tol": 2, "worst_ratio": 0.998}
    assert r["cross_entropy"]["n"] == 3 and r["cross_entropy"]["n_separated"] == 2
    assert r["cross_entropy"]["n_at_or_below"] == 1
    # the first history rises from its step-10 record, the second falls
    assert r["cross_entropy"]["n_with_history"] == 2 and r["cross_entropy"]["n_approaching"] == 1
    assert r["cross_entropy"]["lowest_ratio"] == pytest.approx(0.98)
    assert r["cross_entropy"]["highest_ratio"] == pytest.approx(1.025)


def test_head_net_shift_is_a_bias_change_and_the_attack_is_scale_free():
    torch.manual_seed(0)
    m = MLP(16, (12, 6)).eval()
    x = torch.rand(6, 1, 4, 4)
    w, b = m.head.weight[0].detach().tolist(), float(m.head.bias)
    u = torch.nn.functional.normalize(torch.rand(6), dim=0)
    shifted = head_on_backbone(m, w, b, shift=(2.0 * u).tolist())
    plain = HeadNet(m.body, w, b + 2.0 * float(torch.tensor(w) @ u))
    assert torch.allclose(shifted(x), plain(x), atol=1e-5)
    # a huge shift, cancelled by the bias, leaves the scores as they were (no float32 loss)
    u64 = u.double()
    far = head_on_backbone(m, w, b - 1e6 * float(torch.tensor(w, dtype=torch.float64) @ u64),
                           shift=(1e6 * u64).tolist())
    assert torch.allclose(far(x), m(x), atol=1e-4)
    with torch.no_grad():  # centre the scores so that the boundary runs through the box
        b -= float(m(x).median())
    y = torch.where(HeadNet(m.body, w, b)(x) > 0, 1.0, -1.0)
    small = min_norm_attack(head_on_backbone(m, w, b), x, y, "l2", steps=30, warn=False)
    big = min_norm_attack(head_on_backbone(m, [100 * v for v in w], 100 * b), x, y, "l2", steps=30,
                          warn=False)
    assert small.n_failed == big.n_failed == 0
    assert torch.allclose(small.norms, big.norms, rtol=1e-2, atol=1e-4)


def _study():
    spec = importlib.util.spec_from_file_location("studies_real_features", STUDIES / "real_features.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_study_writes_the_results_schema_and_replots(tmp_path):
    manifest = write_tiny_fashion(tmp_path / "fm", n_train=400, n_test=40)
    (tmp_path / "sums.json").write_text(json.dumps(manifest))
    argv = ["--data-dir", str(tmp_path / "fm"), "--checksums", str(tmp_path / "sums.json"),
            "--classes", "Trouser", "Bag", "--tiny", "--quiet", "--out", str(tmp_path / "out"),
            "--threads", "1", "--seeds", "2"]
    res = _study().main(argv)
    name = "real_features_fashion_mnist_trouser_vs_bag_tiny"
    saved = json.loads((tmp_path / "out" / f"{name}.json").read_text())
    assert list(saved)[:3] == ["protocol", "seeds", "summary"]
    assert saved["protocol"]["classes"] == ["Trouser", "Bag"] and len(saved["seeds"]) == 2
    certified = [s for s in saved["seeds"] if s["feature_space"].get("certified")]
    assert certified, [s["feature_space"].get("error") for s in saved["seeds"]]
    for seed in saved["seeds"]:  # a seed without certified predictions says why
        assert seed["feature_space"].get("certified") or seed["feature_space"]["error"]
    for seed in certified:
        fs = seed["feature_space"]
        for k in ("optimal_margin", "ce_limit_margin", "ce_head_margin", "differential_head_margin",
                  "effective_rank", "offset_norm", "hyperplane_origin_distance"):
            assert k in fs, k
        assert seed["hyperplane_origin_distance"] == fs["hyperplane_origin_distance"]
        assert fs["separability"]["n_kept"] + fs["separability"]["n_misclassified"] == \
            fs["separability"]["n_total"]
        assert abs(fs["differential_head_margin"] - fs["optimal_margin"]) <= 0.05 * fs["optimal_margin"]
        for head in ("cross_entropy", "differential"):
            for split in ("train", "test"):
                for norm in ("l2", "linf"):
                    r = seed["input_space"][head][split][norm]
                    assert len(r["share"]) == len(r["eps"]) and r["n_images"] == 4
        for u, sweep in seed["offset_sweep"].items():
            assert u in ("optimal_normal", "feature_mean")
            for p in sweep.get("points", []):
                assert "c" in p and ("ratio_predicted" in p or "error" in p)
                if "input_space" in p:
                    assert set(p["input_space"]) == {"cross_entropy", "differential"}
                    # the differential network is arm A's at every shift
                    assert p["input_space"]["differential"]["test"]["l2"] == \
                        seed["input_space"]["differential"]["test"]["l2"]
                    assert p["differential_head_margin"] == pytest.approx(
                        fs["differential_head_margin"], rel=1e-6)
            if "points" in sweep:
                check = sweep["differential_shift_check"]
                assert check["c"] == sweep["points"][-1]["c"] and check["steps"] == 50
                assert check["relative_w_difference"] < 1e-6
    for seed in saved["seeds"]:
        assert set(seed["end_to_end"]["input_space"]) == {"cross_entropy", "differential"}
    s = saved["summary"]
    assert s["n_seeds"] == 2
    st = s["feature_space"]["optimal_margin"]
    assert st["low"] <= st["estimate"] <= st["high"]
    assert "holds" in s["claim"]["input_space"] and "holds" in s["claim"]["end_to_end"]
    hp = s["heads_on_predictions"]
    assert hp["differential"]["n"] == hp["cross_entropy"]["n"] >= len(certified)
    assert hp["cross_entropy"]["n_with_history"] == hp["cross_entropy"]["n"]
    assert (tmp_path / "out" / f"{name}.png").stat().st_size > 1000
    rows = (tmp_path / "out" / f"{name}.csv").read_text().splitlines()
    assert rows[0] == "seed,arm,head,split,norm,eps,share_adversarial"
    # a rerun resumes from the cache; --replot redraws from the JSON alone
    again = _study().main(argv)
    assert again["seeds"][0]["feature_space"]["optimal_margin"] == res["seeds"][0]["feature_space"][
        "optimal_margin"]
    # the resumed results carry what their pieces cost when they were computed
    assert res["cached_piece_seconds"] > 0
    assert again["cached_piece_seconds"] == pytest.approx(res["cached_piece_seconds"], rel=1e-12)
    (tmp_path / "out" / f"{name}.png").unlink()
    _study().main([*argv, "--replot"])
    assert (tmp_path / "out" / f"{name}.png").is_file()


def test_tiny_study_runs_on_the_cifar_format(tmp_path):
    from _image_fixtures import write_tiny_cifar

    manifest = write_tiny_cifar(tmp_path / "data", n_per_batch=40, archive=True)
    (tmp_path / "sums.json").write_text(json.dumps(manifest))
    res = _study().main(["--dataset", "cifar10", "--classes", "cat", "dog", "--data-dir",
                         str(tmp_path / "data"), "--checksums", str(tmp_path / "sums.json"),
                         "--tiny", "--quiet", "--out", str(tmp_path / "out"), "--threads", "1"])
    assert res["protocol"]["dataset"] == "cifar10" and res["protocol"]["classes"] == ["cat", "dog"]
    assert (tmp_path / "out" / "real_features_cifar10_cat_vs_dog_tiny.json").is_file()
    e = res["seeds"][0]
    assert e["feature_space"]["separability"]["n_total"] == 40
    assert set(e["end_to_end"]["input_space"]) == {"cross_entropy", "differential"}


def test_raising_a_head_budget_reruns_only_that_head_and_its_attacks(tmp_path, monkeypatch):
    import copy

    from lowrank.images import real_features as rf

    manifest = write_tiny_fashion(tmp_path / "fm", n_train=400, n_test=40)
    (tmp_path / "sums.json").write_text(json.dumps(manifest))
    argv = ["--data-dir", str(tmp_path / "fm"), "--checksums", str(tmp_path / "sums.json"),
            "--classes", "Trouser", "Bag", "--tiny", "--quiet", "--out", str(tmp_path / "out"),
            "--threads", "1"]
    cache = tmp_path / "out" / "real_features_fashion_mnist_trouser_vs_bag_tiny_cache.json"
    first = _study().main(argv)
    before = set(json.loads(cache.read_text()))
    tiny = copy.deepcopy(rf.MODES["tiny"])
    tiny["steps"]["normalized"]["differential"] += 50
    monkeypatch.setitem(rf.MODES, "tiny", tiny)
    second = _study().main(argv)
    added = [json.loads(k) for k in set(json.loads(cache.read_text())) - before]
    # the tiny run's predictions are certified (else it would have no heads to retrain)
    assert first["seeds"][0]["feature_space"].get("certified"), first["seeds"][0]["feature_space"]
    # the new head, and the attacks on it (2 splits x 2 norms); nothing else is recomputed
    assert sorted((k["what"], k.get("schedule"), k.get("head")) for k in added) == sorted(
        [("head", "normalized", "differential")] + [("min_norm", None, "differential")] * 4)
    assert all(k.get("head_steps", k.get("steps")) == tiny["steps"]["normalized"]["differential"]
               for k in added)
    a, b = first["seeds"][0], second["seeds"][0]
    assert b["end_to_end"]["feature_space"]["differential"] == a["end_to_end"]["feature_space"][
        "differential"]
    assert b["feature_space"]["optimal_margin"] == a["feature_space"]["optimal_margin"]
    assert b["feature_space"]["ce_head_margin"] == a["feature_space"]["ce_head_margin"]

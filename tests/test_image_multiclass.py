"""The multi-class image study: loaders, feature-space predictions, heads, and the study end to end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _image_fixtures import write_tiny_cifar, write_tiny_fashion

from lowrank.analysis.multiclass import multiclass_margin
from lowrank.data import load_cifar10, load_fashion_mnist, load_fashion_mnist_binary
from lowrank.data._archive import select_classes
from lowrank.data.multiclass import multiclass_subspace_data
from lowrank.images.heads import HeadNet, separable_subset
from lowrank.images.multiclass_heads import (
    multiclass_feature_predictions,
    origin_distances,
    retrain_multiclass_head,
)
from lowrank.images.tasks import balanced_subset, classes_slug
from lowrank.theory.multiclass import multiclass_cross_entropy_limit, multiclass_max_margin

STUDIES = Path(__file__).resolve().parent.parent / "studies"


def test_fashion_loader_keeps_every_class_with_its_official_label(tmp_path):
    manifest = write_tiny_fashion(tmp_path, n_train=50, n_test=20)
    task = load_fashion_mnist(tmp_path, checksums=manifest)
    assert task.x_train.shape == (50, 1, 28, 28) and task.y_train.dtype == torch.int64
    assert task.classes[0] == "T-shirt/top" and len(task.classes) == 10
    assert task.summary()["n_train_per_class"] == [5] * 10
    # the labels are the files' labels: the binary loader's +1 images are label 7 here
    binary = load_fashion_mnist_binary(tmp_path, ("Sneaker", "Sandal"), checksums=manifest)
    pos = task.x_train[task.y_train == 7]
    assert torch.equal(binary.x_train[binary.y_train > 0], pos)
    # a subset relabels 0..C-1 in the given order
    sub = load_fashion_mnist(tmp_path, ["Bag", 0, "Coat"], checksums=manifest)
    assert sub.classes == ("Bag", "T-shirt/top", "Coat")
    assert torch.equal(sub.x_train[sub.y_train == 0], task.x_train[task.y_train == 8])
    assert torch.equal(sub.x_train[sub.y_train == 2], task.x_train[task.y_train == 4])
    with pytest.raises(ValueError, match="distinct"):
        load_fashion_mnist(tmp_path, ["Bag", "bag"], checksums=manifest)
    with pytest.raises(ValueError, match="at least two"):
        load_fashion_mnist(tmp_path, ["Bag"], checksums=manifest)


def test_cifar_loader_multiclass(tmp_path):
    manifest = write_tiny_cifar(tmp_path, n_per_batch=20)
    task = load_cifar10(tmp_path, ["dog", "cat"], checksums=manifest)
    assert task.classes == ("dog", "cat") and task.x_train.shape[1:] == (3, 32, 32)
    full = load_cifar10(tmp_path, checksums=manifest)
    assert len(full.classes) == 10 and full.x_train.shape[0] == 100
    assert torch.equal(task.x_train[task.y_train == 1], full.x_train[full.y_train == 3])


def test_select_classes_messages():
    names = ["a", "b", "c"]
    assert select_classes(["c", 1], names, "toy", count=None) == ((2, 1), ("c", "b"))
    with pytest.raises(ValueError, match="pair"):
        select_classes(["a", "b", "c"], names, "toy")
    with pytest.raises(ValueError, match="unknown toy class 'z'"):
        select_classes(["a", "z"], names, "toy", count=None)


def test_balanced_subset_and_slug():
    y = torch.tensor([0, 1, 2] * 5 + [0] * 5)
    idx = balanced_subset(y, 9, seed=1)
    assert torch.bincount(y[idx]).tolist() == [3, 3, 3]
    assert classes_slug("fashion_mnist", None) == "all"
    assert classes_slug("cifar10", ["cat", "dog", "ship"]) == "cat_dog_ship"


def test_separable_subset_for_class_scores():
    S = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 3.0, 3.0]])
    r = separable_subset(torch.ones(4, 2), [0, 2, 1, 1], S)
    # a tie is on the boundary (as a zero binary score): points 2 and 3 are not kept
    assert r["indices"].tolist() == [0, 1] and r["n_misclassified"] == 2
    with pytest.raises(ValueError, match="y"):
        separable_subset(torch.ones(4, 2), [0, 3, 1, 1], S)


def test_multiclass_headnet_folds_the_shift_into_the_offsets():
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 4))
    W, b, shift = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, dtype=torch.float64), \
        1e3 * torch.randn(4, dtype=torch.float64)
    net = HeadNet(body, W.tolist(), b.tolist(), shift=shift.tolist())
    x = torch.rand(5, 1, 2, 3)
    with torch.no_grad():
        ref = (body(x).double() + shift) @ W.T + b  # float64 reference
    assert net(x).shape == (5, 3)
    assert torch.allclose(net(x).double(), ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    with pytest.raises(ValueError, match="offset"):
        HeadNet(body, W.tolist(), [0.0, 1.0])


def test_origin_distances_against_a_loop():
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(4, 3)), rng.normal(size=4)
    vals = [abs(b[a] - b[c]) / np.linalg.norm(W[a] - W[c]) / 0.7 for a in range(4) for c in range(a + 1, 4)]
    d = origin_distances(W, b, 0.7)
    assert d["max"] == pytest.approx(max(vals), rel=1e-13)
    assert d["median"] == pytest.approx(float(np.median(vals)), rel=1e-13)


def test_feature_predictions_match_the_solvers_and_the_geometry():
    data = multiclass_subspace_data(8, 4, 6, 2, 5.0, seed=3)
    p = multiclass_feature_predictions(data.X, data.y)
    opt, ce = multiclass_max_margin(data.X, data.y), multiclass_cross_entropy_limit(data.X, data.y)
    assert p["certified"] and p["n_classes"] == 4 and p["span_rank"] == 2
    assert p["optimal_margin"] == pytest.approx(opt.margin, rel=1e-12)
    assert p["ratio_predicted"] == pytest.approx(ce.margin / opt.margin, rel=1e-12)
    assert 0 < p["ratio_predicted"] < 1  # the affine offset 5 makes the CE limit collapse
    # the limit's weight outside the data's span, checked by a projection written out
    X = data.X - data.X.mean(0)
    _, _, vt = torch.linalg.svd(X, full_matrices=False)
    P = vt[:2].T @ vt[:2]
    W = ce.W
    assert p["ce_limit_outside_span"] == pytest.approx(
        float(((W - W @ P) ** 2).sum() / (W ** 2).sum()), rel=1e-9, abs=1e-15)
    # non-separable features: no certified answer, the reason recorded
    bad = multiclass_feature_predictions([[0.0], [1.0], [2.0], [3.0]], [0, 1, 0, 1])
    assert bad["certified"] is False and "NotSeparable" in bad["error"]


def test_retrained_heads_reach_their_predictions():
    data = multiclass_subspace_data(6, 3, 4, 2, 3.0, seed=1)
    p = multiclass_feature_predictions(data.X, data.y)
    d = retrain_multiclass_head(data.X, data.y, "differential", 3000, seed=0,
                                reference=p["ovr_limit_W"])
    c = retrain_multiclass_head(data.X, data.y, "cross_entropy", 20000, seed=0,
                                reference=p["ce_limit_W"])
    assert d["margin"] == pytest.approx(p["ovr_limit_margin"], rel=1e-3)
    assert d["cosine"] > 0.999
    assert c["margin"] <= p["ce_limit_margin"] * (1 + 1e-9) or c["cosine"] > 0.99
    assert c["margin"] == pytest.approx(p["ce_limit_margin"], rel=0.05)
    assert c["margin"] == pytest.approx(multiclass_margin(c["W"], c["b"], data.X, data.y))
    # a multi-class head put back on a backbone gives the head's own scores
    body = torch.nn.Identity()
    net = HeadNet(body, d["W"], d["b"])
    ref = data.X.double() @ torch.tensor(d["W"], dtype=torch.float64).T + torch.tensor(d["b"])
    assert torch.equal(net(data.X.float()).argmax(1), ref.argmax(1))


def _study():
    spec = importlib.util.spec_from_file_location("studies_image_multiclass",
                                                  STUDIES / "image_multiclass.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_multiclass_study_end_to_end(tmp_path):
    manifest = write_tiny_fashion(tmp_path / "fm", n_train=300, n_test=40)
    (tmp_path / "sums.json").write_text(json.dumps(manifest))
    argv = ["--data-dir", str(tmp_path / "fm"), "--checksums", str(tmp_path / "sums.json"),
            "--classes", "Trouser", "Bag", "Sneaker", "--tiny", "--quiet", "--out",
            str(tmp_path / "out"), "--threads", "1", "--seeds", "2"]
    res = _study().main(argv)
    name = "image_multiclass_fashion_mnist_trouser_bag_sneaker_tiny"
    saved = json.loads((tmp_path / "out" / f"{name}.json").read_text())
    assert list(saved)[:3] == ["protocol", "seeds", "summary"]
    assert saved["protocol"]["classes"] == ["Trouser", "Bag", "Sneaker"]
    assert saved["protocol"]["n_classes"] == 3 and len(saved["seeds"]) == 2
    for seed in saved["seeds"]:
        assert set(seed["networks"]) == {"cross_entropy", "differential"}
        assert seed["networks"]["differential"]["bias_rule"] == "fitted"
        mid = seed["networks"]["differential"]["midpoint_offsets"]
        assert 0 <= mid["train_acc"] <= 1 and len(mid["offsets"]) == 3
        for loss in ("cross_entropy", "differential"):
            fs = seed["feature_space"][loss]
            sep = fs["separability"]
            assert sep["n_kept"] + sep["n_misclassified"] == sep["n_total"] == 90
            assert fs.get("certified") or fs["error"]
            if fs.get("certified"):
                assert fs["network_head_margin"] <= fs["optimal_margin"] * (1 + 1e-9)
                assert fs["ce_limit_margin"] <= fs["optimal_margin"] * (1 + 1e-9)
            for split in ("train", "test"):
                for norm in ("l2", "linf"):
                    r = seed["input_space"]["networks"][loss][split][norm]
                    assert r["n_images"] == 4 and len(r["share"]) == len(r["eps"])
        if seed["heads"]:
            for loss in ("cross_entropy", "differential"):
                assert seed["input_space"]["heads"][loss]["test"]["l2"]["n_images"] == 4
    # the certified branch above ran (the tiny features are separable for some seed and loss)
    assert any(seed["feature_space"][loss].get("certified") for seed in saved["seeds"]
               for loss in ("cross_entropy", "differential"))
    s = saved["summary"]
    assert s["n_seeds"] == 2
    st = s["feature_space"]["cross_entropy"]["test_acc"]
    assert st["low"] <= st["estimate"] <= st["high"]
    assert "holds" in s["claim"]["networks"]
    assert (tmp_path / "out" / f"{name}.png").stat().st_size > 1000
    rows = (tmp_path / "out" / f"{name}.csv").read_text().splitlines()
    assert rows[0] == "seed,source,loss,split,norm,eps,share_adversarial"
    again = _study().main(argv)  # resumes from the cache
    assert again["seeds"][1]["feature_space"] == res["seeds"][1]["feature_space"]
    (tmp_path / "out" / f"{name}.png").unlink()
    _study().main([*argv, "--replot"])
    assert (tmp_path / "out" / f"{name}.png").is_file()


def test_tiny_multiclass_study_on_the_cifar_format(tmp_path):
    manifest = write_tiny_cifar(tmp_path / "data", n_per_batch=40, archive=True)
    (tmp_path / "sums.json").write_text(json.dumps(manifest))
    res = _study().main(["--dataset", "cifar10", "--data-dir", str(tmp_path / "data"),
                         "--checksums", str(tmp_path / "sums.json"), "--tiny", "--quiet",
                         "--out", str(tmp_path / "out"), "--threads", "1"])
    assert res["protocol"]["n_classes"] == 10
    assert (tmp_path / "out" / "image_multiclass_cifar10_all_tiny.json").is_file()


def test_bad_classes_are_a_clear_command_line_error(tmp_path, capsys):
    from lowrank.cli import run_cli

    manifest = write_tiny_fashion(tmp_path / "fm", n_train=20, n_test=10)
    (tmp_path / "sums.json").write_text(json.dumps(manifest))
    mod = _study()
    with pytest.raises(SystemExit) as exc:
        run_cli(mod.main, ["--data-dir", str(tmp_path / "fm"), "--checksums",
                           str(tmp_path / "sums.json"), "--classes", "Bag", "Hat", "Coat", "--tiny",
                           "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    assert "unknown Fashion-MNIST class 'Hat'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run_cli(mod.main, ["--data-dir", str(tmp_path / "fm"), "--checksums",
                           str(tmp_path / "sums.json"), "--classes", "Bag", "Coat", "--tiny",
                           "--out", str(tmp_path / "out")])
    assert exc.value.code == 2 and "at least three classes" in capsys.readouterr().err

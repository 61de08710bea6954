"""The image study end to end, in its tiny mode, on a CIFAR-format archive the test writes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _image_fixtures import write_tiny_cifar, write_tiny_fashion

STUDIES = Path(__file__).resolve().parent.parent / "studies"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"studies_{name}", STUDIES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny_cifar_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    manifest = write_tiny_cifar(root / "data", n_per_batch=40, archive=True)
    sums = root / "sums.json"
    sums.write_text(json.dumps(manifest))
    out = root / "out"
    argv = ["--data-dir", str(root / "data"), "--checksums", str(sums), "--tiny", "--quiet",
            "--out", str(out), "--classes", "cat", "dog", "--seed", "1", "--threads", "1"]
    res = _load("cifar_binary").main(argv)
    return res, out, argv


def test_tiny_study_writes_protocol_results_and_figures(tiny_cifar_run):
    res, out, _ = tiny_cifar_run
    name = "image_cifar10_cat_vs_dog_tiny"
    for ext in ("json", "csv", "png", "pdf"):
        assert (out / f"{name}.{ext}").is_file(), ext
    assert (out / f"{name}_spectrum.png").is_file()
    saved = json.loads((out / f"{name}.json").read_text())
    assert next(iter(saved)) == "protocol"  # the protocol is written first
    proto = saved["protocol"]
    assert proto["dataset"] == "cifar10" and proto["classes"] == ["cat", "dog"]
    assert proto["mode"] == "tiny" and proto["seed"] == 1
    assert proto["attack"]["n_images_per_split"] == {"train": 8, "test": 8}
    assert proto["n_train_used"] == 40 and proto["n_test"] == 8
    # --device defaults to auto: the real device is recorded, not a constant
    want = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
    assert proto["software"]["device"] == want
    for loss in ("cross_entropy", "differential"):
        m = saved["models"][loss]
        # the tiny classes are separable: both models learn them
        assert m["clean_train_acc"] >= 0.9 and m["clean_test_acc"] >= 0.75
        assert len(m["history"]) == proto["training"]["epochs"]
        assert 1.0 <= m["history"][-1]["effective_rank"] <= proto["model"]["feature_dim"]
        for split in ("train", "test"):
            for norm in ("l2", "linf"):
                a = m["attacks"][split][norm]
                share, norms = np.asarray(a["share"]), np.asarray(a["norms"], dtype=float)
                assert len(norms) == 8 and np.all(np.diff(share) >= 0)
                assert share[0] == pytest.approx(np.mean(norms == 0))
                assert share[-1] == pytest.approx(np.mean(norms <= a["eps"][-1]))
                assert a["n_failed"] == 0
                assert np.all(norms[norms > 0] <= (np.sqrt(3072) if norm == "l2" else 1.0))
    assert saved["models"]["differential"]["bias_rule"] == "midpoint"
    rows = (out / f"{name}.csv").read_text().splitlines()
    assert rows[0] == "loss,split,norm,eps,share_adversarial"
    assert len(rows) == 1 + 2 * 2 * (81 + 81)


def test_tiny_study_rerun_reuses_checkpoints(tiny_cifar_run):
    res, out, argv = tiny_cifar_run
    again = _load("image_binary").main(["--dataset", "cifar10", *argv])
    for loss in ("cross_entropy", "differential"):
        a, b = res["models"][loss], again["models"][loss]
        assert a["clean_test_acc"] == b["clean_test_acc"]
        assert np.array_equal(np.asarray(a["attacks"]["test"]["l2"]["norms"]),
                              np.asarray(b["attacks"]["test"]["l2"]["norms"]))
        assert again["runtime_seconds"][loss]["train"] == res["runtime_seconds"][loss]["train"]


def test_replot_redraws_from_the_json_alone(tiny_cifar_run, tmp_path):
    _, out, argv = tiny_cifar_run
    name = "image_cifar10_cat_vs_dog_tiny"
    saved = tmp_path / f"{name}.json"
    saved.write_text((out / f"{name}.json").read_text())
    # the same options name the same run; --replot reads <out>/<name>.json, no data needed
    res = _load("image_binary").main(["--dataset", "cifar10", "--classes", "cat", "dog", "--tiny",
                                      "--quiet", "--out", str(tmp_path), "--replot"])
    assert res["protocol"]["mode"] == "tiny"
    for suffix in ("", "_spectrum"):
        for ext in ("png", "pdf"):
            assert (tmp_path / f"{name}{suffix}.{ext}").stat().st_size > 1000
    with pytest.raises(FileNotFoundError, match="--replot needs the saved results"):
        _load("image_binary").main(["--tiny", "--quiet", "--out", str(tmp_path / "none"),
                                    "--replot"])


def test_study_scripts_are_short_compositions():
    for script in ("image_binary", "cifar_binary"):
        text = (STUDIES / f"{script}.py").read_text()
        assert len(text.splitlines()) <= 120
        assert "sys.path" not in text and "run_study(" in text


def test_tiny_study_on_fashion_format_and_clear_data_errors(tmp_path, monkeypatch):
    manifest = write_tiny_fashion(tmp_path / "fm", n_train=100, n_test=40)
    (tmp_path / "sums.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("LOWRANK_DATA", str(tmp_path / "fm"))
    res = _load("image_binary").main(
        ["--dataset", "fashion_mnist", "--classes", "Trouser", "Bag", "--checksums",
         str(tmp_path / "sums.json"), "--tiny", "--quiet", "--out", str(tmp_path / "out"),
         "--threads", "1"])
    assert res["protocol"]["classes"] == ["Trouser", "Bag"]
    assert res["data"]["image_shape"] == [1, 28, 28]
    # official checksums reject the tiny files, with a message naming the file
    with pytest.raises(ValueError, match="corrupt or not the official release"):
        _load("image_binary").main(["--dataset", "fashion_mnist", "--tiny", "--quiet",
                                    "--out", str(tmp_path / "out2")])

"""Deep models, the minibatch trainer (determinism, resume, bias rule) and feature spectra."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from lowrank.analysis import (
    effective_rank,
    energy_rank,
    feature_spectrum,
    singular_values,
    spectrum_summary,
)
from lowrank.io import load_torch
from lowrank.models import MLP, SmallCNN, build_model
from lowrank.train import DeepTrainConfig, balanced_batches, predict_scores, train_deep


def _toy(n_pos=30, n_neg=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.ones(n_pos), -torch.ones(n_neg)])
    x = torch.rand(n_pos + n_neg, 1, 8, 8, generator=g) * 0.5
    x[: n_pos, :, :4] += 0.4  # positives are brighter in the top half
    return x, y


# ---------------------------------------------------------------- feature spectra
def test_spectrum_matches_numpy_on_known_rank():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 12)) + 5.0  # affine rank 3, linear rank 4
    s = singular_values(torch.from_numpy(A), center=True).numpy()
    want = np.linalg.svd(A - A.mean(0), compute_uv=False)
    np.testing.assert_allclose(s, want, rtol=1e-10, atol=1e-9)
    assert np.sum(s > 1e-8 * s[0]) == 3
    s_raw = singular_values(torch.from_numpy(A), center=False).numpy()
    assert np.sum(s_raw > 1e-8 * s_raw[0]) == 4
    p = want[want > 1e-12] / want.sum()
    assert effective_rank(s) == pytest.approx(float(np.exp(-(p * np.log(p)).sum())), rel=1e-9)
    assert 1.0 < effective_rank(s) <= 3.0 + 1e-9
    e = np.cumsum(want**2) / np.sum(want**2)
    assert energy_rank(s, 0.99) == int(np.argmax(e >= 0.99)) + 1
    assert energy_rank(s, 1.0) == 3


def test_effective_rank_of_equal_singular_values():
    Q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(50, 5)))
    F = Q * 7.0  # five equal singular values
    s = singular_values(F, center=False)
    assert effective_rank(s) == pytest.approx(5.0, rel=1e-9)
    assert energy_rank(s, 0.99) == 5 and energy_rank(s, 0.5) == 3
    assert effective_rank([0.0, 0.0]) == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        effective_rank([-1.0, 1.0])
    with pytest.raises(ValueError, match="energy"):
        energy_rank([1.0], 1.5)


# ---------------------------------------------------------------- models
def test_models_expose_features_and_one_score():
    torch.manual_seed(0)
    cnn = SmallCNN(3, 32, width=4, feature_dim=10)
    x = torch.rand(5, 3, 32, 32)
    s, f = cnn(x, return_features=True)
    assert s.shape == (5,) and f.shape == (5, 10) and cnn.feature_dim == 10
    torch.testing.assert_close(s, f @ cnn.head.weight[0] + cnn.head.bias[0])
    mlp = build_model("mlp", (1, 8, 8), hidden=(16, 6))
    assert isinstance(mlp, MLP) and mlp(torch.rand(2, 1, 8, 8)).shape == (2,)
    assert feature_spectrum(mlp, torch.rand(40, 1, 8, 8))["n_features"] == 6
    with pytest.raises(ValueError, match="name"):
        build_model("resnet", (1, 8, 8))
    with pytest.raises(ValueError, match="divisible by 4"):
        SmallCNN(1, 30)


# ---------------------------------------------------------------- trainer
def test_balanced_batches_cover_the_larger_class_once():
    g = torch.Generator().manual_seed(0)
    pos, neg = torch.arange(7), torch.arange(7, 30)
    batches = balanced_batches(pos, neg, 8, g)
    assert len(batches) == math.ceil(23 / 4)
    for b in batches:
        assert len(b) == 8 and int((b < 7).sum()) == 4
    negs = torch.cat([b[4:] for b in batches])
    assert sorted(negs[:23].tolist()) == list(range(7, 30))  # every negative exactly once


@pytest.mark.parametrize("loss", ["cross_entropy", "differential"])
def test_resume_gives_bit_identical_weights(tmp_path, loss):
    x, y = _toy()
    torch.manual_seed(3)
    init = MLP(64, (16, 4))
    cfg4 = DeepTrainConfig(loss=loss, epochs=4, batch_size=10, lr=1e-2, seed=5,
                           spectrum_samples=40)
    straight = train_deep(copy.deepcopy(init), x, y, cfg4, quiet=True)
    ck = tmp_path / "ck.pt"
    cfg2 = DeepTrainConfig(**{**cfg4.__dict__, "epochs": 2})
    first = train_deep(copy.deepcopy(init), x, y, cfg2, checkpoint=ck, quiet=True)
    assert len(first.history) == 2 and load_torch(ck)["epoch"] == 2
    resumed = train_deep(copy.deepcopy(init), x, y, cfg4, checkpoint=ck, resume=True, quiet=True)
    assert resumed.resumed_from == 2 and len(resumed.history) == 4
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]
    # same seed, fresh run -> same weights; another seed -> different
    again = train_deep(copy.deepcopy(init), x, y, cfg4, quiet=True)
    assert all(torch.equal(a, b) for a, b in zip(straight.model.parameters(),
                                                  again.model.parameters()))
    other = train_deep(copy.deepcopy(init), x, y, DeepTrainConfig(**{**cfg4.__dict__, "seed": 6}),
                       quiet=True)
    assert not torch.equal(other.model.head.weight, straight.model.head.weight)
    # a checkpoint of another configuration is refused
    with pytest.raises(ValueError, match="different configuration.*lr"):
        train_deep(copy.deepcopy(init), x, y, DeepTrainConfig(**{**cfg4.__dict__, "lr": 0.5}),
                   checkpoint=ck, resume=True, quiet=True)


def test_differential_training_learns_and_sets_midpoint_bias(tmp_path):
    x, y = _toy()
    torch.manual_seed(0)
    init = MLP(64, (16, 4))
    b0 = float(init.head.bias)
    res = train_deep(copy.deepcopy(init), x, y,
                     DeepTrainConfig(loss="differential", epochs=6, batch_size=10, lr=1e-2),
                     checkpoint=tmp_path / "d.pt", quiet=True)
    s = predict_scores(res.model, x)
    # midpoint rule: the closest positive and negative scores are equidistant from 0
    assert float(s[y > 0].min()) == pytest.approx(-float(s[y < 0].max()), abs=1e-5)
    assert res.bias_rule == "midpoint" and float(res.model.head.bias) == pytest.approx(res.bias)
    assert float(((s > 0) == (y > 0)).float().mean()) == 1.0
    assert res.history[-1]["train_acc"] == 1.0 and res.history[-1]["loss"] < res.history[0]["loss"]
    # the bias is not trained: the checkpoint keeps its initial value
    assert float(load_torch(tmp_path / "d.pt")["model"]["head.bias"]) == b0
    h = res.history[-1]
    assert 1.0 <= h["effective_rank"] <= 4.0 and 1 <= h["energy_rank"] <= 4
    assert len(h["singular_values"]) == 4


def test_cross_entropy_training_learns():
    x, y = _toy()
    torch.manual_seed(0)
    res = train_deep(MLP(64, (16, 4)), x, y,
                     DeepTrainConfig(loss="cross_entropy", epochs=6, batch_size=10, lr=1e-2),
                     quiet=True)
    assert res.bias_rule == "trained" and res.history[-1]["train_acc"] >= 0.95


def test_trainer_input_errors():
    x, y = _toy()
    with pytest.raises(ValueError, match="both classes"):
        train_deep(MLP(64, (4,)), x, torch.ones(len(x)), DeepTrainConfig(epochs=1), quiet=True)
    with pytest.raises(ValueError, match="batch_size"):
        DeepTrainConfig(batch_size=7)
    with pytest.raises(ValueError, match="loss"):
        DeepTrainConfig(loss="hinge")
    with pytest.raises(ValueError, match="same length"):
        train_deep(MLP(64, (4,)), x, y[:-1], DeepTrainConfig(epochs=1), quiet=True)


# ---------------------------------------------------------------- devices
def test_energy_rank_on_the_scores_device(device):
    s = torch.tensor([10.0, 2.0, 0.5, 0.0], dtype=torch.float64, device=device)
    assert energy_rank(s, 0.99) == 2 and energy_rank(s, 0.5) == 1
    assert energy_rank(s, 1.0) == 3 and energy_rank(torch.zeros(3, device=device)) == 0
    assert energy_rank(s.flip(0), 0.99) == 2  # sorted internally
    F = torch.randn(30, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    want = spectrum_summary(F)
    got = spectrum_summary(F.to(device))
    np.testing.assert_allclose(got["singular_values"], want["singular_values"], rtol=1e-10)
    assert got["energy_rank"] == want["energy_rank"]
    assert got["effective_rank"] == pytest.approx(want["effective_rank"], rel=1e-10)


def test_analysis_and_models_name_their_devices(explicit_devices):
    """CPU-side guard against device mixing: lowrank code creates no tensor on an implicit device."""
    F = torch.randn(40, 6, generator=torch.Generator().manual_seed(1))
    model = build_model("mlp", (1, 4, 4), hidden=(8, 3), device="cpu")
    with explicit_devices():
        spectrum_summary(F)
        energy_rank(singular_values(F), 0.9)
        effective_rank(singular_values(F))
        feature_spectrum(model, torch.rand(12, 1, 4, 4), batch_size=5)
        predict_scores(model, torch.rand(7, 1, 4, 4), batch_size=3, features=True)
        x, y = _toy(6, 8)
        for loss in ("cross_entropy", "differential"):
            train_deep(build_model("mlp", (1, 8, 8), hidden=(4,)), x, y,
                       DeepTrainConfig(loss=loss, epochs=1, batch_size=4, spectrum_samples=10),
                       quiet=True)


def test_explicit_devices_catches_an_implicit_cpu_tensor(explicit_devices):
    """The guard fails on the pattern that broke energy_rank on CUDA (code 'in' lowrank)."""
    import os

    fake = os.sep.join(["", "x", "lowrank", "analysis", "fake.py"])
    code = compile("cum = torch.cumsum(s, 0)\n"
                   "torch.searchsorted(cum, torch.tensor(0.5, dtype=torch.float64))\n", fake, "exec")
    with pytest.raises(AssertionError, match=r"tensor at .*fake\.py:2"):
        with explicit_devices():
            exec(code, {"torch": torch, "s": torch.ones(3, dtype=torch.float64)})


def test_models_and_features_run_on_the_meta_device():
    """Meta tensors hold no values: any CPU tensor mixed in by the forward pass is an error."""
    for name in ("cnn", "mlp"):
        m = build_model(name, (3, 8, 8), width=2, feature_dim=5, device="meta")
        assert all(p.device.type == "meta" for p in m.parameters())
        s, f = predict_scores(m, torch.empty(6, 3, 8, 8, device="meta"), batch_size=4,
                              features=True)
        assert s.device.type == f.device.type == "meta" and f.shape == (6, 5)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            build_model("mlp", (1, 4, 4), device="cuda")


@pytest.mark.parametrize("loss", ["cross_entropy", "differential"])
def test_train_deep_on_device(device, loss, tmp_path):
    """The whole deep path on ``device``: training, per-epoch spectrum, bias rule, resume."""
    x, y = _toy()
    torch.manual_seed(0)
    init = MLP(64, (16, 4))
    cfg = DeepTrainConfig(loss=loss, epochs=3, batch_size=10, lr=1e-2, seed=2, spectrum_samples=40)
    ref = train_deep(copy.deepcopy(init), x, y, cfg, quiet=True)  # CPU reference
    res = train_deep(copy.deepcopy(init).to(device), x.to(device), y.to(device), cfg, quiet=True,
                     checkpoint=tmp_path / "ck.pt")
    assert all(p.device.type == device.type for p in res.model.parameters())
    assert len(res.history) == 3 and 1 <= res.history[-1]["energy_rank"] <= 4
    for a, b in zip(ref.history, res.history, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-6)
        assert b["effective_rank"] == pytest.approx(a["effective_rank"], rel=1e-3)
    torch.testing.assert_close(predict_scores(res.model, x.to(device)).cpu(),
                               predict_scores(ref.model, x), rtol=1e-3, atol=1e-4)
    # device= moves a CPU model and CPU data; a checkpoint written on `device` resumes on the CPU
    moved = train_deep(copy.deepcopy(init), x, y, cfg, quiet=True, device=device)
    assert next(moved.model.parameters()).device.type == device.type
    more = DeepTrainConfig(**{**cfg.__dict__, "epochs": 4})
    resumed = train_deep(copy.deepcopy(init), x, y, more, checkpoint=tmp_path / "ck.pt",
                         resume=True, quiet=True, device="cpu")
    assert resumed.resumed_from == 3 and len(resumed.history) == 4


def test_resolve_device_and_the_device_option():
    import argparse

    from lowrank.device import add_device_argument, device_info, resolve_device

    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(torch.device("cpu"))
    auto = resolve_device("auto")
    assert auto == resolve_device(None)
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device(3)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")
    p = add_device_argument(argparse.ArgumentParser())
    assert p.parse_args([]).device == "auto" and p.parse_args(["--device", "cuda:1"]).device == "cuda:1"
    with pytest.raises(SystemExit):
        p.parse_args(["--device", "tpu"])
    info = device_info(auto)
    assert info["device_type"] == auto.type and info["device"].startswith(auto.type)

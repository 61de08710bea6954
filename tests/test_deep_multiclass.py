"""C-logit deep models and the multi-class deep trainer (softmax cross-entropy, one-vs-rest differential)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from lowrank.io import load_torch
from lowrank.losses import multiclass_differential_loss
from lowrank.models import MLP, SmallCNN, build_model
from lowrank.train import (
    DeepTrainConfig,
    balanced_batches,
    class_balanced_batches,
    multiclass_offsets,
    predict_scores,
    train_deep,
)


def _blobs(sizes=(30, 18, 24, 12), seed=0, sep=1.5, noise=0.3, dtype=torch.float32):
    """Separable C-class "images" 1x4x4: class means ``sep * N(0, I)`` plus noise."""
    g = torch.Generator().manual_seed(seed)
    means = sep * torch.randn(len(sizes), 16, generator=g, dtype=torch.float64)
    y = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(sizes)])
    x = means[y] + noise * torch.randn(len(y), 16, generator=g, dtype=torch.float64)
    return x.view(-1, 1, 4, 4).to(dtype), y


# ---------------------------------------------------------------- models
@pytest.mark.parametrize("C", [3, 10])
def test_c_logit_models_give_logits_and_features(C):
    torch.manual_seed(0)
    x = torch.rand(4, 1, 8, 8)
    for m in (SmallCNN(1, 8, width=2, feature_dim=5, n_classes=C),
              build_model("cnn", (1, 8, 8), width=2, feature_dim=5, n_classes=C),
              MLP(64, (7, 5), n_classes=C), build_model("mlp", (1, 8, 8), hidden=(7, 5), n_classes=C)):
        s, f = m(x, return_features=True)
        assert s.shape == (4, C) and f.shape == (4, 5)
        assert m.n_classes == C and m.feature_dim == 5 and m.head.out_features == C
        torch.testing.assert_close(m(x), s)
        torch.testing.assert_close(m.features(x), f)
        torch.testing.assert_close(s, f @ m.head.weight.T + m.head.bias)
        ps, pf = predict_scores(m, x, batch_size=3, features=True)
        torch.testing.assert_close(ps, s)
        torch.testing.assert_close(pf, f)


def test_two_classes_keep_the_one_score_model_and_its_initialisation():
    """n_classes=2 builds the same parameters, in the same order, as the one-score model by hand."""
    torch.manual_seed(7)
    ref_mlp = [nn.Linear(16, 8), nn.Linear(8, 4), nn.Linear(4, 1)]
    torch.manual_seed(7)
    ref_cnn = [nn.Conv2d(1, 3, 3, padding=1), nn.Conv2d(3, 6, 3, padding=1), nn.Linear(6 * 2 * 2, 5),
               nn.Linear(5, 1)]
    builds = {
        "mlp": (ref_mlp, [lambda: MLP(16, (8, 4)), lambda: MLP(16, (8, 4), n_classes=2),
                          lambda: build_model("mlp", (1, 4, 4), hidden=(8, 4), n_classes=2)]),
        "cnn": (ref_cnn, [lambda: SmallCNN(1, 8, width=3, feature_dim=5),
                          lambda: SmallCNN(1, 8, width=3, feature_dim=5, n_classes=2),
                          lambda: build_model("cnn", (1, 8, 8), width=3, feature_dim=5)]),
    }
    for name, (ref, makers) in builds.items():
        want = [t for layer in ref for t in (layer.weight, layer.bias)]
        for make in makers:
            torch.manual_seed(7)
            m = make()
            got = list(m.state_dict().values())
            assert len(got) == len(want), name
            for a, b in zip(got, want):
                assert torch.equal(a, b), name
            side = 4 if name == "mlp" else 8
            assert m.n_classes == 2 and m(torch.rand(3, 1, side, side)).shape == (3,)
    # a C-logit model of the same seed has the same body (the head is created last)
    torch.manual_seed(7)
    one = MLP(16, (8, 4))
    torch.manual_seed(7)
    many = MLP(16, (8, 4), n_classes=5)
    for a, b in zip(one.body.state_dict().values(), many.body.state_dict().values()):
        assert torch.equal(a, b)


def test_bad_n_classes():
    for bad in (1, 0, 2.5):
        with pytest.raises(ValueError, match="n_classes"):
            MLP(16, (4,), n_classes=bad)
        with pytest.raises(ValueError, match="n_classes"):
            SmallCNN(1, 8, n_classes=bad)
        with pytest.raises(ValueError, match="n_classes"):
            build_model("mlp", (1, 4, 4), n_classes=bad)
    with pytest.raises(TypeError, match="n_classes"):
        MLP(16, (4,), n_classes="3")


# ---------------------------------------------------------------- sampler
@pytest.mark.parametrize("sizes, batch_size", [((5, 11, 3), 9), ((4, 7, 2, 9), 11)])
def test_class_balanced_batches_for_many_classes(sizes, batch_size):
    C, per = len(sizes), batch_size // len(sizes)
    starts = [sum(sizes[:c]) for c in range(C)]
    groups = [torch.arange(s, s + n) for s, n in zip(starts, sizes)]
    label = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])
    batches = class_balanced_batches(groups, batch_size, torch.Generator().manual_seed(1))
    assert len(batches) == math.ceil(max(sizes) / per)
    for b in batches:  # per of each class, class by class
        assert label[b].tolist() == [c for c in range(C) for _ in range(per)]
    for c, n in enumerate(sizes):
        stream = torch.cat([b[c * per:(c + 1) * per] for b in batches]).tolist()
        for k in range(0, len(stream), n):  # each pass over a class is a permutation of it
            part = stream[k:k + n]
            assert len(set(part)) == len(part) and set(part) <= set(groups[c].tolist())
            if len(part) == n:
                assert sorted(part) == groups[c].tolist()
    big = max(range(C), key=lambda c: sizes[c])
    stream = torch.cat([b[big * per:(big + 1) * per] for b in batches])
    assert sorted(stream[:sizes[big]].tolist()) == groups[big].tolist()  # the largest once
    again = class_balanced_batches(groups, batch_size, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    other = class_balanced_batches(groups, batch_size, torch.Generator().manual_seed(2))
    assert not all(torch.equal(a, b) for a, b in zip(batches, other, strict=True))


def test_balanced_batches_is_the_two_class_case_with_its_old_output():
    pos, neg = torch.arange(5), torch.arange(5, 16)
    g = torch.Generator().manual_seed(3)
    first, second = balanced_batches(pos, neg, 6, g), balanced_batches(pos, neg, 6, g)
    # the output of the two-class sampler before the C-class one existed (commit b2da3ad)
    assert [b.tolist() for b in first] == [[1, 0, 3, 6, 15, 7], [4, 2, 0, 13, 5, 10],
                                           [1, 2, 4, 11, 12, 8], [3, 1, 4, 9, 14, 6]]
    assert [b.tolist() for b in second] == [[4, 2, 1, 11, 7, 14], [3, 0, 3, 5, 10, 13],
                                            [1, 4, 2, 6, 12, 8], [0, 3, 0, 9, 15, 15]]
    g = torch.Generator().manual_seed(3)
    same = class_balanced_batches([pos, neg], 6, g)
    assert all(torch.equal(a, b) for a, b in zip(first, same, strict=True))


def test_class_balanced_batches_errors():
    g = torch.Generator().manual_seed(0)
    groups = [torch.arange(3), torch.arange(3, 5), torch.arange(5, 9)]
    with pytest.raises(ValueError, match="batch_size must be at least the number of classes"):
        class_balanced_batches(groups, 2, g)
    with pytest.raises(ValueError, match=r"groups\[1\]"):
        class_balanced_batches([torch.arange(3), torch.arange(0)], 4, g)
    with pytest.raises(ValueError, match="two classes"):
        class_balanced_batches([torch.arange(3)], 4, g)


# ---------------------------------------------------------------- trainer
@pytest.mark.parametrize("loss", ["cross_entropy", "differential"])
def test_one_sgd_step_is_the_gradient_of_the_reference_loss(loss):
    """One batch (the whole set) and plain SGD: the update is -lr times the autograd gradient
    of an independent loss, and the recorded loss is its value (float64)."""
    x, y = _blobs(sizes=(4, 4, 4), sep=1.0, noise=0.5, dtype=torch.float64)
    torch.manual_seed(1)
    init = MLP(16, (6, 5), n_classes=3).double()
    lr = 0.1
    cfg = DeepTrainConfig(loss=loss, optimizer="sgd", lr=lr, momentum=0.0, epochs=1, batch_size=12,
                          spectrum_samples=0)  # 12 // 3 = 4 per class: one batch per epoch
    res = train_deep(copy.deepcopy(init), x, y, cfg, quiet=True)
    ref = copy.deepcopy(init)
    S = ref(x)
    if loss == "cross_entropy":  # -log softmax of the true class, mean over the examples
        L = (torch.logsumexp(S, dim=1) - S[torch.arange(len(y)), y]).mean()
    else:  # log(1 + exp(-(S_ic - S_jc))) over y_i = c != y_j, mean over all such pairs
        terms = [torch.log1p(torch.exp(-(S[i, c] - S[j, c])))
                 for c in range(3) for i in range(len(y)) for j in range(len(y))
                 if y[i] == c and y[j] != c]
        assert len(terms) == 3 * 4 * 8
        L = torch.stack(terms).mean()
    L.backward()
    assert res.history[0]["loss"] == pytest.approx(float(L.detach()), rel=1e-12)
    moved = 0
    for (name, p0), p1 in zip(ref.named_parameters(), res.model.parameters(), strict=True):
        if loss == "differential" and name == "head.bias":
            continue  # not trained; set to the offsets at the end
        torch.testing.assert_close(p1.detach(), p0.detach() - lr * p0.grad, rtol=1e-10, atol=1e-13)
        moved += int(not torch.equal(p1, p0))
    assert moved >= 5
    if loss == "cross_entropy":
        assert not torch.equal(res.model.head.bias, init.head.bias)  # the biases are trained
        assert res.bias_rule == "trained" and res.bias == res.model.head.bias.tolist()


@pytest.mark.parametrize("loss", ["cross_entropy", "differential"])
def test_separable_classes_are_learned(loss):
    x, y = _blobs()
    torch.manual_seed(0)
    res = train_deep(MLP(16, (32, 8), n_classes=4), x, y,
                     DeepTrainConfig(loss=loss, epochs=12, batch_size=16, lr=1e-2, spectrum_samples=60),
                     quiet=True)
    h = res.history
    assert len(h) == 12 and h[-1]["loss"] < 0.5 * h[0]["loss"]
    assert h[-1]["train_acc"] >= 0.95
    pred = predict_scores(res.model, x).argmax(dim=1)
    assert float((pred == y).double().mean()) == pytest.approx(h[-1]["train_acc"])
    assert 1.0 <= h[-1]["effective_rank"] <= 8.0 and len(h[-1]["singular_values"]) == 8
    assert res.bias_rule == ("offsets" if loss == "differential" else "trained")
    assert isinstance(res.bias, list) and len(res.bias) == 4


def test_differential_offsets_are_set_after_training(tmp_path):
    x, y = _blobs()
    torch.manual_seed(0)
    init = MLP(16, (32, 8), n_classes=4)
    res = train_deep(copy.deepcopy(init), x, y,
                     DeepTrainConfig(loss="differential", epochs=12, batch_size=16, lr=1e-2,
                                     spectrum_samples=0),
                     checkpoint=tmp_path / "d.pt", quiet=True)
    # the optimiser never touched the biases: the last checkpoint holds the initial ones
    assert torch.equal(load_torch(tmp_path / "d.pt")["model"]["head.bias"], init.head.bias.detach())
    feats = predict_scores(res.model, x, features=True)[1].double()
    raw = feats @ res.model.head.weight.detach().double().T  # scores without the biases
    want = multiclass_offsets(raw, y)
    torch.testing.assert_close(torch.tensor(res.bias, dtype=torch.float64), want, rtol=0, atol=1e-6)
    torch.testing.assert_close(res.model.head.bias.detach().double(), want, rtol=0, atol=1e-6)
    ordered = all(float(raw[y == c, c].min()) > float(raw[y != c, c].max()) for c in range(4))
    assert ordered  # every one-vs-rest pair is ordered ...
    assert torch.equal((raw + want).argmax(dim=1), y)  # ... so the offsets classify all points
    assert torch.equal(predict_scores(res.model, x).argmax(dim=1), y)
    assert res.history[-1]["train_acc"] == 1.0
    assert float(multiclass_differential_loss(raw, y)) < res.history[0]["loss"]
    # an epoch's accuracy is the argmax with that epoch's offsets (not the untrained biases)
    one = train_deep(copy.deepcopy(init), x, y,
                     DeepTrainConfig(loss="differential", epochs=1, batch_size=16, lr=1e-3,
                                     spectrum_samples=0),
                     checkpoint=tmp_path / "one.pt", quiet=True)
    m = copy.deepcopy(init)
    m.load_state_dict(load_torch(tmp_path / "one.pt")["model"])
    raw1 = predict_scores(m, x) - m.head.bias.detach()
    acc = float(((raw1 + multiclass_offsets(raw1, y).float()).argmax(dim=1) == y).double().mean())
    assert one.history[0]["train_acc"] == acc


@pytest.mark.parametrize("loss", ["cross_entropy", "differential"])
def test_multiclass_resume_is_bit_identical(tmp_path, loss):
    x, y = _blobs(sizes=(12, 7, 9))
    torch.manual_seed(3)
    init = MLP(16, (8, 4), n_classes=3)
    cfg4 = DeepTrainConfig(loss=loss, epochs=4, batch_size=6, lr=1e-2, seed=5, spectrum_samples=20)
    straight = train_deep(copy.deepcopy(init), x, y, cfg4, quiet=True)
    ck = tmp_path / "ck.pt"
    first = train_deep(copy.deepcopy(init), x, y, DeepTrainConfig(**{**cfg4.__dict__, "epochs": 2}),
                       checkpoint=ck, quiet=True)
    assert len(first.history) == 2 and load_torch(ck)["epoch"] == 2
    resumed = train_deep(copy.deepcopy(init), x, y, cfg4, checkpoint=ck, resume=True, quiet=True)
    assert resumed.resumed_from == 2 and len(resumed.history) == 4
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]
    assert [h["train_acc"] for h in straight.history] == [h["train_acc"] for h in resumed.history]
    assert straight.bias == resumed.bias
    # a one-score model cannot resume a three-logit checkpoint
    torch.manual_seed(3)
    with pytest.raises(ValueError, match="3 head output"):
        train_deep(MLP(16, (8, 4)), x, (y > 0).long(), cfg4, checkpoint=ck, resume=True, quiet=True)


def test_multiclass_trainer_input_errors():
    x, y = _blobs(sizes=(5, 5, 5, 5))
    cfg = DeepTrainConfig(epochs=1, batch_size=8, spectrum_samples=0)
    m = MLP(16, (4,), n_classes=4)
    with pytest.raises(ValueError, match=r"labels in \{0, \.\.\., 3\}, got values \[4\]"):
        train_deep(m, x, torch.where(y == 3, 4, y), cfg, quiet=True)
    with pytest.raises(ValueError, match=r"labels in \{0, \.\.\., 3\}, got values \[-1\]"):
        train_deep(m, x, torch.where(y == 0, -1, y), cfg, quiet=True)
    with pytest.raises(ValueError, match=r"every class.*\[2\]"):
        train_deep(m, x, torch.where(y == 2, 1, y), cfg, quiet=True)
    with pytest.raises(ValueError, match="non-integer"):
        train_deep(m, x, y + 0.5, cfg, quiet=True)
    with pytest.raises(ValueError, match="same length"):
        train_deep(m, x, y[:-1], cfg, quiet=True)
    with pytest.raises(ValueError, match=r"batch_size must be at least the number of classes \(5\), got 4"):
        train_deep(MLP(16, (4,), n_classes=5), x, torch.arange(20) % 5,
                   DeepTrainConfig(epochs=1, batch_size=4), quiet=True)
    with pytest.raises(ValueError, match="one-score models only"):
        train_deep(m, x, y, DeepTrainConfig(epochs=1, batch_size=8, ddp=True), quiet=True)


# ---------------------------------------------------------------- devices
def test_multiclass_training_names_its_devices(explicit_devices):
    """No tensor of the multi-class path is created on an implicit device."""
    x, y = _blobs(sizes=(4, 5, 3))
    for loss in ("cross_entropy", "differential"):
        model = build_model("mlp", (1, 4, 4), hidden=(5, 3), n_classes=3, device="cpu")
        with explicit_devices():
            train_deep(model, x, y, DeepTrainConfig(loss=loss, epochs=1, batch_size=6, spectrum_samples=8),
                       quiet=True)


@pytest.mark.parametrize("loss", ["cross_entropy", "differential"])
def test_multiclass_train_deep_on_device(device, loss):
    x, y = _blobs(sizes=(12, 7, 9))
    torch.manual_seed(0)
    init = MLP(16, (8, 4), n_classes=3)
    cfg = DeepTrainConfig(loss=loss, epochs=3, batch_size=6, lr=1e-2, seed=2, spectrum_samples=20)
    ref = train_deep(copy.deepcopy(init), x, y, cfg, quiet=True)  # CPU reference
    res = train_deep(copy.deepcopy(init), x, y, cfg, quiet=True, device=device)
    assert all(p.device.type == device.type for p in res.model.parameters())
    for a, b in zip(ref.history, res.history, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-6)
    torch.testing.assert_close(predict_scores(res.model, x.to(device)).cpu(),
                               predict_scores(ref.model, x), rtol=1e-3, atol=1e-4)
    assert res.bias == pytest.approx(ref.bias, rel=1e-3, abs=1e-4)


@pytest.mark.parametrize("pair_loss", ["logistic", "exponential"])
def test_blocked_differential_loss_is_the_public_loss_bit_for_bit(pair_loss):
    from lowrank.losses import differential_loss
    from lowrank.train import blocked_differential_loss

    g = torch.Generator().manual_seed(3)
    S = torch.randn(12, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.arange(4).repeat_interleave(3)  # class blocks of 3 rows, as the sampler lays them out
    a = blocked_differential_loss(S, 4, pair_loss)
    b = multiclass_differential_loss(S, y, pair_loss=pair_loss)
    assert a.item() == b.item()
    ga, = torch.autograd.grad(a, S)
    gb, = torch.autograd.grad(b, S)
    assert torch.equal(ga, gb)
    s = torch.randn(10, generator=g, dtype=torch.float64)
    assert blocked_differential_loss(s, 2, pair_loss).item() == differential_loss(
        s, [1] * 5 + [-1] * 5, pair_loss=pair_loss).item()
    with pytest.raises(ValueError, match="equal class blocks"):
        blocked_differential_loss(S[:11], 4)
    with pytest.raises(ValueError, match="equal class blocks"):
        blocked_differential_loss(s, 5)


def test_a_diverging_run_stops_with_a_clear_error():
    class NaNBody(nn.Module):
        def forward(self, x):
            return x.flatten(1) * float("nan")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = NaNBody(), nn.Linear(4, 3)

        def forward(self, x, return_features=False):
            f = self.body(x)
            return (self.head(f), f) if return_features else self.head(f)

    x = torch.rand(12, 1, 2, 2)
    y = torch.arange(12) % 3
    with pytest.raises(FloatingPointError, match="not finite in epoch 1"):
        train_deep(Net(), x, y, DeepTrainConfig(loss="cross_entropy", epochs=2, batch_size=6,
                                               spectrum_samples=0), quiet=True)
    # the pair kernel checks its scores itself on the CPU (on a GPU: a NaN loss, caught per epoch)
    with pytest.raises((ValueError, FloatingPointError), match="finite"):
        train_deep(Net(), x, y, DeepTrainConfig(loss="differential", epochs=2, batch_size=6,
                                               spectrum_samples=0), quiet=True)

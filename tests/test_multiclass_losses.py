"""The one-vs-rest multi-class differential loss and the per-class midpoint offsets.

References: an explicit float64 double loop (loss) and torch autograd through a naive
broadcast implementation (gradient); the C = 2 correspondence with the binary loss and the
binary midpoint rule.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from lowrank.losses import (
    MulticlassDifferentialLoss,
    differential_loss,
    multiclass_differential_loss,
)
from lowrank.train import midpoint_bias
from lowrank.train.multiclass import multiclass_offsets


def _brute_loss(S: np.ndarray, y: np.ndarray, pair: str, reduction: str) -> float:
    """Explicit triple loop in float64 (math.fsum)."""
    terms = []
    n, C = S.shape
    for c in range(C):
        for i in range(n):
            if y[i] != c:
                continue
            for j in range(n):
                if y[j] == c:
                    continue
                z = float(S[i, c]) - float(S[j, c])
                terms.append(math.log1p(math.exp(-z)) if pair == "logistic" else math.exp(-z))
    total = math.fsum(terms)
    return total / len(terms) if reduction == "mean" else total


def _naive_torch(S: torch.Tensor, y: torch.Tensor, pair: str, reduction: str) -> torch.Tensor:
    """Broadcast over all (i, j, c) with a mask; differentiated by autograd."""
    own = (y[:, None] == torch.arange(S.shape[1])[None, :]).to(S.dtype)  # (n, C)
    mask = own[:, None, :] * (1 - own[None, :, :])  # i in c, j not in c
    z = S[:, None, :] - S[None, :, :]
    lz = torch.nn.functional.softplus(-z) if pair == "logistic" else torch.exp(-z)
    total = (lz * mask).sum()
    return total / mask.sum() if reduction == "mean" else total


def _random_case(seed: int, n: int = 13, C: int = 4):
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(C), rng.integers(0, C, n - C)])
    S = rng.normal(scale=2.0, size=(n, C))
    return S, y


@pytest.mark.parametrize("pair", ["logistic", "exponential"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("seed", [0, 1])
def test_loss_and_gradient_match_brute_force(pair, reduction, seed):
    S, y = _random_case(seed)
    St = torch.tensor(S, requires_grad=True)
    loss = multiclass_differential_loss(St, y, pair_loss=pair, reduction=reduction)
    assert loss.dtype == torch.float64
    assert float(loss.detach()) == pytest.approx(_brute_loss(S, y, pair, reduction), rel=1e-13)
    loss.backward()
    Sr = torch.tensor(S, requires_grad=True)
    _naive_torch(Sr, torch.as_tensor(y), pair, reduction).backward()
    np.testing.assert_allclose(St.grad.numpy(), Sr.grad.numpy(), rtol=1e-12, atol=1e-14)
    # a column that is not an example's own class only receives the +sigmoid terms
    assert St.grad.abs().sum() > 0


@pytest.mark.parametrize("backend", ["torch", "naive"])
def test_backends_agree(backend):
    S, y = _random_case(3, n=20, C=5)
    a = multiclass_differential_loss(torch.tensor(S), y, backend=backend)
    assert float(a) == pytest.approx(_brute_loss(S, y, "logistic", "mean"), rel=1e-13)


def test_per_class_constants_cancel():
    S, y = _random_case(4)
    shift = np.array([3.0, -7.0, 0.5, 100.0])
    a = multiclass_differential_loss(torch.tensor(S), y, reduction="sum")
    b = multiclass_differential_loss(torch.tensor(S + shift), y, reduction="sum")
    assert float(a) == pytest.approx(float(b), rel=1e-12)


@pytest.mark.parametrize("pair", ["logistic", "exponential"])
def test_two_classes_reduce_exactly_to_the_binary_loss(pair):
    """C = 2, scores (-s, s): mean equals the binary mean; sum is twice the binary sum."""
    rng = np.random.default_rng(5)
    s = torch.tensor(rng.normal(size=9), requires_grad=True)
    y = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1])
    S = torch.stack([-s, s], dim=1)
    multi_mean = multiclass_differential_loss(S, y, pair_loss=pair)
    bin_mean = differential_loss(s, y, pair_loss=pair)
    assert float(multi_mean.detach()) == pytest.approx(float(bin_mean.detach()), rel=1e-14)
    with torch.no_grad():
        multi_sum = multiclass_differential_loss(S, y, pair_loss=pair, reduction="sum")
        bin_sum = differential_loss(s, y, pair_loss=pair, reduction="sum")
    assert float(multi_sum) == pytest.approx(2 * float(bin_sum), rel=1e-14)
    (g_multi,) = torch.autograd.grad(multi_mean, s)
    (g_bin,) = torch.autograd.grad(bin_mean, s)
    np.testing.assert_allclose(g_multi.numpy(), g_bin.numpy(), rtol=1e-13, atol=1e-16)


def test_module_matches_function_and_float32():
    S, y = _random_case(6)
    mod = MulticlassDifferentialLoss(reduction="sum")
    assert float(mod(torch.tensor(S), y)) == pytest.approx(_brute_loss(S, y, "logistic", "sum"),
                                                           rel=1e-13)
    f32 = multiclass_differential_loss(torch.tensor(S, dtype=torch.float32), y)
    assert f32.dtype == torch.float32
    assert float(f32) == pytest.approx(_brute_loss(S, y, "logistic", "mean"), rel=1e-5)


@pytest.mark.parametrize("scores, y, match", [
    (np.zeros((3, 3)), [0, 1, 3], "y must hold labels in"),
    (np.zeros((3, 3)), [0, -1, 2], "y must hold labels in"),
    (np.zeros((3, 3)), [0, 1, 1.5], "non-integer"),
    (np.zeros((3, 3)), [0, 1, float("nan")], "NaN"),
    (np.zeros((3, 3)), [0, 1, 1], r"class\(es\) \[2\] have no example"),
    (np.zeros((3, 3)), [0, 1], "same length"),
    (np.zeros((3, 3)), [[0, 1, 2]], "1-D"),
    (np.zeros(3), [0, 1, 2], "scores must be 2-D"),
    (np.zeros((3, 1)), [0, 0, 0], "scores must be 2-D"),
    (np.array([[0.0, float("nan")], [0.0, 0.0]]), [0, 1], "scores must be finite"),
])
def test_bad_input_names_the_argument(scores, y, match):
    with pytest.raises(ValueError, match=match):
        multiclass_differential_loss(torch.tensor(scores), y)


def test_bad_options():
    S = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="pair_loss"):
        multiclass_differential_loss(S, [0, 1, 2], pair_loss="hinge")
    with pytest.raises(ValueError, match="reduction"):
        multiclass_differential_loss(S, [0, 1, 2], reduction="none")
    with pytest.raises(ValueError, match="reduction"):
        MulticlassDifferentialLoss(reduction="max")
    with pytest.raises(ValueError, match="scores must be a floating"):
        multiclass_differential_loss(torch.zeros(3, 3, dtype=torch.int64), [0, 1, 2])


# ---------------------------------------------------------------- per-class offsets

def test_offsets_follow_the_midpoint_formula():
    S, y = _random_case(7, n=15, C=4)
    b = multiclass_offsets(S, y).numpy()
    for c in range(4):
        expect = -(S[y == c, c].min() + S[y != c, c].max()) / 2
        assert b[c] == pytest.approx(expect, abs=1e-15)


def test_offsets_classify_every_point_when_pairs_are_ordered():
    rng = np.random.default_rng(8)
    C, n = 5, 30
    y = np.concatenate([np.arange(C), rng.integers(0, C, n - C)])
    # ordered pairs in every column: own-class scores in [1, 2], others in [-3 + c, -2 + c]
    S = rng.uniform(-3, -2, size=(n, C)) + np.arange(C)
    S[np.arange(n), y] = rng.uniform(1, 2, size=n) + y
    b = multiclass_offsets(S, y).numpy()
    assert np.all(np.argmax(S + b, axis=1) == y)
    own = (S + b)[np.arange(n), y]
    assert own.min() > 0
    other = np.where(np.arange(C)[None, :] != y[:, None], S + b, -np.inf)
    assert other.max() < 0


def test_offsets_reduce_to_the_binary_midpoint_rule():
    rng = np.random.default_rng(9)
    s = rng.normal(size=11)
    y = np.array([0, 1] * 5 + [1])
    b = multiclass_offsets(np.stack([-s, s], axis=1), y).numpy()
    mb = midpoint_bias(s, y)
    assert b[1] == pytest.approx(mb, abs=1e-15)
    assert b[0] == pytest.approx(-mb, abs=1e-15)
    # the decision S_1 + b_1 > S_0 + b_0 is 2 (s + midpoint_bias) > 0
    np.testing.assert_allclose((s + b[1]) - (-s + b[0]), 2 * (s + mb), atol=1e-14)


def test_offsets_bad_input():
    with pytest.raises(ValueError, match="class"):
        multiclass_offsets(np.zeros((3, 3)), [0, 1, 1])
    with pytest.raises(ValueError, match="scores must have shape"):
        multiclass_offsets(np.zeros((3, 1)), [0, 0, 0])
    with pytest.raises(ValueError, match="scores and y"):
        multiclass_offsets(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match="scores must be finite"):
        multiclass_offsets([[0.0, float("inf")], [0.0, 0.0]], [0, 1])


# ---------------------------------------------------------------- shared label check


def test_class_labels_validation():
    from lowrank._validation import class_labels

    assert class_labels([2, 0, 1]).tolist() == [2, 0, 1]
    assert class_labels(np.array([1.0, 0.0])).dtype == torch.int64
    assert class_labels([0, 0], n_classes=3, require_all=False).tolist() == [0, 0]
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2"):
        class_labels([0, 1], n_classes=1)
    with pytest.raises(ValueError, match="n_classes must be an integer"):
        class_labels([0, 1], n_classes=True)
    with pytest.raises(ValueError, match=r"labels must hold labels in \{0, ..., 1\}"):
        class_labels([0, 2], name="labels", n_classes=2)
    with pytest.raises(ValueError, match="at least two classes"):
        class_labels([0, 0])
    with pytest.raises(ValueError, match="integer class labels"):
        class_labels(torch.tensor([True, False]))
    with pytest.raises(ValueError, match="must not be empty"):
        class_labels([])


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_triton_backend_in_interpreter():
    """The fused Triton kernel (CPU interpreter, fresh process) gives the brute-force loss and gradient."""
    code = textwrap.dedent("""
        import os
        os.environ["TRITON_INTERPRET"] = "1"
        import numpy as np, torch
        from lowrank.losses import multiclass_differential_loss
        rng = np.random.default_rng(0)
        y = np.array([0, 1, 2, 0, 1, 2, 2, 0])
        S = rng.normal(size=(8, 3))
        St = torch.tensor(S, dtype=torch.float32, requires_grad=True)
        loss = multiclass_differential_loss(St, y, backend="triton")
        loss.backward()
        Sr = torch.tensor(S, requires_grad=True)
        ref = multiclass_differential_loss(Sr, y, backend="naive")
        ref.backward()
        assert abs(float(loss.detach()) - float(ref.detach())) < 1e-6 * float(ref.detach())
        assert float((St.grad.double() - Sr.grad).abs().max()) < 1e-6
        print("ok")
    """)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root), "TRITON_INTERPRET": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=root, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]

"""Tests of lowrank.kernels.pairwise_logistic: every backend against a float64 reference.

Most tests take the ``backend`` fixture of ``tests/conftest.py``: the naive broadcast and
the chunked torch fallback on the CPU, and the Triton kernel for real, on CUDA tensors
with a GPU or on CPU tensors under the Triton interpreter without one (conftest switches
the interpreter on before triton is imported). The interpreter is slow, so the sizes are
small with masked edges (P, N not multiples of the tile) and, for the sizes 1023 and
4097, the Triton kernel runs with large tiles.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import OLD_INTERPRETER_REASON, old_interpreter

import lowrank.kernels as K
from lowrank.cli import load_script
from lowrank.kernels import pairwise_logistic, resolve_backend
from lowrank.kernels._torch_chunked import (
    block_shape,
    pairwise_logistic_sums_chunked,
)
from lowrank.losses import differential_loss

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
peak_extra_memory_cpu = load_script(Path(__file__).parent / "benchmarks" / "kernel_harness.py") \
    .peak_extra_memory_cpu

SMALL_SIZES = [(1, 1), (1, 7), (7, 1), (7, 7), (33, 130), (130, 33), (64, 65)]


# ----------------------------------------------------------------------------- helpers
def reference(pos: torch.Tensor, neg: torch.Tensor, reduction: str = "sum"):
    """float64 loss and gradients by an independent route (explicit formulas, no kernels)."""
    p = pos.detach().cpu().to(torch.float64)
    n = neg.detach().cpu().to(torch.float64)
    z = p[:, None] - n[None, :]
    loss = (torch.clamp(-z, min=0) + torch.log1p(torch.exp(-z.abs()))).sum()
    sig = 1.0 / (1.0 + torch.exp(z.clamp(max=700)))  # sigmoid(s_j - s_i), no overflow
    g_pos, g_neg = -sig.sum(1), sig.sum(0)
    if reduction == "mean":
        k = p.numel() * n.numel()
        loss, g_pos, g_neg = loss / k, g_pos / k, g_neg / k
    return loss, g_pos, g_neg


def loop_reference(pos: list[float], neg: list[float]) -> tuple[float, list[float], list[float]]:
    """Python double loop, for tiny sizes (checks :func:`reference` itself)."""
    loss, gp, gn = 0.0, [0.0] * len(pos), [0.0] * len(neg)
    for i, si in enumerate(pos):
        for j, sj in enumerate(neg):
            z = si - sj
            loss += max(-z, 0.0) + math.log1p(math.exp(-abs(z)))
            s = 1.0 / (1.0 + math.exp(z)) if z < 700 else 0.0
            gp[i] -= s
            gn[j] += s
    return loss, gp, gn


def scores(P: int, N: int, seed: int, scale: float = 3.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    pos = (torch.randn(P, generator=g, dtype=torch.float64) * scale + 0.5).to(dtype)
    neg = (torch.randn(N, generator=g, dtype=torch.float64) * scale).to(dtype)
    return pos, neg


def run(pos, neg, backend, reduction="sum", grad_output=1.0, device="cpu", **kw):
    p = pos.clone().to(device).requires_grad_(True)
    n = neg.clone().to(device).requires_grad_(True)
    loss = pairwise_logistic(p, n, reduction=reduction, backend=backend, **kw)
    loss.backward(torch.tensor(grad_output, dtype=loss.dtype, device=loss.device))
    return loss.detach().cpu(), p.grad.cpu(), n.grad.cpu()


def assert_matches(got, ref, grad_output=1.0, rtol=1e-5, atol=1e-6):
    loss, gp, gn = got
    rl, rp, rn = ref
    assert loss.shape == () and torch.isfinite(loss)
    torch.testing.assert_close(loss.double(), rl, rtol=rtol, atol=atol)
    torch.testing.assert_close(gp.double(), rp * grad_output, rtol=rtol, atol=atol)
    torch.testing.assert_close(gn.double(), rn * grad_output, rtol=rtol, atol=atol)


def sums_with_tiles(backend, pos, neg, **tiles):
    """Loss, row and column sums of ``backend`` (the Triton kernel with the given tiles)."""
    pos, neg = backend.put(pos, neg)
    if backend.name == "triton":
        from lowrank.kernels import _triton

        loss, row, col = _triton.pairwise_logistic_sums(pos, neg, True, **tiles)
        return loss.cpu(), -row.cpu(), col.cpu()
    return run(pos, neg, backend.name, device=backend.device)


# ----------------------------------------------------------------------------- reference
def test_reference_matches_python_double_loop():
    pos, neg = [2.0, -1.0, 0.5, 800.0], [0.0, 3.0, -750.0]
    loss, gp, gn = loop_reference(pos, neg)
    rl, rp, rn = reference(torch.tensor(pos), torch.tensor(neg))
    assert rl.item() == pytest.approx(loss, rel=1e-14)
    assert rp.tolist() == pytest.approx(gp, rel=1e-14, abs=1e-300)
    assert rn.tolist() == pytest.approx(gn, rel=1e-14, abs=1e-300)
    # one hand-checked pair: softplus(-2) = log(1 + e^-2)
    assert reference(torch.tensor([2.0]), torch.tensor([0.0]))[0].item() == pytest.approx(
        math.log1p(math.exp(-2.0)), rel=1e-15)


# ----------------------------------------------------------------------------- every backend
@pytest.mark.parametrize("P,N", SMALL_SIZES)
@pytest.mark.parametrize("reduction,grad_output", [("sum", 1.5), ("mean", -2.5)])
def test_backend_matches_reference(backend, P, N, reduction, grad_output):
    pos, neg = scores(P, N, seed=P * 31 + N)
    got = run(pos, neg, backend.name, reduction, grad_output=grad_output, device=backend.device)
    assert_matches(got, reference(pos, neg, reduction), grad_output=grad_output, rtol=2e-5,
                   atol=1e-5)


@pytest.mark.parametrize("P,N", [(1023, 4097), (4097, 1023)])
def test_backend_large_sizes(backend, P, N):
    """Sizes far from the tiles; big tiles keep the Triton interpreter fast."""
    pos, neg = scores(P, N, seed=P + N)
    rl, rp, rn = reference(pos, neg)
    configs = [{"BLOCK_P": 512, "BLOCK_N": 512}]
    if backend.name == "triton" and backend.device.type == "cuda":
        configs.append({})  # on a GPU, the default tiles too
    for cfg in configs:
        loss, gp, gn = sums_with_tiles(backend, pos, neg, **cfg)
        torch.testing.assert_close(loss.double(), rl, rtol=2e-5, atol=0)
        torch.testing.assert_close(gp.double(), rp, rtol=2e-5, atol=1e-5)
        torch.testing.assert_close(gn.double(), rn, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("P,N", [(1, 1), (7, 1023), (4097, 7)])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_torch_float64_matches_reference_tightly(P, N, reduction):
    pos, neg = scores(P, N, seed=3, dtype=torch.float64)
    assert_matches(run(pos, neg, "torch", reduction), reference(pos, neg, reduction),
                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("P,N,max_memory_bytes", [
    (7, 5, 16 * 12 + 2 * 8 * 3),  # 3 pairs per block: column blocks of 3, row blocks of 1
    (33, 130, 16 * 163 + 2 * 8 * 200),  # 200 pairs: 1 row x 130 columns
    (130, 33, 16 * 163 + 2 * 8 * 100),  # 100 pairs: 3 rows x 33 columns
])
def test_torch_blocks_split_rows_and_columns(P, N, max_memory_bytes):
    pos, neg = scores(P, N, seed=5, dtype=torch.float64)
    rows, cols = block_shape(P, N, torch.float64, max_memory_bytes)
    assert rows * cols * 8 * 2 + 16 * (P + N) <= max_memory_bytes
    assert (rows, cols) != (P, N)
    got = run(pos, neg, "torch", max_memory_bytes=max_memory_bytes)
    assert_matches(got, reference(pos, neg), rtol=1e-12, atol=1e-12)


def test_block_shape_respects_budget_and_prefers_cache_sized_blocks():
    assert block_shape(4096, 4096, torch.float32) == (1024, 4096)
    rows, cols = block_shape(20000, 20000, torch.float32)
    assert rows * cols * 4 * 2 + 16 * 40000 <= K.DEFAULT_MAX_MEMORY_BYTES
    rows, cols = block_shape(10, 10**7, torch.float32, max_memory_bytes=2**28)
    assert rows == 1 and cols == 2**22
    with pytest.raises(ValueError, match="max_memory_bytes"):
        block_shape(1000, 1000, torch.float32, max_memory_bytes=1000)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_gradcheck_float64_torch_backend(reduction):
    pos, neg = scores(6, 5, seed=2, scale=2.0, dtype=torch.float64)
    p, n = pos.requires_grad_(), neg.requires_grad_()
    # a tiny budget makes gradcheck also go through several column blocks
    assert torch.autograd.gradcheck(
        lambda a, b: pairwise_logistic(a, b, reduction, "torch", max_memory_bytes=16 * 11 + 64),
        (p, n), eps=1e-6, atol=1e-8, rtol=1e-6)
    assert torch.autograd.gradcheck(
        lambda a, b: pairwise_logistic(a, b, reduction, "torch"), (p, n))


def test_huge_scores_stay_finite(backend):
    # |scores| up to 1e4: differences up to 2e4, far past exp overflow (~88 in float32)
    dtypes = [torch.float32] if backend.name == "triton" else [torch.float32, torch.float64]
    for dtype in dtypes:  # the Triton kernel refuses float64 (tested below)
        pos = torch.tensor([1e4, -1e4, 0.0, 9999.5, -3.0, 50.0, 30.0], dtype=dtype)
        neg = torch.tensor([-1e4, 1e4, 0.0, 1e-3, 88.0, -90.0, 1e4 - 1], dtype=dtype)
        loss, gp, gn = run(pos, neg, backend.name, device=backend.device)
        assert torch.isfinite(loss) and torch.isfinite(gp).all() and torch.isfinite(gn).all()
        assert_matches((loss, gp, gn), reference(pos, neg), rtol=1e-6, atol=1e-6)


def test_well_separated_pairs_keep_tiny_losses(backend):
    # every pair has margin 30: loss ~ exp(-30) per pair must not round to 0 (compensated log1p)
    pos = torch.full((5,), 30.0, dtype=torch.float32)
    neg = torch.zeros(3, dtype=torch.float32)
    loss, gp, gn = run(pos, neg, backend.name, device=backend.device)
    assert loss.item() == pytest.approx(15 * math.exp(-30.0), rel=1e-5)
    assert gp.tolist() == pytest.approx([-3 * math.exp(-30.0)] * 5, rel=1e-5)


@pytest.mark.parametrize("backend", ["torch", "triton"], indirect=True)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs(backend, dtype):
    pos, neg = scores(130, 33, seed=9, scale=1.0, dtype=dtype)
    loss, gp, gn = run(pos, neg, backend.name, "mean", device=backend.device)
    assert loss.dtype == gp.dtype == gn.dtype == dtype
    ref = reference(pos, neg, "mean")  # of the rounded inputs: fp32 compute, fp16/bf16 output
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    assert_matches((loss, gp, gn), ref, rtol=tol, atol=tol * 1e-2)


def test_no_grad_inputs_give_plain_value():
    pos, neg = scores(50, 40, seed=1)
    loss = pairwise_logistic(pos, neg, "mean")
    assert loss.grad_fn is None and not loss.requires_grad
    torch.testing.assert_close(loss.double(), reference(pos, neg, "mean")[0], rtol=1e-6, atol=0)


def test_only_one_input_requires_grad():
    pos, neg = scores(9, 4, seed=4)
    n = neg.clone().requires_grad_()
    pairwise_logistic(pos, n).backward()
    torch.testing.assert_close(n.grad.double(), reference(pos, neg)[2], rtol=1e-6, atol=1e-7)


def test_saves_only_vectors_for_backward():
    pos, neg = scores(300, 200, seed=6)
    p, n = pos.requires_grad_(), neg.requires_grad_()
    loss = pairwise_logistic(p, n, backend="torch")
    saved = loss.grad_fn.saved_tensors
    assert sorted(t.numel() for t in saved) == [200, 300]


def test_second_backward_is_refused():
    p, n = (t.requires_grad_() for t in scores(4, 3, seed=0, dtype=torch.float64))
    (gp,) = torch.autograd.grad(pairwise_logistic(p, n, backend="torch"), p, create_graph=True)
    with pytest.raises(RuntimeError):
        gp.sum().backward()


@pytest.mark.parametrize("backend", ["torch", "triton"], indirect=True)
def test_backend_is_deterministic(backend):
    pos, neg = scores(130, 97, seed=8) if backend.name == "triton" else scores(1000, 777, seed=8)
    a = run(pos, neg, backend.name, device=backend.device)
    b = run(pos, neg, backend.name, device=backend.device)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def test_chunked_sums_without_grad():
    pos, neg = scores(20, 30, seed=10, dtype=torch.float64)
    loss, row, col = pairwise_logistic_sums_chunked(pos, neg, need_grad=False)
    assert row is None and col is None
    assert loss.item() == pytest.approx(reference(pos, neg)[0].item(), rel=1e-13)


def test_torch_backend_extra_memory_is_bounded():
    """Peak extra RSS of a forward + backward step at P = N = 8,000, in a subprocess."""
    res = peak_extra_memory_cpu("torch", 8000, 8000, threads=1)  # the naive path needs > 0.5 GB
    assert 0 <= res["peak_extra_bytes"] <= 64 * 2**20, res


# ----------------------------------------------------------------------------- dispatch
def test_resolve_backend():
    assert resolve_backend("auto", "cpu", torch.float32) == "torch"  # size unknown: large
    assert resolve_backend("auto", "cuda", torch.float64) == "torch"
    expect = "triton" if K.triton_available() else "torch"
    assert resolve_backend("auto", "cuda", torch.float16) == expect
    assert resolve_backend("naive", "cpu", torch.float32) == "naive"
    assert resolve_backend("compile", "cpu", torch.float32, pairs=4) == "compile"
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("cuda", "cpu", torch.float32)


def test_auto_follows_the_measured_size_table():
    from lowrank.kernels import _auto

    for table in (_auto.CPU_TABLE, _auto.CUDA_TABLE):
        bounds = [b for b, _ in table]
        assert bounds == sorted(bounds) and bounds[-1] == math.inf
    small, large = _auto.CPU_TABLE[0][0], _auto.CPU_TABLE[0][0] + 1
    assert resolve_backend("auto", "cpu", torch.float32, pairs=small) == "naive"
    assert resolve_backend("auto", "cpu", torch.float64, pairs=large) == "torch"
    # the naive choice stays far inside the 64 MiB bound: three float64 P x N matrices
    assert 3 * 8 * small <= K.DEFAULT_MAX_MEMORY_BYTES // 8
    cuda_small = _auto.CUDA_TABLE[0][0]
    expect = ("naive", "triton") if K.triton_available() else ("torch", "torch")
    assert (resolve_backend("auto", "cuda", torch.float32, pairs=cuda_small,
                            max_memory_bytes=2**40),
            resolve_backend("auto", "cuda", torch.float32, pairs=cuda_small + 1)) == expect
    # the naive matrices must fit in max_memory_bytes (64 MiB: 5.6e6 float32 pairs)
    assert resolve_backend("auto", "cuda", torch.float32, pairs=2**22) == expect[0]
    assert resolve_backend("auto", "cuda", torch.float32, pairs=2**23) == expect[1]
    assert resolve_backend("auto", "cuda", torch.float32, pairs=2**22,
                           max_memory_bytes=3 * 4 * 2**22 - 1) == expect[1]
    # no Triton for float64: the CPU table
    assert resolve_backend("auto", "cuda", torch.float64, pairs=small) == "naive"
    assert resolve_backend("auto", "cuda", torch.float64, pairs=cuda_small) == "torch"


@pytest.mark.parametrize("P,N,expect", [(100, 60, "naive"), (400, 400, "torch")])
def test_auto_on_cpu_equals_the_table_backend(P, N, expect):
    assert resolve_backend("auto", "cpu", torch.float32, pairs=P * N) == expect
    pos, neg = scores(P, N, seed=12)
    a, b = run(pos, neg, "auto"), run(pos, neg, expect)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert_matches(a, reference(pos, neg), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- devices
@pytest.mark.parametrize("P,N", [(1, 1), (70, 33), (600, 500)])
def test_every_backend_on_device(device, P, N):
    """auto/torch/naive (and triton on CUDA) on ``device``: values, gradient devices, NaN flag."""
    pos, neg = scores(P, N, seed=P + 2 * N)
    ref = reference(pos, neg, "mean")
    backends = ["auto", "torch", "naive"] + (["triton"] if device.type == "cuda"
                                             and K.triton_available() else [])
    for backend in backends:
        p = pos.to(device, copy=True).requires_grad_()
        n = neg.to(device, copy=True).requires_grad_()
        loss = pairwise_logistic(p, n, "mean", backend=backend)
        loss.backward()
        assert loss.device.type == p.grad.device.type == n.grad.device.type == device.type
        assert_matches((loss.detach().cpu(), p.grad.cpu(), n.grad.cpu()), ref, rtol=2e-5,
                       atol=1e-6)
        bad = pos.clone()
        bad[0] = math.nan
        flagged = pairwise_logistic(bad.to(device), neg.to(device), backend=backend,
                                    finite_check="nan")
        assert torch.isnan(flagged.cpu()), backend


def test_backends_name_their_devices(explicit_devices):
    pos, neg = scores(40, 30, seed=1)
    with explicit_devices():
        for backend in ("auto", "torch", "naive"):
            for check in ("raise", "nan"):
                p, n = pos.clone().requires_grad_(), neg.clone().requires_grad_()
                pairwise_logistic(p, n, "mean", backend=backend, finite_check=check).backward()


@pytest.mark.slow
def test_compile_backend_matches_reference():
    """torch.compile of the naive expression (the benchmark peer); compiles once (~30 s on the CPU)."""
    for P, N in [(33, 130), (7, 5)]:  # dynamic shapes: one compiled graph for both sizes
        pos, neg = scores(P, N, seed=P * N)
        got = run(pos, neg, "compile", "mean", grad_output=2.0)
        assert_matches(got, reference(pos, neg, "mean"), grad_output=2.0, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- finite check
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_finite_check_nan_flags_the_loss_without_raising(backend, bad):
    pos, neg = scores(70, 40, seed=3)
    same = run(pos, neg, backend.name, device=backend.device, finite_check="nan")
    assert_matches(same, reference(pos, neg), rtol=2e-5, atol=1e-5)
    if backend.device.type == "cpu":
        ref = run(pos, neg, backend.name, device=backend.device, finite_check="raise")
        for x, y in zip(ref, same, strict=True):
            assert torch.equal(x, y)  # finite scores: bit-identical
    for which in ("pos", "neg"):
        for at in (3, -1):  # the last one in the last, masked tile of the Triton kernel
            p, n = pos.clone(), neg.clone()
            (p if which == "pos" else n)[at] = bad
            p, n = backend.put(p, n)
            loss = pairwise_logistic(p, n, backend=backend.name, finite_check="nan")
            assert torch.isnan(loss.cpu()), (which, at, bad)
            if backend.device.type == "cpu":
                with pytest.raises(ValueError, match=f"{which}_scores must be finite"):
                    pairwise_logistic(p, n, backend=backend.name)  # auto on the CPU: raise


def test_finite_check_auto_raises_on_cpu_and_rejects_bad_values():
    with pytest.raises(ValueError, match="finite_check"):
        pairwise_logistic(torch.zeros(2), torch.zeros(2), finite_check="warn")
    with pytest.raises(ValueError, match="must be finite"):
        pairwise_logistic(torch.tensor([math.inf]), torch.zeros(2), finite_check="auto")


def test_finite_check_nan_reads_no_values():
    """finite_check="nan" never synchronises: it runs on meta tensors, which hold no values."""
    p = torch.zeros(5, device="meta", requires_grad=True)
    n = torch.zeros(4, device="meta", requires_grad=True)
    for backend in ("naive", "torch"):
        loss = pairwise_logistic(p, n, "mean", backend=backend, finite_check="nan")
        assert loss.device.type == "meta" and loss.shape == ()
        loss.backward()
        assert p.grad.device.type == "meta" and p.grad.shape == (5,)
        p.grad = n.grad = None
    with pytest.raises(Exception, match="meta"):  # the synchronous check needs the values
        pairwise_logistic(p, n, finite_check="raise")


def test_public_names():
    assert "pairwise_logistic" in K.__all__
    for name in K.__all__:
        assert hasattr(K, name)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_differential_loss_uses_kernel(reduction, rng):
    s = torch.randn(50, generator=rng, dtype=torch.float64).requires_grad_()
    y = (torch.arange(50) % 3 == 0).long()
    loss = differential_loss(s, y, reduction=reduction)
    loss.backward()
    pos, neg = s.detach()[y == 1], s.detach()[y == 0]
    rl, rp, rn = reference(pos, neg, reduction)
    assert loss.item() == pytest.approx(rl.item(), rel=1e-12)
    torch.testing.assert_close(s.grad[y == 1], rp, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s.grad[y == 0], rn, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("backend", ["auto", "torch", "naive", "triton"])
@pytest.mark.parametrize("pos,neg,match", [
    (torch.zeros(3, 1), torch.zeros(2), "pos_scores must be 1-D"),
    (torch.zeros(3), torch.zeros(()), "neg_scores must be 1-D"),
    (torch.zeros(0), torch.zeros(2), "pos_scores must not be empty"),
    (torch.zeros(3), torch.zeros(0), "neg_scores must not be empty"),
    (torch.tensor([0.0, float("nan")]), torch.zeros(2), "pos_scores must be finite"),
    (torch.zeros(2), torch.tensor([float("inf")]), "neg_scores must be finite"),
    (torch.zeros(2), torch.zeros(2, dtype=torch.float64), "same dtype"),
    (torch.zeros(2), torch.zeros(2, device="meta"), "same device"),
    (torch.zeros(2, dtype=torch.complex64), torch.zeros(2, dtype=torch.complex64), "dtype"),
])
def test_bad_inputs_raise_value_error(backend, pos, neg, match):
    with pytest.raises(ValueError, match=match):
        pairwise_logistic(pos, neg, backend=backend)


@pytest.mark.parametrize("kwargs,match", [
    ({"reduction": "none"}, "reduction"),
    ({"backend": "cuda"}, "backend"),
    ({"max_memory_bytes": 0}, "max_memory_bytes"),
    ({"max_memory_bytes": 1.5e6}, "max_memory_bytes"),
    ({"max_memory_bytes": 64}, "max_memory_bytes"),  # too small for the work vectors
])
def test_bad_options_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pairwise_logistic(torch.zeros(20), torch.zeros(30), **kwargs)


@needs_triton
def test_triton_on_cpu_without_interpreter_raises(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        pairwise_logistic(torch.zeros(3), torch.zeros(2), backend="triton")


@pytest.mark.parametrize("backend", ["triton"], indirect=True)
def test_triton_float64_raises(backend):
    z = torch.zeros(3, dtype=torch.float64, device=backend.device)
    with pytest.raises(ValueError, match="float64"):
        pairwise_logistic(z, z, backend="triton")


def test_triton_missing_raises_runtime_error(monkeypatch):
    monkeypatch.setattr(K, "_triton_import_error", lambda: "ImportError: no triton")
    with pytest.raises(RuntimeError, match="triton"):
        pairwise_logistic(torch.zeros(3), torch.zeros(2), backend="triton")
    assert resolve_backend("auto", "cuda", torch.float32) == "torch"


# ----------------------------------------------------------------------------- triton internals
@pytest.mark.parametrize("P,N", [(130, 97), (17, 200), (200, 40)])
@pytest.mark.parametrize("backend", ["triton"], indirect=True)
def test_triton_grouped_loops(backend, P, N):
    """Small tiles and at most 2 x 2 programs: each program loops over several tiles."""
    from lowrank.kernels import _triton

    pos, neg = backend.put(*scores(P, N, seed=P - N))
    cfg = {"BLOCK_P": 16, "BLOCK_N": 32, "max_groups": 2, "target_programs": 1}
    assert _triton._groups(math.ceil(P / 16), math.ceil(N / 32), 2, 1) == (2, 2)
    loss, row, col = _triton.pairwise_logistic_sums(pos, neg, True, **cfg)
    rl, rp, rn = reference(pos, neg)
    torch.testing.assert_close(loss.double().cpu(), rl, rtol=2e-5, atol=0)
    torch.testing.assert_close(-row.double().cpu(), rp, rtol=2e-5, atol=1e-5)
    torch.testing.assert_close(col.double().cpu(), rn, rtol=2e-5, atol=1e-5)
    again = _triton.pairwise_logistic_sums(pos, neg, True, **cfg)
    for x, y in zip((loss, row, col), again, strict=True):
        assert torch.equal(x, y)  # bit-deterministic
    loss_only, r0, c0 = _triton.pairwise_logistic_sums(pos, neg, False, **cfg)
    assert r0 is None and c0 is None
    torch.testing.assert_close(loss_only, loss, rtol=1e-6, atol=0)


@pytest.mark.parametrize("P,N,joint", [
    (128, 96, False),  # every tile full: only the unmasked loop runs
    (130, 97, False),  # a partial last row and column of tiles
    (32, 200, False),  # full positive tiles, partial negative tile owned by program g_n = 0
    (15, 31, False),  # one partial tile in each direction
    (130, 97, True),  # the two-operand column reduction of compiled GPUs, interpreted
])
@pytest.mark.parametrize("backend", ["triton"], indirect=True)
def test_triton_full_and_edge_tiles(backend, P, N, joint):
    """Full tiles run without masks, edge tiles pad the scores (+inf, -inf) and mask the loss."""
    from lowrank.kernels import _triton

    cfg = {"BLOCK_P": 16, "BLOCK_N": 32, "max_groups": 2, "target_programs": 1,
           "joint_reduce": joint}
    pos, neg = backend.put(*scores(P, N, seed=P * N + 1))
    loss, row, col = _triton.pairwise_logistic_sums(pos, neg, True, **cfg)
    rl, rp, rn = reference(pos, neg)
    torch.testing.assert_close(loss.double().cpu(), rl, rtol=2e-5, atol=0)
    torch.testing.assert_close(-row.double().cpu(), rp, rtol=2e-5, atol=1e-5)
    torch.testing.assert_close(col.double().cpu(), rn, rtol=2e-5, atol=1e-5)
    loss_only = _triton.pairwise_logistic_sums(pos, neg, False, **cfg)[0]
    torch.testing.assert_close(loss_only, loss, rtol=1e-6, atol=0)


@pytest.mark.parametrize("P,N", [(64, 64), (1, 1)])
@pytest.mark.parametrize("backend", ["triton"], indirect=True)
def test_triton_far_pairs(backend, P, N):
    """Every pair at d = -100 (loss e^-100) and at d = +100 (loss 100, sigmoid 1).

    64 x 64 is one full tile (the unmasked loop), 1 x 1 one pair among 4,095 padded ones
    (masked). On a GPU, 1 + e rounds to 1 and the loss is lg2.approx(1) ln 2: this checks
    that it is 0, as the kernel's far pairs need.
    """
    from lowrank.kernels import _triton

    far = torch.full((P,), 100.0), torch.zeros(N)
    loss, row, col = _triton.pairwise_logistic_sums(*backend.put(*far), True)
    assert 0.0 <= loss.item() <= 1e-35  # float64: P N e^-100 = P N 3.7e-44
    assert row.abs().max().item() <= 1e-35 and col.abs().max().item() <= 1e-35
    loss, row, col = _triton.pairwise_logistic_sums(*backend.put(*far[::-1]), True)
    assert loss.item() == pytest.approx(100.0 * P * N, rel=1e-6)
    torch.testing.assert_close(row.cpu(), torch.full((N,), float(P)), rtol=1e-6, atol=0)
    torch.testing.assert_close(col.cpu(), torch.full((P,), float(N)), rtol=1e-6, atol=0)


@pytest.mark.parametrize("cfg", [{}, {"BLOCK_P": 16, "BLOCK_N": 32, "max_groups": 2,
                                       "target_programs": 1}])
@pytest.mark.parametrize("backend", ["triton"], indirect=True)
def test_triton_scales_inside_the_kernel(backend, cfg):
    """Loss, row and column factors applied to the partial sums (one program, or 2 x 2)."""
    from lowrank.kernels import _triton

    pos, neg = backend.put(*scores(40, 50, seed=11))
    loss, row, col = _triton.pairwise_logistic_sums(pos, neg, True, **cfg)
    s_loss, s_row, s_col = _triton.pairwise_logistic_sums(pos, neg, True, (0.5, -2.0, 3.0), **cfg)
    torch.testing.assert_close(s_loss, 0.5 * loss, rtol=1e-6, atol=0)
    torch.testing.assert_close(s_row, -2.0 * row, rtol=1e-6, atol=0)
    torch.testing.assert_close(s_col, 3.0 * col, rtol=1e-6, atol=0)
    only = _triton.pairwise_logistic_sums(pos, neg, False, (0.25, 1.0, 1.0), **cfg)[0]
    torch.testing.assert_close(only, 0.25 * loss, rtol=1e-6, atol=0)


@pytest.mark.parametrize("P,computing_ops", [(64, []), (4096, ["aten.sum"] * 3)])
def test_triton_step_dispatches_no_extra_work(monkeypatch, P, computing_ops):
    """Host work of a mean-loss step around the kernel (here a no-op stand-in), op by op.

    Forward: output buffers, and a reduction of the per-program sums only when there are
    several programs (no scaling, casting or finite-check ops: the kernel does those).
    Backward: the gradient sums times the incoming gradient.
    """
    pytest.importorskip("triton")
    from torch.utils._python_dispatch import TorchDispatchMode

    from lowrank.kernels import _triton

    class Launch:
        def __getitem__(self, grid):
            return lambda *args, **meta: None

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(str(func).rsplit(".", 1)[0])
            return func(*args, **(kwargs or {}))

    monkeypatch.setattr(_triton, "_kernel", lambda mode=None: Launch())
    monkeypatch.setattr(_triton, "interpreter_enabled", lambda: True)  # CPU tensors accepted
    p, n = torch.randn(P, requires_grad=True), torch.randn(P, requires_grad=True)
    with Ops() as fwd:
        loss = pairwise_logistic(p, n, reduction="mean", backend="triton", finite_check="nan")
    # the inputs detached, three output buffers (no views or indexing of them), the sums
    assert fwd.names == ["aten.detach"] * 2 + ["aten.empty"] * 3 + computing_ops, fwd.names
    with Ops() as bwd:
        loss.backward()
    assert [o for o in bwd.names if o != "aten.detach"] == ["aten.ones_like", "aten.mul",
                                                            "aten.mul"], bwd.names


@pytest.mark.parametrize("every", [2, 3])
@pytest.mark.parametrize("backend", ["triton"], indirect=True)
def test_triton_exp_on_the_fma_pipe(backend, every):
    """One tile in ``every`` computes exp(-|d|) with the FMA-pipe polynomial (_exp2_fma).

    d = s_j - 0 runs over [-100, 0] (exponents 0 to -144), one column per value, so each
    column sum is 16 sigmoid(d_j): every value of the polynomial is checked, against
    float64 and against exp2 of the same float32 argument (below 2**-125 it gives 0, as
    ex2.approx.ftz does below 2**-126). The columns of the other tiles are bit for bit
    those of the kernel without it, and the polynomial's columns differ in some bit: the
    FMA path is the one that ran.
    """
    from lowrank.kernels import _triton

    pos = torch.zeros(16)
    neg = torch.linspace(-100.0, 0.0, 32 * 2 * every + 32)  # whole groups and one tile more
    pos, neg = backend.put(pos, neg)
    cfg = {"BLOCK_P": 16, "BLOCK_N": 32, "max_groups": 1, "target_programs": 1}
    loss, row, col = _triton.pairwise_logistic_sums(pos, neg, True, **cfg, fma_exp2_every=every)
    rl, rp, rn = reference(pos, neg)
    # float32 rounds |d| log2(e) to 2**-24 relative: exp(-|d|) to |d| 2**-24 ~ 5e-6 at 87
    torch.testing.assert_close(col.double().cpu(), rn, rtol=1e-5, atol=1e-36)
    torch.testing.assert_close(-row.double().cpu(), rp, rtol=1e-5, atol=0)
    torch.testing.assert_close(loss.double().cpu(), rl, rtol=1e-5, atol=0)
    plain = _triton.pairwise_logistic_sums(pos, neg, True, **cfg)[2].cpu()
    tile = torch.arange(neg.numel()) // 32
    fma = (tile % every == 0) & (tile < 2 * every)  # the first tile of each whole group
    assert torch.equal(col.cpu()[~fma], plain[~fma])
    assert not torch.equal(col.cpu()[fma], plain[fma])
    # the polynomial (1e-7) against exp2 of the same float32 argument, through the sigmoid
    # and the 16-term column sums (a few roundings each): within 1e-6
    normal = fma & (neg.cpu() > -86.0)  # 2**-124 and up
    torch.testing.assert_close(col.cpu()[normal], plain[normal], rtol=1e-6, atol=0)


@pytest.mark.parametrize("bad", [1, -1, 2.5, "3"])
def test_triton_fma_exp2_every_is_checked(bad):
    pytest.importorskip("triton")
    from lowrank.kernels import _triton

    with pytest.raises((ValueError, TypeError), match="fma_exp2_every|invalid literal"):
        _triton._launch_plan(100, 100, True, False, True, (("fma_exp2_every", bad),))


def test_triton_tile_table_and_overrides(monkeypatch):
    pytest.importorskip("triton")
    from lowrank.kernels import _triton

    table = ((2**20, {"BLOCK_P": 32, "num_warps": 2}), (math.inf, {"BLOCK_N": 128}))
    monkeypatch.setattr(_triton, "TILE_TABLE", table)
    small, large = _triton.tile_config(2**20), _triton.tile_config(2**20 + 1)
    assert (small["BLOCK_P"], small["BLOCK_N"], small["num_warps"]) == (32, 64, 2)
    assert (large["BLOCK_P"], large["BLOCK_N"], large["num_warps"]) == (64, 128, 4)
    assert _triton.tile_config(10, BLOCK_P=16, num_warps=1)["BLOCK_P"] == 16  # overrides win
    assert _triton.tile_config(10)["fast_math"] is True  # the defaults fill the rest
    with pytest.raises(ValueError, match="BLOK_P"):
        _triton.tile_config(10, BLOK_P=16)
    _triton._launch_plan.cache_clear()
    try:  # the plan of a launch follows the table
        g_p, g_n, tiles_p, tiles_n, meta, meta_key = _triton._launch_plan(
            1000, 1000, True, False, True, ())
        assert (meta["BLOCK_P"], meta["num_warps"], tiles_p, tiles_n) == (32, 2, 32, 16)
        assert meta["FAST_MATH"] is False  # inline PTX only on NVIDIA GPUs
        assert meta_key == tuple(sorted(meta.items()))  # the key of SLOTS, made once
    finally:
        _triton._launch_plan.cache_clear()


def test_triton_occupancy_limits():
    pytest.importorskip("triton")
    from lowrank.kernels._triton import occupancy

    assert occupancy(168, 4) == 3  # registers: 168 x 32 = 5,376 a warp, 21,504 a program
    assert occupancy(161, 4) == 3  # 161 rounds up to 168 (256 registers a warp at a time)
    assert occupancy(255, 8) == 1 and occupancy(32, 8) == 8  # 64 warps an SM at most
    assert occupancy(16, 1) == 32  # 32 programs an SM at most
    assert occupancy(64, 1, 32 * 1024, shared_per_sm=228 * 1024) == 7  # shared memory
    assert occupancy(255, 32) == 0  # does not fit at all


def test_triton_balanced_grid_never_slower_than_the_fixed_grid():
    """Its cost model (waves x tiles of the busiest program) against the fixed grid's."""
    pytest.importorskip("triton")
    from lowrank.kernels._triton import _groups, balanced_grid

    def cost(tp, tn, slots, g_p, g_n):
        return math.ceil(g_p * g_n / slots) * math.ceil(tp / g_p) * math.ceil(tn / g_n)

    for tp, tn in [(1024, 1024), (64, 64), (4096, 4096), (1, 100000), (7, 300), (16, 16)]:
        fixed = _groups(tp, tn, 32, 1024)
        for slots in (132, 396, 528, 924, 1056):
            g_p, g_n = balanced_grid(tp, tn, slots, *fixed)
            assert 1 <= g_p <= fixed[0] and 1 <= g_n <= fixed[1]  # the memory bound holds
            assert cost(tp, tn, slots, g_p, g_n) <= cost(tp, tn, slots, *fixed)
    assert balanced_grid(1024, 1024, 396, 32, 32) == (18, 22)
    assert cost(1024, 1024, 396, 18, 22) == 2679 < cost(1024, 1024, 396, 32, 32) == 3072
    assert balanced_grid(2, 3, 396, 2, 3) == (2, 3)  # fewer tiles than slots


def test_triton_slots_fall_back_with_the_reason(monkeypatch):
    pytest.importorskip("triton")
    from lowrank.kernels import _triton

    def broken(*args):
        raise RuntimeError("no driver")

    monkeypatch.setattr(_triton, "_read_slots", broken)
    monkeypatch.setattr(_triton.torch.cuda, "device", lambda dev: contextlib.nullcontext())
    monkeypatch.setattr(_triton, "SLOTS", {})
    z = torch.zeros(4)
    assert _triton._slots(torch.device("cpu"), z, z, 4, 4, 1, 1, {"num_warps": 4},
                          (("num_warps", 4),)) is None
    (note,) = [v[1] for v in _triton.SLOTS.values()]
    assert "fixed grid" in note and "no driver" in note
    assert _triton._slots(torch.device("cpu"), z, z, 4, 4, 1, 1, {"num_warps": 4},
                          (("num_warps", 4),)) is None


def test_triton_slots_from_the_compiled_kernel(monkeypatch):
    """_read_slots with a stand-in compiled kernel and H100-like device properties.

    Checks that the warm-up call binds to the kernel's parameters (the same arguments
    as a launch) and that registers, warps, shared memory and SMs give the slots.
    """
    pytest.importorskip("triton")
    import inspect
    import types

    from lowrank.kernels import _triton

    bound = {}

    class Compiled:
        n_regs = 168
        metadata = types.SimpleNamespace(shared=1024)

        def _init_handles(self):
            bound["loaded"] = True

    class Kernel:
        def warmup(self, *args, grid, **meta):
            meta = {k: v for k, v in meta.items() if k != "num_warps"}  # a launch option
            bound["args"] = inspect.signature(_triton._pairwise_logistic_kernel).bind(*args, **meta)
            bound["grid"] = grid
            return Compiled()

    props = types.SimpleNamespace(multi_processor_count=132, max_threads_per_multi_processor=2048,
                                  regs_per_multiprocessor=65536,
                                  shared_memory_per_multiprocessor=228 * 1024)
    monkeypatch.setattr(_triton, "_kernel", lambda: Kernel())
    monkeypatch.setattr(_triton.torch.cuda, "get_device_properties", lambda dev: props)
    monkeypatch.setattr(_triton.torch.cuda, "device", lambda dev: contextlib.nullcontext())
    monkeypatch.setattr(_triton, "SLOTS", {})
    meta, meta_key = _triton._launch_plan(65536, 65536, True, True, False, ())[4:]
    z = torch.zeros(8)
    slots = _triton._slots(torch.device("cpu"), z, z, 65536, 65536, 1024, 1024, meta, meta_key)
    assert slots == 396 and bound["loaded"] and bound["grid"] == (1,)
    assert bound["args"].arguments["BLOCK_P"] == 64 and bound["args"].arguments["P"] == 65536
    (note,) = [v[1] for v in _triton.SLOTS.values()]
    assert note == "132 SMs x 3 programs (168 registers, 1024 B shared)"
    assert _triton.balanced_grid(1024, 1024, slots, 32, 32) == (18, 22)


def test_triton_unknown_config_key_is_an_error():
    pytest.importorskip("triton")
    from lowrank.kernels import _triton

    with pytest.raises(ValueError, match="unknown Triton configuration keys"):
        _triton.pairwise_logistic_sums(torch.zeros(3), torch.zeros(2), True, BLOCKP=16)


def test_triton_group_grid_is_bounded():
    pytest.importorskip("triton")
    from lowrank.kernels._triton import _groups

    assert _groups(1024, 1024, 32, 1024) == (32, 32)  # P = N = 65,536 with 64-tiles
    assert _groups(1, 10**5, 32, 1024) == (1, 1024)  # one positive tile: spread over N
    assert _groups(3, 2, 32, 1024) == (3, 2)


@pytest.mark.parametrize("backend", ["triton"], indirect=True)
def test_triton_does_not_read_uninitialised_buffers(backend, monkeypatch):
    """The column buffer is not zeroed: fill every fresh buffer with NaN and check the sums."""
    from lowrank.kernels import _triton

    empty = torch.empty
    monkeypatch.setattr(_triton.torch, "empty", lambda *a, **k: empty(*a, **k).fill_(math.nan))
    pos, neg = backend.put(*scores(130, 97, seed=2))
    cfg = {"BLOCK_P": 16, "BLOCK_N": 32, "max_groups": 2, "target_programs": 1}
    loss, row, col = _triton.pairwise_logistic_sums(pos, neg, True, **cfg)
    rl, rp, rn = reference(pos, neg)
    torch.testing.assert_close(loss.double().cpu(), rl, rtol=2e-5, atol=0)
    torch.testing.assert_close(-row.double().cpu(), rp, rtol=2e-5, atol=1e-5)
    torch.testing.assert_close(col.double().cpu(), rn, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["triton"], indirect=True)
def test_triton_single_program_returns_its_buffers(backend):
    """P, N <= one tile: one program, whose partial sums are the outputs (no reduction)."""
    from lowrank.kernels import _triton

    pos, neg = backend.put(*scores(64, 33, seed=9))
    loss, row, col = _triton.pairwise_logistic_sums(pos, neg, True)
    # the buffers as allocated, in the outputs' shapes: no view, index or reduction
    assert (loss.shape, row.shape, col.shape) == ((), (64,), (33,))
    assert loss._base is None and row._base is None and col._base is None
    rl, rp, rn = reference(pos, neg)
    torch.testing.assert_close(loss.double().cpu(), rl, rtol=2e-5, atol=0)
    torch.testing.assert_close(-row.double().cpu(), rp, rtol=2e-5, atol=1e-5)
    torch.testing.assert_close(col.double().cpu(), rn, rtol=2e-5, atol=1e-5)
    assert _triton._launch_plan.cache_info().currsize >= 1  # the launch plan is cached


@needs_triton
@pytest.mark.skipif(old_interpreter(), reason=OLD_INTERPRETER_REASON)
def test_triton_interpreter_in_fresh_process():
    """The documented route: TRITON_INTERPRET=1 in the environment before Python starts."""
    code = textwrap.dedent("""
        import torch
        from lowrank.kernels import pairwise_logistic
        p = torch.tensor([2.0, 1.0, -0.5], requires_grad=True)
        n = torch.tensor([0.0, 0.25], requires_grad=True)
        pairwise_logistic(p, n, backend="triton").backward()
        q = p.detach().clone().requires_grad_()
        m = n.detach().clone().requires_grad_()
        pairwise_logistic(q, m, backend="naive").backward()
        assert torch.allclose(p.grad, q.grad, rtol=1e-6), (p.grad, q.grad)
        assert torch.allclose(n.grad, m.grad, rtol=1e-6), (n.grad, m.grad)
        print("ok")
    """)
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")

"""Triton backend of :func:`lowrank.kernels.pairwise_logistic`.

This module imports :mod:`triton` at import time; :mod:`lowrank.kernels` imports
it lazily, only when the Triton backend is asked for, so the package works
without triton.

Design
------
The ``(P, N)`` pair matrix is cut into ``BLOCK_P x BLOCK_N`` tiles. The launch
grid is a fixed ``G_P x G_N`` array of programs; program ``(g_p, g_n)`` visits
the positive tiles ``g_p, g_p + G_P, ...`` (outer loop) and, for each, the
negative tiles ``g_n, g_n + G_N, ...`` (inner loop). For every tile it computes,
with ``d = s_j - s_i`` and ``e = exp(-|d|)`` in float32:

* the loss ``softplus(d) = max(d, 0) + log1p(e)``, with ``log1p(e)`` evaluated
  as ``log(1 + e) + c / (1 + e)`` where ``c = e - ((1 + e) - 1)`` is the
  rounding error of ``1 + e`` (exact for tiny ``e``, where ``1 + e == 1``);
* the pair gradient ``sigmoid(d) = (d >= 0 ? 1 : e) / (1 + e)``.

Per pair that is three special-function (MUFU) operations on NVIDIA GPUs:
``ex2.approx``, ``lg2.approx`` (inline PTX: ``tl.log2`` would call libdevice's
``log2f``, about 25 instructions with a branch; switch it off with
``fast_log2=False``) and the reciprocal inside ``div.full.f32``. ``lg2.approx``
has an absolute error below ``2**-22`` on ``[1, 2]``, so the loss of one pair is
accurate to about ``1e-7`` in absolute terms on the GPU. Under the interpreter
(and on non-NVIDIA GPUs) ``tl.log2`` is used.

Partial sums are never combined with atomics:

* the loss of a program is accumulated element-wise in a register tile and
  reduced once, into ``loss_buf[g_p, g_n]``;
* the row (positive) gradient of a positive tile is accumulated element-wise in
  a register tile over the program's inner loop, then reduced and written once
  to ``row_buf[g_n, rows]``;
* the column (negative) gradient of a negative tile is accumulated across the
  outer loop in ``col_buf[g_p, cols]``, a slice that only this program reads
  and writes (read-modify-write, ordered by a barrier; the first outer
  iteration writes without reading, so the buffer needs no zeroing).

Non-finite scores: every program adds ``sum(0 * s)`` over the scores it loads
to its loss; that is exactly 0 for finite scores and NaN if one is NaN or
infinite, so the loss flags non-finite inputs without a host-side check.

The buffers are then summed by torch along their first axis, in a fixed order.
The result is therefore **bit-deterministic for a given device, dtype and tile
configuration** (``BLOCK_P``, ``BLOCK_N``, number of warps and the grid
``G_P x G_N``, which depends only on ``P``, ``N`` and the tile sizes). The
buffers hold ``G_P G_N + G_N P + G_P N`` float32 numbers, with
``G_P, G_N <= max_groups`` (default 32, grown only along a dimension whose
tile count is small), so the extra memory is O(P + N).

Host side: the launch plan (tiles, grid) is cached per ``(P, N)`` and
configuration; the buffers come from torch's caching allocator, and when one
program covers a dimension (``G_P = 1`` or ``G_N = 1``, e.g. ``P, N <= 64``)
the partial-sum buffer is returned as the output without a reduction.

The kernel runs on CUDA tensors, and on CPU tensors under the Triton
interpreter (``TRITON_INTERPRET=1`` set before the first call).
"""

from __future__ import annotations

import functools
import math
import os

import torch
import triton
import triton.language as tl

__all__ = ["pairwise_logistic_sums", "interpreter_enabled", "DEFAULT_CONFIG"]

#: Default tile configuration (untuned: chosen for register pressure, not measured on a GPU).
DEFAULT_CONFIG = {"BLOCK_P": 64, "BLOCK_N": 64, "num_warps": 4, "max_groups": 32,
                  "target_programs": 1024, "fast_log2": True}

_SUPPORTED = (torch.float16, torch.bfloat16, torch.float32)
_NVIDIA = torch.version.cuda is not None


def _pairwise_logistic_kernel(
    pos_ptr, neg_ptr, loss_buf_ptr, row_buf_ptr, col_buf_ptr,
    P, N, num_p_tiles, num_n_tiles, G_P, G_N,
    BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr, NEED_GRAD: tl.constexpr,
    FAST_LOG2: tl.constexpr,
):
    # Decorated lazily by _kernel(): triton.jit reads TRITON_INTERPRET when it decorates.
    g_p = tl.program_id(0)
    g_n = tl.program_id(1)
    offs_p0 = tl.arange(0, BLOCK_P)
    offs_n0 = tl.arange(0, BLOCK_N)
    # 2-D accumulators: the loss and row sums are reduced once per program / positive tile,
    # not once per tile (saves two cross-thread reductions per tile).
    loss_acc = tl.zeros([BLOCK_P, BLOCK_N], dtype=tl.float32)
    # 0 * s: exactly 0 for finite scores, NaN for NaN or inf (the finite check)
    flag_p = tl.zeros([BLOCK_P], dtype=tl.float32)
    flag_n = tl.zeros([BLOCK_N], dtype=tl.float32)
    for pt in range(g_p, num_p_tiles, G_P):
        offs_p = pt * BLOCK_P + offs_p0
        mask_p = offs_p < P
        s_pos = tl.load(pos_ptr + offs_p, mask=mask_p, other=0.0).to(tl.float32)
        flag_p += s_pos * 0.0
        row_acc = tl.zeros([BLOCK_P, BLOCK_N], dtype=tl.float32)
        for nt in range(g_n, num_n_tiles, G_N):
            offs_n = nt * BLOCK_N + offs_n0
            mask_n = offs_n < N
            s_neg = tl.load(neg_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)
            flag_n += s_neg * 0.0
            mask = mask_p[:, None] & mask_n[None, :]
            d = s_neg[None, :] - s_pos[:, None]  # softplus(-(s_i - s_j)) = softplus(d)
            e = tl.exp2(-tl.abs(d) * 1.4426950408889634)  # exp(-|d|), in (0, 1]
            u = 1.0 + e
            r = 1.0 / u
            c = e - (u - 1.0)  # rounding error of 1 + e
            if FAST_LOG2:  # one MUFU instruction (NVIDIA); libdevice log2f costs ~25
                lg = tl.inline_asm_elementwise("lg2.approx.ftz.f32 $0, $1;", "=r,r", [u],
                                               dtype=tl.float32, is_pure=True, pack=1)
            else:
                lg = tl.log2(u)
            loss = tl.maximum(d, 0.0) + lg * 0.6931471805599453 + c * r
            loss_acc += tl.where(mask, loss, 0.0)
            if NEED_GRAD:
                sig = tl.where(mask, tl.where(d >= 0.0, 1.0, e) * r, 0.0)  # sigmoid(d)
                row_acc += sig
                col_ptrs = col_buf_ptr + g_p.to(tl.int64) * N + offs_n  # int64: G_P * N may be large
                # the first outer iteration (pt == g_p) starts the sums: nothing to read
                not_first = (offs_n0 * 0 + pt) != g_p  # as a vector: a scalar mask trips the interpreter
                col_old = tl.load(col_ptrs, mask=mask_n & not_first, other=0.0)
                tl.store(col_ptrs, col_old + tl.sum(sig, axis=0), mask=mask_n)
        if NEED_GRAD:
            tl.store(row_buf_ptr + g_n.to(tl.int64) * P + offs_p, tl.sum(row_acc, axis=1),
                     mask=mask_p)
            # The next outer iteration reads back this program's col_buf slice.
            tl.debug_barrier()
    flag = tl.sum(flag_p, axis=0) + tl.sum(flag_n, axis=0)
    tl.store(loss_buf_ptr + g_p * G_N + g_n, tl.sum(tl.sum(loss_acc, axis=1), axis=0) + flag)


_KERNELS: dict[bool, object] = {}


def interpreter_enabled() -> bool:
    """True when the Triton interpreter is switched on (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


def _kernel():
    mode = interpreter_enabled()
    if mode not in _KERNELS:
        _KERNELS[mode] = triton.jit(_pairwise_logistic_kernel)
    return _KERNELS[mode]


def _groups(num_p_tiles: int, num_n_tiles: int, max_groups: int,
            target_programs: int) -> tuple[int, int]:
    """Grid ``(G_P, G_N)``: at most ``max_groups`` per dimension, unless the other is small."""
    g_n0 = min(num_n_tiles, max_groups)
    g_p = min(num_p_tiles, max(max_groups, math.ceil(target_programs / g_n0)))
    g_n = min(num_n_tiles, max(max_groups, math.ceil(target_programs / g_p)))
    return g_p, g_n


def pairwise_logistic_sums(pos: torch.Tensor, neg: torch.Tensor, need_grad: bool = True,
                           **config) -> tuple[torch.Tensor, torch.Tensor | None,
                                              torch.Tensor | None]:
    """Sum of ``softplus(s_j - s_i)`` over all pairs, and its gradient sums, with Triton.

    Parameters
    ----------
    pos, neg : torch.Tensor, shape (P,) and (N,)
        Validated scores on the same device, dtype float16, bfloat16 or float32.
    need_grad : bool, default True
        Also compute ``row[i] = sum_j sigmoid(s_j - s_i)`` and
        ``col[j] = sum_i sigmoid(s_j - s_i)``.
    **config
        Overrides of :data:`DEFAULT_CONFIG` (``BLOCK_P``, ``BLOCK_N``: powers of two;
        ``num_warps``; ``max_groups``; ``target_programs``; ``fast_log2``).

    Returns
    -------
    loss : torch.Tensor
        0-d float32 tensor, the sum over all ``P * N`` pairs.
    row, col : torch.Tensor or None
        float32 tensors of shape (P,) and (N,) (``None`` unless ``need_grad``).

    Raises
    ------
    ValueError
        If the tensors are on the CPU without ``TRITON_INTERPRET=1``, or of an unsupported dtype.
    """
    cfg = DEFAULT_CONFIG if not config else {**DEFAULT_CONFIG, **config}
    if pos.dtype not in _SUPPORTED:
        raise ValueError(f"backend='triton' supports dtypes {_SUPPORTED}, got {pos.dtype}; "
                         "use backend='torch' for float64")
    dev = pos.device
    if dev.type != "cuda" and not interpreter_enabled():
        raise ValueError(f"backend='triton' needs CUDA tensors, got device {dev}; "
                         "set TRITON_INTERPRET=1 before the first call to run it on the CPU "
                         "(slow, for testing), or use backend='torch'")
    pos = pos.detach().contiguous()
    neg = neg.detach().contiguous()
    P, N = pos.shape[0], neg.shape[0]
    bp, bn, num_p_tiles, num_n_tiles, g_p, g_n, warps = _launch_plan(
        P, N, int(cfg["BLOCK_P"]), int(cfg["BLOCK_N"]), int(cfg["num_warps"]),
        int(cfg["max_groups"]), int(cfg["target_programs"]))
    # lg2.approx inline PTX: NVIDIA CUDA builds only, never under the interpreter
    fast_log2 = bool(cfg["fast_log2"]) and dev.type == "cuda" and _NVIDIA \
        and not interpreter_enabled()
    f32 = {"dtype": torch.float32, "device": dev}
    loss_buf = torch.empty((g_p, g_n), **f32)
    if need_grad:
        row_buf = torch.empty((g_n, P), **f32)
        col_buf = torch.empty((g_p, N), **f32)  # the kernel writes before it reads
    else:  # never touched by the kernel
        row_buf = col_buf = loss_buf
    args = (pos, neg, loss_buf, row_buf, col_buf, P, N, num_p_tiles, num_n_tiles, g_p, g_n)
    meta = {"BLOCK_P": bp, "BLOCK_N": bn, "NEED_GRAD": bool(need_grad), "FAST_LOG2": fast_log2,
            "num_warps": warps}
    if dev.type == "cuda" and dev.index is not None and dev.index != torch.cuda.current_device():
        with torch.cuda.device(dev):
            _kernel()[(g_p, g_n)](*args, **meta)
    else:
        _kernel()[(g_p, g_n)](*args, **meta)
    # one program along a dimension: its partial sums are the result (no reduction launch)
    loss = loss_buf.view(()) if g_p * g_n == 1 else loss_buf.sum()
    if not need_grad:
        return loss, None, None
    row = row_buf[0] if g_n == 1 else row_buf.sum(0)
    col = col_buf[0] if g_p == 1 else col_buf.sum(0)
    return loss, row, col


@functools.lru_cache(maxsize=256)
def _launch_plan(P: int, N: int, bp: int, bn: int, num_warps: int, max_groups: int,
                 target_programs: int) -> tuple[int, int, int, int, int, int, int]:
    """Tiles, tile counts and grid of one launch (cached: computed once per size and config)."""
    num_p_tiles, num_n_tiles = triton.cdiv(P, bp), triton.cdiv(N, bn)
    g_p, g_n = _groups(num_p_tiles, num_n_tiles, max_groups, target_programs)
    return bp, bn, num_p_tiles, num_n_tiles, g_p, g_n, num_warps


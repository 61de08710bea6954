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

Per pair that is three special-function (MUFU) operations on NVIDIA GPUs, each
one instruction: ``ex2.approx``, and, as inline PTX (``fast_math``), ``lg2.approx``
and ``rcp.approx`` of ``u = 1 + e`` in ``[1, 2]``, where neither needs the range
handling around it that ``tl.log2`` (libdevice ``log2f``, about 25 instructions
with a branch) and ``1 / u`` (``div.full.f32``: five more instructions per pair)
add. ``lg2.approx`` has an absolute error below ``2**-22`` on ``[1, 2]`` and
``rcp.approx`` an error of about one unit in the last place, so the loss of one
pair is accurate to about ``1e-7`` in absolute terms on the GPU (the GPU check
measures loss and gradients against float64). Under the interpreter
(and on non-NVIDIA GPUs) ``tl.log2`` and ``1 / u`` are used.

Optionally (``fma_exp2_every=k``, off by default) one full tile in every ``k``
of a program's inner loop computes ``e`` on the FMA pipe instead (:func:`_exp2_fma`:
a degree-6 polynomial and exponent-bit arithmetic), which moves a share of the
special-function work to the pipe that has spare issue slots.

Edges: the positives are padded with ``+inf`` and the negatives with ``-inf``,
so a padded pair has ``d = -inf``, ``e = 0`` and a sigmoid of exactly 0: the
gradient sums need no mask. The loss of a padded pair is ``lg2(1) ln 2``, which
``lg2.approx`` is not documented to return as exactly 0, so tiles on the last
row or column of tiles mask it; the full tiles, almost all of them, run a
separate loop with no mask at all (the two paths are separate loops so that
the compiler cannot merge them into per-pair selects).

Partial sums are never combined with atomics:

* with the gradient, the loss and the column (negative) gradient of a tile are
  reduced over its rows together (one two-operand reduction); the loss goes to
  a per-program column vector, reduced once into ``loss_buf[g_p, g_n]``;
  without the gradient, the loss is accumulated element-wise in a register
  tile and reduced once;
* the row (positive) gradient of a positive tile is accumulated element-wise in
  a register tile over the program's inner loop, then reduced and written once
  to ``row_buf[g_n, rows]``;
* the column gradient of a negative tile is accumulated across the outer loop
  in ``col_buf[g_p, cols]``, a slice that only this program reads and writes
  (read-modify-write, ordered by a barrier; the first outer iteration writes
  without reading, so the buffer needs no zeroing).

Non-finite scores: every program adds ``sum(0 * s)`` over the scores it loads
to its loss; that is exactly 0 for finite scores and NaN if one is NaN or
infinite, so the loss flags non-finite inputs without a host-side check.

The buffers are then summed by torch along their first axis, in a fixed order.
The result is therefore **bit-deterministic for a given device, dtype and tile
configuration** (``BLOCK_P``, ``BLOCK_N``, number of warps and the grid
``G_P x G_N``, which depends only on ``P``, ``N``, the tile sizes and, on a GPU,
the number of programs it holds at once). The configuration of a size comes from
a fixed table (:data:`TILE_TABLE`), not from timings at run time.

Grid: on a GPU, the number of programs that fit at once (``slots``: SMs times
:func:`occupancy` of the compiled kernel, read once per device and configuration)
sizes the grid with :func:`balanced_grid`, usually one wave of about ``slots``
programs; a fixed 1,024 programs would leave part of the GPU idle in a last,
partial wave (three programs per SM on 132 SMs: 2.6 waves, so 3). Elsewhere, and
if the occupancy cannot be read (the reason is kept in :data:`SLOTS`), the grid
is the fixed one. The buffers hold ``G_P G_N + G_N P + G_P N`` float32
numbers, with ``G_P, G_N <= max_groups`` (default 32, grown only along a
dimension whose tile count is small), so the extra memory is O(P + N).

Host side: the launch plan (configuration, tiles, grid, compile-time
arguments) is cached per ``(P, N)`` and configuration; the buffers come from
torch's caching allocator, and when one program covers a dimension (``G_P = 1``
or ``G_N = 1``, e.g. ``P, N <= 64``) the partial-sum buffer is returned as the
output without a reduction.

Static profile (no GPU needed: ``python scripts/kernel_sass.py`` compiles the
kernel for ``sm_90`` with Triton's ``ptxas`` and counts the SASS of its hot
loop): see the benchmarks page for the numbers.

The kernel runs on CUDA tensors, and on CPU tensors under the Triton
interpreter (``TRITON_INTERPRET=1`` set before the first call).
"""

from __future__ import annotations

import functools
import math
import os
import types

import torch
import triton
import triton.language as tl

__all__ = ["pairwise_logistic_sums", "interpreter_enabled", "tile_config", "occupancy",
           "balanced_grid", "DEFAULT_CONFIG", "TILE_TABLE", "TILE_CANDIDATES", "SLOTS"]

#: Default configuration. ``BLOCK_P`` x ``BLOCK_N`` with ``num_warps``: the tile configuration
#: (64 x 64 with 4 warps was the fastest with the gradient sums on an H200 at
#: P = N = 65,536, for the previous version of the kernel); ``max_groups`` and
#: ``target_programs`` shape the grid; ``fast_math``: ``rcp.approx`` and ``lg2.approx``
#: inline PTX on NVIDIA GPUs; ``joint_reduce``: one two-operand column reduction per tile
#: (``None``: on, except under the interpreter, which runs it element by element);
#: ``fma_exp2_every``: ``k >= 2`` evaluates ``exp`` on the FMA pipe (a polynomial, no
#: special-function unit) in one full tile of every ``k`` of a program's inner loop, to
#: move part of the MUFU work to the pipe that has room (0: off).
DEFAULT_CONFIG = {"BLOCK_P": 64, "BLOCK_N": 64, "num_warps": 4, "max_groups": 32,
                  "target_programs": 1024, "fast_math": True, "joint_reduce": None,
                  "fma_exp2_every": 0}

#: Tile configuration by problem size: ``(largest P * N, overrides of DEFAULT_CONFIG)`` rows,
#: first match wins. A fixed table, not a run-time autotuner: a given size always runs
#: the same configuration, so its result stays bit-deterministic from run to run.
#: ``scripts/gpu_check.py`` times :data:`TILE_CANDIDATES` at each size on a GPU and
#: prints the table that GPU prefers; until one has been measured with this kernel,
#: every size runs the default.
TILE_TABLE: tuple[tuple[float, dict], ...] = ((float("inf"), {}),)

#: The tile configurations that ``scripts/gpu_check.py`` times for :data:`TILE_TABLE`
#: (none spills registers on sm_90: ``python scripts/kernel_sass.py``).
TILE_CANDIDATES: tuple[dict, ...] = (
    {"BLOCK_P": 64, "BLOCK_N": 64, "num_warps": 4},
    {"BLOCK_P": 128, "BLOCK_N": 64, "num_warps": 8},
    {"BLOCK_P": 64, "BLOCK_N": 128, "num_warps": 8},
    {"BLOCK_P": 32, "BLOCK_N": 64, "num_warps": 2},
    {"BLOCK_P": 32, "BLOCK_N": 32, "num_warps": 1},
    {"BLOCK_P": 32, "BLOCK_N": 64, "num_warps": 2, "fma_exp2_every": 3},
    {"BLOCK_P": 32, "BLOCK_N": 64, "num_warps": 2, "fma_exp2_every": 4},
)

_SUPPORTED = (torch.float16, torch.bfloat16, torch.float32)
_NVIDIA = torch.version.cuda is not None


def _exp2_fma(x):
    # 2**x for x <= 0 on the FMA pipe (no MUFU): x = n + f with n an integer (rounded by the
    # 1.5 * 2**23 trick, which leaves n in the low mantissa bits of t) and |f| <= 1/2;
    # 2**f by a degree-6 polynomial (relative error 1e-7 in float32), 2**n added to the
    # exponent bits; 0 below 2**-125 (where the exponent would leave the normal range), as
    # ex2.approx.ftz gives 0 below 2**-126.
    t = x + 12582912.0
    n_f = t - 12582912.0
    f = x - n_f
    p = 0.00015345811602979556 * f + 0.001339993121573137
    p = p * f + 0.009618488958616955
    p = p * f + 0.05550328776974648
    p = p * f + 0.2402264689062017
    p = p * f + 0.6931472057372614
    p = p * f + 1.0
    bits = p.to(tl.int32, bitcast=True) + (t.to(tl.int32, bitcast=True) << 23)
    return tl.where(x < -125.0, 0.0, bits.to(tl.float32, bitcast=True))


def _pair_terms(s_pos, s_neg, FAST_MATH: tl.constexpr, FMA_EXP2: tl.constexpr):
    # Loss and gradient factors of one tile (a Triton helper, inlined into the kernel).
    d = s_neg[None, :] - s_pos[:, None]  # softplus(-(s_i - s_j)) = softplus(d)
    if FMA_EXP2:  # exp(-|d|) without the special-function unit (see _exp2_fma)
        e = _exp2_fma(-tl.abs(d) * 1.4426950408889634)
    else:
        e = tl.exp2(-tl.abs(d) * 1.4426950408889634)  # exp(-|d|), in [0, 1]
    u = 1.0 + e  # in [1, 2]
    if FAST_MATH:  # one MUFU instruction each (NVIDIA): no range reduction needed on [1, 2]
        r = tl.inline_asm_elementwise("rcp.approx.ftz.f32 $0, $1;", "=r,r", [u],
                                      dtype=tl.float32, is_pure=True, pack=1)
        lg = tl.inline_asm_elementwise("lg2.approx.ftz.f32 $0, $1;", "=r,r", [u],
                                       dtype=tl.float32, is_pure=True, pack=1)
    else:
        r = 1.0 / u
        lg = tl.log2(u)
    c = e - (u - 1.0)  # rounding error of 1 + e
    loss = tl.maximum(d, 0.0) + lg * 0.6931471805599453 + c * r
    sel = tl.where(d >= 0.0, 1.0, e)  # sigmoid(d) = sel * r
    return loss, sel * r


def _add_pairs(a0, a1, b0, b1):
    # Combine function of a two-operand tl.reduce.
    return a0 + b0, a1 + b1


def _tile_step(s_pos, mask_p, neg_ptr, col_buf_ptr, nt, pt, g_p, N, offs_n0, col_scale,
               loss_acc, row_acc, flag_n, BLOCK_N: tl.constexpr, NEED_GRAD: tl.constexpr,
               FAST_MATH: tl.constexpr, JOINT_REDUCE: tl.constexpr, MASKED: tl.constexpr,
               FMA_EXP2: tl.constexpr):
    # One tile of pairs: the positives s_pos (one tile) against negative tile nt.
    offs_n = nt * BLOCK_N + offs_n0
    mask_n = offs_n < N
    # padding: +inf positives and -inf negatives make d = -inf, so sigmoid(d) = 0 exactly
    s_neg = tl.load(neg_ptr + offs_n, mask=mask_n, other=float("-inf")).to(tl.float32)
    flag_n += tl.where(mask_n, s_neg, 0.0) * 0.0
    loss, sig = _pair_terms(s_pos, s_neg, FAST_MATH, FMA_EXP2)
    if MASKED:  # a padded pair's loss is lg2(1) ln 2: masked, not trusted to be 0
        loss = tl.where(mask_p[:, None] & mask_n[None, :], loss, 0.0)
    if NEED_GRAD:  # a padded pair's sigmoid is exactly 0: no mask
        row_acc += sig
        # the tile's column sums: the column gradient, and the loss by column
        if JOINT_REDUCE:  # one reduction of both (one shared-memory round trip)
            col_sig, col_loss = tl.reduce((sig, loss), 0, _add_pairs)
        else:  # two: the interpreter runs a custom reduction element by element in Python
            col_sig = tl.sum(sig, axis=0)
            col_loss = tl.sum(loss, axis=0)
        loss_acc += col_loss
        col_ptrs = col_buf_ptr + g_p.to(tl.int64) * N + offs_n  # int64: G_P * N may be large
        # the first outer iteration (pt == g_p) starts the sums: nothing to read
        not_first = (offs_n0 * 0 + pt) != g_p  # as a vector: a scalar mask trips the interpreter
        col_old = tl.load(col_ptrs, mask=mask_n & not_first, other=0.0)
        tl.store(col_ptrs, col_old + col_sig * col_scale, mask=mask_n)
    else:
        loss_acc += loss
    return loss_acc, row_acc, flag_n


def _pairwise_logistic_kernel(
    pos_ptr, neg_ptr, loss_buf_ptr, row_buf_ptr, col_buf_ptr,
    P, N, num_p_tiles, num_n_tiles, G_P, G_N, loss_scale, row_scale, col_scale,
    BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr, NEED_GRAD: tl.constexpr,
    FAST_MATH: tl.constexpr, JOINT_REDUCE: tl.constexpr, FMA_EVERY: tl.constexpr,
):
    # Decorated lazily by _kernel(): triton.jit reads TRITON_INTERPRET when it decorates.
    g_p = tl.program_id(0)
    g_n = tl.program_id(1)
    offs_p0 = tl.arange(0, BLOCK_P)
    offs_n0 = tl.arange(0, BLOCK_N)
    full_p_tiles = P // BLOCK_P
    full_n_tiles = N // BLOCK_N
    # this program's share of the partial last negative tile (if there is one)
    owns_last_n = (full_n_tiles < num_n_tiles) & (full_n_tiles % G_N == g_n)
    # The loss: with the gradient, a column vector fed by the per-tile column reduction;
    # without it, a 2-D tile reduced once at the end. The row sums of a positive tile: a
    # 2-D tile reduced once after the program's inner loop.
    if NEED_GRAD:
        loss_acc = tl.zeros([BLOCK_N], dtype=tl.float32)
    else:
        loss_acc = tl.zeros([BLOCK_P, BLOCK_N], dtype=tl.float32)
    # 0 * s: exactly 0 for finite scores, NaN for NaN or inf (the finite check)
    flag_p = tl.zeros([BLOCK_P], dtype=tl.float32)
    flag_n = tl.zeros([BLOCK_N], dtype=tl.float32)
    for pt in range(g_p, num_p_tiles, G_P):
        offs_p = pt * BLOCK_P + offs_p0
        mask_p = offs_p < P
        s_pos = tl.load(pos_ptr + offs_p, mask=mask_p, other=float("inf")).to(tl.float32)
        flag_p += tl.where(mask_p, s_pos, 0.0) * 0.0
        row_acc = tl.zeros([BLOCK_P, BLOCK_N], dtype=tl.float32)
        # Full tiles without a mask (the hot loop), then the partial tiles masked: separate
        # loops, so that the compiler cannot merge the two paths into per-pair selects.
        if pt < full_p_tiles:
            nt_fma = g_n  # FMA_EVERY > 0: groups of FMA_EVERY tiles, the first one on the FMA pipe
            if FMA_EVERY > 0:
                groups = tl.maximum(full_n_tiles - g_n + G_N - 1, 0) // G_N // FMA_EVERY
                nt_fma = g_n + groups * FMA_EVERY * G_N
                for nt0 in range(g_n, nt_fma, FMA_EVERY * G_N):
                    loss_acc, row_acc, flag_n = _tile_step(
                        s_pos, mask_p, neg_ptr, col_buf_ptr, nt0, pt, g_p, N, offs_n0, col_scale,
                        loss_acc, row_acc, flag_n, BLOCK_N, NEED_GRAD, FAST_MATH, JOINT_REDUCE,
                        False, True)
                    for k in tl.static_range(1, FMA_EVERY):
                        loss_acc, row_acc, flag_n = _tile_step(
                            s_pos, mask_p, neg_ptr, col_buf_ptr, nt0 + k * G_N, pt, g_p, N,
                            offs_n0, col_scale, loss_acc, row_acc, flag_n, BLOCK_N, NEED_GRAD,
                            FAST_MATH, JOINT_REDUCE, False, False)
            for nt in range(nt_fma, full_n_tiles, G_N):
                loss_acc, row_acc, flag_n = _tile_step(
                    s_pos, mask_p, neg_ptr, col_buf_ptr, nt, pt, g_p, N, offs_n0, col_scale, loss_acc,
                    row_acc, flag_n, BLOCK_N, NEED_GRAD, FAST_MATH, JOINT_REDUCE, False, False)
        else:
            for nt in range(g_n, full_n_tiles, G_N):
                loss_acc, row_acc, flag_n = _tile_step(
                    s_pos, mask_p, neg_ptr, col_buf_ptr, nt, pt, g_p, N, offs_n0, col_scale, loss_acc,
                    row_acc, flag_n, BLOCK_N, NEED_GRAD, FAST_MATH, JOINT_REDUCE, True, False)
        if owns_last_n:
            loss_acc, row_acc, flag_n = _tile_step(
                s_pos, mask_p, neg_ptr, col_buf_ptr, full_n_tiles, pt, g_p, N, offs_n0,
                col_scale, loss_acc, row_acc, flag_n, BLOCK_N, NEED_GRAD, FAST_MATH,
                JOINT_REDUCE, True, False)
        if NEED_GRAD:
            tl.store(row_buf_ptr + g_n.to(tl.int64) * P + offs_p,
                     tl.sum(row_acc, axis=1) * row_scale, mask=mask_p)
            # The next outer iteration reads back this program's col_buf slice.
            tl.debug_barrier()
    flag = tl.sum(flag_p, axis=0) + tl.sum(flag_n, axis=0)
    if NEED_GRAD:
        total = tl.sum(loss_acc, axis=0)
    else:
        total = tl.sum(tl.sum(loss_acc, axis=1), axis=0)
    tl.store(loss_buf_ptr + g_p * G_N + g_n, total * loss_scale + flag)


_KERNELS: dict[bool, object] = {}


def interpreter_enabled() -> bool:
    """True when the Triton interpreter is switched on (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


def _kernel(mode: bool | None = None):
    """The kernel, decorated for ``mode`` (the interpreter if True; default: the current one)."""
    if mode is None:
        mode = interpreter_enabled()
    if mode not in _KERNELS:
        # The helpers must be decorated in the same mode as the kernel that calls them, so
        # the kernel and its helpers are rebuilt over one copy of this module's globals
        # that holds the decorated helpers.
        scope = dict(globals())

        def rebuilt(fn):
            return types.FunctionType(fn.__code__, scope, fn.__name__)

        for helper in (_add_pairs, _exp2_fma, _pair_terms, _tile_step):
            scope[helper.__name__] = triton.jit(rebuilt(helper))
        _KERNELS[mode] = triton.jit(rebuilt(_pairwise_logistic_kernel))
    return _KERNELS[mode]


def _groups(num_p_tiles: int, num_n_tiles: int, max_groups: int,
            target_programs: int) -> tuple[int, int]:
    """Grid ``(G_P, G_N)``: at most ``max_groups`` per dimension, unless the other is small."""
    g_n0 = min(num_n_tiles, max_groups)
    g_p = min(num_p_tiles, max(max_groups, math.ceil(target_programs / g_n0)))
    g_n = min(num_n_tiles, max(max_groups, math.ceil(target_programs / g_p)))
    return g_p, g_n


def occupancy(registers: int, num_warps: int, shared_bytes: int = 0, *,
              registers_per_sm: int = 65536, max_warps_per_sm: int = 64,
              max_programs_per_sm: int = 32, shared_per_sm: int | None = None) -> int:
    """Programs of a kernel that one streaming multiprocessor holds at once.

    Registers are allocated per warp in units of 256 (8 per thread); the other limits are
    the resident warps, the resident programs and the shared memory of an SM (defaults:
    NVIDIA compute capabilities 8.0 and 9.0).

    Examples
    --------
    >>> occupancy(168, 4)  # 168 x 32 = 5,376 registers a warp: 21,504 a program
    3
    >>> occupancy(137, 2), occupancy(114, 4), occupancy(40, 1)
    (7, 4, 32)
    """
    per_warp = -(-registers * 32 // 256) * 256
    limits = [max_programs_per_sm, max_warps_per_sm // num_warps,
              registers_per_sm // max(1, per_warp * num_warps)]
    if shared_bytes and shared_per_sm:
        limits.append(shared_per_sm // shared_bytes)
    return max(0, min(limits))


@functools.lru_cache(maxsize=1024)
def balanced_grid(num_p_tiles: int, num_n_tiles: int, slots: int, max_g_p: int,
                  max_g_n: int) -> tuple[int, int]:
    """Grid ``(G_P, G_N)`` that finishes first when ``slots`` programs run at once.

    Program ``(g_p, g_n)`` does ``ceil(num_p_tiles / G_P) * ceil(num_n_tiles / G_N)``
    tiles at most, and ``G_P G_N`` programs take ``ceil(G_P G_N / slots)`` waves, so the
    time is about their product (in tile times); the grid with the smallest one wins,
    with the fewest programs among equals. A grid of a fixed size instead (1,024
    programs) leaves ``slots`` partly idle in its last wave: with 396 slots (an H100 or
    H200 with three programs per SM) at P = N = 65,536, 1,024 programs take 3 waves of
    1,024 tiles (3,072) where 18 x 22 programs take one of 2,679 (ideal: 2,648).

    Examples
    --------
    >>> balanced_grid(1024, 1024, 396, 32, 32)
    (18, 22)
    >>> balanced_grid(2, 3, 396, 32, 32)  # fewer tiles than slots: one tile a program
    (2, 3)
    """
    best = None
    for g_p in range(1, max_g_p + 1):
        rows = -(-num_p_tiles // g_p)
        for g_n in range(1, max_g_n + 1):
            programs = g_p * g_n
            cost = -(-programs // slots) * rows * -(-num_n_tiles // g_n)
            if best is None or (cost, programs) < best[0]:
                best = ((cost, programs), (g_p, g_n))
    return best[1]


def pairwise_logistic_sums(pos: torch.Tensor, neg: torch.Tensor, need_grad: bool = True,
                           scales: tuple[float, float, float] = (1.0, 1.0, 1.0),
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
    scales : tuple of 3 floats, default (1, 1, 1)
        Factors of the loss, ``row`` and ``col``, applied by the kernel to its partial
        sums (``(1 / (P N), -1 / (P N), 1 / (P N))`` gives the mean loss and its
        gradients with no further launch).
    **config
        Overrides of the size's configuration (:func:`tile_config`): ``BLOCK_P``,
        ``BLOCK_N`` (powers of two), ``num_warps``, ``max_groups``,
        ``target_programs``, ``fast_math``, ``joint_reduce``.

    Returns
    -------
    loss : torch.Tensor
        0-d float32 tensor, the sum over all ``P * N`` pairs (times ``scales[0]``).
    row, col : torch.Tensor or None
        float32 tensors of shape (P,) and (N,), times ``scales[1]`` and ``scales[2]``
        (``None`` unless ``need_grad``).

    Raises
    ------
    ValueError
        If the tensors are on the CPU without ``TRITON_INTERPRET=1``, of an unsupported
        dtype, or a configuration key is unknown.
    """
    if pos.dtype not in _SUPPORTED:
        raise ValueError(f"backend='triton' supports dtypes {_SUPPORTED}, got {pos.dtype}; "
                         "use backend='torch' for float64")
    dev = pos.device
    interpret = interpreter_enabled()
    if dev.type != "cuda" and not interpret:
        raise ValueError(f"backend='triton' needs CUDA tensors, got device {dev}; "
                         "set TRITON_INTERPRET=1 before the first call to run it on the CPU "
                         "(slow, for testing), or use backend='torch'")
    pos = pos.detach().contiguous()
    neg = neg.detach().contiguous()
    P, N = pos.shape[0], neg.shape[0]
    # rcp/lg2.approx inline PTX: NVIDIA CUDA builds only, never under the interpreter
    nvidia = dev.type == "cuda" and _NVIDIA and not interpret
    g_p, g_n, num_p_tiles, num_n_tiles, meta, meta_key = _launch_plan(
        P, N, bool(need_grad), nvidia, interpret, tuple(sorted(config.items())))
    if dev.type == "cuda" and not interpret:  # one wave of programs sized to the GPU
        slots = _slots(dev, pos, neg, P, N, num_p_tiles, num_n_tiles, meta, meta_key)
        if slots:
            g_p, g_n = balanced_grid(num_p_tiles, num_n_tiles, slots, g_p, g_n)
    f32 = {"dtype": torch.float32, "device": dev}
    # One program along a dimension: its partial sums are the result, so the buffer is
    # allocated in the result's shape (no reduction launch, no indexing afterwards).
    loss_buf = torch.empty(() if g_p * g_n == 1 else (g_p, g_n), **f32)
    if need_grad:
        row_buf = torch.empty((P,) if g_n == 1 else (g_n, P), **f32)
        col_buf = torch.empty((N,) if g_p == 1 else (g_p, N), **f32)  # written before read
    else:  # never touched by the kernel
        row_buf = col_buf = loss_buf
    loss_scale, row_scale, col_scale = (float(x) for x in scales)
    args = (pos, neg, loss_buf, row_buf, col_buf, P, N, num_p_tiles, num_n_tiles, g_p, g_n,
            loss_scale, row_scale, col_scale)
    kernel = _kernel(interpret)
    if dev.type == "cuda" and dev.index is not None and dev.index != torch.cuda.current_device():
        with torch.cuda.device(dev):
            kernel[(g_p, g_n)](*args, **meta)
    else:
        kernel[(g_p, g_n)](*args, **meta)
    loss = loss_buf if loss_buf.ndim == 0 else loss_buf.sum()
    if not need_grad:
        return loss, None, None
    row = row_buf if row_buf.ndim == 1 else row_buf.sum(0)
    col = col_buf if col_buf.ndim == 1 else col_buf.sum(0)
    return loss, row, col


def tile_config(pairs: int, **overrides) -> dict:
    """The configuration that a problem of ``pairs = P * N`` pairs runs with.

    Parameters
    ----------
    pairs : int
        ``P * N``.
    **overrides
        Keys of :data:`DEFAULT_CONFIG`; they win over the table.

    Returns
    -------
    dict
        :data:`DEFAULT_CONFIG`, updated by the first :data:`TILE_TABLE` row whose bound
        is at least ``pairs``, then by ``overrides``.

    Examples
    --------
    >>> from lowrank.kernels._triton import tile_config
    >>> cfg = tile_config(4096 * 4096, BLOCK_N=128)
    >>> cfg["BLOCK_P"], cfg["BLOCK_N"]
    (64, 128)
    """
    unknown = set(overrides) - set(DEFAULT_CONFIG)
    if unknown:
        raise ValueError(f"unknown Triton configuration keys {sorted(unknown)}; "
                         f"expected some of {sorted(DEFAULT_CONFIG)}")
    row = next(cfg for bound, cfg in TILE_TABLE if pairs <= bound)
    return {**DEFAULT_CONFIG, **row, **overrides}


@functools.lru_cache(maxsize=256)
def _launch_plan(P: int, N: int, need_grad: bool, nvidia: bool, interpret: bool,
                 overrides: tuple) -> tuple[int, int, int, int, dict, tuple]:
    """Fixed grid, tile counts and compile-time arguments of one launch (cached).

    The grid is the one of :func:`_groups`, an upper bound per dimension for
    :func:`balanced_grid` on a GPU. The returned ``meta`` dict is shared between calls:
    pass it as ``**meta``, never modify it; ``meta_key``, its sorted items, keys
    :data:`SLOTS`.
    """
    cfg = tile_config(P * N, **dict(overrides))
    bp, bn = int(cfg["BLOCK_P"]), int(cfg["BLOCK_N"])
    num_p_tiles, num_n_tiles = triton.cdiv(P, bp), triton.cdiv(N, bn)
    g_p, g_n = _groups(num_p_tiles, num_n_tiles, int(cfg["max_groups"]),
                       int(cfg["target_programs"]))
    joint = cfg["joint_reduce"]
    meta = {"BLOCK_P": bp, "BLOCK_N": bn, "NEED_GRAD": need_grad,
            "FAST_MATH": bool(cfg["fast_math"]) and nvidia,
            "JOINT_REDUCE": (not interpret) if joint is None else bool(joint),
            "FMA_EVERY": _fma_every(cfg["fma_exp2_every"]), "num_warps": int(cfg["num_warps"])}
    return g_p, g_n, num_p_tiles, num_n_tiles, meta, tuple(sorted(meta.items()))


def _fma_every(value) -> int:
    k = int(value)
    if k != value or k < 0 or k == 1:
        raise ValueError(f"fma_exp2_every must be 0 (off) or an integer >= 2, got {value!r}")
    return k


#: Resident programs per (device index, compile-time arguments): ``(slots, note)``, where
#: ``slots`` is the SM count times :func:`occupancy` of the compiled kernel, or ``None``
#: with the reason when it could not be read (the fixed grid is used then).
SLOTS: dict[tuple, tuple[int | None, str]] = {}


def _slots(dev: torch.device, pos: torch.Tensor, neg: torch.Tensor, P: int, N: int,
           num_p_tiles: int, num_n_tiles: int, meta: dict, meta_key: tuple) -> int | None:
    """Programs of this kernel that the GPU ``dev`` holds at once (``None`` if unknown).

    ``meta_key``: ``meta``'s sorted items, as :func:`_launch_plan` gives them.
    """
    key = (dev.index, meta_key, pos.dtype)
    if key not in SLOTS:  # once per device and configuration: the rest is a dict lookup
        try:
            with torch.cuda.device(dev):  # the compiled kernel loads on the current device
                SLOTS[key] = _read_slots(dev, pos, neg, P, N, num_p_tiles, num_n_tiles, meta)
        except Exception as err:  # noqa: BLE001 - a grid heuristic: fall back, keep the reason
            SLOTS[key] = (None, f"occupancy unknown, fixed grid: {type(err).__name__}: {err}")
    return SLOTS[key][0]


def _read_slots(dev: torch.device, pos: torch.Tensor, neg: torch.Tensor, P: int, N: int,
                num_p_tiles: int, num_n_tiles: int, meta: dict) -> tuple[int | None, str]:
    """Compile (no launch) and load the kernel, and count the programs ``dev`` holds at once."""
    f32 = torch.empty(1, dtype=torch.float32, device=dev)
    compiled = _kernel().warmup(pos, neg, f32, f32, f32, P, N, num_p_tiles, num_n_tiles, 2, 2,
                                1.0, 1.0, 1.0, grid=(1,), **meta)
    compiled._init_handles()
    props = torch.cuda.get_device_properties(dev)
    per_sm = occupancy(
        int(compiled.n_regs), meta["num_warps"], int(compiled.metadata.shared),
        registers_per_sm=int(getattr(props, "regs_per_multiprocessor", 65536)),
        max_warps_per_sm=int(props.max_threads_per_multi_processor) // 32,
        shared_per_sm=getattr(props, "shared_memory_per_multiprocessor", None))
    return (props.multi_processor_count * per_sm or None,
            f"{props.multi_processor_count} SMs x {per_sm} programs "
            f"({compiled.n_regs} registers, {compiled.metadata.shared} B shared)")

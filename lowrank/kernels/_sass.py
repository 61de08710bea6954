"""Static profile of the Triton kernel: compile it for an NVIDIA GPU without one.

Triton ships ``ptxas`` and ``cuobjdump``, so the kernel of
:mod:`lowrank.kernels._triton` can be compiled for, say, ``sm_90`` (Hopper) on a
machine with no GPU. :func:`profile` does that for one tile configuration and
reads the SASS: registers per thread, local-memory (spill) bytes, shared memory,
and the hot loop, the inner loop over full tiles (the loop with the fewest
instructions among those that evaluate pairs): its instructions, special-function
(MUFU) instructions and barriers, per pair. It is a count of compiled code, not a
timing; ``scripts/kernel_sass.py`` prints it for the tile candidates.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import tempfile

__all__ = ["profile", "SIGNATURE"]

#: Argument types of the kernel for the compiler (float32 scores).
SIGNATURE = {"pos_ptr": "*fp32", "neg_ptr": "*fp32", "loss_buf_ptr": "*fp32",
             "row_buf_ptr": "*fp32", "col_buf_ptr": "*fp32", "P": "i32", "N": "i32",
             "num_p_tiles": "i32", "num_n_tiles": "i32", "G_P": "i32", "G_N": "i32",
             "loss_scale": "fp32", "row_scale": "fp32", "col_scale": "fp32",
             "BLOCK_P": "constexpr", "BLOCK_N": "constexpr", "NEED_GRAD": "constexpr",
             "FAST_MATH": "constexpr", "JOINT_REDUCE": "constexpr", "FMA_EVERY": "constexpr"}

_OPCODE = re.compile(r"^\S+\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_.]+)?)")
_LABEL = re.compile(r"^(\w+):")
_BRANCH = re.compile(r"BRA (\w+);")


def _loops(sass: str) -> list[collections.Counter]:
    """Opcode counts of every loop body (a label and a later branch back to it)."""
    lines = sass.splitlines()
    labels = {m.group(1): i for i, line in enumerate(lines) if (m := _LABEL.match(line))}
    loops = []
    for i, line in enumerate(lines):
        m = _BRANCH.search(line)
        if m and labels.get(m.group(1), i) < i:
            body = lines[labels[m.group(1)]:i + 1]
            loops.append(collections.Counter(mm.group(1) for b in body
                                             if (mm := _OPCODE.match(b))))
    return loops


def profile(BLOCK_P: int = 64, BLOCK_N: int = 64, num_warps: int = 4, need_grad: bool = True,
            arch: int = 90, joint_reduce: bool = True, fma_exp2_every: int = 0) -> dict:
    """Compile the kernel for ``sm_<arch>`` and count its hot loop.

    Parameters
    ----------
    BLOCK_P, BLOCK_N, num_warps : int
        The tile configuration.
    need_grad : bool, default True
        Compile the kernel with the gradient sums.
    arch : int, default 90
        Compute capability times ten (90: H100 / H200).
    joint_reduce : bool, default True
        The compiled default (one reduction of loss and column gradient per tile).
    fma_exp2_every : int, default 0
        ``k >= 2``: one tile in ``k`` evaluates ``exp`` on the FMA pipe; the hot loop is
        then the loop over groups of ``k`` tiles, and its counts are per pair of the group.

    Returns
    -------
    dict
        ``registers``, ``spill_bytes`` (local memory per thread), ``shared_bytes``,
        ``pairs_per_thread`` (of one tile), and for the hot loop ``instructions``,
        ``instructions_per_pair``, ``mufu_per_pair``, ``barriers`` (per tile),
        ``local_memory`` (spill loads and stores in it) and ``opcodes`` (counts);
        ``sass``: the disassembly.

    Raises
    ------
    RuntimeError
        If Triton's NVIDIA backend cannot compile here (also where ``TRITON_INTERPRET=1``
        is set: the interpreter and the compiler do not mix in one process), or no loop
        evaluates pairs.
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from lowrank.kernels import _triton

    if _triton.interpreter_enabled():
        raise RuntimeError("the static profile needs the compiler: run it without "
                           "TRITON_INTERPRET=1 (in a separate process)")

    const = {"BLOCK_P": BLOCK_P, "BLOCK_N": BLOCK_N, "NEED_GRAD": bool(need_grad),
             "FAST_MATH": True, "JOINT_REDUCE": bool(joint_reduce),
             "FMA_EVERY": int(fma_exp2_every)}
    try:
        kernel = triton.compile(ASTSource(fn=_triton._kernel(), signature=SIGNATURE,
                                          constexprs=const),
                                target=GPUTarget("cuda", arch, 32),
                                options={"num_warps": num_warps})
        sass = kernel.asm["sass"]
    except Exception as err:  # noqa: BLE001 - reported with its cause
        raise RuntimeError(f"cannot compile the kernel for sm_{arch} here: "
                           f"{type(err).__name__}: {err}") from err
    usage = _resource_usage(kernel.asm["cubin"])
    tiles = max(1, int(fma_exp2_every))  # tiles per trip of the hot loop
    pairs = tiles * BLOCK_P * BLOCK_N / (32 * num_warps)
    loops = [c for c in _loops(sass) if any(k.startswith("MUFU") for k in c)]
    if not loops:
        raise RuntimeError("no loop of the compiled kernel evaluates pairs")
    if tiles > 1:  # the loop over groups: the one with tiles x (2 or 3) MUFU per pair
        loops = [c for c in loops
                 if sum(v for k, v in c.items() if k.startswith("MUFU")) > 2 * pairs]
    hot = min(loops, key=lambda c: sum(c.values()))
    total = sum(hot.values())
    return {"BLOCK_P": BLOCK_P, "BLOCK_N": BLOCK_N, "num_warps": num_warps, "arch": arch,
            "fma_exp2_every": int(fma_exp2_every),
            "need_grad": bool(need_grad), "registers": usage.get("REG"),
            "spill_bytes": usage.get("STACK"), "shared_bytes": kernel.metadata.shared,
            "pairs_per_thread": pairs, "instructions": total,
            "instructions_per_pair": total / pairs,
            "mufu_per_pair": sum(v for k, v in hot.items() if k.startswith("MUFU")) / pairs,
            "barriers": sum(v for k, v in hot.items() if k.startswith("BAR")),
            "local_memory": sum(v for k, v in hot.items() if k.startswith(("LDL", "STL"))),
            "opcodes": dict(hot.most_common()), "sass": sass}


def _resource_usage(cubin: bytes) -> dict[str, int]:
    """``REG``, ``STACK``, ... of the kernel, from ``cuobjdump --dump-resource-usage``."""
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin",
                        "cuobjdump")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        out = subprocess.run([tool, "--dump-resource-usage", path], capture_output=True,
                             text=True, timeout=60).stdout
    return {k: int(v) for k, v in re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", out)}

"""The size table behind ``backend="auto"`` of :func:`lowrank.kernels.pairwise_logistic`.

``auto`` picks, by device and number of pairs ``P * N``, the backend that a
forward + backward step measured fastest (``reduction="mean"``, float32, P = N),
among the backends that keep the memory promise of the package: the naive
broadcast only where its ``P x N`` matrices are small (a few MiB), the fused
paths everywhere else.

CPU (:data:`CPU_TABLE`)
    Measured on the 2-core CPU dev machine (torch 2.13.0, 1 and 2 threads,
    median step time, 2026-11-26; see ``docs/benchmarks.md``): naive 0.08 ms vs
    chunked torch 0.21 ms at P = N = 64, 0.27 vs 0.37 ms at 256, 0.49 vs 0.51 ms
    at 362, 1.7 vs 0.93 ms at 512, 6.8 vs 3.3 ms at 1,024. The crossover is at
    about ``2**17`` pairs; naive then holds three 0.5 MiB matrices.
    ``torch.compile`` of the naive expression was 11% faster than chunked torch
    at P = N = 1,024 only (2.44 vs 2.75 ms), slower elsewhere, and its first call
    compiles for 32 s: ``auto`` does not use it (ask for ``backend="compile"``).
CUDA (:data:`CUDA_TABLE`, when triton imports and the dtype is a Triton dtype)
    From the H200 measurements at commit 44be576 (``docs/benchmarks.md``, GPU
    section): naive 0.302 ms vs triton 0.526 ms (compiled 0.329) at P = N = 4,096,
    but triton 0.772 ms vs naive 3.81 ms (compiled 2.15) at 16,384. Those triton
    times include the host overhead that this version removes (a device
    synchronisation per call), so the crossover is an upper bound;
    ``scripts/gpu_check.py`` measures it again and prints the table to put here.
Other devices, and float64 on CUDA
    ``"naive"`` up to the CPU crossover, ``"torch"`` beyond (no measurement).

:func:`lowrank.kernels.pairwise_logistic` applies one more rule: it takes the
naive broadcast only where its three ``P x N`` matrices fit in
``max_memory_bytes`` (64 MiB by default: ``5.6e6`` float32 pairs, about
``2366**2``), and the large-size choice otherwise; on CUDA with the default that
rule, not ``2**24``, is the bound for now.
"""

from __future__ import annotations

__all__ = ["CPU_TABLE", "CUDA_TABLE", "auto_backend"]

#: (largest P * N, backend) rows, first match wins; the last row has no bound.
CPU_TABLE: tuple[tuple[float, str], ...] = ((2**17, "naive"), (float("inf"), "torch"))
#: The same for CUDA tensors that the Triton backend can take.
CUDA_TABLE: tuple[tuple[float, str], ...] = ((2**24, "naive"), (float("inf"), "triton"))


def _lookup(table: tuple[tuple[float, str], ...], pairs: int | None) -> str:
    if pairs is None:  # size unknown: the choice for large inputs
        return table[-1][1]
    for bound, backend in table:
        if pairs <= bound:
            return backend
    return table[-1][1]  # pragma: no cover - the last bound is inf


def auto_backend(device_type: str, triton_ok: bool, pairs: int | None = None) -> str:
    """The backend ``"auto"`` stands for.

    Parameters
    ----------
    device_type : str
        ``torch.device(...).type`` of the scores (``"cpu"``, ``"cuda"``, ...).
    triton_ok : bool
        Whether the Triton backend can take these scores (CUDA, Triton dtype,
        triton importable).
    pairs : int, optional
        ``P * N``; ``None`` gives the choice for large inputs.

    Returns
    -------
    str
        ``"naive"``, ``"torch"`` or ``"triton"``.

    Examples
    --------
    >>> from lowrank.kernels._auto import auto_backend
    >>> auto_backend("cpu", False, 64 * 64), auto_backend("cpu", False, 4096 * 4096)
    ('naive', 'torch')
    >>> auto_backend("cuda", True, 65536 * 65536)
    'triton'
    """
    if device_type == "cuda" and triton_ok:
        return _lookup(CUDA_TABLE, pairs)
    return _lookup(CPU_TABLE, pairs)


"""The size table behind ``backend="auto"`` of :func:`lowrank.kernels.pairwise_logistic`.

``auto`` picks, by device and number of pairs ``P * N``, the backend that a
forward + backward step measured fastest (``reduction="mean"``, float32, P = N),
among the backends that keep the memory promise of the package: the naive
broadcast only where its ``P x N`` matrices are small (a few MiB), the fused
paths everywhere else.

CPU (:data:`CPU_TABLE`)
    The crossover between the naive broadcast and the chunked torch fallback measured
    on a CPU; ``torch.compile`` of the naive expression is not used (it won only near
    one size and its first call compiles for tens of seconds; ask for
    ``backend="compile"``).
CUDA (:data:`CUDA_TABLE`, when triton imports and the dtype is a Triton dtype)
    The crossover between the naive broadcast and the Triton kernel measured on a GPU,
    an upper bound (measured with a host overhead that this version removes);
    ``scripts/gpu_check.py`` measures it again and prints the table to put here.
Other devices, and float64 on CUDA
    ``"naive"`` up to the CPU crossover, ``"torch"`` beyond (no measurement).

The measurements behind both tables (machines, dates, times per size) are on the
benchmarks page, ``docs/benchmarks.md``; they change with the hardware, so they are kept
there rather than here.

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


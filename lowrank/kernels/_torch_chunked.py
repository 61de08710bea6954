"""Memory-bounded torch backends of :func:`lowrank.kernels.pairwise_logistic`.

* :func:`pairwise_logistic_sums_chunked` walks the ``(P, N)`` pair matrix in
  blocks of ``rows x cols`` pairs. Each block is evaluated with three
  preallocated buffers reused from block to block, so the extra memory stays
  under ``max_memory_bytes`` whatever ``P`` and ``N`` are, and one pass over a
  block yields the loss and both gradient sums: no autograd graph is built.
* :func:`pairwise_logistic_naive` is the obvious broadcast with autograd; it
  materialises ``P x N`` matrices and serves as the reference and benchmark
  baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "DEFAULT_MAX_MEMORY_BYTES",
    "DEFAULT_BLOCK_ELEMENTS",
    "compute_dtype",
    "block_shape",
    "pairwise_logistic_sums_chunked",
    "pairwise_logistic_naive",
]

#: Default bound on the extra memory of the chunked backend (64 MiB).
DEFAULT_MAX_MEMORY_BYTES = 64 * 2**20
#: Preferred number of pairs per block (16 MiB per float32 buffer, 32 MiB for both).
#: Every block costs about six multi-threaded torch ops; on a CPU shared with other
#: processes each parallel region can wait for a descheduled thread, so fewer, larger
#: blocks are much faster there, while on an idle CPU the block size hardly matters
#: between 2**18 and 2**22 (measured, docs/benchmarks.md).
DEFAULT_BLOCK_ELEMENTS = 2**22
#: Temporaries of one block: the differences and one reused output buffer.
_N_BLOCK_BUFFERS = 2


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Arithmetic dtype for inputs of ``dtype``: float64 stays, others go to float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def block_shape(P: int, N: int, dtype: torch.dtype,
                max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
                block_elements: int = DEFAULT_BLOCK_ELEMENTS) -> tuple[int, int]:
    """Rows and columns of one block of pairs for :func:`pairwise_logistic_sums_chunked`.

    Parameters
    ----------
    P, N : int
        Numbers of positive and negative scores (>= 1).
    dtype : torch.dtype
        Input dtype (the block is held in :func:`compute_dtype` of it).
    max_memory_bytes : int
        Bound on the bytes of the block buffers plus the O(P + N) work vectors.
    block_elements : int
        Preferred number of pairs per block, if the bound allows it.

    Returns
    -------
    (rows, cols) : tuple of int
        ``1 <= rows <= P`` and ``1 <= cols <= N``.

    Raises
    ------
    ValueError
        If ``max_memory_bytes`` cannot hold even a one-pair block and the work vectors.

    Examples
    --------
    >>> import torch
    >>> from lowrank.kernels._torch_chunked import block_shape
    >>> block_shape(4096, 4096, torch.float32)
    (1024, 4096)
    >>> block_shape(10, 10**6, torch.float32, max_memory_bytes=2**25)  # budget-bound
    (2, 1000000)
    """
    itemsize = compute_dtype(dtype).itemsize
    # cast inputs, float64 gradient accumulators, per-block row/column sums (generous)
    vectors = 16 * (P + N)
    budget = (int(max_memory_bytes) - vectors) // (_N_BLOCK_BUFFERS * itemsize)
    if budget < 1:
        raise ValueError(f"max_memory_bytes must leave room for the O(P + N) work vectors: "
                         f"got {max_memory_bytes} for P={P}, N={N}, need more than {vectors}")
    elements = max(1, min(int(block_elements), budget))
    cols = min(N, elements)
    rows = max(1, min(P, elements // cols))
    return rows, cols


def pairwise_logistic_sums_chunked(
    pos: torch.Tensor, neg: torch.Tensor, need_grad: bool = True,
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Loss and gradient sums of all pairs, block by block, in bounded memory.

    With ``d_ij = s_j - s_i`` (``s_i`` positive, ``s_j`` negative) it returns
    ``loss = sum_ij softplus(d_ij)``, ``row_i = sum_j sigmoid(d_ij)`` and
    ``col_j = sum_i sigmoid(d_ij)``; hence ``dloss/ds_i = -row_i`` and
    ``dloss/ds_j = +col_j``. ``softplus(d)`` is evaluated as
    ``logaddexp(d, 0) = max(d, 0) + log1p(exp(-|d|))`` and the sigmoid by torch's
    stable kernel, so no score difference overflows.

    Parameters
    ----------
    pos, neg : torch.Tensor, shape (P,) and (N,)
        Validated 1-D scores of one dtype on one device.
    need_grad : bool, default True
        Also return ``row`` and ``col`` (skipping them saves one pass per block).
    max_memory_bytes : int, default 64 MiB
        Bound on the extra memory (block buffers and O(P + N) work vectors).
    block_elements : int, default 2**22
        Preferred number of pairs per block when the bound allows it.

    Returns
    -------
    loss : torch.Tensor
        0-d tensor in float64 on the CPU (or for float64 inputs), float32 otherwise.
    row, col : torch.Tensor or None
        Shapes (P,) and (N,), float64 on the CPU (or for float64 inputs), float32
        otherwise; ``None`` unless ``need_grad``.

    Notes
    -----
    Inside a block, torch's reductions sum in the compute dtype (float32 for
    float16/bfloat16/float32 inputs, float64 for float64); across blocks the loss
    and the gradient sums are accumulated in float64 on the CPU, in the compute
    dtype elsewhere.

    Raises
    ------
    ValueError
        If ``max_memory_bytes`` is too small (see :func:`block_shape`).

    Examples
    --------
    >>> import torch
    >>> from lowrank.kernels._torch_chunked import pairwise_logistic_sums_chunked
    >>> loss, row, col = pairwise_logistic_sums_chunked(torch.tensor([0.0]), torch.tensor([0.0]))
    >>> round(float(loss), 6), float(row[0]), float(col[0])
    (0.693147, 0.5, 0.5)
    """
    cdt = compute_dtype(pos.dtype)
    P, N = pos.shape[0], neg.shape[0]
    rows, cols = block_shape(P, N, pos.dtype, max_memory_bytes, block_elements)
    pos_c = pos.detach().to(cdt)
    neg_c = neg.detach().to(cdt)
    on_cpu = pos.device.type == "cpu"
    acc_dt = torch.float64 if (on_cpu or cdt == torch.float64) else cdt
    dev = pos.device

    d_buf = torch.empty(rows * cols, dtype=cdt, device=dev)
    o_buf = torch.empty(rows * cols, dtype=cdt, device=dev)
    zero = torch.zeros((), dtype=cdt, device=dev)
    loss = torch.zeros((), dtype=acc_dt, device=dev)
    row = torch.zeros(P, dtype=acc_dt, device=dev) if need_grad else None
    col = torch.zeros(N, dtype=acc_dt, device=dev) if need_grad else None
    for j0 in range(0, N, cols):
        n_blk = neg_c[j0:j0 + cols]
        c = n_blk.shape[0]
        for i0 in range(0, P, rows):
            p_blk = pos_c[i0:i0 + rows]
            r = p_blk.shape[0]
            d = d_buf[: r * c].view(r, c)
            o = o_buf[: r * c].view(r, c)
            torch.sub(n_blk[None, :], p_blk[:, None], out=d)  # d_ij = s_j - s_i
            torch.logaddexp(d, zero, out=o)  # softplus(d) = max(d, 0) + log1p(exp(-|d|))
            loss += o.sum()  # pairwise sum in the compute dtype, accumulated in acc_dt
            if need_grad:
                torch.sigmoid(d, out=o)
                row[i0:i0 + r] += o.sum(1)
                col[j0:j0 + c] += o.sum(0)
    return loss, row, col


def pairwise_logistic_naive(pos: torch.Tensor, neg: torch.Tensor,
                            reduction: str = "sum") -> torch.Tensor:
    """The obvious broadcast: ``softplus(-(pos[:, None] - neg[None, :])).sum()``, with autograd.

    Materialises several ``P x N`` matrices (forward and backward); kept as the
    baseline of the benchmarks and as a reference. Computes in the input dtype.

    Parameters
    ----------
    pos, neg : torch.Tensor, shape (P,) and (N,)
        Validated 1-D scores of one dtype on one device.
    reduction : {"sum", "mean"}
        Sum over the ``P * N`` pairs, or their mean.

    Returns
    -------
    torch.Tensor
        0-d tensor, differentiable by torch autograd.

    Examples
    --------
    >>> import torch
    >>> from lowrank.kernels._torch_chunked import pairwise_logistic_naive
    >>> round(float(pairwise_logistic_naive(torch.tensor([2.0]), torch.tensor([0.0]))), 6)
    0.126928
    """
    diff = pos[:, None] - neg[None, :]
    loss = F.softplus(-diff).sum()
    if reduction == "mean":
        loss = loss / (pos.shape[0] * neg.shape[0])
    return loss

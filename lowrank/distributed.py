"""The differential loss over every pair of a data-parallel batch (``torch.distributed``).

In data-parallel training each of ``K`` ranks holds its own part of the batch. A
differential loss computed per rank sees only the pairs whose positive and
negative live on that rank: about ``1/K`` of the pairs of the union batch (see
:func:`pair_coverage`). :func:`distributed_differential_loss`, called on every rank
with that rank's scores and labels, returns the loss over **all** (positive,
negative) pairs of the union of the ranks' examples:

* the value is the single-process :func:`lowrank.losses.differential_loss` of the
  concatenated scores (rank 0's examples first), the same on every rank
  (bit-identical); ``reduction="mean"`` divides by the global pair count ``P N``;
* ``backward()`` on every rank gives each rank exactly its slice of the
  single-process gradient (the gradient with respect to its own scores).

Logistic pair loss
    One all-gather of a few counts, one autograd-aware all-gather of the ``P + N``
    scores (padded to the largest rank), and one all-gather of the ``K`` partial losses.
    Each rank evaluates a contiguous ``1/K`` block of the global ``P x N`` pair
    matrix (rows or columns, whichever side is longer) with the fused kernel
    :func:`lowrank.kernels.pairwise_logistic`: O(P N / K) work per rank, whichever
    rank the examples live on. The backward of that all-gather sums, over the
    ranks, the gradients with respect to each rank's scores (one all-reduce of the
    gathered vector's gradient); since the blocks partition the pair matrix, the sum
    is the full gradient. The returned value is the sum of the partial losses, with the
    gradient of the rank's own block.
Exponential pair loss
    ``sum_i sum_j exp(-(s_i - s_j)) = (sum_i exp(-s_i)) (sum_j exp(s_j))``: each
    rank computes the log-sum-exp of its own ``-s_i`` and ``s_j``, one all-gather
    exchanges these ``2 K`` numbers, and the loss is ``exp`` of the global
    log-sum-exps (O(P + N) in all, no collective in the backward pass: the
    gradient flows through the rank's own log-sum-exps only).

Requirements: a process group initialised (:func:`torch.distributed.init_process_group`,
e.g. under ``torchrun``); every rank of ``group`` calls the function in the same
order, with scores of one dtype, on its collective device (CPU with gloo, CUDA with
NCCL), and, for the logistic loss, all with or all without a gradient. A rank may
hold no positive, no negative or no example at all; the union must hold both
classes. Invalid inputs on one rank raise :class:`ValueError` on every rank
(rather than leaving the others waiting in a collective).

:class:`DataParallelContext` is the hook through which :func:`lowrank.train.train_deep`
runs under :class:`~torch.nn.parallel.DistributedDataParallel`
(``DeepTrainConfig(ddp=True)``). See ``docs/distributed.md``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from .kernels import SUPPORTED_DTYPES, pairwise_logistic
from .losses import PAIR_LOSSES, _check_reduction, _check_scores_labels, differential_loss

__all__ = ["distributed_differential_loss", "pair_coverage", "DataParallelContext"]

# Fields of the per-rank metadata exchanged by the first all-gather (float64).
_OK, _NPOS, _NNEG, _GRAD, _DTYPE, _LSE_POS, _LSE_NEG = range(7)


def _group_rank_size(group) -> tuple[int, int]:
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("distributed_differential_loss needs an initialised torch.distributed "
                           "process group (torch.distributed.init_process_group, e.g. under torchrun)")
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    if rank < 0:
        raise ValueError("group must contain the calling process")
    return rank, world


def _local_split(scores, y) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's (positive, negative) scores, validated; an empty batch is allowed."""
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a torch.Tensor, got {type(scores).__name__}")
    if scores.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"scores must have a dtype in {SUPPORTED_DTYPES}, got {scores.dtype}")
    if scores.ndim in (1, 2) and scores.shape[0] == 0 and len(y) == 0:
        flat = scores.reshape(0)
        return flat, flat
    s, ys = _check_scores_labels(scores, y)
    return s[ys > 0], s[ys < 0]


def _gather_meta(meta: torch.Tensor, world: int, group) -> torch.Tensor:
    out = [torch.empty_like(meta) for _ in range(world)]
    dist.all_gather(out, meta, group=group)
    return torch.stack(out).cpu()


def _sum_in_rank_order(part: torch.Tensor, world: int, group) -> torch.Tensor:
    """The sum over the ranks of a 0-d tensor, added in rank order (same bits on every rank)."""
    mine = part.detach().reshape(1)
    out = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(out, mine, group=group)
    total = out[0]
    for v in out[1:]:
        total = total + v
    return total[0]


class _AllGather(torch.autograd.Function):
    """All-gather of equal-size 1-D tensors into one; backward: the summed gradients of this rank's slice.

    ``torch.distributed.nn.functional.all_gather`` does the same but is deprecated
    (torch 2.13), and its gloo backward (scatters addressed by global rank) fails in a
    sub-group; this one all-reduces the gradient of the gathered vector (``K`` times
    the rank's length, as much traffic as the forward pass) on any backend.
    """

    @staticmethod
    def forward(ctx, local: torch.Tensor, group, world: int, rank: int) -> torch.Tensor:
        ctx.group, ctx.lo, ctx.hi = group, rank * local.numel(), (rank + 1) * local.numel()
        parts = [torch.empty_like(local) for _ in range(world)]
        dist.all_gather(parts, local.contiguous(), group=group)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        total = grad.contiguous().clone()
        dist.all_reduce(total, group=ctx.group)
        return total[ctx.lo:ctx.hi], None, None, None


class _GlobalValue(torch.autograd.Function):
    """Forward: ``total`` (the sum of every rank's part); backward: the gradient of ``part``.

    Each rank back-propagates through its own part only; the all-gather of the scores
    sums these gradients over the ranks.
    """

    @staticmethod
    def forward(ctx, part: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
        return total.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def _block(n: int, world: int, rank: int) -> tuple[int, int]:
    """Start and end of ``rank``'s block when ``n`` items are split into ``world`` near-equal blocks."""
    q, r = divmod(n, world)
    lo = rank * q + min(rank, r)
    return lo, lo + q + (rank < r)


def _logistic(pos, neg, meta, rank, world, mean, backend, group, need_grad):
    n_pos = [int(v) for v in meta[:, _NPOS]]
    n_neg = [int(v) for v in meta[:, _NNEG]]
    width = max(p + n for p, n in zip(n_pos, n_neg))
    local = torch.cat([pos, neg])
    if local.numel() < width:
        local = torch.cat([local, local.new_zeros(width - local.numel())])
    if need_grad:
        parts = _AllGather.apply(local, group, world, rank).split(width)
    else:
        parts = [torch.empty_like(local) for _ in range(world)]
        dist.all_gather(parts, local.detach(), group=group)
    all_pos = torch.cat([parts[r][:n_pos[r]] for r in range(world)])
    all_neg = torch.cat([parts[r][n_pos[r]:n_pos[r] + n_neg[r]] for r in range(world)])
    n_p, n_n = all_pos.numel(), all_neg.numel()
    split_pos = n_p >= n_n  # split the longer side: blocks of >= 1 row while max(P, N) >= K
    lo, hi = _block(n_p if split_pos else n_n, world, rank)
    if hi > lo:
        a, b = (all_pos[lo:hi], all_neg) if split_pos else (all_pos, all_neg[lo:hi])
        if mean:  # block mean times the block's share of the pairs (no float16 overflow of a sum)
            part = pairwise_logistic(a, b, "mean", backend) * (a.numel() * b.numel() / (n_p * n_n))
        else:
            part = pairwise_logistic(a, b, "sum", backend)
    else:  # no block here (P, N < K); zero, but still in the graph of the all-gather
        part = all_pos.sum() * 0
    total = _sum_in_rank_order(part, world, group)
    return _GlobalValue.apply(part, total) if need_grad else total


def _exponential(lse_pos, lse_neg, meta, rank, mean, n_p, n_n):
    dtype = lse_pos.dtype
    others_pos = meta[:, _LSE_POS].to(device=lse_pos.device, dtype=dtype)
    others_neg = meta[:, _LSE_NEG].to(device=lse_pos.device, dtype=dtype)
    # the same numbers on every rank; this rank's entry is its live (differentiable) one
    all_pos = torch.cat([others_pos[:rank], lse_pos.reshape(1), others_pos[rank + 1:]])
    all_neg = torch.cat([others_neg[:rank], lse_neg.reshape(1), others_neg[rank + 1:]])
    log_total = torch.logsumexp(all_pos, 0) + torch.logsumexp(all_neg, 0)
    if mean:  # as lowrank.losses.differential_loss does it
        log_total = log_total - torch.log(torch.tensor(float(n_p * n_n), dtype=dtype,
                                                       device=lse_pos.device))
    return torch.exp(log_total)


def distributed_differential_loss(scores: torch.Tensor, y, pair_loss: str = "logistic",
                                  reduction: str = "mean", backend: str = "auto",
                                  group=None) -> torch.Tensor:
    """Differential loss over all (positive, negative) pairs of the union of the ranks' batches.

    Called on every rank of ``group`` with that rank's scores and labels. Equals
    ``differential_loss(torch.cat(scores of ranks 0..K-1), torch.cat(labels))`` on
    every rank, and ``backward()`` gives each rank the gradient of that
    single-process loss with respect to its own scores (its slice of the full
    gradient). Under :class:`~torch.nn.parallel.DistributedDataParallel`, which
    averages parameter gradients over the ``K`` ranks, multiply the loss by ``K``
    before ``backward()`` to get the single-process gradient of the union batch
    (:meth:`DataParallelContext.backward_loss` does it).

    Parameters
    ----------
    scores : torch.Tensor, shape (n,) or (n, 1)
        This rank's scores; ``n = 0`` is allowed. Same dtype on every rank.
    y : array-like, shape (n,)
        This rank's labels in {-1, +1} or {0, 1}. A rank may hold one class only,
        but the union of the ranks must hold both.
    pair_loss : {"logistic", "exponential"}
        As in :func:`lowrank.losses.differential_loss`.
    reduction : {"mean", "sum"}
        Sum over the global pairs, or that sum divided by the global pair count ``P N``.
    backend : str
        Kernel backend of the logistic loss (:func:`lowrank.kernels.pairwise_logistic`).
    group : torch.distributed.ProcessGroup, optional
        Process group of the ranks (default: the world).

    Returns
    -------
    torch.Tensor
        0-d loss tensor of the scores' dtype, the same value on every rank.

    Raises
    ------
    RuntimeError
        If no process group is initialised.
    ValueError
        On every rank, if one rank's scores or labels are invalid (that rank names
        the problem), the ranks' dtypes differ, the union lacks a class, or (logistic
        loss) some ranks need a gradient and others not; on the calling rank, for a
        bad ``pair_loss`` or ``reduction`` or a process outside ``group``.
    TypeError
        If ``scores`` is not a tensor (on that rank; the others raise ValueError).

    Examples
    --------
    With one process (under ``torchrun`` every rank makes the same call):

    >>> import torch, torch.distributed as dist
    >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    >>> s = torch.tensor([2.0, 0.0], dtype=torch.float64, requires_grad=True)
    >>> loss = distributed_differential_loss(s, [1, -1], reduction="sum")
    >>> loss.item()  # log(1 + e^-2), as differential_loss
    0.1269280110429725
    >>> loss.backward()
    >>> [round(g, 6) for g in s.grad.tolist()]
    [-0.119203, 0.119203]
    >>> dist.destroy_process_group()
    """
    if pair_loss not in PAIR_LOSSES:
        raise ValueError(f"pair_loss must be one of {PAIR_LOSSES}, got {pair_loss!r}")
    _check_reduction(reduction, ("mean", "sum"))
    rank, world = _group_rank_size(group)
    device = scores.device if isinstance(scores, torch.Tensor) else torch.device("cpu")
    error: Exception | None = None
    try:
        pos, neg = _local_split(scores, y)
    except (TypeError, ValueError) as err:
        error = err
    meta = torch.zeros(7, dtype=torch.float64, device=device)
    lse_pos = lse_neg = None
    if error is None:
        dtype = pos.dtype
        need_grad = bool(torch.is_grad_enabled() and pos.requires_grad)
        meta[_OK] = 1
        meta[_NPOS], meta[_NNEG], meta[_GRAD] = pos.numel(), neg.numel(), float(need_grad)
        meta[_DTYPE] = SUPPORTED_DTYPES.index(dtype)
        if pair_loss == "exponential":  # -inf for a rank without that class
            lse_pos, lse_neg = torch.logsumexp(-pos, 0), torch.logsumexp(neg, 0)
            meta[_LSE_POS], meta[_LSE_NEG] = lse_pos.detach(), lse_neg.detach()
    meta = _gather_meta(meta, world, group)

    if error is not None:
        raise error
    bad = [r for r in range(world) if meta[r, _OK] == 0]
    if bad:
        raise ValueError(f"rank(s) {bad} of the process group got invalid scores or labels "
                         f"(see the error raised there)")
    if len(set(meta[:, _DTYPE].tolist())) > 1:
        dtypes = [str(SUPPORTED_DTYPES[int(c)]) for c in meta[:, _DTYPE]]
        raise ValueError(f"scores must have the same dtype on every rank, got {dtypes}")
    n_p, n_n = int(meta[:, _NPOS].sum()), int(meta[:, _NNEG].sum())
    if n_p == 0 or n_n == 0:
        missing = "positive (+1)" if n_p == 0 else "negative (-1 or 0)"
        raise ValueError(f"y must contain both classes over the ranks, but no rank holds a {missing} "
                         f"example")
    mean = reduction == "mean"
    if pair_loss == "exponential":
        return _exponential(lse_pos, lse_neg, meta, rank, mean, n_p, n_n)
    grads = set(meta[:, _GRAD].tolist())
    if len(grads) > 1:
        raise ValueError("scores must require grad (with grad mode on) on every rank or on none, "
                         f"got {[bool(g) for g in meta[:, _GRAD]]}: the backward pass is a collective")
    return _logistic(pos, neg, meta, rank, world, mean, backend, group, need_grad)


def pair_coverage(counts) -> float:
    """Share of the union batch's pairs that per-rank differential losses see.

    Parameters
    ----------
    counts : sequence of (int, int)
        ``(positives, negatives)`` of each rank.

    Returns
    -------
    float
        ``sum_r P_r N_r / (sum_r P_r)(sum_r N_r)``: ``1/K`` for ``K`` ranks with
        equal class counts; the loss of :func:`distributed_differential_loss` covers
        all pairs (1.0).

    Raises
    ------
    ValueError
        If a count is negative, or the union lacks a class.

    Examples
    --------
    >>> pair_coverage([(32, 32)] * 8)
    0.125
    >>> pair_coverage([(10, 0), (0, 10)])  # every pair is across the two ranks
    0.0
    """
    pairs = [(int(p), int(n)) for p, n in counts]
    if any(p < 0 or n < 0 for p, n in pairs):
        raise ValueError(f"counts must be non-negative (positives, negatives) pairs, got {pairs}")
    n_p, n_n = sum(p for p, _ in pairs), sum(n for _, n in pairs)
    if n_p == 0 or n_n == 0:
        raise ValueError("counts must hold both classes over the ranks")
    return sum(p * n for p, n in pairs) / (n_p * n_n)


class DataParallelContext:
    """One training step split over the ranks of a process group, for :func:`lowrank.train.train_deep`.

    With ``enabled=False`` every method is the single-process identity (one rank),
    so the trainer runs unchanged. With ``enabled=True`` (a process group must be
    initialised, e.g. by ``torchrun``): the model is wrapped in
    :class:`~torch.nn.parallel.DistributedDataParallel` (which broadcasts rank 0's
    weights), every rank draws the same global batch of ``K * batch_size`` examples
    and trains on its ``1/K`` of each class, the differential loss is
    :func:`distributed_differential_loss` (all pairs of the global batch), and
    :meth:`backward_loss` scales it by ``K`` because DDP averages the gradients
    over the ranks. ``K`` ranks with batch ``B`` then take the same steps as one
    process with batch ``K B``.

    Parameters
    ----------
    model : torch.nn.Module
        The (unwrapped) model.
    enabled : bool
        Run data-parallel over ``group``.
    group : torch.distributed.ProcessGroup, optional
        Process group (default: the world).

    Attributes
    ----------
    module : torch.nn.Module
        What the training step calls: the DDP wrapper, or ``model`` itself.
    rank, world_size : int
        This process's rank and the number of ranks (0 and 1 when disabled).

    Raises
    ------
    RuntimeError
        If ``enabled`` but no process group is initialised.

    Examples
    --------
    >>> dp = DataParallelContext(torch.nn.Linear(2, 1), enabled=False)
    >>> dp.world_size, dp.is_main, dp.local_batch(torch.arange(4)).tolist()
    (1, True, [0, 1, 2, 3])
    """

    def __init__(self, model: torch.nn.Module, enabled: bool, group=None) -> None:
        self.enabled, self.group = bool(enabled), group
        if not self.enabled:
            self.module, self.rank, self.world_size = model, 0, 1
            return
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("ddp=True needs an initialised torch.distributed process group "
                               "(launch with torchrun and call torch.distributed.init_process_group)")
        from torch.nn.parallel import DistributedDataParallel

        self.rank, self.world_size = dist.get_rank(group), dist.get_world_size(group)
        self.module = DistributedDataParallel(model, process_group=group)

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (which writes checkpoints and shows progress)."""
        return self.rank == 0

    def check_same(self, **values) -> None:
        """Raise ValueError on every rank unless all ranks passed the same ``values``.

        Parameters
        ----------
        **values : int or float
            Named numbers that must agree exactly (e.g. the data set size, the seed, a
            checksum of the data); compared as float64.

        Examples
        --------
        >>> DataParallelContext(torch.nn.Linear(2, 1), enabled=False).check_same(n=10)
        """
        if not self.enabled:
            return
        names = sorted(values)
        mine = torch.tensor([float(values[k]) for k in names], dtype=torch.float64)
        mine = mine.to(next(self.module.parameters()).device)
        every = _gather_meta(mine, self.world_size, self.group)
        differ = [k for i, k in enumerate(names) if len(set(every[:, i].tolist())) > 1]
        if differ:
            raise ValueError(f"every rank must pass the same data and configuration, but "
                             f"{', '.join(differ)} differ between ranks")

    def local_batch(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's part of a global class-balanced batch.

        Parameters
        ----------
        idx : torch.Tensor
            Global batch from :func:`lowrank.train.balanced_batches` with batch size
            ``world_size * B``: its first half positives, its second half negatives.

        Returns
        -------
        torch.Tensor
            The ``B / 2`` positives and ``B / 2`` negatives of this rank (block ``rank``
            of each half).

        Examples
        --------
        >>> DataParallelContext(torch.nn.Linear(2, 1), enabled=False).local_batch(torch.arange(2)).tolist()
        [0, 1]
        """
        if self.world_size == 1:
            return idx
        return idx.view(2, self.world_size, -1)[:, self.rank].reshape(-1)

    def differential_loss(self, scores: torch.Tensor, y, pair_loss: str = "logistic") -> torch.Tensor:
        """Mean differential loss over all pairs of the global batch.

        Parameters
        ----------
        scores : torch.Tensor, shape (n,)
            This rank's scores.
        y : array-like, shape (n,)
            This rank's labels.
        pair_loss : {"logistic", "exponential"}

        Returns
        -------
        torch.Tensor
            :func:`distributed_differential_loss` when enabled, else
            :func:`lowrank.losses.differential_loss`.

        Examples
        --------
        >>> dp = DataParallelContext(torch.nn.Linear(2, 1), enabled=False)
        >>> round(float(dp.differential_loss(torch.tensor([1.0, 1.0]), [1, -1])), 6)
        0.693147
        """
        if not self.enabled:
            return differential_loss(scores, y, pair_loss=pair_loss)
        return distributed_differential_loss(scores, y, pair_loss=pair_loss, group=self.group)

    def backward_loss(self, loss: torch.Tensor, differential: bool) -> torch.Tensor:
        """The tensor to call ``backward()`` on, so that DDP's average is the union batch's gradient.

        Parameters
        ----------
        loss : torch.Tensor
            The step's loss: :meth:`differential_loss` (global) or a per-rank mean
            cross-entropy.
        differential : bool
            Whether ``loss`` is the global differential loss.

        Returns
        -------
        torch.Tensor
            ``world_size * loss`` for the differential loss (each rank's backward gives
            its slice of the global gradient; DDP divides their sum by ``K``), and
            ``loss`` otherwise (the average of the ``K`` per-rank means is the mean
            over the union batch, since the ranks' batches have equal size).

        Examples
        --------
        >>> dp = DataParallelContext(torch.nn.Linear(2, 1), enabled=False)
        >>> float(dp.backward_loss(torch.tensor(2.0), differential=True))
        2.0
        """
        return loss * self.world_size if differential and self.world_size > 1 else loss

    def mean(self, value: float) -> float:
        """Average of a float over the ranks (the value itself when disabled).

        Parameters
        ----------
        value : float

        Returns
        -------
        float

        Examples
        --------
        >>> DataParallelContext(torch.nn.Linear(2, 1), enabled=False).mean(0.5)
        0.5
        """
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=next(self.module.parameters()).device)
        return float(_gather_meta(t, self.world_size, self.group).mean())

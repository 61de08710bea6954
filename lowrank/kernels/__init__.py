"""Fused pairwise logistic loss over all (positive, negative) pairs.

Differential training minimises

.. math::

    L = \\sum_{i \\in P} \\sum_{j \\in N} \\mathrm{softplus}(-(s_i - s_j)),

whose gradient is ``dL/ds_i = -sum_j sigmoid(s_j - s_i)`` and
``dL/ds_j = +sum_i sigmoid(s_j - s_i)``. Written as a torch broadcast this
materialises ``P x N`` matrices (16 GiB each at ``P = N = 65,536`` in float32).
:func:`pairwise_logistic` computes the loss and both gradient sums tile by
tile in O(P + N) memory:

``"triton"``
    A fused Triton kernel over 2-D tiles of pairs (CUDA tensors; CPU tensors
    under ``TRITON_INTERPRET=1``, for testing). float16, bfloat16 and float32
    inputs, float32 arithmetic and accumulation. No atomics: partial sums go to
    per-program buffers reduced by torch, so the result is bit-deterministic for
    a given device, dtype and tile configuration. See
    :mod:`lowrank.kernels._triton`.
``"torch"``
    A chunked torch loop whose extra memory stays under ``max_memory_bytes``
    (64 MiB by default): any device, any floating dtype (float64 in float64,
    the others in float32).
``"naive"``
    The plain broadcast with torch autograd (reference and benchmark baseline).
``"compile"``
    ``torch.compile`` of the naive expression (:mod:`lowrank.kernels._compiled`):
    the benchmark peer a user would reach for; the first call compiles.
``"auto"``
    The fastest of these for the device and the size ``P * N``, from a measured
    table (:mod:`lowrank.kernels._auto`): on the CPU ``"naive"`` up to ``2**17``
    pairs and ``"torch"`` beyond; on CUDA with triton (float16, bfloat16,
    float32) ``"naive"`` up to ``2**24`` pairs and ``"triton"`` beyond. The naive
    broadcast is only picked where it was measured faster and where its three
    ``P x N`` matrices fit in ``max_memory_bytes`` (64 MiB by default, about
    ``5.6e6`` float32 pairs), so ``"auto"`` keeps the memory bound.

Host overhead
-------------
Nothing on the hot path waits for the device: the NaN/inf check of the scores
(``finite_check``) raises a ValueError on the CPU, where reading the values is
cheap, and on other devices turns the loss into NaN instead (folded into the
Triton kernel's output at no cost; two small reductions for the other
backends), so a training loop sees a NaN loss exactly when a score is not
finite. ``finite_check="raise"`` restores the synchronous error on any device.
The Triton backend caches its launch plan per size and allocates only its
outputs and per-program partial sums (from torch's caching allocator); when one
program covers a dimension the partial sums are the outputs.

The ``"triton"`` and ``"torch"`` backends share one :class:`torch.autograd.Function`
(:class:`PairwiseLogisticFunction`): the forward pass computes the loss and, if
an input requires grad, both gradient sums in the same pass; only those O(P + N)
sums are saved for the backward pass, which scales them by ``grad_output``.

Benchmarks (not collected by the default test command)::

    python -m pytest tests/benchmarks --benchmark-only -o addopts="" \\
        --benchmark-json=figures/kernel_benchmark.raw.json
    python studies/kernel_benchmark.py --input figures/kernel_benchmark.raw.json --out figures

See ``docs/benchmarks.md`` for the measured numbers.
"""

from __future__ import annotations

import functools

import torch
from torch.autograd.function import once_differentiable

from .._validation import check_vector
from ._auto import auto_backend
from ._compiled import pairwise_logistic_compiled
from ._torch_chunked import (
    DEFAULT_MAX_MEMORY_BYTES,
    pairwise_logistic_naive,
    pairwise_logistic_sums_chunked,
)

__all__ = [
    "pairwise_logistic",
    "PairwiseLogisticFunction",
    "resolve_backend",
    "triton_available",
    "BACKENDS",
    "REDUCTIONS",
    "FINITE_CHECKS",
    "SUPPORTED_DTYPES",
    "TRITON_DTYPES",
    "DEFAULT_MAX_MEMORY_BYTES",
]

BACKENDS = ("auto", "triton", "torch", "naive", "compile")
REDUCTIONS = ("sum", "mean")
#: Live P x N matrices of a naive forward + backward step (measured on the CPU).
_NAIVE_MATRICES = 3
#: Values of ``finite_check`` (see :func:`pairwise_logistic`).
FINITE_CHECKS = ("auto", "raise", "nan")
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@functools.lru_cache(maxsize=1)
def _triton_import_error() -> str | None:
    try:
        from . import _triton  # noqa: F401
    except Exception as err:  # ImportError, or a triton install that fails to initialise
        return f"{type(err).__name__}: {err}"
    return None


def triton_available() -> bool:
    """Whether the Triton backend can be imported (``triton`` installed and working).

    Returns
    -------
    bool
        True when :mod:`lowrank.kernels._triton` imports.

    Examples
    --------
    >>> from lowrank.kernels import triton_available
    >>> isinstance(triton_available(), bool)
    True
    """
    return _triton_import_error() is None


def resolve_backend(backend: str, device: torch.device | str, dtype: torch.dtype,
                    pairs: int | None = None,
                    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES) -> str:
    """The concrete backend that :func:`pairwise_logistic` uses for ``backend``.

    Parameters
    ----------
    backend : {"auto", "triton", "torch", "naive", "compile"}
        Requested backend.
    device : torch.device or str
        Device of the scores.
    dtype : torch.dtype
        Dtype of the scores.
    pairs : int, optional
        ``P * N``. Without it, ``"auto"`` gives its choice for large inputs.
    max_memory_bytes : int, default 64 MiB
        ``"auto"`` takes ``"naive"`` only if its three ``P x N`` matrices fit in it.

    Returns
    -------
    str
        A concrete backend. ``"auto"`` is looked up in the measured size table of
        :mod:`lowrank.kernels._auto`: for CUDA tensors of a dtype in
        :data:`TRITON_DTYPES` when triton imports, ``"naive"`` for small and
        ``"triton"`` for large ``pairs``; otherwise ``"naive"`` for small and
        ``"torch"`` for large ``pairs``. The other names are returned unchanged.

    Raises
    ------
    ValueError
        If ``backend`` is not one of :data:`BACKENDS`.

    Examples
    --------
    >>> import torch
    >>> from lowrank.kernels import resolve_backend
    >>> resolve_backend("auto", "cpu", torch.float32)
    'torch'
    >>> resolve_backend("auto", "cpu", torch.float32, pairs=64 * 64)
    'naive'
    >>> resolve_backend("auto", "cpu", torch.float32, pairs=64 * 64, max_memory_bytes=2**10)
    'torch'
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    dev_type = device.type if isinstance(device, torch.device) else torch.device(device).type
    triton_ok = dev_type == "cuda" and dtype in TRITON_DTYPES and triton_available()
    chosen = auto_backend(dev_type, triton_ok, pairs)
    if chosen == "naive" and pairs is not None \
            and _NAIVE_MATRICES * pairs * dtype.itemsize > max_memory_bytes:
        return auto_backend(dev_type, triton_ok, None)  # the memory-bounded choice
    return chosen


def _sums(pos: torch.Tensor, neg: torch.Tensor, backend: str, need_grad: bool,
          max_memory_bytes: int, scale: float):
    """Loss, ``-scale * row`` and ``scale * col`` sums: scaled by the Triton kernel itself."""
    if backend == "triton":
        from . import _triton

        return _triton.pairwise_logistic_sums(pos, neg, need_grad, (scale, -scale, scale))
    loss, row, col = pairwise_logistic_sums_chunked(pos, neg, need_grad, max_memory_bytes)
    if scale != 1.0:  # fresh buffers: scaled in place
        loss = loss.mul_(scale)
    if need_grad:
        row, col = row.mul_(-scale), (col if scale == 1.0 else col.mul_(scale))
    return loss, row, col


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` in ``dtype``, without a dispatched no-op when it already is."""
    return t if t.dtype == dtype else t.to(dtype)


class PairwiseLogisticFunction(torch.autograd.Function):
    """Autograd function of the pairwise logistic loss (``"triton"`` / ``"torch"`` backends).

    ``apply(pos, neg, mean, backend, max_memory_bytes)`` with validated inputs;
    use :func:`pairwise_logistic` instead. The forward pass computes the loss
    and, when an input requires grad, the gradient sums
    ``-sum_j sigmoid(s_j - s_i)`` and ``+sum_i sigmoid(s_j - s_i)``; only these
    O(P + N) vectors are saved. Differentiable once (no double backward).

    Parameters
    ----------
    pos, neg : torch.Tensor, shape (P,) and (N,)
        Validated scores (same dtype and device), as passed to ``apply``.
    mean : bool
        Divide the loss (and gradients) by ``P * N``.
    backend : {"triton", "torch"}
        A concrete backend (see :func:`resolve_backend`).
    max_memory_bytes : int
        Memory bound of the ``"torch"`` backend.

    Returns
    -------
    torch.Tensor
        0-d loss tensor of the input dtype.

    Examples
    --------
    >>> import torch
    >>> from lowrank.kernels import PairwiseLogisticFunction
    >>> pos = torch.tensor([2.0, 1.0], requires_grad=True)
    >>> neg = torch.tensor([0.0])
    >>> loss = PairwiseLogisticFunction.apply(pos, neg, False, "torch", 1 << 20)
    >>> round(loss.item(), 6)
    0.44019
    >>> loss.backward()
    >>> [round(g, 4) for g in pos.grad.tolist()]
    [-0.1192, -0.2689]
    """

    @staticmethod
    def forward(ctx, pos: torch.Tensor, neg: torch.Tensor, mean: bool, backend: str,
                max_memory_bytes: int) -> torch.Tensor:
        """Loss of validated inputs; saves the scaled gradient sums when a grad is needed."""
        need_grad = bool(ctx.needs_input_grad[0] or ctx.needs_input_grad[1])
        scale = 1.0 / (pos.shape[0] * neg.shape[0]) if mean else 1.0
        loss, row, col = _sums(pos, neg, backend, need_grad, max_memory_bytes, scale)
        if need_grad:
            ctx.save_for_backward(row, col)
            ctx.in_dtypes = (pos.dtype, neg.dtype)
        return _cast(loss, pos.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        """Saved gradient sums times ``grad_output``, in the inputs' dtypes."""
        grad_pos, grad_neg = ctx.saved_tensors
        g = _cast(grad_output, grad_pos.dtype)
        out_pos = _cast(grad_pos * g, ctx.in_dtypes[0]) if ctx.needs_input_grad[0] else None
        out_neg = _cast(grad_neg * g, ctx.in_dtypes[1]) if ctx.needs_input_grad[1] else None
        return out_pos, out_neg, None, None, None


def _nan_if_not_finite(loss: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """``loss`` plus ``sum(0 * pos) + sum(0 * neg)``: unchanged for finite scores, NaN otherwise.

    Runs on the scores' device without synchronising (``0 * inf`` and ``0 * nan``
    are NaN; the products of finite scores are exactly 0, so the loss is unchanged
    bit for bit and no gradient flows through the check).
    """
    flag = pos.detach().mul(0).sum() + neg.detach().mul(0).sum()
    return loss + flag.to(loss.dtype)


def _check_inputs(pos_scores, neg_scores, finite: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    both = (pos_scores, "pos_scores"), (neg_scores, "neg_scores")
    for t, name in both:  # before check_vector, which would cast integer/bool and sync devices
        if isinstance(t, torch.Tensor) and not t.is_floating_point():
            raise ValueError(f"{name} must have a dtype in {SUPPORTED_DTYPES}, got {t.dtype}")
    if isinstance(pos_scores, torch.Tensor) and isinstance(neg_scores, torch.Tensor) \
            and pos_scores.device != neg_scores.device:
        raise ValueError(f"pos_scores and neg_scores must be on the same device, "
                         f"got {pos_scores.device} and {neg_scores.device}")
    pos = check_vector(pos_scores, "pos_scores", finite=finite)
    neg = check_vector(neg_scores, "neg_scores", finite=finite)
    for t, name in ((pos, "pos_scores"), (neg, "neg_scores")):
        if t.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"{name} must have a dtype in {SUPPORTED_DTYPES}, got {t.dtype}")
    if pos.dtype != neg.dtype:
        raise ValueError(f"pos_scores and neg_scores must have the same dtype, "
                         f"got {pos.dtype} and {neg.dtype}")
    if pos.device != neg.device:
        raise ValueError(f"pos_scores and neg_scores must be on the same device, "
                         f"got {pos.device} and {neg.device}")
    return pos, neg


def pairwise_logistic(pos_scores: torch.Tensor, neg_scores: torch.Tensor, reduction: str = "sum",
                      backend: str = "auto", *, max_memory_bytes: int | None = None,
                      finite_check: str = "auto") -> torch.Tensor:
    """Logistic loss summed (or averaged) over every (positive, negative) pair.

    ``L = sum_i sum_j softplus(-(s_i - s_j))`` over the ``P`` positive scores
    ``s_i`` and the ``N`` negative scores ``s_j``, computed stably and, except
    for ``backend="naive"``, without materialising the ``P x N`` pairs.

    Parameters
    ----------
    pos_scores : torch.Tensor, shape (P,)
        Scores of the positive examples, ``P >= 1``.
    neg_scores : torch.Tensor, shape (N,)
        Scores of the negative examples, ``N >= 1``; same dtype and device as
        ``pos_scores``.
    reduction : {"sum", "mean"}, default "sum"
        Sum over the ``P * N`` pairs, or that sum divided by ``P * N``.
    backend : {"auto", "triton", "torch", "naive", "compile"}, default "auto"
        See the module docstring and :func:`resolve_backend`.
    max_memory_bytes : int, optional
        Bound on the extra memory of the ``"torch"`` backend (default 64 MiB);
        ``"auto"`` picks the naive broadcast only where its matrices fit in it too;
        ignored by the other backends.
    finite_check : {"auto", "raise", "nan"}, default "auto"
        What a NaN or inf score does. ``"raise"``: ValueError (reads the scores:
        on a GPU this synchronises the device). ``"nan"``: the loss is NaN, checked
        on the device without synchronising (free in the Triton kernel).
        ``"auto"``: ``"raise"`` for CPU tensors, ``"nan"`` on other devices.

    Returns
    -------
    torch.Tensor
        0-d tensor of the input dtype, differentiable with respect to both
        inputs (once). In float16 a ``"sum"`` above 65504 overflows to inf, as
        any float16 result would; use ``"mean"`` or a wider dtype.

    Raises
    ------
    ValueError
        If a score tensor is not 1-D, is empty, holds NaN or inf (with
        ``finite_check="raise"``, the default for CPU tensors), or has an
        unsupported dtype; if the two differ in dtype or device; if
        ``reduction``, ``backend``, ``max_memory_bytes`` or ``finite_check`` is invalid; if
        ``backend="triton"`` gets float64 or CPU tensors without
        ``TRITON_INTERPRET=1``.
    RuntimeError
        If ``backend="triton"`` but triton cannot be imported, or
        ``backend="compile"`` but ``torch.compile`` does not work here.

    Examples
    --------
    >>> import torch
    >>> from lowrank.kernels import pairwise_logistic
    >>> pos = torch.tensor([2.0, 1.0], requires_grad=True)
    >>> neg = torch.tensor([0.0], requires_grad=True)
    >>> loss = pairwise_logistic(pos, neg)  # softplus(-2) + softplus(-1)
    >>> round(loss.item(), 6)
    0.44019
    >>> loss.backward()
    >>> [round(g, 4) for g in pos.grad.tolist()], round(neg.grad.item(), 4)
    ([-0.1192, -0.2689], 0.3881)
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if max_memory_bytes is None:
        max_memory_bytes = DEFAULT_MAX_MEMORY_BYTES
    elif isinstance(max_memory_bytes, bool) or not isinstance(max_memory_bytes, int) \
            or max_memory_bytes <= 0:
        raise ValueError(f"max_memory_bytes must be a positive int, got {max_memory_bytes!r}")
    if finite_check not in FINITE_CHECKS:
        raise ValueError(f"finite_check must be one of {FINITE_CHECKS}, got {finite_check!r}")
    if finite_check == "auto":
        on_cpu = not isinstance(pos_scores, torch.Tensor) or pos_scores.device.type == "cpu"
        finite_check = "raise" if on_cpu else "nan"
    pos, neg = _check_inputs(pos_scores, neg_scores, finite=finite_check == "raise")
    chosen = resolve_backend(backend, pos.device, pos.dtype, pos.shape[0] * neg.shape[0],
                             max_memory_bytes)
    if chosen == "triton":
        err = _triton_import_error()
        if err is not None:
            raise RuntimeError(f"backend='triton' needs a working triton install "
                               f"(pip install 'lowrank[triton]'): {err}")
        # the kernel folds the finite check into its output (NaN loss) at no cost
        return PairwiseLogisticFunction.apply(pos, neg, reduction == "mean", chosen,
                                              int(max_memory_bytes))
    if chosen == "naive":
        loss = pairwise_logistic_naive(pos, neg, reduction)
    elif chosen == "compile":
        loss = pairwise_logistic_compiled(pos, neg, reduction)
    else:
        loss = PairwiseLogisticFunction.apply(pos, neg, reduction == "mean", chosen,
                                              int(max_memory_bytes))
    return _nan_if_not_finite(loss, pos, neg) if finite_check == "nan" else loss

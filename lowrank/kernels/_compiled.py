"""``torch.compile`` of the naive pairwise expression: the ``"compile"`` backend and benchmark peer.

:func:`pairwise_logistic_compiled` evaluates
``softplus(neg[None, :] - pos[:, None]).sum()`` (or ``.mean()``) through
``torch.compile(..., dynamic=True)``: one compiled graph per reduction and
dtype serves every size. On a GPU the generated kernel fuses the broadcast
with the reduction, so its memory stays far below the eager broadcast's ``P x N``
matrices (measured in ``docs/benchmarks.md``); on the CPU the first call compiles
C++ (it needs a C compiler) and takes tens of seconds. This is the peer that a user would write
instead of a custom kernel, so the benchmarks time it beside the others.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

__all__ = ["pairwise_logistic_compiled", "naive_expression"]


def naive_expression(pos: torch.Tensor, neg: torch.Tensor, mean: bool) -> torch.Tensor:
    """``softplus(neg[None, :] - pos[:, None])`` summed (or averaged) over all pairs.

    Examples
    --------
    >>> import torch
    >>> round(float(naive_expression(torch.tensor([2.0]), torch.tensor([0.0]), False)), 6)
    0.126928
    """
    pairs = F.softplus(neg[None, :] - pos[:, None])
    return pairs.mean() if mean else pairs.sum()


@functools.cache
def _compiled(mean: bool):
    return torch.compile(functools.partial(naive_expression, mean=mean), dynamic=True)


def pairwise_logistic_compiled(pos: torch.Tensor, neg: torch.Tensor,
                               reduction: str = "sum") -> torch.Tensor:
    """The pairwise logistic loss through ``torch.compile`` (differentiable by autograd).

    Parameters
    ----------
    pos, neg : torch.Tensor, shape (P,) and (N,)
        Validated 1-D scores of one dtype on one device.
    reduction : {"sum", "mean"}

    Returns
    -------
    torch.Tensor
        0-d loss in the input dtype.

    Raises
    ------
    RuntimeError
        If ``torch.compile`` cannot compile on this machine (for example, no C
        compiler for the CPU backend); the message says so.
    """
    try:
        return _compiled(reduction == "mean")(pos, neg)
    except Exception as err:  # torch._dynamo / inductor errors have many types
        if isinstance(err, (KeyboardInterrupt, MemoryError, torch.OutOfMemoryError)):
            raise
        raise RuntimeError(f"backend='compile' needs a working torch.compile on "
                           f"{pos.device.type} (a C compiler on the CPU, triton on a GPU): "
                           f"{type(err).__name__}: {str(err)[:500]}") from err

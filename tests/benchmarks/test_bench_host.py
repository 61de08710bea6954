"""Host time of a ``backend="triton"`` step around the kernel, on any machine (no GPU needed).

The kernel launch is replaced by a no-op, and the scores are CPU tensors, so what is timed
is the Python and torch work of one mean-loss forward + backward through
:func:`lowrank.kernels.pairwise_logistic`: validation, launch plan, output buffers,
autograd function, gradient products. Beside it, the floor that any autograd-based step
pays on the same machine: a trivial ``torch.autograd.Function`` with two inputs (forward
returns a fresh 0-d tensor, backward two expanded views). The difference is the
wrapper's own cost; on a GPU, Triton's launch and the CUDA launches of the buffers come on
top (``scripts/gpu_check.py`` measures the whole, ``over_kernel_us``). Run with::

    python -m pytest tests/benchmarks/test_bench_host.py --benchmark-only -o addopts=""

At ``P = N = 64`` one program covers the pairs (no reduction); at 4,096 the three sums
of the per-program partial sums are real CPU work here, launches on a GPU. The ratio is
read off the report, not asserted.
"""

from __future__ import annotations

import pytest
import torch

from lowrank.kernels import pairwise_logistic


class _NoLaunch:
    """Stand-in for the compiled kernel: ``kernel[grid](*args, **meta)`` does nothing."""

    def __getitem__(self, grid):
        return lambda *args, **meta: None


class _Floor(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pos, neg):
        ctx.shapes = pos.shape, neg.shape
        return pos.new_zeros(())

    @staticmethod
    def backward(ctx, grad):
        return grad.expand(ctx.shapes[0]), grad.expand(ctx.shapes[1])


@pytest.mark.parametrize("n_scores", [64, 4096], ids=["P=N=64", "P=N=4096"])
@pytest.mark.parametrize("what", ["pairwise_logistic", "autograd_floor"])
def test_host_step(benchmark, monkeypatch, what, n_scores):
    size = n_scores  # P = N (not `size`: the suite's conftest parametrises that name)
    pytest.importorskip("triton")
    from lowrank.kernels import _triton

    monkeypatch.setattr(_triton, "_kernel", lambda mode=None: _NoLaunch())
    monkeypatch.setattr(_triton, "interpreter_enabled", lambda: True)  # CPU tensors accepted
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(size, generator=gen).requires_grad_()
    neg = torch.randn(size, generator=gen).requires_grad_()

    def one_step():
        if what == "autograd_floor":
            loss = _Floor.apply(pos, neg)
        else:
            loss = pairwise_logistic(pos, neg, "mean", "triton", finite_check="nan")
        loss.backward()

    def target():
        one_step()
        pos.grad = neg.grad = None

    benchmark.group = f"host, P=N={size}"
    benchmark.extra_info.update(wrapper=what, P=size, N=size, kernel="no-op stand-in",
                                threads=torch.get_num_threads())
    benchmark.pedantic(target, rounds=200, iterations=20, warmup_rounds=5)
    one_step()  # the timed step reached the inputs (values: the no-op left them unset)
    assert pos.grad.shape == (size,) and neg.grad.shape == (size,)

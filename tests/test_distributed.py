"""The all-pairs differential loss across ranks (lowrank.distributed) and DDP training.

One set of 3 CPU processes (gloo backend, rendezvous through a file, traffic on the
loopback interface) is started once for the module; each rank runs every case and
saves what it saw; the tests compare that with single-process references computed
here:

* the loss on every rank equals the single-process :func:`differential_loss` of the
  concatenated scores (1e-6 relative; float64 cases 1e-12) and the float64 broadcast
  formula, bit-identically across ranks; each rank's gradient equals its slice of the
  single-process gradient (torch autograd), for both pair losses and both reductions,
  with uneven batches, ranks holding one class only or nothing, fewer pairs than ranks,
  a sub-group of 2 ranks, and without a gradient;
* bad inputs raise ValueError on every rank;
* ``train_deep(..., DeepTrainConfig(ddp=True, batch_size=B))`` on 3 ranks ends with the
  weights of single-process training with ``batch_size=3 B`` (1e-5).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from lowrank.distributed import DataParallelContext, distributed_differential_loss, pair_coverage
from lowrank.losses import differential_loss

WORLD = 3
TIMEOUT_S = 240  # for the whole spawned run; each collective times out after COLLECTIVE_S
COLLECTIVE_S = 60

pytestmark = pytest.mark.skipif(not dist.is_available() or sys.platform == "win32",
                                reason="needs torch.distributed with gloo")

# name -> (per-rank sizes (positives, negatives), dtype, group ranks or None)
LOSS_CASES = {
    "even": ([(4, 4), (4, 4), (4, 4)], torch.float64, None),
    "uneven": ([(3, 2), (1, 1), (6, 5)], torch.float64, None),
    "one_class": ([(5, 0), (0, 7), (2, 3)], torch.float64, None),
    "empty_rank": ([(3, 2), (0, 0), (4, 6)], torch.float64, None),
    "fewer_than_ranks": ([(1, 0), (0, 1), (0, 0)], torch.float64, None),  # P = N = 1 < K
    "float32": ([(40, 17), (3, 30), (25, 0)], torch.float32, None),
    "subgroup": ([(2, 3), None, (4, 0)], torch.float64, [0, 2]),
}
COMBOS = [(p, r) for p in ("logistic", "exponential") for r in ("mean", "sum")]

TRAIN_CASES = {
    "differential_sgd": dict(loss="differential", optimizer="sgd", lr=0.5),
    "differential_adam_exp": dict(loss="differential", optimizer="adam", lr=0.01,
                                  pair_loss="exponential"),
    "cross_entropy_sgd": dict(loss="cross_entropy", optimizer="sgd", lr=0.5),
}
TRAIN_B = 4  # per rank; the single-process reference uses WORLD * TRAIN_B


def _rank_inputs(case: str, rank: int):
    """Scores and labels of ``rank`` in ``case`` (labels shuffled within the rank)."""
    sizes, dtype, _ = LOSS_CASES[case]
    if sizes[rank] is None:
        return None
    p, n = sizes[rank]
    g = torch.Generator().manual_seed(100 * list(LOSS_CASES).index(case) + rank)
    scores = torch.cat([torch.randn(p, generator=g, dtype=torch.float64) + 1.0,
                        3 * torch.randn(n, generator=g, dtype=torch.float64)]).to(dtype)
    y = torch.cat([torch.ones(p), -torch.ones(n)])
    perm = torch.randperm(p + n, generator=g)
    return scores[perm], y[perm]


def _train_data():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(30, 6, generator=g)
    y = torch.where(x[:, 0] + 0.3 * x[:, 1] > 0.2, 1.0, -1.0)
    return x, y


def _train(cfg_kwargs: dict, batch_size: int, ddp: bool, checkpoint=None, x_shift: float = 0.0):
    from lowrank.models import MLP
    from lowrank.train import DeepTrainConfig, train_deep

    x, y = _train_data()
    torch.manual_seed(0)
    model = MLP(6, (8, 4))
    x = x + x_shift
    cfg = DeepTrainConfig(epochs=2, batch_size=batch_size, spectrum_samples=0, ddp=ddp, **cfg_kwargs)
    r = train_deep(model, x, y, cfg, checkpoint=checkpoint, quiet=True)
    return {"state": {k: v.detach().clone() for k, v in r.model.state_dict().items()},
            "bias": r.bias, "losses": [h["loss"] for h in r.history]}


def _outcome(fn):
    try:
        return fn()
    except Exception as err:  # recorded for the test to check
        return {"error": type(err).__name__, "message": str(err)}


def _loss_run(case, pair_loss, reduction, group, grad=True):
    scores, y = _rank_inputs(case, dist.get_rank())
    s = scores.clone().requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        loss = distributed_differential_loss(s, y, pair_loss=pair_loss, reduction=reduction, group=group)
    if grad:
        loss.backward()
    return {"loss": loss.detach().clone(), "requires_grad": loss.requires_grad,
            "grad": None if s.grad is None else s.grad.clone()}


def _error_cases(rank: int) -> dict:
    s = torch.tensor([0.5, -0.5], dtype=torch.float64)
    out = {}
    out["no_negative_anywhere"] = _outcome(
        lambda: distributed_differential_loss(s, [1, 1]))
    out["bad_labels_on_rank_1"] = _outcome(
        lambda: distributed_differential_loss(s, [1, 2] if rank == 1 else [1, -1]))
    out["dtype_differs"] = _outcome(
        lambda: distributed_differential_loss(s.float() if rank == 2 else s, [1, -1]))
    out["grad_on_rank_0_only"] = _outcome(
        lambda: distributed_differential_loss(s.clone().requires_grad_(rank == 0), [1, -1]))
    out["nan_on_rank_2"] = _outcome(lambda: distributed_differential_loss(
        torch.tensor([float("nan"), 0.0], dtype=torch.float64) if rank == 2 else s, [1, -1]))
    return out


def _worker(rank: int, world: int, store: str, out_dir: str) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = "lo0" if sys.platform == "darwin" else "lo"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=COLLECTIVE_S))
    try:
        groups = {None: None}
        for _, _, ranks in LOSS_CASES.values():
            if ranks is not None and tuple(ranks) not in groups:
                groups[tuple(ranks)] = dist.new_group(ranks)  # every rank takes part
        res: dict = {"loss": {}, "errors": {}, "train": {}}
        for case, (_, _, ranks) in LOSS_CASES.items():
            if ranks is not None and rank not in ranks:
                continue
            group = groups[tuple(ranks) if ranks else None]
            for pair_loss, reduction in COMBOS:
                res["loss"][case, pair_loss, reduction] = _loss_run(case, pair_loss, reduction, group)
        res["loss"]["uneven", "logistic", "mean", "no_grad"] = _loss_run(
            "uneven", "logistic", "mean", None, grad=False)
        res["errors"] = _error_cases(rank)
        res["errors"]["train_data_differs"] = _outcome(
            lambda: _train(TRAIN_CASES["differential_sgd"], TRAIN_B, ddp=True, x_shift=float(rank == 2)))
        for name, kw in TRAIN_CASES.items():
            ck = Path(out_dir) / f"{name}.ckpt" if name == "differential_sgd" else None
            res["train"][name] = _train(kw, TRAIN_B, ddp=True, checkpoint=ck)
        torch.save(res, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Start WORLD processes once; return each rank's recorded results and their folder."""
    out = tmp_path_factory.mktemp("distributed")
    # forkserver: torch and lowrank are imported once, in a fresh server process that the
    # ranks are forked from (safe, unlike forking this process); spawn where unavailable
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    if method == "forkserver":  # ignored if this process's forkserver already runs
        multiprocessing.get_context(method).set_forkserver_preload(
            ["torch", "lowrank.distributed", "lowrank.models", "lowrank.train"])
    ctx = mp.start_processes(_worker, args=(WORLD, str(out / "store"), str(out)), nprocs=WORLD,
                             join=False, start_method=method)
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ctx.join(timeout=max(1.0, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                pytest.fail(f"the {WORLD} spawned ranks did not finish within {TIMEOUT_S} s")
    finally:
        for p in ctx.processes:  # only on failure are any still alive
            if p.is_alive():
                p.terminate()
                p.join(5)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)], out


def _reference(case: str, pair_loss: str, reduction: str):
    """Single-process loss of the concatenated scores, the gradient of each rank's slice, and the
    float64 broadcast formula."""
    _, _, ranks = LOSS_CASES[case]
    members = ranks if ranks is not None else range(WORLD)
    parts = [_rank_inputs(case, r) for r in members]
    scores = torch.cat([p[0] for p in parts]).requires_grad_(True)
    y = torch.cat([p[1] for p in parts])
    loss = differential_loss(scores, y, pair_loss=pair_loss, reduction=reduction)
    loss.backward()
    sizes = [len(p[1]) for p in parts]
    grads = dict(zip(members, torch.split(scores.grad, sizes)))
    s64 = scores.detach().double()
    diff = s64[y > 0][:, None] - s64[y < 0][None, :]
    per_pair = F.softplus(-diff) if pair_loss == "logistic" else torch.exp(-diff)
    formula = per_pair.mean() if reduction == "mean" else per_pair.sum()
    return loss.detach(), grads, float(formula)


@pytest.mark.parametrize("pair_loss,reduction", COMBOS)
@pytest.mark.parametrize("case", list(LOSS_CASES))
def test_loss_and_gradient_equal_the_single_process_ones(ranks, case, pair_loss, reduction):
    results, _ = ranks
    want, grads, formula = _reference(case, pair_loss, reduction)
    rel = 1e-12 if LOSS_CASES[case][1] == torch.float64 else 1e-6
    got = {r: res["loss"][case, pair_loss, reduction] for r, res in enumerate(results)
           if (case, pair_loss, reduction) in res["loss"]}
    assert sorted(got) == sorted(grads)
    values = {float(g["loss"]) for g in got.values()}
    assert len(values) == 1, f"ranks disagree: {values}"  # bit-identical on every rank
    value = values.pop()
    assert value == pytest.approx(float(want), rel=rel)
    assert value == pytest.approx(formula, rel=max(rel, 1e-6))
    for r, g in got.items():
        assert g["requires_grad"] and g["grad"].dtype == want.dtype
        scale = float(torch.cat(list(grads.values())).abs().max())
        torch.testing.assert_close(g["grad"], grads[r], rtol=rel, atol=rel * scale)


def test_without_gradient(ranks):
    results, _ = ranks
    want, _, _ = _reference("uneven", "logistic", "mean")
    for res in results:
        got = res["loss"]["uneven", "logistic", "mean", "no_grad"]
        assert not got["requires_grad"] and got["grad"] is None
        assert float(got["loss"]) == pytest.approx(float(want), rel=1e-12)


def test_bad_inputs_raise_on_every_rank(ranks):
    results, _ = ranks
    errs = [res["errors"] for res in results]
    for r in range(WORLD):
        assert errs[r]["no_negative_anywhere"]["error"] == "ValueError"
        assert "both classes over the ranks" in errs[r]["no_negative_anywhere"]["message"]
        assert "same dtype on every rank" in errs[r]["dtype_differs"]["message"]
        assert "on every rank or on none" in errs[r]["grad_on_rank_0_only"]["message"]
    assert "y must hold labels" in errs[1]["bad_labels_on_rank_1"]["message"]
    assert "scores must be finite" in errs[2]["nan_on_rank_2"]["message"]
    for r in (0, 2):
        assert errs[r]["bad_labels_on_rank_1"] == {
            "error": "ValueError",
            "message": "rank(s) [1] of the process group got invalid scores or labels "
                       "(see the error raised there)"}
    for r in (0, 1):
        assert "rank(s) [2]" in errs[r]["nan_on_rank_2"]["message"]
    for r in range(WORLD):
        assert errs[r]["train_data_differs"] == {
            "error": "ValueError",
            "message": "every rank must pass the same data and configuration, but x_sum differ "
                       "between ranks"}


@pytest.mark.parametrize("name", list(TRAIN_CASES))
def test_ddp_training_matches_one_process_with_the_union_batch(ranks, name):
    results, _ = ranks
    want = _train(TRAIN_CASES[name], WORLD * TRAIN_B, ddp=False)
    for res in results:
        got = res["train"][name]
        for k, v in want["state"].items():
            torch.testing.assert_close(got["state"][k], v, rtol=1e-5, atol=1e-5, msg=f"{name}: {k}")
        assert got["bias"] == pytest.approx(want["bias"], rel=1e-5, abs=1e-5)
        assert got["losses"] == pytest.approx(want["losses"], rel=1e-5)
    # the steps moved the weights: the comparison is not between two initialisations
    torch.manual_seed(0)
    from lowrank.models import MLP

    init = MLP(6, (8, 4)).state_dict()
    assert max(float((want["state"][k] - init[k]).abs().max()) for k in init) > 1e-2


def test_ddp_checkpoint_written_by_rank_0_with_its_world_size(ranks):
    from lowrank.io import load_torch
    from lowrank.models import MLP
    from lowrank.train import DeepTrainConfig, train_deep

    _, out = ranks
    ck = load_torch(out / "differential_sgd.ckpt")
    assert ck["world_size"] == WORLD and ck["config"]["ddp"] is True and ck["epoch"] == 2
    x, y = _train_data()
    cfg = DeepTrainConfig(epochs=3, batch_size=TRAIN_B, spectrum_samples=0,
                          **TRAIN_CASES["differential_sgd"])
    with pytest.raises(ValueError, match="different configuration \\(ddp\\)"):
        train_deep(MLP(6, (8, 4)), x, y, cfg, checkpoint=out / "differential_sgd.ckpt", resume=True,
                   quiet=True)


# ---------------------------------------------------------------- in this process


def test_without_a_process_group_the_error_says_what_is_missing():
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="init_process_group"):
        distributed_differential_loss(torch.tensor([1.0, 0.0]), [1, -1])
    with pytest.raises(RuntimeError, match="torchrun"):
        DataParallelContext(torch.nn.Linear(2, 1), enabled=True)
    with pytest.raises(ValueError, match="pair_loss must be one of"):
        distributed_differential_loss(torch.tensor([1.0, 0.0]), [1, -1], pair_loss="hinge")
    with pytest.raises(ValueError, match="reduction must be one of"):
        distributed_differential_loss(torch.tensor([1.0, 0.0]), [1, -1], reduction="none")


def test_pair_coverage():
    assert pair_coverage([(16, 16)] * 4) == 0.25
    assert pair_coverage([(3, 1), (1, 3)]) == pytest.approx((3 + 3) / 16)
    assert pair_coverage([(5, 5)]) == 1.0
    with pytest.raises(ValueError, match="both classes"):
        pair_coverage([(3, 0), (2, 0)])
    with pytest.raises(ValueError, match="non-negative"):
        pair_coverage([(3, -1)])


def test_local_batch_takes_each_ranks_block_of_each_class():
    dp = DataParallelContext(torch.nn.Linear(2, 1), enabled=False)
    dp.rank, dp.world_size = 1, 3  # as on rank 1 of 3 (local_batch only reads these)
    idx = torch.arange(12)  # 6 positives (0..5), then 6 negatives (6..11)
    assert dp.local_batch(idx).tolist() == [2, 3, 8, 9]

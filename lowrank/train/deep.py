"""One minibatch trainer for deep one-score and C-logit models, under either loss.

The model's head decides the task: ``head = nn.Linear(k, 1)`` is a binary one-score
model (labels in {-1, +1} or {0, 1}); ``head = nn.Linear(k, C)`` with ``C >= 2`` is a
C-class model (labels in {0, ..., C-1}, prediction ``argmax``).

* Batches are class-balanced: each holds ``batch_size // C`` examples of each of the
  ``C`` classes (``C = 2`` for a one-score model: ``batch_size // 2`` positives and
  as many negatives). An epoch has ``ceil(max class size / (batch_size // C))``
  batches; the largest class is seen once per epoch and the smaller ones are cycled
  (each pass in a fresh random order). See :func:`class_balanced_batches`.
* One-score models: ``loss="cross_entropy"`` minimises
  :func:`lowrank.losses.cross_entropy_loss`; ``loss="differential"`` minimises
  :func:`lowrank.losses.differential_loss` over all (positive, negative) pairs of the
  batch. The head's bias cancels in that loss, so it is left out of the optimiser
  and set at the end by the midpoint rule (:func:`lowrank.train.midpoint_bias`) on
  the training-set scores.
* C-logit models: ``loss="cross_entropy"`` minimises the softmax cross-entropy
  (:func:`torch.nn.functional.cross_entropy`, mean over the batch) with trained
  biases; ``loss="differential"`` minimises the one-vs-rest
  :func:`lowrank.losses.multiclass_differential_loss` over all pairs of the batch.
  The head's biases (per-class offsets) cancel in that loss, so they are left out of
  the optimiser and set at the end to :func:`lowrank.train.multiclass_offsets` of
  the training-set logits without them (or, with ``offset_rule="fitted"``, by
  :func:`lowrank.train.fitted_offsets`; likewise for the one-score bias).
* In a single process the differential loss of a batch is computed from its class
  blocks (:func:`blocked_differential_loss`: the same value bit for bit, without label
  checks or boolean masks), so a step has no host synchronisation; the loss is summed
  on the device and checked once per epoch (a non-finite loss stops the run with a
  ``FloatingPointError``).
* After each epoch the trainer records the loss, the training accuracy (for the
  differential model with the midpoint bias, or the offsets, of that epoch) and the spectrum and
  effective rank of the penultimate features of (a fixed subset of) the training
  set, and writes a checkpoint atomically (model, optimiser, RNG states, epoch,
  history). ``resume=True`` continues from it: training 2 epochs, stopping and
  resuming to 4 gives bit-identical weights to 4 straight epochs.
* ``ddp=True`` trains data-parallel under an initialised ``torch.distributed`` process
  group (``torchrun``), through :class:`lowrank.distributed.DataParallelContext`: every rank
  passes the same data and configuration, draws the same global batch of
  ``K * batch_size`` examples and trains on its share of it; the differential loss
  covers all pairs of the global batch, scaled by ``K`` before ``backward()`` because
  DDP averages gradients. ``K`` ranks with ``batch_size=B`` take the steps of one
  process with ``batch_size=K*B``. Rank 0 writes the checkpoint. See docs/distributed.md.
  Data-parallel training is for one-score models only.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .._validation import check_both_classes, check_finite, class_labels, signed_labels
from ..analysis.features import spectrum_summary
from ..device import resolve_device
from ..distributed import DataParallelContext
from ..io import load_torch, save_torch
from ..kernels import pairwise_logistic
from ..losses import PAIR_LOSSES, _pairwise_exponential, cross_entropy_loss, multiclass_differential_loss
from ..progress import progress
from .bias import OFFSET_RULES, fitted_offsets, midpoint_bias
from .multiclass import multiclass_offsets

__all__ = ["DeepTrainConfig", "DeepTrainResult", "train_deep", "balanced_batches",
           "class_balanced_batches", "blocked_differential_loss", "DEEP_LOSSES", "predict_scores"]

DEEP_LOSSES = ("cross_entropy", "differential")
_OPTIMIZERS = ("adam", "sgd")


@dataclass
class DeepTrainConfig:
    """Hyper-parameters of :func:`train_deep` (all stored in checkpoints and results).

    Attributes
    ----------
    loss : {"cross_entropy", "differential"}
    optimizer : {"adam", "sgd"}
    lr : float
        Learning rate.
    momentum : float
        SGD momentum (ignored by Adam).
    weight_decay : float
        L2 penalty passed to the optimiser.
    epochs : int
        Number of passes (see the module notes for the epoch length).
    batch_size : int
        Even; half positives, half negatives (for a C-logit model: at least ``C``, with
        ``batch_size // C`` examples of each class).
    seed : int
        Seeds the batch-sampling generator.
    spectrum_samples : int
        Training images (a fixed random subset) used for the per-epoch feature
        spectrum; 0 disables it.
    pair_loss : {"logistic", "exponential"}
        Pair loss of the differential loss.
    offset_rule : {"midpoint", "fitted"}
        How a differential model's bias (offsets) is set after training (and for each
        epoch's training accuracy): the midpoint rule (:func:`lowrank.train.midpoint_bias`;
        per class :func:`lowrank.train.multiclass_offsets`), or the offsets minimising the
        softmax cross-entropy with the weights fixed (:func:`lowrank.train.fitted_offsets`).
    ddp : bool
        Train data-parallel over the initialised ``torch.distributed`` process group
        (``batch_size`` is then per rank; see the module notes).

    Raises
    ------
    ValueError
        For an unknown loss or optimiser, a non-positive or non-finite ``lr``, negative
        ``epochs`` or ``spectrum_samples``, or an odd ``batch_size`` (or one below 2).

    Examples
    --------
    >>> cfg = DeepTrainConfig(loss="differential", epochs=3)
    >>> cfg.optimizer, cfg.lr, cfg.batch_size
    ('adam', 0.001, 128)
    >>> DeepTrainConfig(batch_size=3)
    Traceback (most recent call last):
        ...
    ValueError: batch_size must be even and >= 2, got 3
    """

    loss: str = "cross_entropy"
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 10
    batch_size: int = 128
    seed: int = 0
    spectrum_samples: int = 2000
    pair_loss: str = "logistic"
    offset_rule: str = "midpoint"
    ddp: bool = False

    def __post_init__(self) -> None:
        if self.loss not in DEEP_LOSSES:
            raise ValueError(f"loss must be one of {DEEP_LOSSES}, got {self.loss!r}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 2 or self.batch_size % 2:
            raise ValueError(f"batch_size must be even and >= 2, got {self.batch_size}")
        if self.spectrum_samples < 0:
            raise ValueError(f"spectrum_samples must be >= 0, got {self.spectrum_samples}")
        if self.offset_rule not in OFFSET_RULES:
            raise ValueError(f"offset_rule must be one of {OFFSET_RULES}, got {self.offset_rule!r}")


@dataclass
class DeepTrainResult:
    """What :func:`train_deep` returns.

    Attributes
    ----------
    model : torch.nn.Module
        The trained model, in eval mode, with its final bias(es) in ``model.head.bias``.
    bias : float or list of float
        Final bias of a one-score model (set by ``config.offset_rule`` for the differential
        loss, trained for cross-entropy), or the ``C`` final biases of a C-logit model
        (per-class offsets by ``config.offset_rule`` for the differential loss, trained for
        cross-entropy).
    bias_rule : str
        ``"midpoint"``, ``"fitted"`` or ``"trained"`` (one-score); ``"offsets"`` (the
        per-class midpoint rule), ``"fitted"`` or ``"trained"`` (C logits).
    history : list of dict
        One entry per epoch: ``epoch``, ``loss``, ``train_acc``, ``effective_rank``,
        ``energy_rank``, ``singular_values``, ``seconds``.
    resumed_from : int
        Epoch the run resumed from (0 for a fresh run).

    Examples
    --------
    Normally returned by :func:`train_deep`; built by hand:

    >>> r = DeepTrainResult(model=torch.nn.Linear(2, 1), bias=0.5, bias_rule="midpoint")
    >>> r.bias_rule, r.history, r.resumed_from
    ('midpoint', [], 0)
    """

    model: torch.nn.Module
    bias: float | list[float]
    bias_rule: str
    history: list = field(default_factory=list)
    resumed_from: int = 0


def class_balanced_batches(groups: Sequence[torch.Tensor], batch_size: int,
                           generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch of class-balanced index batches for ``C`` classes.

    Each batch holds ``per = batch_size // C`` indices of every class, class by class
    (class 0 first). The epoch has ``ceil(max_c n_c / per)`` batches: the largest class is
    seen once, the smaller ones are cycled, each pass in a fresh random order. The
    classes' orders are drawn one after the other from ``generator``, so a seeded
    generator gives the same epoch every time.

    Parameters
    ----------
    groups : sequence of torch.Tensor of int64
        ``C >= 2`` non-empty 1-D tensors: the indices of each class.
    batch_size : int
        At least ``C``; each batch holds ``batch_size // C`` of each class.
    generator : torch.Generator
        Source of the random order (advanced by the call).

    Returns
    -------
    list of torch.Tensor
        ``ceil(max_c n_c / (batch_size // C))`` index tensors of length
        ``C * (batch_size // C)``.

    Raises
    ------
    ValueError
        If there are fewer than two groups, a group is empty or not 1-D, or
        ``batch_size < C``.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> b = class_balanced_batches([torch.arange(2), torch.arange(2, 5), torch.arange(5, 12)], 7, g)
    >>> len(b), [len(x) for x in b]  # 7 // 3 = 2 of each class per batch, ceil(7 / 2) batches
    (4, [6, 6, 6, 6])
    >>> big = torch.cat([x[4:] for x in b])  # the largest class: all 7 seen, one twice
    >>> len(big), sorted(set(big.tolist())) == list(range(5, 12))
    (8, True)
    >>> class_balanced_batches([torch.arange(2), torch.arange(2, 5)], 1, g)
    Traceback (most recent call last):
        ...
    ValueError: batch_size must be at least the number of classes (2), got 1
    """
    C = len(groups)
    if C < 2:
        raise ValueError(f"groups must hold at least two classes, got {C}")
    for c, idx in enumerate(groups):
        if idx.ndim != 1 or len(idx) == 0:
            raise ValueError(f"groups[{c}] must be a non-empty 1-D index tensor, got shape "
                             f"{tuple(idx.shape)}")
    if batch_size < C:
        raise ValueError(f"batch_size must be at least the number of classes ({C}), got {batch_size}")
    per = batch_size // C
    n_batches = max(1, math.ceil(max(len(idx) for idx in groups) / per))

    def stream(idx: torch.Tensor) -> torch.Tensor:
        need = n_batches * per
        parts, have = [], 0
        while have < need:
            parts.append(idx[torch.randperm(len(idx), generator=generator, device=generator.device)])
            have += len(idx)
        return torch.cat(parts)[:need].view(n_batches, per)

    streams = [stream(idx) for idx in groups]
    return [torch.cat([st[b] for st in streams]) for b in range(n_batches)]


def balanced_batches(pos_idx: torch.Tensor, neg_idx: torch.Tensor, batch_size: int,
                     generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch of class-balanced index batches for two classes.

    The two-class case of :func:`class_balanced_batches` (``groups = [pos_idx, neg_idx]``).

    Parameters
    ----------
    pos_idx, neg_idx : torch.Tensor of int64
        Indices of the positives and negatives.
    batch_size : int
        Even batch size; each batch holds ``batch_size // 2`` of each class.
    generator : torch.Generator
        Source of the random order (advanced by the call).

    Returns
    -------
    list of torch.Tensor
        ``ceil(max(P, N) / (batch_size // 2))`` index tensors, positives first.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> b = balanced_batches(torch.arange(3), torch.arange(3, 10), 4, g)
    >>> len(b), [int((x < 3).sum()) for x in b]
    (4, [2, 2, 2, 2])
    """
    return class_balanced_batches([pos_idx, neg_idx], batch_size, generator)


def blocked_differential_loss(scores: torch.Tensor, n_classes: int,
                              pair_loss: str = "logistic") -> torch.Tensor:
    """The mean differential loss of a class-balanced batch laid out in class blocks.

    The batches of :func:`class_balanced_batches` hold ``per = n // C`` examples of each
    class, class ``c`` in rows ``c * per`` to ``(c + 1) * per - 1``. The positives and
    negatives are then slices, not boolean masks over labels, so no label check and no
    host synchronisation is needed: the training loop's hot path on a GPU. The value is
    bit for bit that of :func:`lowrank.losses.differential_loss` (one score, ``C = 2``:
    rows of block 0 are the positives) or :func:`lowrank.losses.multiclass_differential_loss`
    (C logits) on the same batch and labels.

    Parameters
    ----------
    scores : torch.Tensor, shape (C * per,) or (C * per, C)
        One score per example (``C = 2``) or C class scores.
    n_classes : int
        ``C``.
    pair_loss : {"logistic", "exponential"}

    Returns
    -------
    torch.Tensor
        Scalar, differentiable in ``scores``.

    Raises
    ------
    ValueError
        If the batch is not ``C`` equal blocks, or one score per example is given with
        ``C != 2``.

    Examples
    --------
    >>> from lowrank.losses import differential_loss
    >>> s = torch.tensor([2.0, 1.0, 0.5, -1.0], dtype=torch.float64)
    >>> bool(blocked_differential_loss(s, 2) == differential_loss(s, [1, 1, -1, -1]))
    True
    """
    if pair_loss not in PAIR_LOSSES:
        raise ValueError(f"pair_loss must be one of {PAIR_LOSSES}, got {pair_loss!r}")
    n = scores.shape[0]
    per = n // n_classes
    if n_classes < 2 or per < 1 or per * n_classes != n or (scores.ndim == 1 and n_classes != 2):
        raise ValueError(f"scores must hold {n_classes} equal class blocks (one score per example "
                         f"only for 2 classes), got shape {tuple(scores.shape)}")

    def pairs(pos: torch.Tensor, neg: torch.Tensor, reduction: str) -> torch.Tensor:
        if pair_loss == "exponential":
            return _pairwise_exponential(pos, neg, reduction)
        return pairwise_logistic(pos, neg, reduction=reduction)

    if scores.ndim == 1:
        return pairs(scores[:per], scores[per:], "mean")
    total = scores.new_zeros(())
    for c in range(n_classes):
        col = scores[:, c]
        pos = col[c * per:(c + 1) * per].contiguous()
        neg = torch.cat([col[:c * per], col[(c + 1) * per:]])
        total = total + pairs(pos, neg, "sum")
    return total / (n_classes * per * (n - per))


@torch.no_grad()
def predict_scores(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1024,
                   features: bool = False):
    """Scores (and optionally penultimate features) of ``x`` in eval mode, in batches.

    Parameters
    ----------
    model : lowrank.models.OneScoreNet
        Model with ``forward(x, return_features=True)``; its train/eval mode is restored.
    x : torch.Tensor, shape (n, ...)
        Inputs.
    batch_size : int, default 1024
        Forward batch size.
    features : bool, default False
        Also return the features.

    Returns
    -------
    torch.Tensor or (torch.Tensor, torch.Tensor)
        Scores of shape (n,) (one-score model) or (n, C) (C logits), and with
        ``features=True`` also the features, shape (n, k).

    Examples
    --------
    >>> from lowrank.models import MLP
    >>> m = MLP(4, (3,))
    >>> s, f = predict_scores(m, torch.zeros(5, 4), batch_size=2, features=True)
    >>> s.shape, f.shape, m.training
    (torch.Size([5]), torch.Size([5, 3]), True)
    """
    was = model.training
    model.eval()
    try:
        out = [model(x[i:i + batch_size], return_features=True) for i in range(0, len(x), batch_size)]
    finally:
        model.train(was)
    s = torch.cat([o[0] for o in out])
    return (s, torch.cat([o[1] for o in out])) if features else s


def _model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's first parameter (or buffer); the CPU for a model with neither."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def _make_optimizer(params, cfg: DeepTrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _same_run(saved: dict, cfg: DeepTrainConfig) -> list[str]:
    now, default = asdict(cfg), asdict(DeepTrainConfig())  # default: fields newer than `saved`
    return [k for k in now if k != "epochs" and saved.get(k, default[k]) != now[k]]


def _set_offsets(raw: torch.Tensor, ys: torch.Tensor, multiclass: bool, rule: str):
    """A differential model's bias from its bias-free training scores, by ``rule``.

    C logits: a (C,) float64 tensor (midpoint: :func:`multiclass_offsets`; fitted:
    :func:`fitted_offsets`); one score: a float (midpoint: :func:`midpoint_bias`; fitted:
    ``b_1 - b_0`` of :func:`fitted_offsets` on the two-class scores ``(0, s)``).
    """
    if multiclass:
        return multiclass_offsets(raw, ys) if rule == "midpoint" else fitted_offsets(raw, ys)
    if rule == "midpoint":
        return midpoint_bias(raw, ys)
    two = torch.stack([torch.zeros_like(raw), raw], dim=1)
    b = fitted_offsets(two, (ys > 0).to(torch.int64))
    return float(b[1] - b[0])


def train_deep(model: torch.nn.Module, x: torch.Tensor, y, config: DeepTrainConfig | None = None,
               checkpoint: str | os.PathLike | None = None, resume: bool = False,
               quiet: bool = False, desc: str | None = None,
               device: str | torch.device | None = None) -> DeepTrainResult:
    """Train a one-score or C-logit model with cross-entropy or the differential loss.

    Parameters
    ----------
    model : lowrank.models.OneScoreNet
        Model with ``forward(x, return_features=True)`` and a linear ``head``; trained
        in place (copy it first to train two losses from one initialisation). A head
        with one output is a binary one-score model; one with ``C > 1`` outputs a
        C-class model (see the module notes for the losses and the bias rules).
    x : torch.Tensor, shape (n, ...)
        Training inputs.
    y : array-like, shape (n,)
        One-score model: labels in {-1, +1} or {0, 1}, both classes present. C-logit
        model: integer labels in {0, ..., C-1}, every class present.
    config : DeepTrainConfig, optional
        Hyper-parameters (defaults if None).
    checkpoint : path-like, optional
        File written atomically after every epoch.
    resume : bool
        Continue from ``checkpoint`` if it exists (its configuration must match
        except for ``epochs``, which may be larger now).
    quiet : bool
        Hide the progress bar.
    desc : str, optional
        Progress-bar label.
    device : str or torch.device, optional
        Where to train (``"auto"``, ``"cpu"``, ``"cuda"``, ...; see
        :func:`lowrank.device.resolve_device`). The model is moved there (in place) and
        ``x``, ``y`` are copied there. Default: the device of the model's parameters.
        Batches are drawn on the CPU from the seeded generator, so the batch order,
        and hence the run on the CPU, does not depend on the device; a checkpoint
        written on one device resumes on another.

    Returns
    -------
    DeepTrainResult

    Raises
    ------
    ValueError
        On bad inputs (including ``config.batch_size`` below ``C`` or ``config.ddp``
        with a C-logit model), or a checkpoint from a different configuration or model
        or one that is further along than ``config.epochs``.

    Examples
    --------
    >>> from lowrank.models import MLP
    >>> torch.manual_seed(0); m = MLP(4, (8,))  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> x = torch.randn(20, 4); y = torch.where(x[:, 0] > 0, 1.0, -1.0)
    >>> y[:2] = torch.tensor([1.0, -1.0])
    >>> r = train_deep(m, x, y, DeepTrainConfig(loss="differential", epochs=2, batch_size=4),
    ...                quiet=True)
    >>> len(r.history), r.bias_rule
    (2, 'midpoint')

    Three classes (a three-logit head); the differential run sets one offset per class:

    >>> torch.manual_seed(0); m3 = MLP(4, (8,), n_classes=3)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> y3 = torch.arange(21) % 3
    >>> r3 = train_deep(m3, x[:, :4].repeat(2, 1)[:21], y3,
    ...                 DeepTrainConfig(loss="differential", epochs=2, batch_size=6), quiet=True)
    >>> r3.bias_rule, len(r3.bias), m3(x[:5]).shape
    ('offsets', 3, torch.Size([5, 3]))
    """
    cfg = config if config is not None else DeepTrainConfig()
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or not x.is_floating_point():
        raise ValueError("x must be a floating-point tensor of shape (n, ...)")
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not hasattr(model, "head") or not isinstance(model.head, torch.nn.Linear):
        raise ValueError("model must have a linear `head` (see lowrank.models.OneScoreNet)")
    n_out = int(model.head.out_features)
    multiclass = n_out > 1  # C = n_out logits; else one score
    if multiclass and cfg.ddp:
        raise ValueError(f"config.ddp=True trains one-score models only (the distributed loss is "
                         f"binary); this model's head has {n_out} outputs")
    if multiclass and cfg.batch_size < n_out:
        raise ValueError(f"config.batch_size must be at least the number of classes ({n_out}), "
                         f"got {cfg.batch_size}")
    dev = _model_device(model) if device is None else resolve_device(device)
    model.to(dev)
    x = x.to(dev)
    check_finite(x, "x")
    if multiclass:
        ys = class_labels(y, "y", n_classes=n_out).to(dev)
    else:
        ys = signed_labels(y, "y", dtype=x.dtype).to(dev)
    if ys.shape[0] != x.shape[0]:
        raise ValueError(f"x and y must have the same length, got {x.shape[0]} and {ys.shape[0]}")
    if not multiclass:
        check_both_classes(ys, "y")
    differential = cfg.loss == "differential"
    if model.head.bias is None:
        raise ValueError("model.head must have a bias (trained, or set by the differential bias rule)")
    params = [p for n, p in model.named_parameters() if not (differential and n == "head.bias")]
    opt = _make_optimizer(params, cfg)
    # Batch indices are drawn on the CPU (the same batches on every device).
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    ys_cpu = ys.cpu()
    if multiclass:
        groups = [torch.nonzero(ys_cpu == c).flatten() for c in range(n_out)]
    else:
        pos_idx = torch.nonzero(ys_cpu > 0).flatten()
        neg_idx = torch.nonzero(ys_cpu < 0).flatten()
        groups = [pos_idx, neg_idx]
    n_spec = min(cfg.spectrum_samples, len(x))
    spec_gen = torch.Generator(device="cpu").manual_seed(cfg.seed + 7919)
    spec_idx = torch.randperm(len(x), generator=spec_gen, device="cpu")[:n_spec].to(dev)

    dp = DataParallelContext(model, cfg.ddp)  # identity unless cfg.ddp (lowrank.distributed)
    if cfg.ddp:  # every rank must train on the same data with the same settings
        dp.check_same(n=len(x), n_pos=len(pos_idx), x_sum=float(x.double().sum()), seed=cfg.seed,
                      batch_size=cfg.batch_size)
    history: list[dict] = []
    start = 0
    ck_path = Path(checkpoint) if checkpoint is not None else None
    if resume and ck_path is not None and ck_path.is_file():
        ck = load_torch(ck_path)
        bad = _same_run(ck["config"], cfg)
        if bad:
            raise ValueError(f"checkpoint {ck_path} was written with a different configuration "
                             f"({', '.join(bad)}); delete it or pass resume=False")
        if ck.get("world_size", 1) != dp.world_size:
            raise ValueError(f"checkpoint {ck_path} was written by {ck.get('world_size', 1)} rank(s), "
                             f"not {dp.world_size}")
        ck_out = ck["model"]["head.weight"].shape[0] if "head.weight" in ck["model"] else n_out
        if ck_out != n_out:
            raise ValueError(f"checkpoint {ck_path} holds a model with {ck_out} head output(s), "
                             f"not {n_out}")
        if ck["epoch"] > cfg.epochs:
            raise ValueError(f"checkpoint {ck_path} is at epoch {ck['epoch']}, beyond "
                             f"config.epochs = {cfg.epochs}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        history = list(ck["history"])
        start = int(ck["epoch"])

    label = desc or cfg.loss
    for epoch in progress(range(start, cfg.epochs), desc=label, total=cfg.epochs - start,
                          quiet=quiet or not dp.is_main):
        t0 = time.perf_counter()
        model.train()
        # summed on the device in float64 (no host synchronisation per batch; the same
        # float64 additions as summing the float losses on the host)
        total = torch.zeros((), dtype=torch.float64, device=dev)
        count = 0
        for idx in class_balanced_batches(groups, cfg.batch_size * dp.world_size, gen):
            idx = dp.local_batch(idx).to(dev, non_blocking=True)
            scores = dp.module(x[idx])
            if differential and not cfg.ddp:
                loss = blocked_differential_loss(scores, len(groups), pair_loss=cfg.pair_loss)
            elif multiclass and differential:
                loss = multiclass_differential_loss(scores, ys[idx], pair_loss=cfg.pair_loss)
            elif multiclass:
                loss = F.cross_entropy(scores, ys[idx])
            elif differential:
                loss = dp.differential_loss(scores, ys[idx], pair_loss=cfg.pair_loss)
            else:
                loss = cross_entropy_loss(scores, ys[idx])
            opt.zero_grad(set_to_none=True)
            dp.backward_loss(loss, differential).backward()
            opt.step()
            total += loss.detach().to(torch.float64)
            count += 1
        if not math.isfinite(float(total)):  # one host synchronisation per epoch
            raise FloatingPointError(f"training diverged: the {cfg.loss} loss is not finite in epoch "
                                     f"{epoch + 1} (NaN or inf scores); lower config.lr")
        s, feats = predict_scores(model, x, features=True)
        if differential:
            raw = s - (model.head.bias.detach() if multiclass else model.head.bias.detach()[0])
            s = raw + torch.as_tensor(_set_offsets(raw, ys, multiclass, cfg.offset_rule),
                                      dtype=raw.dtype, device=raw.device)
        correct = s.argmax(dim=1) == ys if multiclass else (s > 0) == (ys > 0)
        entry = {"epoch": epoch + 1, "loss": dp.mean(float(total) / count),
                 "train_acc": float(correct.to(torch.float64).mean())}
        if n_spec:
            spec = spectrum_summary(feats[spec_idx])
            entry.update(effective_rank=spec["effective_rank"], energy_rank=spec["energy_rank"],
                         singular_values=spec["singular_values"])
        entry["seconds"] = time.perf_counter() - t0
        history.append(entry)
        if ck_path is not None and dp.is_main:
            save_torch(ck_path, {"format": 1, "config": asdict(cfg), "epoch": epoch + 1,
                                 "world_size": dp.world_size,
                                 "model": model.state_dict(), "optimizer": opt.state_dict(),
                                 "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                                 "history": history})

    model.eval()
    b: float | list[float]
    if multiclass and differential:
        offsets = _set_offsets(predict_scores(model, x) - model.head.bias.detach(), ys, True,
                               cfg.offset_rule)
        with torch.no_grad():
            model.head.bias.copy_(offsets)
        b, rule = offsets.tolist(), "offsets" if cfg.offset_rule == "midpoint" else "fitted"
    elif multiclass:
        b, rule = model.head.bias.detach().tolist(), "trained"
    elif differential:
        raw = predict_scores(model, x) - model.head.bias.detach()[0]
        b = _set_offsets(raw, ys, False, cfg.offset_rule)
        with torch.no_grad():
            model.head.bias.fill_(b)
        rule = cfg.offset_rule
    else:
        b, rule = float(model.head.bias.detach()[0]), "trained"
    return DeepTrainResult(model=model, bias=b, bias_rule=rule, history=history, resumed_from=start)

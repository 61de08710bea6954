"""Full-batch gradient descent for multi-class linear classifiers, in float64.

The multi-class sibling of :func:`lowrank.train.fit_linear`: scores ``S = X W^T + b``
(``W`` of shape (C, d)), trained by

* softmax cross-entropy with trained offsets ``b`` (whose limit direction is
  :func:`lowrank.theory.multiclass_cross_entropy_limit`), or
* the one-vs-rest differential loss (:func:`lowrank.losses.multiclass_differential_loss`),
  which does not see ``b``; the offsets are set afterwards by the per-class midpoint rule
  :func:`multiclass_offsets` (limit: :func:`lowrank.theory.one_vs_rest_limit`).

Plain (``schedule="constant"``) and normalized (gradient descent on ``log L``) schedules,
as in :func:`lowrank.train.fit_linear`. Every recorded margin is the multi-class
geometric margin (:func:`lowrank.analysis.multiclass_margin`), of a differential run with
the offsets calibrated at that step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit

from .._validation import check_finite, check_matrix, check_same_length, class_labels
from ..analysis.multiclass import multiclass_margin
from ..losses import multiclass_differential_loss
from ..progress import progress
from .linear import LOSSES, SCHEDULES, _log_softplus_neg, _lse, log_spaced_steps

__all__ = ["MulticlassFit", "fit_multiclass", "multiclass_offsets", "multiclass_default_lr"]


@dataclass
class MulticlassFit:
    """Result of :func:`fit_multiclass`.

    Attributes
    ----------
    W : torch.Tensor, shape (C, d)
        Final weights.
    b : torch.Tensor, shape (C,)
        Final offsets (per-class midpoints for differential training).
    loss : str
        ``"cross_entropy"`` or ``"differential"``.
    history : dict of lists
        ``step``, ``loss``, ``margin`` (multi-class geometric margin; NaN while two rows of
        ``W`` that it needs coincide, e.g. at a zero start), ``w_norm`` (Frobenius norm of
        ``W``) and, when a reference was given, ``cosine``.
    config : dict
        The arguments of the run.

    Examples
    --------
    >>> fit = fit_multiclass([[-1.0], [0.0], [1.0]], [0, 1, 2], steps=10, record=[5])
    >>> fit.history["step"], tuple(fit.W.shape)
    ([0, 5, 10], (3, 1))
    """

    W: torch.Tensor
    b: torch.Tensor
    loss: str
    history: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    @property
    def margin(self) -> float:
        """Multi-class geometric margin at the last recorded step."""
        return self.history["margin"][-1]


def multiclass_offsets(scores, y) -> torch.Tensor:
    """Per-class midpoint offsets: the multi-class analogue of :func:`lowrank.train.midpoint_bias`.

    For each class ``c``, the offset that puts the one-vs-rest threshold of score column
    ``c`` halfway between class ``c``'s smallest score and the other classes' largest:

    ``b_c = -(min_{y_i = c} S_ic + max_{y_j != c} S_jc) / 2``.

    If every pair is ordered (``S_ic > S_jc`` for ``y_i = c != y_j``), then
    ``S_ic + b_c > 0 > S_jc + b_c``, so ``argmax_c (S_ic + b_c) = y_i`` for every training
    point; for ``C = 2`` and scores ``(-s, s)`` the decision ``S_1 + b_1 > S_0 + b_0`` is the
    binary midpoint rule ``s > -midpoint_bias(s, y)``. At the limit of one-vs-rest
    differential training these are the offsets of the binary free-bias SVMs of each class
    against the rest (:func:`lowrank.theory.one_vs_rest_limit`).

    Parameters
    ----------
    scores : array-like, shape (n, C)
        Scores without offsets.
    y : array-like, shape (n,)
        Labels in {0, ..., C-1}, every class present.

    Returns
    -------
    torch.Tensor, shape (C,)
        The offsets (float64).

    Raises
    ------
    ValueError
        On bad shapes, NaN/inf, labels outside {0, ..., C-1} or a class without examples.

    Examples
    --------
    >>> S = [[3.0, 0.0], [1.0, 2.0], [0.0, 5.0]]
    >>> multiclass_offsets(S, [0, 1, 1]).tolist()
    [-2.0, -1.0]
    """
    S = check_matrix(torch.as_tensor(scores).detach(), "scores", dtype=torch.float64)
    if S.shape[1] < 2:
        raise ValueError(f"scores must have shape (n, C) with C >= 2, got {tuple(S.shape)}")
    labels = class_labels(y, "y", n_classes=S.shape[1], require_all=False).to(S.device)
    check_same_length(S, labels, "scores", "y")
    labels = class_labels(labels, "y", n_classes=S.shape[1])
    own = labels[:, None] == torch.arange(S.shape[1], device=S.device)[None, :]
    lo = torch.where(own, S, torch.full_like(S, float("inf"))).min(dim=0).values
    hi = torch.where(own, torch.full_like(S, float("-inf")), S).max(dim=0).values
    return -(lo + hi) / 2


def multiclass_default_lr(X, y, loss: str = "cross_entropy", schedule: str = "constant") -> float:
    """A stable step size for full-batch gradient descent, read off the data.

    ``schedule="constant"`` (mean-reduced losses):

    Cross-entropy: the Hessian at ``W = 0, b = 0`` is ``G kron (I/C - 1 1^T/C^2)`` with
    ``G = Z^T Z / n`` of the augmented points ``Z = [X, 1]``, of largest eigenvalue
    ``lambda_max(G) / C``; the step is half the stability bound, ``C / lambda_max(G)``.
    Differential (logistic pairs, mean over all ``N`` pairs): the Hessian of class ``c``'s
    block is ``G_c / (4 N)`` with ``G_c = sum_{i in c, j not in c} (x_i - x_j)(x_i - x_j)^T``;
    the step is ``4 N / max_c lambda_max(G_c)``. The Hessian only shrinks later in training.

    ``schedule="normalized"`` (gradient descent on ``log L``, whose Hessian is at most
    ``max_k ||grad z_k||^2`` over the margins ``z_k`` of the loss's terms):
    ``4 / max_k ||grad z_k||^2``, i.e. ``2 / (max_i ||x_i||^2 + 1)`` for cross-entropy
    (``z = (w_{y_i} - w_c) . x_i + b_{y_i} - b_c``) and ``4 / max ||x_i - x_j||^2`` over the
    pairs of different classes for the differential loss (``z = w_c . (x_i - x_j)``).

    Parameters
    ----------
    X : array-like, shape (n, d)
    y : array-like, shape (n,)
        Labels in {0, ..., C-1}, every class present.
    loss : {"cross_entropy", "differential"}
    schedule : {"constant", "normalized"}

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On an unknown ``loss`` or ``schedule``, or bad data.

    Examples
    --------
    >>> X, y = [[-1.0], [0.0], [1.0]], [0, 1, 2]
    >>> multiclass_default_lr(X, y), multiclass_default_lr(X, y, "differential", "normalized")
    (3.0, 1.0)
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    Xn, labels, C = _prepare(X, y)
    n = Xn.shape[0]
    if schedule == "normalized":
        if loss == "cross_entropy":
            return 2.0 / (float((Xn ** 2).sum(axis=1).max()) + 1.0)
        sq = (Xn ** 2).sum(axis=1)
        D = sq[:, None] + sq[None, :] - 2 * Xn @ Xn.T
        D = np.where(labels[:, None] != labels[None, :], D, 0.0)
        return 4.0 / float(D.max())
    if loss == "cross_entropy":
        Z = np.hstack([Xn, np.ones((n, 1))])
        return C / float(np.linalg.eigvalsh(Z.T @ Z / n).max())
    n_pairs = sum(int((labels == c).sum()) * int((labels != c).sum()) for c in range(C))
    lam = 0.0
    for c in range(C):
        P, Q = Xn[labels == c], Xn[labels != c]
        sp_, sq = P.sum(axis=0), Q.sum(axis=0)
        G = len(Q) * P.T @ P + len(P) * Q.T @ Q - np.outer(sp_, sq) - np.outer(sq, sp_)
        lam = max(lam, float(np.linalg.eigvalsh(G).max()))
    return 4.0 * n_pairs / lam


def _prepare(X, y) -> tuple[np.ndarray, np.ndarray, int]:
    Xt = check_matrix(X, "X", dtype=torch.float64)
    labels = class_labels(y, "y", require_all=False)
    check_same_length(Xt, labels, "X", "y")
    labels = class_labels(labels, "y")
    return Xt.cpu().numpy(), labels.cpu().numpy(), int(labels.max()) + 1


def fit_multiclass(X, y, loss: str = "cross_entropy", steps: int = 10_000, lr: float | None = None,
                   init: str = "zeros", seed: int | None = None,
                   record: int | Sequence[int] = 50, reference=None, reduction: str = "mean",
                   schedule: str = "constant", quiet: bool = True) -> MulticlassFit:
    """Train ``argmax_c (w_c . x + b_c)`` by full-batch gradient descent in float64.

    Parameters
    ----------
    X : array-like, shape (n, d)
        Inputs.
    y : array-like, shape (n,)
        Labels in {0, ..., C-1}; every class present.
    loss : {"cross_entropy", "differential"}
        Softmax cross-entropy with trained offsets, or the one-vs-rest differential loss
        with logistic pairs (offsets by :func:`multiclass_offsets`).
    steps : int
        Number of gradient steps.
    lr : float, optional
        Step size; default :func:`multiclass_default_lr` (for the chosen schedule).
    init : {"zeros", "random"}
        Initial ``(W, b)``: zeros, or standard normal entries scaled by ``1/sqrt(d)`` (the
        offsets of a differential run start at 0; they are not trained).
    seed : int, optional
        Seed for ``init="random"``.
    record : int or sequence of int
        Number of log-spaced steps at which to record the history, or the steps themselves.
    reference : array-like, shape (C, d), optional
        Reference weights (e.g. a predicted limit); the history then holds ``cosine``
        between the class-centred ``W`` and the class-centred reference, flattened.
    reduction : {"mean", "sum"}
        Mean or sum over examples (cross-entropy) or pairs (differential).
    schedule : {"constant", "normalized"}
        Plain gradient descent, or gradient descent on ``log L`` (computed in log space;
        same limit direction, reached much sooner), as in :func:`lowrank.train.fit_linear`.
    quiet : bool, default True
        Hide the progress bar.

    Returns
    -------
    MulticlassFit

    Raises
    ------
    ValueError
        On bad inputs (shapes, NaN/inf, labels, a class without examples) or arguments.

    Examples
    --------
    Three points on a line: differential training reaches the optimal margin 1/2 at once;
    normalized gradient descent on cross-entropy approaches it too (at height 0 the
    cross-entropy limit is the optimal separator).

    >>> X, y = [[-1.0], [0.0], [1.0]], [0, 1, 2]
    >>> round(fit_multiclass(X, y, loss="differential", steps=50).margin, 9)
    0.5
    >>> fit = fit_multiclass(X, y, steps=2000, schedule="normalized")
    >>> 0.49 < fit.margin <= 0.5
    True
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if init not in ("zeros", "random"):
        raise ValueError(f"init must be 'zeros' or 'random', got {init!r}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    Xn, labels, C = _prepare(X, y)
    n, d = Xn.shape
    if lr is None:
        lr = multiclass_default_lr(Xn, labels, loss, schedule)
    if not (isinstance(lr, (int, float)) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    ref = None
    if reference is not None:
        ref = check_finite(torch.as_tensor(reference, dtype=torch.float64), "reference").numpy()
        if ref.shape != (C, d):
            raise ValueError(f"reference must have shape ({C}, {d}), got {tuple(ref.shape)}")
        ref = ref - ref.mean(axis=0)
        if not np.any(ref):
            raise ValueError("reference must have two different rows (its class-centred part is zero)")

    if init == "zeros":
        W, b = np.zeros((C, d)), np.zeros(C)
    else:
        gen = torch.Generator().manual_seed(seed if seed is not None else 0)
        W = (torch.randn(C, d, generator=gen, dtype=torch.float64) / d ** 0.5).numpy()
        b = (torch.randn(C, generator=gen, dtype=torch.float64) / d ** 0.5).numpy()
        if loss == "differential":
            b = np.zeros(C)

    obj = _MulticlassObjective(Xn, labels, C, loss, reduction)
    rec_steps = set(log_spaced_steps(steps, record) if isinstance(record, int) else
                    (int(s) for s in record))
    rec_steps.update({0, int(steps)})
    history: dict[str, list] = {"step": [], "loss": [], "margin": [], "w_norm": []}
    if ref is not None:
        history["cosine"] = []

    def offsets(W: np.ndarray, b: np.ndarray) -> np.ndarray:
        return b if loss == "cross_entropy" else multiclass_offsets(Xn @ W.T, labels).numpy()

    def log(step: int) -> None:
        bb = offsets(W, b)
        history["step"].append(step)
        history["loss"].append(obj.value(W, bb))
        history["w_norm"].append(float(np.linalg.norm(W)))
        history["margin"].append(_margin_or_nan(W, bb, Xn, labels))
        if ref is not None:
            Wc = W - W.mean(axis=0)
            nw = np.linalg.norm(Wc)
            history["cosine"].append(float(np.sum(Wc * ref) / (nw * np.linalg.norm(ref)))
                                     if nw > 0 else float("nan"))

    for step in progress(range(steps + 1), desc=f"GD multiclass {loss}", quiet=quiet):
        if step in rec_steps:
            log(step)
        if step == steps:
            break
        gW, gb = obj.grad(W, b) if schedule == "constant" else obj.log_loss_grad(W, b)
        W = W - lr * gW
        b = b - lr * gb
    b = offsets(W, b)
    config = {"loss": loss, "steps": int(steps), "lr": float(lr), "init": init, "seed": seed,
              "reduction": reduction, "schedule": schedule, "n_classes": C}
    return MulticlassFit(W=torch.from_numpy(W.copy()), b=torch.from_numpy(np.array(b, dtype=float)),
                         loss=loss, history=history, config=config)


def _margin_or_nan(W: np.ndarray, b: np.ndarray, X: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class margin, or NaN when a needed difference of rows of ``W`` is zero."""
    try:
        return multiclass_margin(W, b, X, labels)
    except ValueError:
        return float("nan")


class _MulticlassObjective:
    """Loss value (through torch / :mod:`lowrank.losses`) and its closed-form gradients in numpy.

    ``tests/test_multiclass_train.py`` checks both gradients against torch autograd.
    """

    def __init__(self, X: np.ndarray, labels: np.ndarray, C: int, loss: str, reduction: str) -> None:
        self.X, self.labels, self.C, self.loss, self.reduction = X, labels, C, loss, reduction
        n = X.shape[0]
        self.onehot = np.zeros((n, C))
        self.onehot[np.arange(n), labels] = 1.0
        self.other = self.onehot == 0
        self.members = [labels == c for c in range(C)]
        self.n_pairs = sum(int(m.sum()) * (n - int(m.sum())) for m in self.members)
        if loss == "differential":
            pi, pj, pc = [], [], []
            for c, m in enumerate(self.members):
                ins, outs = np.flatnonzero(m), np.flatnonzero(~m)
                pi.append(np.repeat(ins, outs.size))
                pj.append(np.tile(outs, ins.size))
                pc.append(np.full(ins.size * outs.size, c))
            self.pi, self.pj, self.pc = (np.concatenate(v) for v in (pi, pj, pc))

    def value(self, W: np.ndarray, b: np.ndarray) -> float:
        """Objective at ``(W, b)``."""
        S = torch.from_numpy(self.X @ W.T + b)
        y = torch.from_numpy(self.labels)
        if self.loss == "cross_entropy":
            return float(F.cross_entropy(S, y, reduction=self.reduction))
        return float(multiclass_differential_loss(S, y, reduction=self.reduction))

    def _pair_z(self, S: np.ndarray) -> np.ndarray:
        """``z = S_ic - S_jc`` for every pair (i in class c, j not in c), all classes at once."""
        return S[self.pi, self.pc] - S[self.pj, self.pc]

    def _pair_grad(self, S: np.ndarray, a: np.ndarray) -> np.ndarray:
        """``dL/dS`` from per-pair weights ``a = -dl/dz``: ``-a`` to ``S_ic``, ``+a`` to ``S_jc``."""
        n, C = S.shape
        flat = np.bincount(self.pi * C + self.pc, weights=-a, minlength=n * C)
        flat += np.bincount(self.pj * C + self.pc, weights=a, minlength=n * C)
        return flat.reshape(n, C)

    def _back(self, G: np.ndarray) -> np.ndarray:
        """``dL/dW`` from ``dL/dS``."""
        return G.T @ self.X

    def grad(self, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gradient of the objective with respect to ``(W, b)``."""
        S = self.X @ W.T + b
        if self.loss == "cross_entropy":
            P = np.exp(S - S.max(axis=1, keepdims=True))
            P /= P.sum(axis=1, keepdims=True)
            G = P - self.onehot
            if self.reduction == "mean":
                G /= S.shape[0]
            return self._back(G), G.sum(axis=0)
        G = self._pair_grad(S, expit(-self._pair_z(S)))  # sigmoid(-(s_i - s_j))
        if self.reduction == "mean":
            G /= self.n_pairs
        return self._back(G), np.zeros(self.C)

    def log_loss_grad(self, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gradient of ``log L`` (= ``grad L / L``), in log space so that nothing underflows.

        Cross-entropy: ``l_i = log(1 + sum_{c != y_i} exp(S_ic - S_iy))`` has
        ``dl_i/dS_ic = p_ic`` (``c != y_i``) and ``-sum_{c != y_i} p_ic`` at ``y_i``; the
        gradient of ``log L`` is these divided by ``L = sum_i l_i``, i.e.
        ``exp(log p_ic - log L)`` with ``log L = LSE_i log l_i``. Differential: as in
        :func:`lowrank.train.fit_linear`, pair weights ``sigmoid(-z) / L`` over all classes.
        """
        S = self.X @ W.T + b
        if self.loss == "cross_entropy":
            n = S.shape[0]
            s_own = S[np.arange(n), self.labels]
            D = np.where(self.other, S - s_own[:, None], -np.inf)  # S_ic - S_iy, c != y_i
            dmax = D.max(axis=1)
            z = dmax + np.log(np.exp(D - dmax[:, None]).sum(axis=1))  # LSE_{c != y} (S_ic - S_iy)
            log_l = _log_softplus_neg(-z)
            log_L = _lse(log_l)
            smax = S.max(axis=1, keepdims=True)
            log_p = S - (smax + np.log(np.exp(S - smax).sum(axis=1, keepdims=True)))
            G = np.exp(np.where(self.other, log_p - log_L, -np.inf))
            G[np.arange(n), self.labels] = -G.sum(axis=1)
            return self._back(G), G.sum(axis=0)
        z = self._pair_z(S)
        log_L = _lse(_log_softplus_neg(z))
        G = self._pair_grad(S, np.exp(-np.logaddexp(0.0, z) - log_L))  # sigmoid(-z) / L
        return self._back(G), np.zeros(self.C)

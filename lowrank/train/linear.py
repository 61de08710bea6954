"""Full-batch gradient descent for linear classifiers, in float64.

Cross-entropy training updates ``w`` and ``b``; differential training updates ``w``
only (the bias cancels in every score difference, its gradient is exactly zero) and sets
``b`` afterwards by the midpoint rule (:func:`lowrank.train.calibrate_bias`). Every
recorded margin of a differential run uses the bias calibrated at that step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.special import expit

from .._validation import (
    check_both_classes,
    check_int,
    check_matrix,
    check_real,
    check_same_length,
    check_seed,
    check_vector,
    signed_labels,
)
from ..analysis.margins import cosine, geometric_margin
from ..kernels import pairwise_logistic
from ..losses import PAIR_LOSSES, cross_entropy_loss, differential_loss
from ..progress import progress
from .bias import midpoint_bias

__all__ = ["LinearFit", "fit_linear", "log_spaced_steps", "LOSSES", "SCHEDULES", "DEFAULT_LR",
           "NORMALIZED_LR"]

LOSSES = ("cross_entropy", "differential")
SCHEDULES = ("constant", "normalized")

#: Default step of plain gradient descent (``schedule="constant"``), both losses.
DEFAULT_LR = 0.1

#: Default step of normalized gradient descent (``schedule="normalized"``), per loss. Its
#: step moves ``w`` by about ``lr * max_k ||grad z_k||`` whatever the loss value is:
#: differential training is stable at 1 on the package's studies; cross-entropy with a bias
#: oscillates there (and fails to separate data far from the origin after thousands of
#: steps), so it gets 0.1.
NORMALIZED_LR = {"cross_entropy": 0.1, "differential": 1.0}


@dataclass
class LinearFit:
    """Result of :func:`fit_linear`.

    Attributes
    ----------
    w : torch.Tensor, shape (d,)
        Final weights.
    b : float
        Final bias (midpoint-calibrated for differential training).
    loss : str
        ``"cross_entropy"`` or ``"differential"``.
    history : dict of lists
        ``step``, ``loss``, ``margin`` (signed geometric margin; negative while some point
        is misclassified; NaN while ``w = 0``), ``separated`` (whether ``(w, b)`` puts every
        training point strictly on its own side, i.e. ``margin > 0``: only then is
        ``margin`` a margin), ``w_norm``, ``b`` and, when a reference direction was given,
        ``cosine``.
    config : dict
        The arguments of the run.

    Examples
    --------
    >>> fit = fit_linear([[3.0, 1.0], [5.0, 1.0]], [-1, 1], steps=10, lr=0.5, record=[5])
    >>> fit.history["step"], fit.loss
    ([0, 5, 10], 'cross_entropy')
    """

    w: torch.Tensor
    b: float
    loss: str
    history: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    @property
    def margin(self) -> float:
        """Geometric margin at the last recorded step."""
        return self.history["margin"][-1]


def log_spaced_steps(steps: int, n: int) -> list[int]:
    """About ``n`` distinct integers from 1 to ``steps``, spaced evenly in log scale.

    Parameters
    ----------
    steps : int
        Last step (included).
    n : int
        Number of points asked for (duplicates after rounding are merged).

    Returns
    -------
    list of int
        Increasing steps; empty if ``steps < 1``.

    Examples
    --------
    >>> log_spaced_steps(1000, 4)
    [1, 10, 100, 1000]
    """
    if steps < 1:
        return []
    pts = np.unique(np.round(np.logspace(0, np.log10(steps), max(int(n), 2))).astype(int))
    return [int(p) for p in pts if 1 <= p <= steps]


def fit_linear(X, y, loss: str = "cross_entropy", steps: int = 10_000, lr: float | None = None,
               init: str = "zeros", seed: int | None = None,
               record: int | Sequence[int] = 50, reference=None,
               pair_loss: str = "logistic", reduction: str = "mean",
               schedule: str = "constant", quiet: bool = True) -> LinearFit:
    """Train ``f(x) = w . x + b`` by full-batch gradient descent in float64.

    Parameters
    ----------
    X : array-like, shape (n, d)
        Inputs.
    y : array-like, shape (n,)
        Labels in {-1, +1} or {0, 1}; both classes present.
    loss : {"cross_entropy", "differential"}
        Cross-entropy with a trained bias, or the all-pairs differential loss (bias set by
        the midpoint rule).
    steps : int
        Number of gradient steps.
    lr : float, optional
        Step size (finite, > 0). Default: :data:`DEFAULT_LR` (0.1) for
        ``schedule="constant"``, ``NORMALIZED_LR[loss]`` for ``schedule="normalized"``
        (0.1 for cross-entropy, 1 for differential training).
    init : {"zeros", "random"}
        Initial ``(w, b)``: zeros, or standard normal entries scaled by ``1/sqrt(d)``.
    seed : int, optional
        Seed for ``init="random"``.
    record : int or sequence of int
        Number of log-spaced steps at which to record the history, or the steps themselves
        (step 0 = the initial point).
    reference : array-like, shape (d,), optional
        A direction (e.g. the predicted limit); the history then holds ``cosine`` of ``w`` to it.
    pair_loss : {"logistic", "exponential"}
        Pair loss of the differential objective.
    reduction : {"mean", "sum"}
        Mean or sum over examples (cross-entropy) or pairs (differential).
    schedule : {"constant", "normalized"}
        ``"constant"``: plain gradient descent ``w <- w - lr * grad L`` (the dynamics the
        theory describes; the direction converges like ``1 / log t``).
        ``"normalized"``: normalized gradient descent ``w <- w - (lr / L(w)) * grad L``,
        i.e. gradient descent on ``log L``, computed in log space so that it keeps going
        after ``L`` underflows. It has the same limit direction for these exponentially
        tailed losses (Nacson et al., AISTATS 2019) and reaches it orders of magnitude
        sooner; use it to see the limit, not the pace of plain GD. Its step moves ``w`` by
        about ``lr * max ||grad z_k||`` whatever ``L`` is: for differential training
        ``lr = 1`` is stable on the package's studies, while cross-entropy with a bias
        needs a smaller step (``lr = 0.1``, its default: margin 0.4465 after 1e4 steps on
        the paper's two points); at ``lr >= 0.5`` that path oscillates, its value at a
        given step depends on rounding, and on data far from the origin it may not even
        separate the training points (check ``history["separated"]``). On real network
        features ``lr = 1`` makes the differential path chaotic too (use 0.3 there, as
        :mod:`lowrank.images.real_features` does). Once the margins are large, the
        differential log-loss gradient sets aside the pairs whose margins exceed the
        smallest by more than 80, with a certificate that keeps their weights below
        ``e^-60`` until the next full pass (``_PairScreen``): the same iterates to
        rounding, 4.6x faster over the first 3,000 steps on 160,000 pairs and far more
        later (``docs/benchmarks.md``).
    quiet : bool, default True
        Hide the progress bar.

    Returns
    -------
    LinearFit

    Raises
    ------
    TypeError
        If ``steps``, ``lr`` or ``seed`` is not a number (``seed``: an integer).
    ValueError
        On bad inputs (shapes, NaN/inf, complex values, labels, missing class) or arguments
        (``steps`` not a non-negative integer, ``lr`` not finite and positive), or if the
        iteration overflows (``lr`` far too large).

    Examples
    --------
    >>> fit = fit_linear([[3.0, 1.0], [5.0, 1.0]], [-1, 1], loss="differential", steps=200, lr=0.5)
    >>> round(fit.margin, 3)
    1.0
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if init not in ("zeros", "random"):
        raise ValueError(f"init must be 'zeros' or 'random', got {init!r}")
    if pair_loss not in PAIR_LOSSES:
        raise ValueError(f"pair_loss must be one of {PAIR_LOSSES}, got {pair_loss!r}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    steps = check_int(steps, "steps", minimum=0)
    if lr is None:
        lr = DEFAULT_LR if schedule == "constant" else NORMALIZED_LR[loss]
    lr = check_real(lr, "lr", minimum=0.0, strict=True)
    seed = check_seed(seed)
    X = check_matrix(X, "X", dtype=torch.float64, detach=True)
    ys = signed_labels(y, "y", dtype=torch.float64).to(X.device)
    check_same_length(X, ys, "X", "y")
    check_both_classes(ys, "y")
    n, d = X.shape
    ref = None
    if reference is not None:
        ref = check_vector(reference, "reference", dtype=torch.float64, detach=True).to(X.device)
        if ref.shape != (d,):
            raise ValueError(f"reference must have shape ({d},), got {tuple(ref.shape)}")

    if init == "zeros":
        w = torch.zeros(d, dtype=torch.float64, device=X.device)
        b = torch.zeros((), dtype=torch.float64, device=X.device)
    else:
        gen = torch.Generator().manual_seed(seed if seed is not None else 0)
        w = (torch.randn(d, generator=gen, dtype=torch.float64) / d ** 0.5).to(X.device)
        b = (torch.randn((), generator=gen, dtype=torch.float64) / d ** 0.5).to(X.device)
        if loss == "differential":
            b = torch.zeros((), dtype=torch.float64, device=X.device)

    obj = _LinearObjective(X, ys, loss, pair_loss, reduction)
    rec_steps = set(log_spaced_steps(steps, record) if isinstance(record, int) else
                    (int(s) for s in record))
    rec_steps.update({0, int(steps)})
    history: dict[str, list] = {"step": [], "loss": [], "margin": [], "separated": [], "w_norm": [],
                                "b": []}
    if ref is not None:
        history["cosine"] = []

    def log(step: int) -> None:
        with np.errstate(over="ignore", invalid="ignore"):
            finite = np.isfinite(Xn @ w + b).all() and np.isfinite(w).all()
        if not finite:
            raise ValueError(f"gradient descent diverged (w, b or the scores overflowed) by step "
                                     f"{step}: lr={lr!r} is too large for this data and schedule")
        wt = torch.from_numpy(w.copy())
        bb = float(b) if loss == "cross_entropy" else (
            midpoint_bias(torch.from_numpy(Xn @ w), ys) if np.any(w) else 0.0)
        norm = float(np.linalg.norm(w))
        history["step"].append(step)
        history["loss"].append(obj.value(w, bb))
        history["w_norm"].append(norm)
        history["b"].append(bb)
        margin = geometric_margin(wt, bb, X, ys) if norm > 0 else float("nan")
        history["margin"].append(margin)
        history["separated"].append(bool(margin > 0))
        if ref is not None:
            history["cosine"].append(cosine(wt, ref) if norm > 0 else float("nan"))

    Xn = X.cpu().numpy()
    w = w.detach().cpu().numpy().copy()
    b = float(b)
    for step in progress(range(steps + 1), desc=f"GD {loss}", quiet=quiet):
        if step in rec_steps:
            log(step)
        if step == steps:
            break
        gw, gb = obj.grad(w, b) if schedule == "constant" else obj.log_loss_grad(w, b)
        w -= lr * gw
        b -= lr * gb
    if loss == "differential":
        b = midpoint_bias(torch.from_numpy(Xn @ w), ys) if np.any(w) else 0.0

    w_final = torch.from_numpy(w).to(X.device)
    config = {"loss": loss, "steps": int(steps), "lr": float(lr), "init": init, "seed": seed,
              "pair_loss": pair_loss, "reduction": reduction, "schedule": schedule}
    return LinearFit(w=w_final, b=float(b), loss=loss, history=history, config=config)


class _LinearObjective:
    """Loss value (through the package's losses) and its closed-form gradient in numpy.

    The gradient is written out by hand so that a million steps on a small problem take
    seconds rather than minutes; ``tests/test_train_linear.py`` checks it against autograd.
    """

    #: above this many pairs the differential gradient goes through the pairwise kernel
    MAX_DENSE_PAIRS = 4_000_000

    def __init__(self, X: torch.Tensor, ys: torch.Tensor, loss: str, pair_loss: str,
                 reduction: str) -> None:
        self.X, self.ys, self.loss = X, ys, loss
        self.pair_loss, self.reduction = pair_loss, reduction
        self.Xn = X.cpu().numpy()
        self.yn = ys.cpu().numpy()
        self.Xp = self.Xn[self.yn > 0]
        self.Xq = self.Xn[self.yn < 0]
        self.n_pairs = self.Xp.shape[0] * self.Xq.shape[0]
        self._screen: _PairScreen | None = None
        self._diameter: float | None = None

    def value(self, w: np.ndarray, b: float) -> float:
        """Objective at ``(w, b)`` computed with :mod:`lowrank.losses`."""
        s = torch.from_numpy(self.Xn @ w + b)
        if self.loss == "cross_entropy":
            return float(cross_entropy_loss(s, self.ys, reduction=self.reduction))
        return float(differential_loss(s, self.ys, pair_loss=self.pair_loss,
                                       reduction=self.reduction))

    def grad(self, w: np.ndarray, b: float) -> tuple[np.ndarray, float]:
        """Gradient of the objective with respect to ``(w, b)``."""
        if self.loss == "cross_entropy":
            m = self.yn * (self.Xn @ w + b)
            g = -self.yn * expit(-m)
            if self.reduction == "mean":
                g /= m.shape[0]
            return self.Xn.T @ g, float(g.sum())
        sp_, sn_ = self.Xp @ w, self.Xq @ w
        if self.pair_loss == "exponential":
            a, c = _lse(-sp_), _lse(sn_)
            total = np.exp(a + c) / (self.n_pairs if self.reduction == "mean" else 1.0)
            gp = -total * np.exp(-sp_ - a)
            gn = total * np.exp(sn_ - c)
        elif self.n_pairs <= self.MAX_DENSE_PAIRS:
            S = expit(sn_[None, :] - sp_[:, None])  # sigmoid(-(s_i - s_j))
            gp, gn = -S.sum(axis=1), S.sum(axis=0)
            if self.reduction == "mean":
                gp /= self.n_pairs
                gn /= self.n_pairs
        else:
            tp = torch.from_numpy(sp_).requires_grad_(True)
            tn = torch.from_numpy(sn_).requires_grad_(True)
            pairwise_logistic(tp, tn, reduction=self.reduction).backward()
            gp, gn = tp.grad.numpy(), tn.grad.numpy()
        return self.Xp.T @ gp + self.Xq.T @ gn, 0.0

    def log_loss_grad(self, w: np.ndarray, b: float) -> tuple[np.ndarray, float]:
        """Gradient of ``log L`` (= ``grad L / L``), computed stably in log space.

        ``L`` is a sum of terms ``l(z_k)`` with margins ``z_k`` (``y_i s_i`` for
        cross-entropy, ``s_i - s_j`` for pairs); ``grad log L = sum_k a_k l'(z_k)/l(z_k)
        grad z_k`` with weights ``a_k = l(z_k) / L`` obtained by a log-sum-exp, so no term
        underflows to an exact zero however large the margins grow. The reduction (mean or
        sum) only rescales ``L`` and drops out.
        """
        if self.loss == "cross_entropy":
            z = self.yn * (self.Xn @ w + b)
            a = _log_weights(z)
            g = -self.yn * a
            return self.Xn.T @ g, float(g.sum())
        sp_, sn_ = self.Xp @ w, self.Xq @ w
        if self.pair_loss == "exponential":  # log L = LSE(-s_p) + LSE(s_n) + const
            gp = -np.exp(-sp_ - _lse(-sp_))
            gn = np.exp(sn_ - _lse(sn_))
            return self.Xp.T @ gp + self.Xq.T @ gn, 0.0
        if self._screen is not None and self._screen.covers(w):
            out = self._screened_log_loss_grad(sp_, sn_)
            if out is not None:
                return out
        rows = max(1, self.MAX_DENSE_PAIRS // max(1, sn_.size))
        blocks = [(i, min(i + rows, sp_.size)) for i in range(0, sp_.size, rows)]
        # pass 1: log L; pass 2: the weights of each block, summed over rows and columns
        terms = [_log_softplus_neg(sp_[i:j, None] - sn_[None, :]) for i, j in blocks]
        log_total = _lse([_lse(t) for t in terms]) if len(blocks) > 1 else _lse(terms[0])
        gp, gn = np.empty_like(sp_), np.zeros_like(sn_)
        for i, j in blocks:
            z = sp_[i:j, None] - sn_[None, :]
            a = np.exp(-np.logaddexp(0.0, z) - log_total)  # sigmoid(-z) / L
            gp[i:j] = -a.sum(axis=1)
            gn += a.sum(axis=0)
        if len(blocks) == 1 and self.n_pairs >= _PairScreen.MIN_PAIRS:
            self._screen = _PairScreen.build(z, w, self._pair_diameter)
        return self.Xp.T @ gp + self.Xq.T @ gn, 0.0

    def _screened_log_loss_grad(self, sp_: np.ndarray, sn_: np.ndarray
                                ) -> tuple[np.ndarray, float] | None:
        """``grad log L`` over the screen's pairs only (the others are below rounding).

        None if the kept pairs no longer all have positive margins (the screen's
        certificate needs them): the caller then makes a full pass.
        """
        i, j = self._screen.rows, self._screen.cols
        z = sp_[i] - sn_[j]
        if z.min() < 0:
            return None
        log_total = _lse(_log_softplus_neg(z))
        a = np.exp(-np.logaddexp(0.0, z) - log_total)
        gp = -np.bincount(i, weights=a, minlength=sp_.size)
        gn = np.bincount(j, weights=a, minlength=sn_.size)
        return self.Xp.T @ gp + self.Xq.T @ gn, 0.0

    @property
    def _pair_diameter(self) -> float:
        """An upper bound on ``max ||x_i - x_j||`` over positive/negative pairs."""
        if self._diameter is None:
            m = self.Xn.mean(axis=0)
            self._diameter = float(np.linalg.norm(self.Xp - m, axis=1).max()
                                   + np.linalg.norm(self.Xq - m, axis=1).max())
        return self._diameter


class _PairScreen:
    """The pairs that matter to ``grad log L`` near a point ``w_ref``, with a certificate.

    Normalized gradient descent on the all-pairs logistic loss spends almost all of its
    steps where every pair margin ``z_k = w.(x_i - x_j)`` is positive and large, and ``L``
    is dominated by a few pairs. When the smallest margin ``z_min >= 0``,
    ``softplus(-z_min) >= log(2) e^-z_min`` and both ``softplus(-z_k)`` and
    ``sigmoid(-z_k)`` are at most ``e^-z_k``: a pair whose margin exceeds the smallest by
    ``g`` carries at most ``e^-g / log 2`` of ``L`` and of the gradient's total weight.

    A full pass at ``w_ref`` keeps the pairs within ``SKIP`` of the smallest margin. At a
    later ``w = w_ref + a u + r`` (``u`` the unit vector of ``w_ref``, ``r`` orthogonal to it)
    a set-aside pair ``k`` and the pair ``j`` of smallest margin at ``w_ref`` satisfy
    ``z_k(w) - z_j(w) >= SKIP + a (m_k - m_j) - 2 D ||r||`` with ``m = z(w_ref) / ||w_ref||``,
    ``m_k >= m_j`` and ``D`` a bound on the pair differences' norms. So while ``a >= 0``,
    ``2 D ||r|| <= SKIP - NEGLIGIBLE`` and the kept pairs' margins are all positive, every
    set-aside pair stays ``NEGLIGIBLE`` above the smallest margin (which is then a kept
    pair's): together they change ``L`` and its gradient by at most
    ``n_pairs e^-NEGLIGIBLE / log 2`` relative (< 1e-19 for a million pairs), far below
    float64 rounding. Otherwise the next step is a full pass. Moving ``w`` along itself
    (what normalized gradient descent does once it separates the data) never voids the
    screen; only the turning part ``r`` does.
    """

    #: margin gap above the smallest margin beyond which a pair is set aside at a full pass
    SKIP = 80.0
    #: margin gap every set-aside pair keeps while the screen covers ``w``
    NEGLIGIBLE = 60.0
    #: screening pays only on problems at least this large, and when it sets aside at least
    #: three quarters of the pairs
    MIN_PAIRS = 20_000
    MAX_KEPT_FRACTION = 0.25

    def __init__(self, rows: np.ndarray, cols: np.ndarray, w_ref: np.ndarray, radius: float) -> None:
        self.rows, self.cols, self.radius = rows, cols, radius
        self.w_ref = w_ref
        self.u = w_ref / np.linalg.norm(w_ref)

    @classmethod
    def build(cls, z: np.ndarray, w: np.ndarray, diameter: float) -> _PairScreen | None:
        """The screen of one full pass (``z[i, j]`` the pair margins at ``w``), or None.

        None where it does not apply (a pair margin is negative) or does not pay.
        """
        z_min = float(z.min())
        if z_min < 0 or not np.isfinite(diameter) or not np.any(w):
            return None
        keep = z < z_min + cls.SKIP
        if keep.mean() > cls.MAX_KEPT_FRACTION:
            return None
        rows, cols = np.nonzero(keep)
        radius = (cls.SKIP - cls.NEGLIGIBLE) / (2.0 * diameter) if diameter > 0 else np.inf
        return cls(rows, cols, w.copy(), radius)

    def covers(self, w: np.ndarray) -> bool:
        """Whether the set-aside pairs are certainly negligible at ``w`` (given the kept
        pairs' margins are positive, which the screened pass checks)."""
        step = w - self.w_ref
        along = float(step @ self.u)
        return along >= 0 and float(np.linalg.norm(step - along * self.u)) <= self.radius


def _lse(x) -> float:
    """``log(sum(exp(x)))`` with a max shift (numpy; far less overhead than scipy's)."""
    x = np.asarray(x, dtype=np.float64)
    m = float(x.max())
    return m + float(np.log(np.exp(x - m).sum()))


def _log_softplus_neg(z: np.ndarray) -> np.ndarray:
    """``log(log(1 + exp(-z)))`` without underflow for large ``z``."""
    z = np.asarray(z, dtype=np.float64)
    big = z > 30.0
    out = np.empty_like(z)
    zb = z[big]
    out[big] = -zb + np.log1p(-0.5 * np.exp(-zb))  # log1p(e^-z) = e^-z (1 - e^-z / 2 + ...)
    out[~big] = np.log(np.logaddexp(0.0, -z[~big]))
    return out


def _log_weights(z: np.ndarray) -> np.ndarray:
    """``sigmoid(-z_k) / sum_j log(1 + exp(-z_j))`` for logistic terms, in log space."""
    return np.exp(-np.logaddexp(0.0, z) - _lse(_log_softplus_neg(z)))

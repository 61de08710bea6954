"""Geometric margins and the directions of linear separators."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import torch

from .._validation import check_matrix, check_same_length, check_vector, signed_labels

__all__ = ["geometric_margin", "SubspaceSplit", "subspace_split", "cosine", "angle_between",
           "separated_margins", "span_complement"]


def geometric_margin(w, b: float, X, y) -> float:
    """Smallest signed distance of the examples to the hyperplane ``w . x + b = 0``.

    ``min_i y_i (w . x_i + b) / ||w||_2``: positive when every example is on its own side,
    negative when some example is misclassified. Scale-safe: ``(w, b)`` is divided by
    ``max |w_j|`` first, so that ``||w||`` neither overflows (``w ~ 1e300``) nor underflows
    (``w ~ 1e-300``).

    Parameters
    ----------
    w : array-like, shape (d,)
        Weights (non-zero).
    b : float
        Bias.
    X : array-like, shape (n, d)
    y : array-like, shape (n,)
        Labels in {-1, +1} or {0, 1}.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On bad shapes, NaN/inf, bad labels, or ``w = 0``.

    Examples
    --------
    >>> round(geometric_margin([1.0, -2.0], -2.0, [[3.0, 1.0], [5.0, 1.0]], [-1, 1]) ** -2, 12)
    5.0
    """
    X = check_matrix(X, "X", dtype=torch.float64, detach=True)
    w = check_vector(w, "w", dtype=torch.float64, detach=True).to(X.device)
    ys = signed_labels(y, "y", dtype=torch.float64).to(X.device)
    check_same_length(X, ys, "X", "y")
    if w.shape[0] != X.shape[1]:
        raise ValueError(f"w must have length X.shape[1] = {X.shape[1]}, got {w.shape[0]}")
    b = float(b.detach()) if isinstance(b, torch.Tensor) else float(b)
    if not math.isfinite(b):
        raise ValueError(f"b must be finite, got {b}")
    scale = w.abs().max()
    if scale == 0:
        raise ValueError("w must be non-zero: the margin of a zero weight vector is undefined")
    w = w / scale  # largest entry 1: the norm below neither overflows nor underflows
    return float((ys * (X @ w + b / float(scale))).min() / torch.linalg.vector_norm(w))


class SubspaceSplit(NamedTuple):
    """A vector split into its part in a subspace and its part orthogonal to it.

    Attributes
    ----------
    inside : torch.Tensor
        Orthogonal projection on the subspace.
    orthogonal : torch.Tensor
        The rest, orthogonal to the subspace.

    Examples
    --------
    >>> subspace_split([3.0, 4.0], [[1.0], [0.0]]).orthogonal_fraction
    0.8
    """

    inside: torch.Tensor
    orthogonal: torch.Tensor

    @property
    def orthogonal_fraction(self) -> float:
        """``||orthogonal|| / ||inside + orthogonal||`` (0 = fully inside)."""
        total = torch.linalg.vector_norm(self.inside + self.orthogonal)
        return float(torch.linalg.vector_norm(self.orthogonal) / total) if total > 0 else 0.0


def subspace_split(w, basis) -> SubspaceSplit:
    """Split ``w`` into its projection on ``span(basis)`` and the orthogonal rest.

    Parameters
    ----------
    w : array-like, shape (d,)
    basis : array-like, shape (d, k)
        Columns spanning the subspace (need not be orthonormal).

    Returns
    -------
    SubspaceSplit
        ``inside + orthogonal == w``.

    Examples
    --------
    >>> s = subspace_split([1.0, -2.0], [[1.0], [0.0]])
    >>> s.inside.tolist(), s.orthogonal.tolist()
    ([1.0, 0.0], [0.0, -2.0])
    """
    w = check_vector(w, "w", dtype=torch.float64)
    B = check_matrix(basis, "basis", dtype=torch.float64).to(w.device)
    if B.shape[0] != w.shape[0]:
        raise ValueError(f"basis must have shape (len(w)={w.shape[0]}, k), got {tuple(B.shape)}")
    Q, _ = torch.linalg.qr(B)
    inside = Q @ (Q.T @ w)
    return SubspaceSplit(inside=inside, orthogonal=w - inside)


def _unit_pair(u, v) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two non-zero vectors of equal length and return them normalised."""
    u = check_vector(u, "u", dtype=torch.float64, detach=True)
    v = check_vector(v, "v", dtype=torch.float64, detach=True).to(u.device)
    if u.shape != v.shape:
        raise ValueError(f"u and v must have the same length, got {u.shape[0]} and {v.shape[0]}")
    su, sv = u.abs().max(), v.abs().max()
    if su == 0 or sv == 0:
        raise ValueError("u and v must be non-zero vectors")
    u, v = u / su, v / sv  # largest entry 1 first: the norms neither overflow nor underflow
    return u / torch.linalg.vector_norm(u), v / torch.linalg.vector_norm(v)


def cosine(u, v) -> float:
    """Cosine of the angle between two non-zero vectors.

    Parameters
    ----------
    u, v : array-like, shape (d,)

    Returns
    -------
    float
        In [-1, 1].

    Raises
    ------
    ValueError
        If a vector is zero, not finite, or the lengths differ.

    Examples
    --------
    >>> cosine([1.0, 0.0], [1.0, 1.0])  # doctest: +ELLIPSIS
    0.7071067811865...
    """
    a, b = _unit_pair(u, v)
    return float(torch.clamp(a @ b, -1.0, 1.0))


def angle_between(u, v, degrees: bool = False) -> float:
    """Angle between two non-zero vectors, computed stably with ``atan2``.

    Parameters
    ----------
    u, v : array-like, shape (d,)
    degrees : bool, default False
        Return degrees instead of radians.

    Returns
    -------
    float

    Examples
    --------
    >>> round(angle_between([1.0, 0.0], [0.0, 2.0], degrees=True), 12)
    90.0
    """
    a, b = _unit_pair(u, v)
    # atan2(|a - b|, |a + b|) * 2 is accurate for tiny and near-pi angles alike
    ang = 2.0 * math.atan2(float(torch.linalg.vector_norm(a - b)), float(torch.linalg.vector_norm(a + b)))
    return math.degrees(ang) if degrees else ang


def separated_margins(margins: Iterable[float]) -> tuple[list[float | None], list[bool]]:
    """Margins of the runs that separate the training data, ``None`` for the others.

    A weight vector whose signed geometric margin is not positive (some training point on
    the wrong side or on the boundary, or ``w = 0``) has no margin: reporting its negative
    number as a margin would be wrong, so it becomes ``None`` (JSON ``null``) and its flag
    ``False``.

    Parameters
    ----------
    margins : iterable of float
        Signed geometric margins (NaN allowed).

    Returns
    -------
    (list of float or None, list of bool)
        The margins with ``None`` where not separated, and the ``separated`` flags.

    Examples
    --------
    >>> separated_margins([-0.5, 0.0, 0.25, float("nan")])
    ([None, None, 0.25, None], [False, False, True, False])
    """
    margins = list(margins)
    flags = [bool(m is not None and m > 0) for m in margins]
    return [float(m) if ok else None for m, ok in zip(margins, flags, strict=True)], flags


def span_complement(M: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Orthonormal basis (columns) of the orthogonal complement of the row space of ``M``.

    Parameters
    ----------
    M : numpy.ndarray, shape (m, d)
        Rows spanning a subspace of R^d.
    tol : float, default 1e-10
        Singular values below ``tol`` times the largest count as zero (rank cut-off).

    Returns
    -------
    numpy.ndarray, shape (d, d - rank(M))
        Orthonormal columns orthogonal to every row of ``M``.

    Examples
    --------
    >>> span_complement(np.array([[1.0, 0.0, 0.0]])).shape
    (3, 2)
    """
    _, s, vt = np.linalg.svd(M, full_matrices=True)
    r = int((s > tol * max(s.max(), 1e-300)).sum()) if s.size else 0
    return vt[r:].T

"""The linear one-score classifier ``f(x) = w . x + b``."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LinearClassifier"]


class LinearClassifier(nn.Module):
    """Linear score ``f(x) = w . x + b``; predicts ``sign(f(x))``.

    Parameters
    ----------
    dim : int
        Input dimension.
    bias : bool, default True
        Whether the model has a bias ``b`` (otherwise ``b = 0``).
    dtype : torch.dtype, default torch.float64

    Examples
    --------
    >>> import torch
    >>> m = LinearClassifier(2)
    >>> m.forward(torch.tensor([[3.0, 1.0]], dtype=torch.float64)).tolist()
    [0.0]
    """

    def __init__(self, dim: int, bias: bool = True, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        if int(dim) != dim or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self.weight = nn.Parameter(torch.zeros(int(dim), dtype=dtype))
        self.bias = nn.Parameter(torch.zeros((), dtype=dtype), requires_grad=bias)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Scores ``X @ w + b`` of shape (n,)."""
        if X.ndim != 2 or X.shape[1] != self.weight.shape[0]:
            raise ValueError(f"X must have shape (n, {self.weight.shape[0]}), got {tuple(X.shape)}")
        return X @ self.weight + self.bias

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Labels in {-1, +1} (a score of exactly 0 is read as +1)."""
        with torch.no_grad():
            s = self.forward(X)
        return torch.where(s >= 0, 1.0, -1.0).to(s.dtype)

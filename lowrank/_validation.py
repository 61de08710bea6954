"""Input checks shared by every public function.

Each check raises :class:`ValueError` whose message names the offending
argument and says what was expected, so that a user sees at once which of
their inputs is wrong.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "as_tensor",
    "check_finite",
    "check_matrix",
    "check_vector",
    "signed_labels",
    "check_same_length",
    "check_both_classes",
]


def as_tensor(x, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert array-like ``x`` to a tensor, naming ``name`` if that fails."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be array-like of numbers, got {type(x).__name__}") from err
    if t.is_complex():
        raise TypeError(f"{name} must be real, got complex dtype {t.dtype} "
                        "(its imaginary part would be lost)")
    if dtype is not None:
        t = t.to(dtype)
    return t


def check_finite(t: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ValueError if ``t`` holds NaN or infinity."""
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        n_bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} must be finite, but it holds {n_bad} NaN or inf value(s)")
    return t


def check_matrix(X, name: str = "X", dtype: torch.dtype | None = None) -> torch.Tensor:
    """Return ``X`` as a finite 2-D floating tensor of shape (n, d) with n >= 1."""
    t = as_tensor(X, name, dtype)
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D of shape (n_samples, n_features), got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return check_finite(t, name)


def check_vector(v, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Return ``v`` as a finite, non-empty 1-D floating tensor."""
    t = as_tensor(v, name, dtype)
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name} must not be empty")
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return check_finite(t, name)


def signed_labels(y, name: str = "y", dtype: torch.dtype | None = None) -> torch.Tensor:
    """Return labels as a 1-D tensor with values in {-1, +1}.

    Accepts labels in {-1, +1} or in {0, 1} (0 is read as the negative class).
    Raises ValueError naming ``name`` for any other value, NaN, or wrong shape.
    """
    t = as_tensor(y, name)
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D of shape (n_samples,), got shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name} must not be empty")
    if t.dtype == torch.bool:
        t = t.to(torch.int64)
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must hold labels in {{-1, +1}} or {{0, 1}}, but it holds NaN or inf")
    values = set(torch.unique(t).tolist())
    if values <= {-1, 1}:
        out = t
    elif values <= {0, 1}:
        out = 2 * t - 1
    elif values <= {-1, 0, 1}:
        raise ValueError(f"{name} mixes the label sets {{-1, +1}} and {{0, 1}}: got {sorted(values)}")
    else:
        bad = sorted(values - {-1, 0, 1})[:5]
        raise ValueError(f"{name} must hold labels in {{-1, +1}} or {{0, 1}}, got values {bad}")
    return out.to(dtype if dtype is not None else torch.get_default_dtype())


def check_same_length(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Raise ValueError unless ``a`` and ``b`` have the same first dimension."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same length, got {a.shape[0]} and {b.shape[0]}"
        )


def check_both_classes(y_signed: torch.Tensor, name: str = "y") -> None:
    """Raise ValueError unless both classes (+1 and -1) occur in ``y_signed``."""
    n_pos = int((y_signed > 0).sum())
    n_neg = int((y_signed < 0).sum())
    if n_pos == 0 or n_neg == 0:
        missing = "positive (+1)" if n_pos == 0 else "negative (-1 or 0)"
        raise ValueError(f"{name} must contain both classes, but no {missing} example is present")

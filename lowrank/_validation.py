"""Input checks shared by every public function.

Each check raises :class:`ValueError` whose message names the offending
argument and says what was expected, so that a user sees at once which of
their inputs is wrong.
"""

from __future__ import annotations

import math
import numbers

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
    "check_int",
    "check_real",
    "check_seed",
    "check_float_dtype",
    "class_labels",
]


def as_tensor(x, name: str, dtype: torch.dtype | None = None, detach: bool = False) -> torch.Tensor:
    """Convert array-like ``x`` to a real tensor, naming ``name`` if that fails.

    Complex input raises ValueError (casting it to a real dtype would silently drop the
    imaginary part). ``detach=True`` returns a tensor cut from the autograd graph (for
    functions that read the values only, e.g. through numpy).
    """
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{name} must be array-like of numbers, got {type(x).__name__}") from err
    if t.is_complex():
        raise ValueError(f"{name} must be real-valued, got complex dtype {t.dtype} (casting would "
                         f"discard the imaginary part)")
    if detach:
        t = t.detach()
    if dtype is not None:
        t = t.to(dtype)
    return t


def check_finite(t: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ValueError if ``t`` holds NaN or infinity."""
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        n_bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} must be finite, but it holds {n_bad} NaN or inf value(s)")
    return t


def check_matrix(X, name: str = "X", dtype: torch.dtype | None = None,
                 detach: bool = False) -> torch.Tensor:
    """Return ``X`` as a finite, real 2-D floating tensor of shape (n, d) with n >= 1.

    ``detach=True``: cut from the autograd graph (see :func:`as_tensor`).
    """
    t = as_tensor(X, name, dtype, detach)
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D of shape (n_samples, n_features), got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return check_finite(t, name)


def check_vector(v, name: str, dtype: torch.dtype | None = None,
                 detach: bool = False, *, finite: bool = True) -> torch.Tensor:
    """Return ``v`` as a real, non-empty 1-D floating tensor, finite unless ``finite=False``.

    ``detach=True``: cut from the autograd graph (see :func:`as_tensor`). ``finite=False``
    skips the NaN/inf check (which reads the values: on a GPU it synchronises the device),
    for callers that check finiteness on the device.
    """
    t = as_tensor(v, name, dtype, detach)
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name} must not be empty")
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return check_finite(t, name) if finite else t


def signed_labels(y, name: str = "y", dtype: torch.dtype | None = None) -> torch.Tensor:
    """Return labels as a 1-D tensor with values in {-1, +1}.

    Accepts labels in {-1, +1} or in {0, 1} (0 is read as the negative class).
    Raises ValueError naming ``name`` for any other value, NaN, or wrong shape. The result
    is detached from any autograd graph (labels are never differentiated).
    """
    t = as_tensor(y, name, detach=True)
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


def _real_scalar(value, name: str) -> float | int:
    """``value`` as a Python int or float; TypeError naming ``name`` for anything else."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.ndim == 0 \
            and not value.is_complex() and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def check_int(value, name: str, minimum: int | None = None) -> int:
    """Return ``value`` as an ``int``; integral floats such as ``1e4`` are accepted.

    Raises TypeError naming ``name`` unless ``value`` is a real number, and ValueError if it
    is not a finite integer or is below ``minimum``.

    Examples
    --------
    >>> check_int(1e4, "steps", minimum=0)
    10000
    >>> check_int(float("inf"), "steps")
    Traceback (most recent call last):
    ...
    ValueError: steps must be a finite integer, got inf
    """
    v = _real_scalar(value, name)
    if isinstance(v, float) and not (math.isfinite(v) and v.is_integer()):
        raise ValueError(f"{name} must be a finite integer{_bound(minimum)}, got {value!r}")
    v = int(v)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be an integer{_bound(minimum)}, got {value!r}")
    return v


def check_real(value, name: str, minimum: float | None = None, strict: bool = False) -> float:
    """Return ``value`` as a finite ``float``, at least ``minimum`` (above it if ``strict``).

    Raises TypeError naming ``name`` unless ``value`` is a real number (strings are
    rejected), and ValueError if it is NaN, infinite or out of range.

    Examples
    --------
    >>> check_real(0.5, "lr", minimum=0.0, strict=True)
    0.5
    >>> check_real("0.1", "lr", minimum=0.0, strict=True)
    Traceback (most recent call last):
    ...
    TypeError: lr must be a real number, got str '0.1'
    """
    v = float(_real_scalar(value, name))
    if not math.isfinite(v) or minimum is not None and (v <= minimum if strict else v < minimum):
        raise ValueError(f"{name} must be a finite number{_bound(minimum, strict)}, got {value!r}")
    return v


def _bound(minimum, strict: bool = False) -> str:
    return "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"


def check_seed(seed, name: str = "seed") -> int | None:
    """Return ``seed`` as an ``int`` accepted by :meth:`torch.Generator.manual_seed`, or None.

    Raises TypeError naming ``name`` unless it is None or an integer (``1.5``, ``True`` and
    strings are rejected), ValueError if it lies outside ``[-2**63, 2**64)``.

    Examples
    --------
    >>> check_seed(3), check_seed(None)
    (3, None)
    """
    if seed is None:
        return None
    if isinstance(seed, bool | np.bool_) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be an integer or None, got {type(seed).__name__} {seed!r}")
    seed = int(seed)
    if not -(2 ** 63) <= seed < 2 ** 64:
        raise ValueError(f"{name} must lie in [-2**63, 2**64), got {seed}")
    return seed


def check_float_dtype(dtype, name: str = "dtype") -> torch.dtype:
    """Return a floating :class:`torch.dtype` from a torch dtype, its name or a numpy dtype.

    Accepts e.g. ``torch.float32``, ``"float32"``, ``"torch.float32"``, ``numpy.float32``.
    Raises TypeError naming ``name`` for anything that is not a real floating dtype
    (integers would truncate the data, complex types are not supported).

    Examples
    --------
    >>> check_float_dtype("float32"), check_float_dtype(torch.float16)
    (torch.float32, torch.float16)
    """
    out = None
    if isinstance(dtype, torch.dtype):
        out = dtype
    elif isinstance(dtype, str):
        out = getattr(torch, dtype.removeprefix("torch."), None)
    elif dtype is not None:
        try:
            out = torch.from_numpy(np.empty(0, dtype=np.dtype(dtype))).dtype
        except (TypeError, ValueError):
            out = None
    if not isinstance(out, torch.dtype) or not out.is_floating_point:
        raise TypeError(f"{name} must be a floating dtype such as torch.float32 or torch.float64 "
                        f"(or its name), got {dtype!r}")
    return out


def class_labels(y, name: str = "y", n_classes: int | None = None,
                 require_all: bool = True) -> torch.Tensor:
    """Return multi-class labels as a 1-D int64 tensor with values in {0, ..., C-1}.

    ``C`` is ``n_classes`` when given (it must be >= 2), else ``max(y) + 1``. Integer
    dtypes and floats holding whole numbers are accepted. With ``require_all`` every class
    must occur at least once. Raises ValueError naming ``name`` otherwise.
    """
    t = as_tensor(y, name)
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D of shape (n_samples,), got shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name} must not be empty")
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{name} must hold integer class labels, got dtype {t.dtype}")
    if t.is_floating_point():
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} must hold integer class labels, but it holds NaN or inf")
        if not bool((t == torch.round(t)).all()):
            raise ValueError(f"{name} must hold integer class labels, got non-integer values")
    t = t.to(torch.int64)
    if n_classes is not None:
        if isinstance(n_classes, bool) or int(n_classes) != n_classes or n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        n_classes = int(n_classes)
    lo, hi = int(t.min()), int(t.max())
    C = n_classes if n_classes is not None else hi + 1
    if lo < 0 or hi >= C:
        bad = sorted({v for v in torch.unique(t).tolist() if v < 0 or v >= C})[:5]
        raise ValueError(f"{name} must hold labels in {{0, ..., {C - 1}}}, got values {bad}")
    if C < 2:
        raise ValueError(f"{name} must hold at least two classes (labels 0 and 1), got only label 0")
    if require_all:
        counts = torch.bincount(t, minlength=C)
        missing = torch.nonzero(counts == 0).flatten().tolist()
        if missing:
            raise ValueError(f"{name} must contain every class 0..{C - 1}, but class(es) "
                             f"{missing[:5]} have no example")
    return t

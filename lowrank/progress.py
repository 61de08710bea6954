"""Progress bars that a caller can silence (tqdm)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

__all__ = ["progress", "progress_disabled"]

T = TypeVar("T")


def progress_disabled(quiet: bool = False) -> bool:
    """True when bars should be hidden: ``quiet`` or ``LOWRANK_QUIET=1`` in the environment."""
    return bool(quiet) or os.environ.get("LOWRANK_QUIET", "") not in ("", "0")


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, quiet: bool = False,
             **kwargs) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar unless ``quiet`` (or ``LOWRANK_QUIET``) is set."""
    return tqdm(iterable, desc=desc, total=total, disable=progress_disabled(quiet),
                dynamic_ncols=True, leave=False, **kwargs)

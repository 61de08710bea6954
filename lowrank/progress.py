"""Progress bars that a caller can silence (tqdm)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

__all__ = ["progress", "progress_disabled"]

T = TypeVar("T")


def progress_disabled(quiet: bool = False) -> bool:
    """Whether progress bars should be hidden.

    Parameters
    ----------
    quiet : bool, default False
        The caller's wish to be silent.

    Returns
    -------
    bool
        True if ``quiet`` or if ``LOWRANK_QUIET`` is set to anything but ``""``/``"0"``.

    Examples
    --------
    >>> progress_disabled(quiet=True)
    True
    """
    return bool(quiet) or os.environ.get("LOWRANK_QUIET", "") not in ("", "0")


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, quiet: bool = False,
             **kwargs) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar unless ``quiet`` (or ``LOWRANK_QUIET``) is set.

    Parameters
    ----------
    iterable : iterable
        What to iterate over.
    desc : str
        Label of the bar.
    total : int, optional
        Length, when ``iterable`` has none.
    quiet : bool, default False
        Hide the bar.
    **kwargs
        Passed to :class:`tqdm.tqdm`.

    Returns
    -------
    iterable
        The same items, in order.

    Examples
    --------
    >>> list(progress(range(3), quiet=True))
    [0, 1, 2]
    """
    return tqdm(iterable, desc=desc, total=total, disable=progress_disabled(quiet),
                dynamic_ncols=True, leave=False, **kwargs)

"""Progress bars that a caller can silence (tqdm).

A caller hides one bar with ``quiet=True``; the environment hides them all with tqdm's own
``TQDM_DISABLE=1`` (tqdm reads its ``TQDM_*`` variables as defaults), as the docs build and
the tests do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

__all__ = ["progress"]

T = TypeVar("T")


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, quiet: bool = False,
             **kwargs) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar unless ``quiet`` (or ``TQDM_DISABLE``) is set.

    Parameters
    ----------
    iterable : iterable
        What to iterate over.
    desc : str
        Label of the bar.
    total : int, optional
        Length, when ``iterable`` has none.
    quiet : bool, default False
        Hide the bar. Otherwise tqdm decides: ``TQDM_DISABLE=1`` in the environment hides
        every bar.
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
    if quiet:
        kwargs["disable"] = True
    return tqdm(iterable, desc=desc, total=total, dynamic_ncols=True, leave=False, **kwargs)

"""Exact predictions: max-margin and cross-entropy-limit separators, closed forms."""

from . import svm
from . import closed_form
from .svm import *  # noqa: F401,F403
from .closed_form import *  # noqa: F401,F403

__all__ = [*svm.__all__, *closed_form.__all__, ]

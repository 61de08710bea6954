"""Exact predictions: max-margin and cross-entropy-limit separators, closed forms."""

from . import closed_form, multiclass, svm
from .closed_form import *  # noqa: F401,F403
from .multiclass import *  # noqa: F401,F403
from .svm import *  # noqa: F401,F403

__all__ = [*svm.__all__, *closed_form.__all__, *multiclass.__all__, ]

"""Measurements on trained models: margins, directions, feature spectra."""

from . import bootstrap, features, margins, multiclass
from .bootstrap import *  # noqa: F401,F403
from .features import *  # noqa: F401,F403
from .margins import *  # noqa: F401,F403
from .multiclass import *  # noqa: F401,F403

__all__ = [*bootstrap.__all__, *margins.__all__, *features.__all__, *multiclass.__all__, ]

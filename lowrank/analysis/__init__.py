"""Measurements on trained models: margins, directions, feature spectra."""

from . import margins
from . import features
from .margins import *  # noqa: F401,F403
from .features import *  # noqa: F401,F403

__all__ = [*margins.__all__, *features.__all__, ]

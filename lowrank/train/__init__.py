"""Training under cross-entropy and the differential loss, and bias calibration."""

from . import bias, deep, linear
from .bias import *  # noqa: F401,F403
from .deep import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403

__all__ = [*bias.__all__, *linear.__all__, *deep.__all__, ]

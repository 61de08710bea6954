"""Training under cross-entropy and the differential loss, and bias calibration."""

from . import bias, deep, linear, multiclass, step_sizes
from .bias import *  # noqa: F401,F403
from .deep import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .multiclass import *  # noqa: F401,F403
from .step_sizes import *  # noqa: F401,F403

__all__ = [*bias.__all__, *linear.__all__, *deep.__all__, *multiclass.__all__, *step_sizes.__all__, ]

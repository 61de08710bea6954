"""Models that give one real score per input (linear and deep), or C logits (deep)."""

from . import deep, linear
from .deep import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403

__all__ = [*linear.__all__, *deep.__all__, ]

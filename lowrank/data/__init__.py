"""Datasets: synthetic low-rank data and real image tasks."""

from . import cifar10, fashion_mnist, multiclass, synthetic
from .cifar10 import *  # noqa: F401,F403
from .fashion_mnist import *  # noqa: F401,F403
from .multiclass import *  # noqa: F401,F403
from .synthetic import *  # noqa: F401,F403

__all__ = [*synthetic.__all__, *cifar10.__all__, *fashion_mnist.__all__, *multiclass.__all__, ]

"""Measured against predicted margins: the shared logic of the synthetic studies.

A study describes each configuration as a small dict (data parameters and step budgets);
a worker of this package turns one configuration into a *record*: the exact predictions
(:mod:`lowrank.theory`), the margins measured after gradient descent
(:mod:`lowrank.train`) and their ratios, with ``None`` where a run does not separate the
training data. :func:`lowrank.sweep.run_configs` runs the workers over a sweep.

* :mod:`~lowrank.margin_study.binary`: two classes (``margin_config``, ``margin_records``,
  ``training_run``);
* :mod:`~lowrank.margin_study.multiclass`: several classes (``multiclass_margin_config``);
* :mod:`~lowrank.margin_study.records`: CSV rows and report lines of the records.
"""

from . import binary, multiclass, records
from .binary import *  # noqa: F401,F403
from .multiclass import *  # noqa: F401,F403
from .records import *  # noqa: F401,F403

__all__ = [*binary.__all__, *multiclass.__all__, *records.__all__]

"""The real-image studies as library code: tasks, robustness, protocol, studies, figures.

:mod:`~lowrank.images.tasks` (data, subsets, eps grids, options),
:mod:`~lowrank.images.robustness` (cached input-space minimum norms),
:mod:`~lowrank.images.protocol` (the protocol entries of the JSON),
:mod:`~lowrank.images.comparison` (intervals and paired comparisons of the two losses),
:mod:`~lowrank.images.binary` (cross-entropy against differential training end to end),
:mod:`~lowrank.images.heads` (last layers on frozen features, shifted features),
:mod:`~lowrank.images.real_features` (the three arms of the real-features study),
:mod:`~lowrank.images.multiclass_heads` and :mod:`~lowrank.images.multiclass` (the C-class
study: exact multi-class predictions on real features, retrained heads, attacks) and
:mod:`~lowrank.images.plots` / :mod:`~lowrank.images.real_features_plots` /
:mod:`~lowrank.images.multiclass_plots` (figures).
Nothing is imported at package import: use the submodules.
"""

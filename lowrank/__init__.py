"""lowrank: adversarial examples from cross-entropy on low-rank data, and differential training.

Reference implementation of Nar, Ocal, Sastry and Ramchandran, *Cross-Entropy Loss
and Low-Rank Features Have Responsibility for Adversarial Examples* (arXiv 1901.08360).

Subpackages
-----------
data      synthetic affine-subspace data, CIFAR-10 and Fashion-MNIST binary tasks
losses    cross-entropy and differential (all-pairs) losses
kernels   fused pairwise logistic loss (Triton) and a memory-bounded torch fallback
models    linear and deep one-score classifiers
train     gradient-descent training and the midpoint bias rule
theory    exact max-margin / cross-entropy-limit separators and sympy closed forms
analysis  margins, directions, feature spectra
attacks   minimum-norm adversarial evaluation
distributed  the all-pairs loss over the union of torch.distributed ranks (``import lowrank.distributed``)
"""

from . import analysis, data, kernels, losses, models, theory, train  # noqa: F401

__version__ = "0.1.0"
__all__ = ["analysis", "data", "kernels", "losses", "models", "theory", "train", "__version__"]

"""Image tasks for the studies: loading, subsets, names and attack budgets.

What the image studies share before any training: which dataset and classes
(:data:`DATASETS`, :data:`DEFAULT_CLASSES`; :func:`load_task` for a pair,
:func:`load_multiclass_task` for several classes), how a run is named (:func:`pair_slug`,
:func:`classes_slug`), the class-balanced training subset (:func:`balanced_subset`), the attacked
subsamples (:func:`subsample_indices`) and the eps grids of the attack curves
(:data:`EPS`).
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .._validation import check_int
from ..cli import data_dir_from
from ..data import (
    CIFAR10_CLASSES,
    FASHION_MNIST_CLASSES,
    BinaryImageTask,
    ImageTask,
    load_cifar10,
    load_cifar10_binary,
    load_fashion_mnist,
    load_fashion_mnist_binary,
)

__all__ = ["add_image_arguments", "DATASETS", "DEFAULT_CLASSES", "EPS", "NORMS", "SPLITS",
           "pair_slug", "classes_slug", "load_task", "load_multiclass_task", "subsample_indices",
           "balanced_subset", "eps_grids", "CLASS_NAMES"]

DATASETS = ("cifar10", "fashion_mnist")
NORMS = ("l2", "linf")
SPLITS = ("train", "test")
DEFAULT_CLASSES = {"cifar10": ("cat", "dog"), "fashion_mnist": ("Shirt", "T-shirt/top")}
#: Every class of each dataset, in label order (the default of the multi-class studies).
CLASS_NAMES = {"cifar10": CIFAR10_CLASSES, "fashion_mnist": FASHION_MNIST_CLASSES}

#: eps grids (start, stop, points) of the share-vs-eps curves, the eps values reported in the
#: summaries, and the fixed eps of the PGD cross-check; pixels in [0, 1].
EPS = {
    "cifar10": {"l2": (0.0, 2.0, 81), "linf": (0.0, 0.1, 81),
                "report": {"l2": [0.25, 0.5, 1.0], "linf": [2 / 255, 4 / 255, 8 / 255]},
                "pgd": {"l2": 0.5, "linf": 4 / 255}},
    "fashion_mnist": {"l2": (0.0, 4.0, 81), "linf": (0.0, 0.3, 61),
                      "report": {"l2": [0.5, 1.0, 2.0], "linf": [0.05, 0.1, 0.2]},
                      "pgd": {"l2": 1.0, "linf": 0.1}},
}


def slug(s: str) -> str:
    """Lower-case ``s`` with runs of other characters replaced by ``-``.

    Examples
    --------
    >>> slug("T-shirt/top")
    't-shirt-top'
    """
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def pair_slug(classes: Sequence[str]) -> str:
    """File-name part of a class pair.

    Parameters
    ----------
    classes : pair of str
        (positive, negative) class names.

    Returns
    -------
    str

    Examples
    --------
    >>> pair_slug(("Shirt", "T-shirt/top"))
    'shirt_vs_t-shirt-top'
    """
    return f"{slug(str(classes[0]))}_vs_{slug(str(classes[1]))}"


def classes_slug(dataset: str, classes: Sequence[str] | None) -> str:
    """File-name part of a multi-class task: ``all`` for every class, else the class slugs.

    Parameters
    ----------
    dataset : {"cifar10", "fashion_mnist"}
    classes : sequence of str, optional
        The classes, in label order (None: all).

    Returns
    -------
    str

    Examples
    --------
    >>> classes_slug("fashion_mnist", None), classes_slug("fashion_mnist", ["Shirt", "Bag", "Coat"])
    ('all', 'shirt_bag_coat')
    """
    if classes is None or [slug(str(c)) for c in classes] == [slug(c) for c in CLASS_NAMES[dataset]]:
        return "all"
    return "_".join(slug(str(c)) for c in classes)


def eps_grids(dataset: str) -> dict[str, np.ndarray]:
    """The eps grid of each norm for ``dataset`` (see :data:`EPS`).

    Parameters
    ----------
    dataset : {"cifar10", "fashion_mnist"}

    Returns
    -------
    dict of str to numpy.ndarray

    Raises
    ------
    ValueError
        For an unknown dataset.

    Examples
    --------
    >>> g = eps_grids("fashion_mnist")
    >>> len(g["l2"]), float(g["linf"][-1])
    (81, 0.3)
    """
    if dataset not in EPS:
        raise ValueError(f"dataset must be one of {tuple(EPS)}, got {dataset!r}")
    return {n: np.linspace(*EPS[dataset][n]) for n in NORMS}


def load_task(dataset: str, classes: Sequence | None, data_dir: str | os.PathLike | None,
              checksums: str = "official", download: bool = False,
              quiet: bool = True) -> BinaryImageTask:
    """Load a two-class task with the study options (``--data-dir``, ``--checksums``, ...).

    Parameters
    ----------
    dataset : {"cifar10", "fashion_mnist"}
    classes : pair of str or int, optional
        (positive, negative); default :data:`DEFAULT_CLASSES`.
    data_dir : path-like, optional
        Dataset directory; default ``$LOWRANK_DATA``.
    checksums : str
        ``"official"``, ``"none"`` or a JSON manifest file (file name -> md5).
    download : bool
        Fetch the official files if absent.
    quiet : bool
        Hide download progress.

    Returns
    -------
    BinaryImageTask

    Raises
    ------
    ValueError
        For an unknown dataset, no data directory, or files that fail their checksums.

    Examples
    --------
    >>> task = load_task("fashion_mnist", ("Sneaker", "Sandal"), "/data")  # doctest: +SKIP
    >>> task.classes  # doctest: +SKIP
    ('Sneaker', 'Sandal')
    """
    return _load(dataset, (load_cifar10_binary, load_fashion_mnist_binary),
                 tuple(classes) if classes else DEFAULT_CLASSES.get(dataset), data_dir, checksums,
                 download, quiet)


def _load(dataset: str, loaders, classes, data_dir, checksums: str, download: bool, quiet: bool):
    """Call the CIFAR-10 or Fashion-MNIST loader of ``loaders`` with the study options."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    sums = None if checksums == "none" else ("official" if checksums == "official"
                                             else Path(checksums))
    loader = loaders[0] if dataset == "cifar10" else loaders[1]
    return loader(data_dir_from(data_dir), classes, checksums=sums, download=download, quiet=quiet)


def load_multiclass_task(dataset: str, classes: Sequence | None, data_dir: str | os.PathLike | None,
                         checksums: str = "official", download: bool = False,
                         quiet: bool = True) -> ImageTask:
    """Load a multi-class task (labels 0..C-1) with the study options.

    Parameters
    ----------
    dataset : {"cifar10", "fashion_mnist"}
    classes : sequence of str or int, optional
        The classes (at least two), in label order; default: all ten.
    data_dir, checksums, download, quiet
        As in :func:`load_task`.

    Returns
    -------
    ImageTask

    Raises
    ------
    ValueError
        For an unknown dataset, no data directory, or files that fail their checksums.

    Examples
    --------
    >>> task = load_multiclass_task("fashion_mnist", None, "/data")  # doctest: +SKIP
    >>> len(task.classes)  # doctest: +SKIP
    10
    """
    return _load(dataset, (load_cifar10, load_fashion_mnist),
                 None if classes is None else tuple(classes), data_dir, checksums, download, quiet)


def subsample_indices(n_total: int, n: int | None, seed: int) -> torch.Tensor:
    """Sorted indices of ``min(n, n_total)`` items drawn without replacement (all for None).

    Drawn on the CPU from ``torch.Generator().manual_seed(seed)``: the same items on every
    device.

    Parameters
    ----------
    n_total : int
        Number of items.
    n : int or None
        How many to draw.
    seed : int

    Returns
    -------
    torch.Tensor
        Sorted int64 indices.

    Examples
    --------
    >>> subsample_indices(10, 3, seed=0).tolist()
    [1, 4, 7]
    >>> subsample_indices(4, None, seed=0).tolist()
    [0, 1, 2, 3]
    """
    n_total = check_int(n_total, "n_total", minimum=0)
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(n_total, generator=g)
    k = n_total if n is None else min(check_int(n, "n", minimum=0), n_total)
    return torch.sort(idx[:k]).values


def balanced_subset(y: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    """Sorted indices of at most ``n // C`` examples of each of the ``C`` classes (all for None).

    Parameters
    ----------
    y : torch.Tensor, shape (m,)
        Labels ({-1, +1}, or classes 0..C-1).
    n : int or None
        Subset size (``n // C`` per class, ``C`` the number of distinct labels).
    seed : int
        Seed of :func:`subsample_indices` (the same for every class).

    Returns
    -------
    torch.Tensor
        Sorted int64 indices.

    Examples
    --------
    >>> balanced_subset(torch.tensor([1.0, 1, 1, -1, -1, -1]), 4, seed=0).tolist()
    [0, 2, 3, 5]
    >>> balanced_subset(torch.tensor([0, 1, 2, 0, 1, 2, 0]), 3, seed=0).tolist()
    [1, 2, 6]
    """
    y = y.cpu()
    if n is None or len(y) <= n:
        return torch.arange(len(y))
    labels = torch.unique(y)
    keep = []
    for c in labels:
        cls_idx = torch.nonzero(y == c).flatten()
        keep.append(cls_idx[subsample_indices(len(cls_idx), n // len(labels), seed)])
    return torch.sort(torch.cat(keep)).values


def add_image_arguments(parser: argparse.ArgumentParser, pair: bool = True) -> argparse.ArgumentParser:
    """Add the options of every image study to a study parser.

    ``--dataset``, ``--classes``, ``--data-dir``, ``--checksums``, ``--download``,
    ``--model``, ``--epochs``, ``--n-attack``, ``--threads`` and ``--device``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        A study parser (e.g. :func:`lowrank.cli.study_arguments`).
    pair : bool
        ``--classes`` takes a pair (positive, negative); ``False``: two or more classes,
        default all of them (the multi-class studies).

    Returns
    -------
    argparse.ArgumentParser
        The same parser.

    Examples
    --------
    >>> p = add_image_arguments(argparse.ArgumentParser())
    >>> a = p.parse_args(["--classes", "Sneaker", "Sandal"])
    >>> a.dataset, a.classes, a.checksums, a.device
    ('fashion_mnist', ['Sneaker', 'Sandal'], 'official', 'auto')
    """
    from ..device import add_device_argument

    parser.add_argument("--dataset", choices=DATASETS, default="fashion_mnist")
    if pair:
        parser.add_argument("--classes", nargs=2, default=None, metavar=("POSITIVE", "NEGATIVE"),
                            help="class names or indices (default: cat dog / Shirt T-shirt/top)")
    else:
        parser.add_argument("--classes", nargs="+", default=None, metavar="CLASS",
                            help="two or more class names or indices (default: all ten)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="dataset directory (default: $LOWRANK_DATA)")
    parser.add_argument("--checksums", default="official",
                        help="'official', 'none', or a JSON manifest file name -> md5")
    parser.add_argument("--download", action="store_true",
                        help="fetch the official files if absent")
    parser.add_argument("--model", choices=("cnn", "mlp"), default=None,
                        help="override the mode's model")
    parser.add_argument("--epochs", type=int, default=None, help="override the mode's epochs")
    parser.add_argument("--n-attack", type=int, default=None,
                        help="override the train/test subsample size for the attacks")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    add_device_argument(parser)
    return parser

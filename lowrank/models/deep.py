"""Small deep classifiers (one score, or C logits) that expose their penultimate features.

Each model is ``score(x) = head(features(x))`` where ``features`` maps an image
batch to an (n, k) matrix of penultimate features and ``head`` is linear: the
scores are a linear function of the features, so the paper's analysis of linear
models on low-rank data applies to the last layer.

* ``n_classes=2`` (the default): ``head = nn.Linear(k, 1)`` and the model gives one
  score per input, shape (n,) (positive class: score > 0).
* ``n_classes=C >= 3``: ``head = nn.Linear(k, C)`` and the model gives C logits per
  input, shape (n, C) (prediction: the argmax); the multi-class analysis of
  :mod:`lowrank.train.multiclass` applies to the head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._validation import check_int
from ..device import resolve_device


def _check_n_classes(n_classes) -> int:
    """``n_classes`` as an int: ValueError unless an integer >= 2 (TypeError for a non-number)."""
    return check_int(n_classes, "n_classes", minimum=2)


def _head(k: int, n_classes) -> nn.Linear:
    """The linear head: one score for two classes, ``n_classes`` logits otherwise."""
    c = _check_n_classes(n_classes)
    return nn.Linear(k, 1 if c == 2 else c)

__all__ = ["OneScoreNet", "SmallCNN", "MLP", "build_model", "DEEP_MODELS"]


class OneScoreNet(nn.Module):
    """Base class of the one-score and C-logit models: ``score = head(features(x))``.

    Subclasses set ``self.body`` (images -> features, shape (n, k)) and ``self.head``:
    ``nn.Linear(k, 1)`` for a one-score (binary) model, whose ``forward(x)`` gives scores
    of shape (n,), or ``nn.Linear(k, C)`` with ``C >= 2`` for a C-class model, whose
    ``forward(x)`` gives logits of shape (n, C). ``forward(x, return_features=True)``
    returns ``(scores, features)``. (The name stays from the one-score models.)

    Examples
    --------
    >>> class Tiny(OneScoreNet):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.body = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU())
    ...         self.head = nn.Linear(3, 1)
    >>> m = Tiny()
    >>> m.feature_dim, m(torch.zeros(2, 1, 2, 2)).shape
    (3, torch.Size([2]))
    >>> scores, feats = m(torch.zeros(2, 1, 2, 2), return_features=True)
    >>> feats.shape, m.n_classes
    (torch.Size([2, 3]), 2)
    >>> m.head = nn.Linear(3, 5)  # five logits
    >>> m(torch.zeros(2, 1, 2, 2)).shape, m.n_classes
    (torch.Size([2, 5]), 5)
    """

    body: nn.Module
    head: nn.Linear

    @property
    def feature_dim(self) -> int:
        """Number of penultimate features ``k``."""
        return int(self.head.in_features)

    @property
    def n_classes(self) -> int:
        """Number of classes: 2 for a one-score model, else the number of logits."""
        c = int(self.head.out_features)
        return 2 if c == 1 else c

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, shape (n, k)."""
        return self.body(x)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """Scores ``head(features(x))``: shape (n,) for a one-score model, (n, C) for C logits.

        With ``return_features`` also the features, shape (n, k).
        """
        f = self.body(x)
        s = self.head(f)
        if s.shape[1] == 1:
            s = s[:, 0]
        return (s, f) if return_features else s


class SmallCNN(OneScoreNet):
    """Two conv blocks (conv-ReLU-maxpool) and one hidden dense layer.

    Parameters
    ----------
    in_channels : int
        1 for Fashion-MNIST, 3 for CIFAR-10.
    image_size : int
        Height = width of the input (28 or 32); must be divisible by 4.
    width : int
        Channels of the first conv layer (the second has ``2 * width``).
    feature_dim : int
        Penultimate feature dimension ``k``.
    n_classes : int, default 2
        2: one score per input (head ``nn.Linear(k, 1)``); ``C >= 3``: C logits
        (head ``nn.Linear(k, C)``).

    Raises
    ------
    ValueError
        If ``image_size`` is not divisible by 4, a size is not positive or
        ``n_classes`` is not an integer >= 2.

    Examples
    --------
    >>> m = SmallCNN(1, 28, width=8, feature_dim=16)
    >>> m(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2])
    >>> m.features(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 16])
    >>> SmallCNN(1, 28, width=8, feature_dim=16, n_classes=10)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """

    def __init__(self, in_channels: int = 3, image_size: int = 32, width: int = 16,
                 feature_dim: int = 64, n_classes: int = 2) -> None:
        super().__init__()
        _check_n_classes(n_classes)
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4, got {image_size}")
        if min(in_channels, width, feature_dim) < 1:
            raise ValueError("in_channels, width and feature_dim must be positive")
        side = image_size // 4
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * width * side * side, feature_dim), nn.ReLU(),
        )
        self.head = _head(feature_dim, n_classes)


class MLP(OneScoreNet):
    """Fully connected ReLU network on flattened images.

    Parameters
    ----------
    in_features : int
        Flattened input size (784 for Fashion-MNIST, 3072 for CIFAR-10).
    hidden : sequence of int
        Widths of the hidden layers; the last is the feature dimension ``k``.
    n_classes : int, default 2
        2: one score per input (head ``nn.Linear(k, 1)``); ``C >= 3``: C logits
        (head ``nn.Linear(k, C)``).

    Raises
    ------
    ValueError
        If ``hidden`` is empty or holds a width below 1, or ``n_classes`` is not an
        integer >= 2.

    Examples
    --------
    >>> m = MLP(784, (32, 16))
    >>> m(torch.zeros(3, 1, 28, 28)).shape, m.feature_dim
    (torch.Size([3]), 16)
    >>> m = MLP(784, (32, 16), n_classes=4)
    >>> m(torch.zeros(3, 1, 28, 28)).shape, m.n_classes
    (torch.Size([3, 4]), 4)
    """

    def __init__(self, in_features: int, hidden: Sequence[int] = (256, 64), n_classes: int = 2) -> None:
        super().__init__()
        _check_n_classes(n_classes)
        if len(hidden) == 0 or min(hidden) < 1:
            raise ValueError(f"hidden must be a non-empty sequence of positive widths, got {hidden}")
        layers: list[nn.Module] = [nn.Flatten()]
        prev = in_features
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU()]
            prev = h
        self.body = nn.Sequential(*layers)
        self.head = _head(prev, n_classes)


DEEP_MODELS = ("cnn", "mlp")


def build_model(name: str, input_shape: Sequence[int], width: int = 16, feature_dim: int = 64,
                hidden: Sequence[int] | None = None,
                device: str | torch.device | None = None, n_classes: int = 2) -> OneScoreNet:
    """Build a model by name for images of shape ``(C, H, W)``.

    Parameters
    ----------
    name : {"cnn", "mlp"}
        :class:`SmallCNN` or :class:`MLP`.
    input_shape : (C, H, W)
        Image shape.
    width : int
        CNN width.
    feature_dim : int
        Penultimate feature dimension (CNN; for the MLP when ``hidden`` is None,
        ``hidden = (4 * feature_dim, feature_dim)``).
    hidden : sequence of int, optional
        MLP hidden widths.
    device : str or torch.device, optional
        Where to put the parameters (``"auto"``, ``"cpu"``, ``"cuda"``, ... as in
        :func:`lowrank.device.resolve_device`); default: the CPU. The weights are
        initialised on the CPU first, so a seed gives the same initial model on
        every device.
    n_classes : int, default 2
        2: a one-score model (scores of shape (n,)); ``C >= 3``: a C-logit model
        (scores of shape (n, C)). A seed gives the same body for every ``n_classes``.

    Returns
    -------
    OneScoreNet

    Raises
    ------
    ValueError
        For an unknown name or a bad shape, an ``n_classes`` that is not an integer >= 2,
        or a device that is not available.

    Examples
    --------
    >>> build_model("mlp", (1, 28, 28), feature_dim=8).feature_dim
    8
    >>> build_model("mlp", (1, 4, 4), feature_dim=2, device="meta").head.weight.device
    device(type='meta')
    >>> m = build_model("cnn", (1, 28, 28), width=8, feature_dim=32, n_classes=10)
    >>> m(torch.zeros(2, 1, 28, 28)).shape, m.n_classes
    (torch.Size([2, 10]), 10)
    """
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {tuple(input_shape)}")
    c, h, w = (int(v) for v in input_shape)
    dev = None if device is None else resolve_device(device)
    if name == "cnn":
        if h != w:
            raise ValueError(f"the CNN needs square images, got {h}x{w}")
        model: OneScoreNet = SmallCNN(c, h, width=width, feature_dim=feature_dim, n_classes=n_classes)
    elif name == "mlp":
        model = MLP(c * h * w, tuple(hidden) if hidden else (4 * feature_dim, feature_dim),
                    n_classes=n_classes)
    else:
        raise ValueError(f"name must be one of {DEEP_MODELS}, got {name!r}")
    return model if dev is None else model.to(dev)

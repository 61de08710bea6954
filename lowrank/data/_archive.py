"""Checksums, downloads and clear errors shared by the image-dataset loaders.

Both :mod:`lowrank.data.cifar10` and :mod:`lowrank.data.fashion_mnist` read
official files from a directory the user names (``--data-dir`` or
``$LOWRANK_DATA``), verify them against a checksum manifest, and raise
:class:`DatasetMissingError` or :class:`DatasetCorruptError` with a message that
says which file was expected, where, and how to get it. Nothing here reads a
hard-coded machine path, and nothing downloads unless ``download=True``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

__all__ = [
    "ImageTask",
    "BinaryImageTask",
    "DatasetCorruptError",
    "DatasetMissingError",
    "md5_file",
    "md5_gzip_payload",
    "resolve_checksums",
    "verify_md5",
    "download_file",
    "extract_tar",
    "select_classes",
    "multiclass_split",
]


class DatasetMissingError(FileNotFoundError):
    """A dataset file is not where it was expected."""


class DatasetCorruptError(ValueError):
    """A dataset file exists but fails its checksum or cannot be parsed."""


@dataclass
class ImageTask:
    """A C-class image task with labels in {0, ..., C-1}.

    Attributes
    ----------
    x_train, x_test : torch.Tensor, shape (n, channels, H, W), float32 in [0, 1]
    y_train, y_test : torch.Tensor, shape (n,), int64 in {0, ..., C-1}
        Label ``c`` for ``classes[c]``.
    classes : tuple of str
        Class names, in label order.
    dataset : str
        ``"cifar10"`` or ``"fashion_mnist"``.
    source : str
        The directory the files were read from.

    Examples
    --------
    >>> task = ImageTask(torch.zeros(3, 1, 2, 2), torch.tensor([0, 2, 1]),
    ...                  torch.zeros(2, 1, 2, 2), torch.tensor([1, 1]), ("a", "b", "c"), "toy", "/d")
    >>> s = task.summary()
    >>> s["n_classes"], s["n_train_per_class"], s["n_test_per_class"]
    (3, [1, 1, 1], [0, 2, 0])
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    dataset: str
    source: str

    def to(self, device: str | torch.device | None) -> ImageTask:
        """The same task with its four tensors on ``device`` (``self`` if already there).

        Parameters
        ----------
        device : str, torch.device or None
            As in :func:`lowrank.device.resolve_device` (``"auto"``, ``"cpu"``, ``"cuda"``,
            ...); ``None`` keeps the tensors where they are.

        Returns
        -------
        ImageTask (of the same type)

        Examples
        --------
        >>> task = BinaryImageTask(torch.zeros(2, 1, 2, 2), torch.tensor([1.0, -1.0]),
        ...                        torch.zeros(2, 1, 2, 2), torch.tensor([1.0, -1.0]),
        ...                        ("cat", "dog"), "cifar10", "/data")
        >>> task.to("meta").x_train.device, task.to("meta").classes
        (device(type='meta'), ('cat', 'dog'))
        """
        if device is None:
            return self
        from ..device import resolve_device

        dev = resolve_device(device)
        return replace(self, x_train=self.x_train.to(dev), y_train=self.y_train.to(dev),
                       x_test=self.x_test.to(dev), y_test=self.y_test.to(dev))

    def summary(self) -> dict:
        """Sizes and per-class counts, for logs and result files."""
        C = len(self.classes)
        return {
            "dataset": self.dataset,
            "classes": list(self.classes),
            "n_classes": C,
            "image_shape": list(self.x_train.shape[1:]),
            "n_train": int(self.x_train.shape[0]),
            "n_train_per_class": torch.bincount(self.y_train.cpu(), minlength=C).tolist(),
            "n_test": int(self.x_test.shape[0]),
            "n_test_per_class": torch.bincount(self.y_test.cpu(), minlength=C).tolist(),
        }


@dataclass
class BinaryImageTask(ImageTask):
    """A two-class image task with labels in {-1, +1}.

    Attributes
    ----------
    x_train, x_test : torch.Tensor, shape (n, C, H, W), float32 in [0, 1]
    y_train, y_test : torch.Tensor, shape (n,), float32 in {-1, +1}
        ``+1`` for ``classes[0]`` (the positive class), ``-1`` for ``classes[1]``.
    classes : tuple of str
        (positive class name, negative class name).
    dataset : str
        ``"cifar10"`` or ``"fashion_mnist"``.
    source : str
        The directory the files were read from.

    Examples
    --------
    The loaders return this; a tiny one built by hand:

    >>> task = BinaryImageTask(torch.zeros(3, 1, 2, 2), torch.tensor([1.0, -1.0, -1.0]),
    ...                        torch.zeros(2, 1, 2, 2), torch.tensor([1.0, -1.0]),
    ...                        ("cat", "dog"), "cifar10", "/data")
    >>> s = task.summary()
    >>> s["image_shape"], s["n_train"], s["n_train_pos"], s["n_test_pos"]
    ([1, 2, 2], 3, 1, 1)
    """

    def summary(self) -> dict:
        """Sizes and class counts, for logs and result files."""
        return {
            "dataset": self.dataset,
            "classes": list(self.classes),
            "positive_class": self.classes[0],
            "image_shape": list(self.x_train.shape[1:]),
            "n_train": int(self.x_train.shape[0]),
            "n_train_pos": int((self.y_train > 0).sum()),
            "n_test": int(self.x_test.shape[0]),
            "n_test_pos": int((self.y_test > 0).sum()),
        }


def md5_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex md5 digest of a file's bytes.

    Parameters
    ----------
    path : path-like
        File to hash.
    chunk : int
        Read size in bytes.

    Returns
    -------
    str
        32 hex digits.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "f")
    >>> _ = open(p, "wb").write(b"abc")
    >>> md5_file(p)
    '900150983cd24fb0d6963f7d28e17f72'
    """
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def md5_gzip_payload(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex md5 digest of the decompressed content of a ``.gz`` file.

    Re-compressed copies of a file (e.g. a distribution package) differ in their
    gzip header but not in their payload, so the payload digest identifies the data.

    Raises
    ------
    DatasetCorruptError
        If the file is not valid gzip.
    """
    h = hashlib.md5(usedforsecurity=False)
    try:
        with gzip.open(path, "rb") as fh:
            for block in iter(lambda: fh.read(chunk), b""):
                h.update(block)
    except (OSError, EOFError) as err:
        raise DatasetCorruptError(f"{path} is not a valid gzip file ({err})") from err
    return h.hexdigest()


def resolve_checksums(checksums, official: Mapping[str, str], name: str = "checksums"
                      ) -> dict[str, str] | None:
    """Turn a user's ``checksums`` argument into a manifest (file name -> md5) or None.

    Parameters
    ----------
    checksums : "official", None, mapping, or path-like
        ``"official"`` uses ``official``; ``None`` disables verification; a mapping
        is used as is; a path names a JSON file holding such a mapping.
    official : mapping
        The official manifest.
    name : str
        Argument name for error messages.

    Returns
    -------
    dict or None

    Raises
    ------
    ValueError
        For any other value.

    Examples
    --------
    >>> resolve_checksums(None, {"a": "0"}) is None
    True
    >>> resolve_checksums("official", {"a": "0"})
    {'a': '0'}
    """
    if checksums is None:
        return None
    if isinstance(checksums, str) and checksums == "official":
        return dict(official)
    if isinstance(checksums, Mapping):
        return {str(k): str(v).lower() for k, v in checksums.items()}
    if isinstance(checksums, (str, os.PathLike)):
        import json

        p = Path(checksums)
        if not p.is_file():
            raise ValueError(f"{name}: checksum manifest {p} does not exist")
        with open(p, encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, dict):
            raise ValueError(f"{name}: checksum manifest {p} must hold a JSON object name -> md5")
        return {str(k): str(v).lower() for k, v in data.items()}
    raise ValueError(f"{name} must be 'official', None, a mapping file name -> md5, or the path "
                     f"of a JSON manifest; got {type(checksums).__name__}")


def verify_md5(path: Path, expected: str, dataset: str, hint: str) -> None:
    """Raise :class:`DatasetCorruptError` unless ``md5(path) == expected``.

    Parameters
    ----------
    path : Path
        File to check.
    expected : str
        Expected md5 (hex).
    dataset : str
        Dataset name for the message.
    hint : str
        What to do about it (appended to the message).

    Raises
    ------
    DatasetCorruptError
        On mismatch.
    """
    got = md5_file(path)
    if got != expected.lower():
        raise DatasetCorruptError(
            f"{dataset} file {path} is corrupt or not the expected release: md5 {got}, "
            f"expected {expected}. {hint}")


def download_file(url: str, dest: Path, expected_md5: str | None, dataset: str,
                  quiet: bool = False) -> Path:
    """Download ``url`` (http(s) or ``file://``) to ``dest`` atomically and verify it.

    Parameters
    ----------
    url : str
        Source address.
    dest : Path
        Destination file; its directory is created.
    expected_md5 : str or None
        Checksum to verify (skipped when None).
    dataset : str
        Dataset name for messages.
    quiet : bool
        Print nothing.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    DatasetMissingError
        If the download fails (no network, bad address).
    DatasetCorruptError
        If the downloaded file fails its checksum (it is then deleted).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    try:
        if not quiet:
            print(f"downloading {url} -> {dest}")
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
                shutil.copyfileobj(resp, out)
        except (OSError, ValueError) as err:
            raise DatasetMissingError(f"could not download {dataset} from {url}: {err}") from err
        if expected_md5 is not None:
            verify_md5(Path(tmp), expected_md5, dataset,
                       f"The download from {url} is damaged; try again.")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def extract_tar(archive: Path, dest: Path) -> None:
    """Extract a tar(.gz) archive into ``dest``, refusing members that escape it.

    Raises
    ------
    DatasetCorruptError
        If the archive cannot be read or holds unsafe paths.
    """
    dest = Path(dest)
    try:
        with tarfile.open(archive, "r:*") as tar:
            root = dest.resolve()
            for m in tar.getmembers():
                target = (dest / m.name).resolve()
                if root not in target.parents and target != root:
                    raise DatasetCorruptError(f"{archive} holds an unsafe path {m.name!r}")
                if not (m.isfile() or m.isdir()):
                    raise DatasetCorruptError(f"{archive} holds a non-regular member {m.name!r}")
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(dest, **extra)  # members checked above
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DatasetCorruptError(f"cannot extract {archive}: {err}") from err


def select_classes(classes: Sequence | None, names: Sequence[str], dataset: str,
                   count: int | None = 2) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Resolve class names or indices to (indices, names).

    Names match case-insensitively; indices are ints (or digit strings) in
    ``range(len(names))``.

    Parameters
    ----------
    classes : sequence of str or int, or None
        The classes, in label order; ``None`` (only with ``count=None``): all of them.
    names : sequence of str
        The dataset's class names.
    dataset : str
        Name for the messages.
    count : int or None
        How many classes ``classes`` must name (2: a pair (positive, negative)); ``None``:
        at least two.

    Raises
    ------
    ValueError
        Unless ``classes`` names ``count`` (or at least two) distinct, known classes.

    Examples
    --------
    >>> select_classes(("b", 0), ["a", "b"], "toy")
    ((1, 0), ('b', 'a'))
    >>> select_classes(None, ["a", "b", "c"], "toy", count=None)
    ((0, 1, 2), ('a', 'b', 'c'))
    """
    if classes is None and count is None:
        classes = range(len(names))
    if count == 2 and (classes is None or isinstance(classes, (str, bytes)) or len(classes) != 2):
        raise ValueError(f"classes must be a pair (positive, negative) of {dataset} class names "
                         f"or indices, got {classes!r}")
    if classes is None or isinstance(classes, (str, bytes)) or len(classes) < 2 or (
            count is not None and len(classes) != count):
        want = "at least two" if count is None else str(count)
        raise ValueError(f"classes must name {want} {dataset} classes (names or indices), "
                         f"got {classes!r}")
    lower = [n.lower() for n in names]
    idx = []
    for c in classes:
        if isinstance(c, (int,)) and not isinstance(c, bool):
            if not 0 <= c < len(names):
                raise ValueError(f"classes: index {c} is out of range 0..{len(names) - 1}")
            idx.append(int(c))
        elif isinstance(c, str) and c.lower() in lower:
            idx.append(lower.index(c.lower()))
        elif isinstance(c, str) and c.isdigit() and 0 <= int(c) < len(names):
            idx.append(int(c))
        else:
            raise ValueError(f"classes: unknown {dataset} class {c!r}; known: {list(names)}")
    if len(set(idx)) != len(idx):
        what = "two different classes" if count == 2 else "distinct classes"
        raise ValueError(f"classes must be {what}, got {classes!r}")
    return tuple(idx), tuple(names[i] for i in idx)


def multiclass_split(x: torch.Tensor, labels: torch.Tensor, idx: Sequence[int]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the images of the classes ``idx``; label ``idx[c]`` as ``c`` (int64).

    Examples
    --------
    >>> x, y = multiclass_split(torch.arange(4.0), torch.tensor([5, 2, 7, 2]), (2, 5))
    >>> x.tolist(), y.tolist()
    ([0.0, 1.0, 3.0], [1, 0, 0])
    """
    lookup = torch.full((int(labels.max()) + 1 if len(labels) else 1,), -1, dtype=torch.int64)
    for c, k in enumerate(idx):
        if k < len(lookup):
            lookup[k] = c
    y = lookup[labels]
    keep = y >= 0
    return x[keep], y[keep]


def binary_split(x: torch.Tensor, labels: torch.Tensor, idx: tuple[int, int]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the images of the two classes; label ``idx[0]`` as +1 and ``idx[1]`` as -1."""
    keep = (labels == idx[0]) | (labels == idx[1])
    y = torch.where(labels[keep] == idx[0], 1.0, -1.0).to(torch.float32)
    return x[keep], y

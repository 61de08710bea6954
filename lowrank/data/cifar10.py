"""Binary and multi-class tasks from the official python-format CIFAR-10.

The loader reads ``cifar-10-batches-py/`` (or the archive
``cifar-10-python.tar.gz``, which it extracts) from a directory the caller names,
checks every file against the official md5 sums, and returns the images of two
classes with labels +1 / -1 (:func:`load_cifar10_binary`) or of any number of classes
with labels 0..C-1 (:func:`load_cifar10`) as float tensors in [0, 1] of shape (n, 3, 32, 32).

Official files: https://www.cs.toronto.edu/~kriz/cifar.html (the md5 sums below
are the ones published with torchvision's ``CIFAR10``).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ._archive import (
    BinaryImageTask,
    DatasetCorruptError,
    DatasetMissingError,
    ImageTask,
    binary_split,
    download_file,
    extract_tar,
    multiclass_split,
    resolve_checksums,
    select_classes,
    verify_md5,
)

__all__ = [
    "BinaryImageTask",
    "ImageTask",
    "load_cifar10",
    "CIFAR10_CLASSES",
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "CIFAR10_ARCHIVE",
    "CIFAR10_FOLDER",
    "load_cifar10_binary",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCH = "test_batch"
_META = "batches.meta"

#: Official md5 sums of the archive and of each file inside ``cifar-10-batches-py/``.
CIFAR10_MD5 = {
    CIFAR10_ARCHIVE: "c58f30108f718f92721af3b95e74349a",
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}


def _where_to_put(root: Path) -> str:
    return (f"Expected the official python-format CIFAR-10: either the archive {CIFAR10_ARCHIVE} "
            f"(md5 {CIFAR10_MD5[CIFAR10_ARCHIVE]}, from {CIFAR10_URL}) or its extracted folder "
            f"{CIFAR10_FOLDER}/ (data_batch_1..5, test_batch, batches.meta) inside {root}. "
            "Put it there and pass that directory as --data-dir (or set LOWRANK_DATA), "
            "or call the loader with download=True.")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise DatasetCorruptError(f"CIFAR-10 file {path} cannot be read ({err}); "
                                  "delete it and fetch the official files again") from err


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    try:
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except KeyError as err:
        raise DatasetCorruptError(f"CIFAR-10 file {path} lacks the key {err}") from err
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise DatasetCorruptError(f"CIFAR-10 file {path} holds data of shape {data.shape} and "
                                  f"{labels.shape[0]} labels; expected (n, 3072) and n labels")
    return data, labels


def _locate(root: Path, manifest: dict | None, download: bool, url: str, quiet: bool) -> Path:
    """Return the folder holding the batches, extracting / downloading the archive if needed."""
    folder = root / CIFAR10_FOLDER
    if folder.is_dir():
        return folder
    if root.name == CIFAR10_FOLDER and root.is_dir():
        return root
    archive = root / CIFAR10_ARCHIVE
    expected = None if manifest is None else manifest.get(CIFAR10_ARCHIVE)
    if not archive.is_file():
        if not download:
            raise DatasetMissingError(f"CIFAR-10 not found: neither {folder}/ nor {archive} "
                                      f"exists. {_where_to_put(root)}")
        download_file(url, archive, expected, "CIFAR-10", quiet=quiet)
    elif expected is not None:
        verify_md5(archive, expected, "CIFAR-10",
                   f"Delete it and download the official archive again. {_where_to_put(root)}")
    extract_tar(archive, root)
    if not folder.is_dir():
        raise DatasetCorruptError(f"{archive} does not contain the folder {CIFAR10_FOLDER}/")
    return folder


def load_cifar10_binary(root: str | os.PathLike, classes: Sequence = ("cat", "dog"),
                        checksums="official", download: bool = False, url: str = CIFAR10_URL,
                        quiet: bool = True, device: str | torch.device | None = None
                        ) -> BinaryImageTask:
    """Load a two-class CIFAR-10 task (labels +1 for ``classes[0]``, -1 for ``classes[1]``).

    Parameters
    ----------
    root : path-like
        Directory that holds ``cifar-10-batches-py/`` or ``cifar-10-python.tar.gz``
        (or the ``cifar-10-batches-py`` folder itself). An archive without its
        folder is verified and extracted into ``root``.
    classes : pair of str or int
        (positive, negative) class, by name (see :data:`CIFAR10_CLASSES`) or index.
    checksums : "official", None, mapping, or path-like
        Manifest of md5 sums, file name -> md5 (see :data:`CIFAR10_MD5`). ``None``
        skips verification; a path names a JSON manifest. Files missing from a
        custom manifest are not verified.
    download : bool
        If the data are absent, fetch the archive from ``url`` (also ``file://``).
    url : str
        Archive address for ``download=True``.
    quiet : bool
        Print nothing while downloading.
    device : str or torch.device, optional
        Where to put the tensors (``"auto"``, ``"cpu"``, ``"cuda"``, ...; see
        :func:`lowrank.device.resolve_device`); default: the CPU.

    Returns
    -------
    BinaryImageTask
        Train (50 000 images in the official release; 10 000 for two classes) and
        test split as float32 tensors in [0, 1] of shape (n, 3, 32, 32).

    Raises
    ------
    DatasetMissingError
        If a file is missing (the message says what is expected and where).
    DatasetCorruptError
        If a file fails its md5 or cannot be parsed.
    ValueError
        For unknown classes or a bad ``checksums`` argument.

    Examples
    --------
    >>> task = load_cifar10_binary("/data", ("cat", "dog"))  # doctest: +SKIP
    >>> task.x_train.shape                                   # doctest: +SKIP
    torch.Size([10000, 3, 32, 32])
    """
    folder, names = _read_folder(Path(root), checksums, download, url, quiet)
    idx, picked = select_classes(tuple(classes), names, "CIFAR-10")
    x_tr, y_tr = _split(folder, _TRAIN_BATCHES, idx, binary_split)
    x_te, y_te = _split(folder, (_TEST_BATCH,), idx, binary_split)
    task = BinaryImageTask(x_tr, y_tr, x_te, y_te, picked, "cifar10", str(folder))
    return task.to(device)


def _read_folder(root: Path, checksums, download: bool, url: str, quiet: bool
                 ) -> tuple[Path, tuple[str, ...]]:
    """The verified batches folder and the class names from its meta file."""
    manifest = resolve_checksums(checksums, CIFAR10_MD5)
    folder = _locate(root, manifest, download, url, quiet)
    for name in (*_TRAIN_BATCHES, _TEST_BATCH, _META):
        path = folder / name
        if not path.is_file():
            raise DatasetMissingError(f"CIFAR-10 file {name} is missing from {folder}. "
                                      f"{_where_to_put(folder.parent)}")
        if manifest is not None and name in manifest:
            verify_md5(path, manifest[name], "CIFAR-10",
                       f"Replace {folder} with a fresh copy of the official files. "
                       f"{_where_to_put(folder.parent)}")
    meta = _unpickle(folder / _META)
    names = tuple(n.decode() if isinstance(n, bytes) else str(n)
                  for n in meta.get(b"label_names", CIFAR10_CLASSES))
    return folder, names


def _split(folder: Path, batches, idx, select) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of the classes ``idx`` in ``batches`` as float32 in [0, 1], labels by ``select``."""
    parts = [_read_batch(folder / b) for b in batches]
    data = np.concatenate([p[0] for p in parts])
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    x, y = select(torch.from_numpy(data).reshape(-1, 3, 32, 32), labels, idx)
    return x.to(torch.float32).div_(255.0), y


def load_cifar10(root: str | os.PathLike, classes: Sequence | None = None, checksums="official",
                 download: bool = False, url: str = CIFAR10_URL, quiet: bool = True,
                 device: str | torch.device | None = None) -> ImageTask:
    """Load CIFAR-10 as a multi-class task (all ten classes by default).

    Parameters
    ----------
    root : path-like
        As in :func:`load_cifar10_binary`.
    classes : sequence of str or int, optional
        The classes to keep (at least two), by name or index; label ``c`` is
        ``classes[c]``. Default: all ten, in the official order.
    checksums, download, url, quiet, device
        As in :func:`load_cifar10_binary`.

    Returns
    -------
    ImageTask
        Float32 images in [0, 1] of shape (n, 3, 32, 32), int64 labels (50 000 train and
        10 000 test images for all ten classes of the official release).

    Raises
    ------
    DatasetMissingError, DatasetCorruptError, ValueError
        As :func:`load_cifar10_binary`.

    Examples
    --------
    >>> task = load_cifar10("/data")  # doctest: +SKIP
    >>> task.classes[:2]  # doctest: +SKIP
    ('airplane', 'automobile')
    """
    folder, names = _read_folder(Path(root), checksums, download, url, quiet)
    idx, picked = select_classes(None if classes is None else tuple(classes), names, "CIFAR-10",
                                 count=None)
    x_tr, y_tr = _split(folder, _TRAIN_BATCHES, idx, multiclass_split)
    x_te, y_te = _split(folder, (_TEST_BATCH,), idx, multiclass_split)
    return ImageTask(x_tr, y_tr, x_te, y_te, picked, "cifar10", str(folder)).to(device)

"""Binary and multi-class tasks from Fashion-MNIST (official idx files, gzip-compressed or not).

The loader reads the four idx files ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``
(each either as ``NAME.gz`` or uncompressed ``NAME``) from a directory the caller
names, verifies them, and returns two classes with labels +1 / -1
(:func:`load_fashion_mnist_binary`) or any number of classes with labels 0..C-1
(:func:`load_fashion_mnist`) as float32 tensors in [0, 1] of shape (n, 1, 28, 28).

Checksums and their provenance
------------------------------
* ``NAME.gz``: the md5 sums published with the official release
  (https://github.com/zalandoresearch/fashion-mnist, also in torchvision).
* ``NAME`` (decompressed payload): md5 of the decompressed official files. We
  computed them from the Debian package ``dataset-fashion-mnist``
  (0.0~git20200523.55506a9-1, files in ``/usr/share/datasets/fashion-mnist``), whose
  ``.gz`` files are re-compressed (gzip header dated 2020-06-05) so that their own
  md5 differs from the official one; the payload sums agree with the values other
  projects publish for the decompressed official files.

A ``.gz`` file passes if either its own md5 matches the ``.gz`` entry or its
decompressed payload matches the payload entry; an uncompressed file must match
the payload entry.
"""

from __future__ import annotations

import gzip
import os
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
    md5_file,
    md5_gzip_payload,
    multiclass_split,
    resolve_checksums,
    select_classes,
)

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_MD5",
    "FASHION_MNIST_URL",
    "load_fashion_mnist_binary",
    "load_fashion_mnist",
]

FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: md5 of the official ``.gz`` files and of their decompressed payloads (see module docs).
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}


def _where_to_put(root: Path) -> str:
    return ("Expected the official Fashion-MNIST idx files train-images-idx3-ubyte, "
            "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte "
            f"(each as NAME.gz or uncompressed NAME) in {root} or {root / 'fashion-mnist'}. "
            f"Get them from {FASHION_MNIST_URL} (or `apt-get install dataset-fashion-mnist`, "
            "which puts them in /usr/share/datasets/fashion-mnist), then pass that directory "
            "as --data-dir (or set LOWRANK_DATA), or call the loader with download=True.")


def _find(root: Path, stem: str) -> Path | None:
    for folder in (root, root / "fashion-mnist"):
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def _verify(path: Path, stem: str, manifest: dict | None, root: Path) -> None:
    if manifest is None:
        return
    gz_sum, raw_sum = manifest.get(stem + ".gz"), manifest.get(stem)
    if path.suffix == ".gz":
        got = md5_file(path)
        if gz_sum is not None and got == gz_sum:
            return
        if raw_sum is None and gz_sum is None:
            return
        payload = md5_gzip_payload(path) if raw_sum is not None else None
        if payload is not None and payload == raw_sum:
            return
        raise DatasetCorruptError(
            f"Fashion-MNIST file {path} is corrupt or not the official release: md5 {got} "
            f"(decompressed {payload}), expected {gz_sum} (compressed) or {raw_sum} "
            f"(decompressed). Delete it and fetch the file again. {_where_to_put(root)}")
    if raw_sum is not None:
        got = md5_file(path)
        if got != raw_sum:
            raise DatasetCorruptError(
                f"Fashion-MNIST file {path} is corrupt or not the official release: md5 {got}, "
                f"expected {raw_sum}. Delete it and fetch the file again. {_where_to_put(root)}")


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:
        raise DatasetCorruptError(f"Fashion-MNIST file {path} cannot be read ({err})") from err
    if len(raw) < 4 + 4 * ndim or raw[0:2] != b"\x00\x00" or raw[2] != 0x08 or raw[3] != ndim:
        raise DatasetCorruptError(f"Fashion-MNIST file {path} is not an idx{ndim} uint8 file")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DatasetCorruptError(f"Fashion-MNIST file {path} is truncated: header says {dims}, "
                                  f"holds {body.size} bytes")
    return body.reshape(dims)


def load_fashion_mnist_binary(root: str | os.PathLike,
                              classes: Sequence = ("T-shirt/top", "Shirt"),
                              checksums="official", download: bool = False,
                              url: str = FASHION_MNIST_URL, quiet: bool = True,
                              device: str | torch.device | None = None) -> BinaryImageTask:
    """Load a two-class Fashion-MNIST task (+1 for ``classes[0]``, -1 for ``classes[1]``).

    Parameters
    ----------
    root : path-like
        Directory holding the four idx files (``.gz`` or not), or a ``fashion-mnist/``
        sub-folder that does.
    classes : pair of str or int
        (positive, negative) class by name (:data:`FASHION_MNIST_CLASSES`,
        case-insensitive) or index 0-9.
    checksums : "official", None, mapping, or path-like
        Manifest file name -> md5 (see :data:`FASHION_MNIST_MD5` and the module notes);
        ``None`` skips verification; a path names a JSON manifest.
    download : bool
        Fetch missing ``.gz`` files from ``url`` (``url + NAME.gz``; ``file://`` works).
    url : str
        Base address, ending in ``/``.
    quiet : bool
        Print nothing while downloading.
    device : str or torch.device, optional
        Where to put the tensors (``"auto"``, ``"cpu"``, ``"cuda"``, ...; see
        :func:`lowrank.device.resolve_device`); default: the CPU.

    Returns
    -------
    BinaryImageTask
        Float32 images in [0, 1] of shape (n, 1, 28, 28) (12 000 train and 2 000 test
        images for two classes of the official release).

    Raises
    ------
    DatasetMissingError
        If a file is missing (the message says what is expected and where).
    DatasetCorruptError
        If a file fails its checksum or is not a valid idx file.
    ValueError
        For unknown classes or a bad ``checksums`` argument.

    Examples
    --------
    >>> task = load_fashion_mnist_binary("/usr/share/datasets/fashion-mnist",
    ...                                  ("Sneaker", "Sandal"))  # doctest: +SKIP
    >>> task.x_train.shape  # doctest: +SKIP
    torch.Size([12000, 1, 28, 28])
    """
    idx, picked = select_classes(tuple(classes), FASHION_MNIST_CLASSES, "Fashion-MNIST")
    arrays = _read_arrays(Path(root), checksums, download, url, quiet)
    x_tr, y_tr = _split(arrays, "train", idx, binary_split)
    x_te, y_te = _split(arrays, "test", idx, binary_split)
    task = BinaryImageTask(x_tr, y_tr, x_te, y_te, picked, "fashion_mnist", str(root))
    return task.to(device)


def _read_arrays(root: Path, checksums, download: bool, url: str, quiet: bool) -> dict:
    """The four verified idx arrays (images uint8 (n, 28, 28), labels)."""
    manifest = resolve_checksums(checksums, FASHION_MNIST_MD5)
    arrays = {}
    for key, stem in _FILES.items():
        path = _find(root, stem)
        if path is None:
            if not download:
                raise DatasetMissingError(f"Fashion-MNIST file {stem}(.gz) not found. "
                                          f"{_where_to_put(root)}")
            path = download_file(url + stem + ".gz", root / (stem + ".gz"),
                                 None if manifest is None else manifest.get(stem + ".gz"),
                                 "Fashion-MNIST", quiet=quiet)
        _verify(path, stem, manifest, root)
        arrays[key] = _read_idx(path, 3 if key.endswith("images") else 1)
    return arrays


def _split(arrays: dict, prefix: str, idx, select) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of the classes ``idx`` of one split as float32 in [0, 1], labels by ``select``."""
    x, lab = arrays[prefix + "_images"], arrays[prefix + "_labels"]
    if x.shape[0] != lab.shape[0]:
        raise DatasetCorruptError(f"Fashion-MNIST {prefix} split: {x.shape[0]} images but "
                                  f"{lab.shape[0]} labels")
    xs, ys = select(torch.from_numpy(x.copy()).unsqueeze(1),
                    torch.from_numpy(lab.astype(np.int64)), idx)
    return xs.to(torch.float32).div_(255.0), ys


def load_fashion_mnist(root: str | os.PathLike, classes: Sequence | None = None,
                       checksums="official", download: bool = False,
                       url: str = FASHION_MNIST_URL, quiet: bool = True,
                       device: str | torch.device | None = None) -> ImageTask:
    """Load Fashion-MNIST as a multi-class task (all ten classes by default).

    Parameters
    ----------
    root : path-like
        Directory holding the four idx files (``.gz`` or not), or a ``fashion-mnist/``
        sub-folder that does.
    classes : sequence of str or int, optional
        The classes to keep, by name (:data:`FASHION_MNIST_CLASSES`, case-insensitive) or
        index, at least two; label ``c`` is ``classes[c]``. Default: all ten, in the
        official order (labels as in the files).
    checksums, download, url, quiet, device
        As in :func:`load_fashion_mnist_binary`.

    Returns
    -------
    ImageTask
        Float32 images in [0, 1] of shape (n, 1, 28, 28), int64 labels (60 000 train and
        10 000 test images for all ten classes of the official release).

    Raises
    ------
    DatasetMissingError, DatasetCorruptError, ValueError
        As :func:`load_fashion_mnist_binary`.

    Examples
    --------
    >>> task = load_fashion_mnist("/usr/share/datasets/fashion-mnist")  # doctest: +SKIP
    >>> task.x_train.shape, task.classes[9]  # doctest: +SKIP
    (torch.Size([60000, 1, 28, 28]), 'Ankle boot')
    """
    idx, picked = select_classes(None if classes is None else tuple(classes),
                                 FASHION_MNIST_CLASSES, "Fashion-MNIST", count=None)
    arrays = _read_arrays(Path(root), checksums, download, url, quiet)
    x_tr, y_tr = _split(arrays, "train", idx, multiclass_split)
    x_te, y_te = _split(arrays, "test", idx, multiclass_split)
    return ImageTask(x_tr, y_tr, x_te, y_te, picked, "fashion_mnist", str(root)).to(device)

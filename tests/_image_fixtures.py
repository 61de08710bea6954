"""Tiny image datasets written in the official CIFAR-10 and Fashion-MNIST formats.

The images are learnable: each class has its own mean pattern plus noise, so a
small model separates two classes in a few epochs. The helpers return the md5
manifest of what they wrote, which the tests pass to the loaders as ``checksums``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _images(rng: np.random.Generator, labels: np.ndarray, dim: int, seed: int = 123
            ) -> np.ndarray:
    # class means 0.5 +- 0.06 per pixel, noise 0.05: separable, yet within reach of
    # a short minimum-norm attack
    patterns = 0.5 + np.random.default_rng(seed).uniform(-0.06, 0.06, size=(10, dim))
    x = patterns[labels] + rng.normal(0.0, 0.05, size=(len(labels), dim))
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def write_tiny_cifar(root: Path, n_per_batch: int = 40, seed: int = 0,
                     archive: bool = False) -> dict[str, str]:
    """Write ``cifar-10-batches-py/`` (or, with ``archive``, only the .tar.gz) under ``root``.

    Returns the md5 manifest (file name -> md5) of the files written.
    """
    rng = np.random.default_rng(seed)
    files: dict[str, bytes] = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = np.arange(n_per_batch) % 10
        rng.shuffle(labels)
        d = {b"batch_label": name.encode(), b"labels": labels.tolist(),
             b"data": _images(rng, labels, 3072),
             b"filenames": [f"{name}_{i}.png".encode() for i in range(n_per_batch)]}
        files[name] = pickle.dumps(d, protocol=2)
    files["batches.meta"] = pickle.dumps({b"label_names": [n.encode() for n in CIFAR_NAMES],
                                          b"num_cases_per_batch": n_per_batch,
                                          b"num_vis": 3072}, protocol=2)
    manifest = {name: _md5(data) for name, data in files.items()}
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if archive:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        blob = buf.getvalue()
        (root / "cifar-10-python.tar.gz").write_bytes(blob)
        manifest["cifar-10-python.tar.gz"] = _md5(blob)
    else:
        folder = root / "cifar-10-batches-py"
        folder.mkdir(exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
    return manifest


def _idx(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_tiny_fashion(root: Path, n_train: int = 200, n_test: int = 60, seed: int = 0,
                       compress: bool = True) -> dict[str, str]:
    """Write the four Fashion-MNIST idx files (``.gz`` if ``compress``) under ``root``.

    Returns a manifest holding the md5 of each written file and of each payload.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        imgs = _images(rng, labels, 784).reshape(n, 28, 28)
        for stem, arr in ((f"{prefix}-images-idx3-ubyte", imgs),
                          (f"{prefix}-labels-idx1-ubyte", labels.astype(np.uint8))):
            payload = _idx(arr)
            manifest[stem] = _md5(payload)
            if compress:
                blob = gzip.compress(payload, mtime=0)
                (root / f"{stem}.gz").write_bytes(blob)
                manifest[f"{stem}.gz"] = _md5(blob)
            else:
                (root / stem).write_bytes(payload)
    return manifest

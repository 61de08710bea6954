"""Loaders for CIFAR-10 and Fashion-MNIST on tiny files written in the official formats."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch
from _image_fixtures import CIFAR_NAMES, write_tiny_cifar, write_tiny_fashion

from lowrank.data import (
    CIFAR10_CLASSES,
    CIFAR10_MD5,
    FASHION_MNIST_MD5,
    load_cifar10_binary,
    load_fashion_mnist_binary,
)
from lowrank.data._archive import (
    DatasetCorruptError,
    DatasetMissingError,
    md5_file,
    resolve_checksums,
    select_classes,
)


def test_official_checksum_tables():
    assert CIFAR10_MD5["cifar-10-python.tar.gz"] == "c58f30108f718f92721af3b95e74349a"
    assert CIFAR10_MD5["test_batch"] == "40351d587109b95175f43aff81a1287e"
    assert len(CIFAR10_MD5) == 8 and tuple(CIFAR10_CLASSES) == tuple(CIFAR_NAMES)
    assert FASHION_MNIST_MD5["train-images-idx3-ubyte.gz"] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert len(FASHION_MNIST_MD5) == 8


def test_cifar_folder_loads_two_classes(tmp_path):
    manifest = write_tiny_cifar(tmp_path, n_per_batch=40)
    task = load_cifar10_binary(tmp_path, ("cat", "dog"), checksums=manifest)
    # 5 batches x 40 images, 4 of each class per batch -> 20 + 20 train, 4 + 4 test
    assert task.x_train.shape == (40, 3, 32, 32) and task.x_test.shape == (8, 3, 32, 32)
    assert task.x_train.dtype == torch.float32
    assert float(task.x_train.min()) >= 0.0 and float(task.x_train.max()) <= 1.0
    assert sorted(torch.unique(task.y_train).tolist()) == [-1.0, 1.0]
    assert int((task.y_train > 0).sum()) == 20 and task.classes == ("cat", "dog")
    # the first cat image is the first label-3 row of data_batch_1, scaled by 1/255
    import pickle

    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as fh:
        d = pickle.load(fh, encoding="bytes")
    first = int(np.flatnonzero(np.asarray(d[b"labels"]) == 3)[0])
    want = torch.from_numpy(d[b"data"][first].astype(np.float32) / 255).reshape(3, 32, 32)
    assert torch.equal(task.x_train[0], want) and float(task.y_train[0]) == 1.0
    # by index, and order swapped -> labels flip
    swapped = load_cifar10_binary(tmp_path, (5, 3), checksums=manifest)
    assert torch.equal(swapped.y_train, -task.y_train)


def test_cifar_archive_is_verified_and_extracted(tmp_path):
    manifest = write_tiny_cifar(tmp_path, n_per_batch=20, archive=True)
    assert not (tmp_path / "cifar-10-batches-py").exists()
    task = load_cifar10_binary(tmp_path, ("airplane", "truck"), checksums=manifest)
    assert (tmp_path / "cifar-10-batches-py" / "data_batch_5").is_file()
    assert task.x_train.shape[0] == 20 and task.x_test.shape[0] == 4


def test_cifar_corrupt_md5_is_detected(tmp_path):
    manifest = write_tiny_cifar(tmp_path, n_per_batch=20)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetCorruptError, match=r"data_batch_3.*md5 [0-9a-f]{32}, expected"):
        load_cifar10_binary(tmp_path, ("cat", "dog"), checksums=manifest)
    # the official sums reject these non-official files too
    with pytest.raises(DatasetCorruptError, match="c99cafc152244af753f735de768cd75f"):
        load_cifar10_binary(tmp_path, ("cat", "dog"))
    # verification off: the damaged pickle is still reported as corrupt, by the parser
    with pytest.raises(DatasetCorruptError, match="data_batch_3 cannot be read"):
        load_cifar10_binary(tmp_path, ("cat", "dog"), checksums=None)


def test_cifar_manifest_file(tmp_path):
    manifest = write_tiny_cifar(tmp_path / "d", n_per_batch=20)
    mpath = tmp_path / "sums.json"
    mpath.write_text(json.dumps(manifest))
    assert load_cifar10_binary(tmp_path / "d", ("cat", "dog"), checksums=mpath).x_test.shape[0] == 4
    with pytest.raises(ValueError, match="checksums"):
        resolve_checksums(42, CIFAR10_MD5)


def test_cifar_missing_file_and_missing_dataset(tmp_path):
    manifest = write_tiny_cifar(tmp_path, n_per_batch=20)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DatasetMissingError, match=r"test_batch is missing.*cifar-10-python\.tar\.gz"
                       r".*--data-dir"):
        load_cifar10_binary(tmp_path, ("cat", "dog"), checksums=manifest)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetMissingError, match=r"CIFAR-10 not found.*LOWRANK_DATA"):
        load_cifar10_binary(empty)
    assert issubclass(DatasetMissingError, FileNotFoundError)


def test_cifar_download_from_file_url(tmp_path):
    src = tmp_path / "mirror"
    manifest = write_tiny_cifar(src, n_per_batch=20, archive=True)
    dest = tmp_path / "data"
    url = (src / "cifar-10-python.tar.gz").as_uri()
    task = load_cifar10_binary(dest, ("cat", "dog"), checksums=manifest, download=True, url=url)
    assert md5_file(dest / "cifar-10-python.tar.gz") == manifest["cifar-10-python.tar.gz"]
    assert task.x_train.shape == (20, 3, 32, 32)
    # a download whose md5 is wrong is rejected and not kept
    bad = dict(manifest, **{"cifar-10-python.tar.gz": "0" * 32})
    with pytest.raises(DatasetCorruptError, match="damaged"):
        load_cifar10_binary(tmp_path / "data2", checksums=bad, download=True, url=url)
    assert not (tmp_path / "data2" / "cifar-10-python.tar.gz").exists()
    with pytest.raises(DatasetMissingError, match="could not download"):
        load_cifar10_binary(tmp_path / "data3", checksums=None, download=True,
                            url=(tmp_path / "nowhere.tar.gz").as_uri())


def test_unknown_classes_are_named():
    with pytest.raises(ValueError, match="unknown CIFAR-10 class 'zebra'"):
        select_classes(("cat", "zebra"), CIFAR10_CLASSES, "CIFAR-10")
    with pytest.raises(ValueError, match="two different"):
        select_classes(("cat", 3), CIFAR10_CLASSES, "CIFAR-10")


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_loads_gz_and_raw(tmp_path, compress):
    manifest = write_tiny_fashion(tmp_path, n_train=100, n_test=40, compress=compress)
    task = load_fashion_mnist_binary(tmp_path, ("Sneaker", "sandal"), checksums=manifest)
    assert task.x_train.shape == (20, 1, 28, 28) and task.x_test.shape == (8, 1, 28, 28)
    assert task.classes == ("Sneaker", "Sandal")
    assert int((task.y_train > 0).sum()) == 10
    assert float(task.x_train.max()) <= 1.0 and float(task.x_train.min()) >= 0.0


def test_fashion_recompressed_gz_passes_by_payload(tmp_path):
    manifest = write_tiny_fashion(tmp_path, n_train=50, n_test=20)
    p = tmp_path / "t10k-labels-idx1-ubyte.gz"
    p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes()), mtime=12345, compresslevel=1))
    assert md5_file(p) != manifest["t10k-labels-idx1-ubyte.gz"]
    assert load_fashion_mnist_binary(tmp_path, (0, 1), checksums=manifest).x_test.shape[0] == 4


def test_fashion_corrupt_and_missing(tmp_path):
    manifest = write_tiny_fashion(tmp_path, n_train=50, n_test=20)
    p = tmp_path / "train-labels-idx1-ubyte.gz"
    payload = bytearray(gzip.decompress(p.read_bytes()))
    payload[-1] = (payload[-1] + 1) % 10
    p.write_bytes(gzip.compress(bytes(payload)))
    with pytest.raises(DatasetCorruptError, match=r"train-labels-idx1-ubyte\.gz is corrupt"):
        load_fashion_mnist_binary(tmp_path, (0, 1), checksums=manifest)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DatasetMissingError, match=r"t10k-images-idx3-ubyte\(\.gz\) not found"):
        load_fashion_mnist_binary(tmp_path, (0, 1), checksums=None)

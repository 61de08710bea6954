"""Atomic saving of results and checkpoints.

Every file is written to a temporary file in the same directory and moved into
place with :func:`os.replace`, so a crash never leaves a half-written result.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["atomic_write_bytes", "save_json", "load_json", "save_csv", "save_torch", "load_torch"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename).

    Parameters
    ----------
    path : str or os.PathLike
        Destination; missing parent directories are created.
    data : bytes
        The file's content.

    Returns
    -------
    pathlib.Path
        ``path``. On any error the temporary file is removed and ``path`` is untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = atomic_write_bytes(pathlib.Path(tempfile.mkdtemp()) / "a.txt", b"hi")
    >>> p.read_bytes()
    b'hi'
    >>> oct(p.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # as open() would create it
    True
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file 0600; give it the mode a plain open() would (0644 under umask 022)
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _to_jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray):
        return _to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _to_jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Save ``obj`` as indented JSON, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    obj : object
        Nested dicts/lists of numbers and strings; tensors and arrays become lists,
        NaN becomes ``null`` and infinities the strings ``"inf"``/``"-inf"``.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> p = save_json(pathlib.Path(tempfile.mkdtemp()) / "r.json", {"w": torch.tensor([1.0, 2.0])})
    >>> load_json(p)
    {'w': [1.0, 2.0]}
    """
    text = json.dumps(_to_jsonable(obj), indent=2, sort_keys=False)
    return atomic_write_bytes(path, (text + "\n").encode())


def load_json(path: str | os.PathLike) -> Any:
    """Load a JSON file written by :func:`save_json`.

    Parameters
    ----------
    path : str or os.PathLike
        The JSON file.

    Returns
    -------
    object
        The decoded content.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> load_json(save_json(pathlib.Path(tempfile.mkdtemp()) / "r.json", [1, 2]))
    [1, 2]
    """
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def save_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Save a list of flat dicts as CSV, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    rows : iterable of mapping
        One dict per row; the header is the union of the keys, in first-seen order.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = save_csv(pathlib.Path(tempfile.mkdtemp()) / "r.csv", [{"k": 1, "m": 0.5}, {"k": 2}])
    >>> p.read_text().splitlines()
    ['k,m', '1,0.5', '2,']
    """
    rows = [dict(_to_jsonable(r)) for r in rows]
    fields: list[str] = []
    for r in rows:
        fields.extend(k for k in r if k not in fields)
    import io as _io

    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_bytes(path, buf.getvalue().encode())


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """Save ``obj`` with :func:`torch.save`, atomically (for checkpoints).

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    obj : object
        Anything :func:`torch.save` accepts (state dicts, RNG states, ...).

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> p = save_torch(pathlib.Path(tempfile.mkdtemp()) / "c.pt", {"w": torch.ones(2)})
    >>> load_torch(p)["w"].tolist()
    [1.0, 1.0]
    """
    import io as _io

    buf = _io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_torch(path: str | os.PathLike) -> Any:
    """Load a checkpoint written by :func:`save_torch` onto the CPU.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file (trusted: it is unpickled).

    Returns
    -------
    object
        The saved object.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> load_torch(save_torch(pathlib.Path(tempfile.mkdtemp()) / "c.pt", {"epoch": 3}))
    {'epoch': 3}
    """
    return torch.load(path, map_location="cpu", weights_only=False)

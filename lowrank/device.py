"""Choosing the torch device: ``--device auto|cpu|cuda`` for every study that trains.

* :func:`resolve_device` turns ``"auto"`` (CUDA when available, else the CPU),
  ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a :class:`torch.device` into a concrete
  :class:`torch.device`, with a clear error when CUDA is asked for but absent.
* :func:`add_device_argument` adds the ``--device`` option to a study's parser.
* :func:`device_info` describes a device for result files (type, name and, on
  CUDA, the GPU model and the CUDA version torch was built with), so that a
  result records the device it really ran on.
"""

from __future__ import annotations

import argparse

import torch

__all__ = ["DEVICE_CHOICES", "resolve_device", "add_device_argument", "device_info"]

#: Values accepted by ``--device`` (``cuda:<index>`` is accepted too).
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The concrete device for ``device``.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:<index>"}, torch.device or None, default "auto"
        ``"auto"`` and ``None`` pick the current CUDA device when one is available,
        the CPU otherwise. ``"cuda"`` is resolved to the current CUDA device index.
        Other device types torch knows (``"meta"``, ``"mps"``, ...) are passed through.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If ``device`` is not a device name, or names CUDA while none is available.

    Examples
    --------
    >>> from lowrank.device import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("auto").type in ("cpu", "cuda")
    True
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return _current_cuda() if torch.cuda.is_available() else torch.device("cpu")
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or a "
                         f"torch.device, got {type(device).__name__}")
    try:
        dev = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except RuntimeError as err:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or a "
                         f"torch.device, got {device!r}") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={str(device)!r} but CUDA is not available "
                             f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); "
                             "use device='cpu' or 'auto'")
        if dev.index is None:
            return _current_cuda()
        if dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={str(device)!r} but only {torch.cuda.device_count()} CUDA "
                             "device(s) are visible")
    return dev


def _current_cuda() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device())


def add_device_argument(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--device {auto,cpu,cuda,cuda:<index>}`` (default ``auto``) to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser

    Returns
    -------
    argparse.ArgumentParser
        The same parser; the parsed value is a string, resolve it with
        :func:`resolve_device` when the run starts.

    Examples
    --------
    >>> import argparse
    >>> p = add_device_argument(argparse.ArgumentParser())
    >>> p.parse_args([]).device, p.parse_args(["--device", "cpu"]).device
    ('auto', 'cpu')
    """
    def _choice(value: str) -> str:
        v = value.strip().lower()
        if v in DEVICE_CHOICES or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise argparse.ArgumentTypeError(
            f"--device must be one of {DEVICE_CHOICES} or cuda:<index>, got {value!r}")

    parser.add_argument("--device", type=_choice, default="auto", metavar="{auto,cpu,cuda}",
                        help="where to train and attack: auto = CUDA when available, else CPU")
    return parser


def device_info(device: str | torch.device) -> dict:
    """What to record about the device a run used.

    Parameters
    ----------
    device : str or torch.device
        A concrete device (see :func:`resolve_device`).

    Returns
    -------
    dict
        ``device`` (e.g. ``"cpu"``, ``"cuda:0"``), ``device_type`` and, on CUDA,
        ``gpu`` (name), ``gpu_memory_bytes``, ``cuda`` (torch's CUDA version) and
        ``gpu_count``; on the CPU, ``cpu_threads``.

    Examples
    --------
    >>> info = device_info("cpu")
    >>> info["device"], info["device_type"]
    ('cpu', 'cpu')
    """
    dev = torch.device(device)
    info: dict = {"device": str(dev), "device_type": dev.type}
    if dev.type == "cuda":
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        info.update(device=f"cuda:{idx}", gpu=props.name, gpu_memory_bytes=int(props.total_memory),
                    cuda=torch.version.cuda, gpu_count=torch.cuda.device_count())
    elif dev.type == "cpu":
        info["cpu_threads"] = torch.get_num_threads()
    return info

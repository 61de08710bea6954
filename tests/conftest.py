"""Shared fixtures: the ``device`` fixture and a check that the library names its devices.

``device``
    Parametrises a test over ``cpu`` (always) and ``cuda`` (marked ``gpu``;
    skipped without a CUDA device). On a GPU machine ``python -m pytest -m gpu``
    runs exactly the CUDA cases, unchanged.
``explicit_devices``
    A context manager that fails when code of the ``lowrank`` package calls a
    tensor factory (``torch.tensor``, ``zeros``, ``arange``, ...) without
    naming its device: on a CPU-only machine this catches the tensors that
    would silently land on the CPU next to CUDA data (the ``energy_rank``
    failure on a GPU), without a GPU.
"""

from __future__ import annotations

import contextlib
import os
import sys

import pytest
import torch
from torch.overrides import TorchFunctionMode

CUDA = torch.cuda.is_available()

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda",
                 marks=[pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="no CUDA device")]),
]


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """``torch.device("cpu")``, and ``torch.device("cuda")`` when a GPU is present."""
    return torch.device(request.param)


#: Factories that put a new tensor on the default device unless told otherwise.
_FACTORIES = {torch.tensor, torch.zeros, torch.ones, torch.empty, torch.full, torch.arange,
              torch.linspace, torch.logspace, torch.eye, torch.rand, torch.randn, torch.randint,
              torch.randperm, torch.as_tensor, torch.scalar_tensor}
_LOWRANK = os.sep + "lowrank" + os.sep


class _ExplicitDevices(TorchFunctionMode):
    """Record factory calls made directly by ``lowrank`` code without a ``device=``."""

    def __init__(self) -> None:
        super().__init__()
        self.offenders: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _FACTORIES and kwargs.get("device") is None \
                and not (func is torch.as_tensor and args and isinstance(args[0], torch.Tensor)):
            frame = sys._getframe(1)  # the caller of the factory
            if _LOWRANK in frame.f_code.co_filename:
                self.offenders.append(f"{func.__name__} at {frame.f_code.co_filename}:"
                                      f"{frame.f_lineno}")
        return func(*args, **kwargs)


@pytest.fixture
def explicit_devices():
    """Context manager: fail if ``lowrank`` code creates a tensor without naming its device."""

    @contextlib.contextmanager
    def check():
        mode = _ExplicitDevices()
        with mode:
            yield mode
        assert not mode.offenders, ("tensor factories without device= in lowrank: "
                                    + "; ".join(sorted(set(mode.offenders))))

    return check

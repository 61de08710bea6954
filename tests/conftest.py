"""Shared fixtures: devices, kernel backends, seeded generators, explicit-device check.

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
``backend``
    Parametrises a test over the backends of :func:`lowrank.kernels.pairwise_logistic`
    that this machine can run (the model is POT's ``nx`` fixture): ``naive`` and
    ``torch`` on the CPU, and ``triton`` on CUDA tensors (``triton-cuda``) or, without a
    GPU, on CPU tensors under the Triton interpreter (``triton-interpreter``); skipped
    where triton is not installed. A test may narrow the list with
    ``@pytest.mark.parametrize("backend", ["torch", "triton"], indirect=True)``.
``rng``
    A fresh ``torch.Generator`` seeded with 0: every test draws the same numbers whatever
    ran before it.

The interpreter must be switched on (``TRITON_INTERPRET=1``) before triton is first
imported: :func:`pytest_configure` does it, before any test module is imported, when
triton is installed and no CUDA device is present. Nothing is set at import time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from dataclasses import dataclass

import pytest
import torch
from torch.overrides import TorchFunctionMode

CUDA = torch.cuda.is_available()

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda",
                 marks=[pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="no CUDA device")]),
]


HAS_TRITON = importlib.util.find_spec("triton") is not None


def pytest_configure(config) -> None:
    """Triton under its interpreter where no CUDA device is present; figures drawn with Agg."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # read when matplotlib is first imported
    if HAS_TRITON and not CUDA and "triton" not in sys.modules:
        os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """``torch.device("cpu")``, and ``torch.device("cuda")`` when a GPU is present."""
    return torch.device(request.param)


def triton_mode() -> str:
    """How the Triton backend runs here: ``"cuda"``, ``"interpreter"`` or ``"none"``.

    ``"none"`` where triton is not installed, or where it was imported in compiled mode
    on a machine without CUDA (the interpreter can then no longer be switched on).
    """
    if not HAS_TRITON:
        return "none"
    if CUDA:
        return "cuda"
    from triton.language import standard
    from triton.runtime.interpreter import InterpretedFunction

    return "interpreter" if isinstance(standard.sum, InterpretedFunction) else "none"


def old_interpreter() -> bool:
    """Triton < 3.7 under NumPy 2: its interpreter cannot run the kernel.

    It turns the program id, a one-element array, into a loop bound with ``int()``, which
    NumPy 2 refuses ("only 0-dimensional arrays can be converted to Python scalars").
    Compiled on a GPU, those versions run the kernel (Triton 3.6 was measured on an H200).
    """
    if not HAS_TRITON:
        return False
    import numpy
    import triton

    def version(text: str) -> tuple[int, ...]:
        return tuple(int(x) for x in text.split(".")[:2] if x.isdigit())

    return version(triton.__version__) < (3, 7) and version(numpy.__version__) >= (2,)


OLD_INTERPRETER_REASON = ("Triton < 3.7's interpreter cannot run the kernel under NumPy 2; "
                          "install triton>=3.7 to test the kernel on the CPU")


@dataclass(frozen=True)
class Backend:
    """A backend of :func:`lowrank.kernels.pairwise_logistic` and the device of its inputs."""

    name: str
    device: torch.device

    def put(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The tensors on this backend's device."""
        return tuple(t.to(self.device) for t in tensors)


BACKENDS = ["naive", "torch", "triton"]


def _backend_id(name: str) -> str:
    return f"triton-{'cuda' if CUDA else 'interpreter'}" if name == "triton" else name


@pytest.fixture(params=BACKENDS, ids=_backend_id)
def backend(request) -> Backend:
    """Each backend this machine can run, with the device its inputs go to."""
    if request.param != "triton":
        return Backend(request.param, torch.device("cpu"))
    mode = triton_mode()
    if mode == "none":
        pytest.skip("triton is not installed" if not HAS_TRITON else
                    "triton was imported in compiled mode without a CUDA device: run pytest "
                    "in a fresh process so that conftest switches the interpreter on")
    if mode == "interpreter" and old_interpreter():
        pytest.skip(OLD_INTERPRETER_REASON)
    return Backend("triton", torch.device("cuda" if mode == "cuda" else "cpu"))


@pytest.fixture
def rng() -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with 0."""
    return torch.Generator().manual_seed(0)


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

"""The one ``base.device`` setting: where detect, graphs, train and evaluate run their networks.

``auto`` picks CUDA when a GPU is visible and the CPU otherwise; ``cpu``, ``cuda`` and ``cuda:N``
ask for one. Every tensor a stage makes is made on the device of the model it feeds, so the same
code runs on either (``tests/separation/test_device.py`` checks that without a GPU).
"""

from __future__ import annotations

import re

import torch

from pipeline.errors import PipelineError

_NAME = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device_name(name: str) -> str:
    """Return ``name`` if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; else raise ValueError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"device {name!r}: use auto, cpu, cuda or cuda:N")
    return name


def resolve_device(name: str = "auto", rank: int = 0) -> torch.device:
    """The :class:`torch.device` for ``base.device``; under torchrun a bare ``cuda`` (or ``auto``
    with GPUs) becomes ``cuda:<rank % GPUs>`` so each process takes its own GPU.

    Raises:
        PipelineError: CUDA was asked for and no GPU is visible (or index N does not exist).
    """
    check_device_name(name)
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise PipelineError(
            f"base.device is {name!r} but torch sees no CUDA GPU (torch {torch.__version__}, "
            f"built for CUDA {torch.version.cuda}); set base.device: auto or cpu"
        )
    count = torch.cuda.device_count()
    index = int(name.split(":")[1]) if ":" in name else rank % count
    if index >= count:
        raise PipelineError(f"base.device is {name!r} but only {count} GPU(s) are visible")
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (CPU for a model without parameters)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))

"""Process groups for stages that run the same under ``torchrun`` as in one process."""

from __future__ import annotations

import os

import torch


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes. Under ``torchrun`` (``WORLD_SIZE`` > 1)
    the default process group is started on first call: NCCL with a GPU, gloo without."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (torch.distributed.get_rank() if world > 1 else 0), world

"""Joining the process group that torchrun describes (issue 10), for commands that run unchanged with or without it.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta
from typing import Iterator

import torch
import torch.distributed as dist

# How long a collective waits for a rank that failed or died before every rank raises (torch's default is 30 min).
TIMEOUT = timedelta(minutes=10)


@contextmanager
def torchrun_group() -> Iterator[tuple[int, int]]:
    """Yields (rank, world) from torchrun's environment (RANK, WORLD_SIZE; (0, 1) when they are absent).

    With WORLD_SIZE > 1 it initialises the default process group from the environment (``env://``: MASTER_ADDR,
    MASTER_PORT, which torchrun sets): NCCL with device LOCAL_RANK when CUDA is available, else Gloo; collectives
    time out after ``TIMEOUT``. The group is destroyed on exit, also after an error. A group that already exists
    is used as it is and left alone.

    Raises:
        ValueError: RANK or WORLD_SIZE is not an int, or RANK is outside [0, WORLD_SIZE).
    """
    try:
        world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    except ValueError as error:
        raise ValueError(f"RANK and WORLD_SIZE must be ints (torchrun sets them); got RANK="
                         f"{os.environ.get('RANK')!r}, WORLD_SIZE={os.environ.get('WORLD_SIZE')!r}") from error
    if not 0 <= rank < world:
        raise ValueError(f"RANK must be in [0, WORLD_SIZE); got RANK={rank}, WORLD_SIZE={world}")
    if world == 1 or dist.is_initialized():
        yield (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (rank, world)
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, timeout=TIMEOUT)
    try:
        yield rank, world
    finally:
        dist.destroy_process_group()

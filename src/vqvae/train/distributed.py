"""Several processes (``torchrun``): one process per device, gradients all-reduced.

Launched by ``torchrun --nproc-per-node N vqvae train ...``; each process reads RANK and
WORLD_SIZE from the environment. NCCL on CUDA devices, gloo on CPU (how the tests run it).
Every process computes the same global batch indices and keeps its own slice; the
quantizers all-reduce their codebook statistics; rank 0 alone writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        """This process's share of a global batch."""
        return indices[self.rank :: self.size] if self.size > 1 else indices

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def current() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def launch_rank() -> int:
    """This process's rank as torchrun set it, readable before the process group exists."""
    return int(os.environ.get("RANK", "0"))


def setup(device: str | None = None) -> tuple[World, torch.device]:
    """Join the process group when launched by torchrun; choose this process's device."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available() and device in (None, "cuda")
    if size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    world = current()
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return world, torch.device("cuda", local)
    return world, torch.device(device or "cpu")


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel when there are several processes, the model itself otherwise."""
    if current().size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)

"""Several processes (``torchrun``): one process per device, gradients all-reduced.

Launched by ``torchrun --nproc-per-node N vqvae train ...``; each process reads RANK and
WORLD_SIZE from the environment. NCCL on CUDA devices, gloo on CPU (how the tests run it).
Every process computes the same global batch indices and keeps its own slice (and reads only
those images); the quantizers all-reduce their codebook statistics; rank 0 alone writes
files. ``World.any`` is how the processes agree to stop together (``loop.py``).

Under ``torchrun --max-restarts N`` a failed process makes torchrun restart all of them;
``restarted()`` tells a command so, and ``vqvae train`` then resumes from the last checkpoint.
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

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds in any process; every process calls it at the same point."""
        if self.size == 1:
            return bool(flag)
        cuda = dist.get_backend() == "nccl"  # NCCL reduces CUDA tensors only
        device = torch.device("cuda", torch.cuda.current_device()) if cuda else None
        found = torch.tensor([int(bool(flag))], device=device)
        dist.all_reduce(found, op=dist.ReduceOp.MAX)
        return bool(found.item())


def current() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def restart_count() -> int:
    """How many times torchrun restarted this process's group (``--max-restarts``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def restarted() -> bool:
    """Whether torchrun restarted this process after a failure (``--max-restarts``)."""
    return restart_count() > 0


def launch_rank() -> int:
    """This process's rank as torchrun set it, readable before the process group exists."""
    return int(os.environ.get("RANK", "0"))


def setup(device: str | None = None) -> tuple[World, torch.device]:
    """Join the process group when launched by torchrun; choose this process's device."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available() and device in (None, "cuda")
    if size > 1 and not dist.is_initialized():
        store, rank, size = next(dist.rendezvous("env://"))
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            # torchrun's own store outlives a restart, holding the addresses the processes
            # of the attempt before published: read by the new ones, they time out
            # connecting to dead peers. A prefix per attempt keeps each to its own keys.
            store = dist.PrefixStore(f"vqvae/attempt-{restart_count()}/", store)
        backend = "nccl" if cuda else "gloo"
        dist.init_process_group(backend, store=store, rank=rank, world_size=size)
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

    for p in model.parameters():
        if p.requires_grad and 1 in p.shape:
            p.register_hook(_with_strides_of(p))
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _with_strides_of(param: torch.Tensor):
    """A gradient hook giving the gradient its parameter's strides.

    A 1x1 convolution's weight gradient can come back with other strides on its size-1
    dimensions (e.g. (16, 1, 16, 16) for a (8, 16, 1, 1) weight of strides (16, 1, 1, 1)):
    the same memory order, which autograd accepts, but DDP's reducer compares strides
    exactly and warns "Grad strides do not match bucket view strides" at every step."""
    strides = param.stride()

    def hook(grad: torch.Tensor) -> torch.Tensor:
        if grad.stride() == strides:
            return grad
        out = torch.empty_strided(grad.shape, strides, dtype=grad.dtype, device=grad.device)
        return out.copy_(grad)

    return hook

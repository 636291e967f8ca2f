"""Batches of images, in the order asked, for training and inference: decoded by
``torch.utils.data.DataLoader`` worker processes when the images are files
(``LazyImages`` with ``workers > 0``), indexed in this process otherwise (an array in
memory or memory-mapped has nothing to gain from other processes).

Which images make a batch is the caller's choice (training asks for ``batch_indices`` of
each step), so reading through workers changes no batch: a resumed run reads the same images.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from vqvae.errors import DataError

from .lazy import ImageFiles, LazyImages

Images = np.ndarray | LazyImages  # uint8 (N, H, W, C)
MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """Worker processes when ``--workers`` is not given: the CPUs of this process's share
    (torchrun's ``LOCAL_WORLD_SIZE`` processes share a machine) that training leaves free,
    at most 8; 0 (decode in this process) when it leaves none.

    Training on a GPU keeps one CPU busy; on the CPU, torch's ``get_num_threads()`` threads
    take that many. A worker on a CPU those threads use takes far more from the training step
    than its decoding costs in this process (every thread of a parallel operation waits for
    the one it preempted: on 2 CPUs, 0.77x the in-memory array's speed with one worker,
    1.03x decoding between steps, measured by ``benchmarks/data.py``)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    share = (cpus or 1) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    busy = 1 if torch.cuda.is_available() else torch.get_num_threads()
    return max(0, min(MAX_DEFAULT_WORKERS, share - busy))


def read_batches(
    images: Images, batches: Iterable[Any], *, pin_memory: bool = False
) -> Iterator[torch.Tensor]:
    """uint8 tensors (B, H, W, C), one for each item of ``batches`` (an index array or
    tensor, or a slice), in order. ``pin_memory`` pins them for a fast copy to a GPU (with
    CUDA only). A file that cannot be decoded raises its one-line ``DataError`` here."""
    pin_memory = pin_memory and torch.cuda.is_available()
    if not _uses_workers(images):
        for key in batches:
            batch = torch.from_numpy(np.ascontiguousarray(images[_as_index(key)]))
            yield batch.pin_memory() if pin_memory else batch
        return
    loader = DataLoader(
        _BatchReader(images),
        batch_size=None,  # each item is a whole batch, decoded by one worker
        sampler=_Once(batches),
        num_workers=images.workers,
        pin_memory=pin_memory,
        worker_init_fn=_ignore_ctrl_c,
        # Starting workers draws a base seed from this generator, not the global one, whose
        # state a checkpoint saves: with workers or without, training draws the same numbers.
        generator=torch.Generator().manual_seed(0),
    )
    for item in loader:
        if isinstance(item, _Failure):
            raise DataError(item.message)
        yield item


def read_all(images: Images, limit: int | None = None, batch_size: int = 256) -> np.ndarray:
    """The images (the first ``limit``), uint8 (N, H, W, C) in memory: decoded by the
    workers when they are files."""
    if isinstance(images, np.ndarray):
        return images[:limit]
    images = images.subset(slice(0, limit))
    slices = [slice(i, i + batch_size) for i in range(0, len(images), batch_size)]
    parts = [batch.numpy() for batch in read_batches(images, slices)]
    return np.concatenate(parts) if parts else images[:0]


def _uses_workers(images: Images) -> bool:
    return (
        isinstance(images, LazyImages)
        and images.workers > 0
        and isinstance(images.source, ImageFiles)
    )


def _as_index(key: Any) -> Any:
    return key.cpu().numpy() if isinstance(key, torch.Tensor) else key


@dataclass(frozen=True)
class _Failure:
    message: str  # a DataError's, raised again in the main process


class _BatchReader:
    """The map-style data set a worker reads: a batch of images by their indices."""

    def __init__(self, images: LazyImages) -> None:
        self.images = images

    def __getitem__(self, key: Any) -> torch.Tensor | _Failure:
        try:
            return torch.from_numpy(self.images[_as_index(key)])
        except DataError as e:  # DataLoader would wrap it in a traceback of the worker
            return _Failure(str(e))


class _Once:
    """An iterable over ``batches``, which DataLoader takes as its sampler."""

    def __init__(self, batches: Iterable[Any]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[Any]:
        return iter(self.batches)


def _ignore_ctrl_c(worker_id: int) -> None:
    """Ctrl-C belongs to the main process, which finishes its step and saves a checkpoint;
    a worker stopping on it would fail the batches still to come."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

"""Images read on demand: ``LazyImages`` looks like a read-only uint8 ``(N, H, W, C)`` array
whose items are decoded (or paged in) only when indexed.

Two sources: ``ImageFiles``, the files of a folder index, decoded one by one exactly as
``read_image_folder`` decodes them (so lazy and eager reading give the same bytes), and
``MappedArray``, a memory-mapped ``.npy``. Indexing with an integer gives one image
``(H, W, C)``; with a slice or an index array, a new uint8 array ``(n, H, W, C)``; ``subset``
gives another ``LazyImages`` without reading anything. ``loader.py`` reads batches of them in
worker processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from vqvae.errors import DataError

from .folder_index import FolderIndex
from .images import read_image


class ImageSource(Protocol):
    """Reads images by their position in the source."""

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        ...

    def read(self, positions: np.ndarray) -> np.ndarray:
        """uint8 (len(positions), H, W, C)."""
        ...


@dataclass(frozen=True)
class ImageFiles:
    """The files of a folder, decoded on each read (picklable: only paths and sizes)."""

    folder: Path
    files: tuple[str, ...]  # relative to ``folder``
    shape: tuple[int, int, int]  # (H, W, C) of every image once read
    resize: tuple[int, int] | None = None

    def read(self, positions: np.ndarray) -> np.ndarray:
        h, w, c = self.shape
        out = np.empty((len(positions), h, w, c), dtype=np.uint8)
        for i, pos in enumerate(positions):
            out[i] = self._read_one(os.path.join(self.folder, self.files[int(pos)]))
        return out

    def _read_one(self, path: str) -> np.ndarray:
        img = read_image(path, self.resize)  # (H, W, 1 or 3)
        h, w, c = self.shape
        if img.shape[:2] != (h, w):
            raise DataError(
                f"{path}: decoded as {img.shape[0]}x{img.shape[1]}, but its header (or the "
                f"other images) say {h}x{w}; pass resize=(H, W)"
            )
        if img.shape[-1] == c:
            return img
        if c == 3:  # a grey image among colour ones, as read_image_folder makes it
            return np.repeat(img, 3, axis=-1)
        raise DataError(f"{path}: decoded in colour, though its header says grey")


@dataclass(frozen=True, eq=False)
class MappedArray:
    """A uint8 (N, H, W, C) array, typically memory-mapped: a read pages in its rows only."""

    array: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape[1:])  # type: ignore[return-value]

    def read(self, positions: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.array[positions], dtype=np.uint8)


@dataclass(frozen=True, eq=False)
class LazyImages:
    source: ImageSource
    positions: np.ndarray  # int64 (N,): which items of the source, in order
    workers: int = 0  # DataLoader worker processes for loader.read_batches (0: this process)

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __post_init__(self) -> None:
        positions = np.asarray(self.positions, dtype=np.int64).reshape(-1)
        object.__setattr__(self, "positions", positions)
        if self.workers < 0:
            raise ValueError(f"expected workers >= 0, got {self.workers}")

    @classmethod
    def from_index(
        cls, index: FolderIndex, resize: tuple[int, int] | None = None, workers: int = 0
    ) -> LazyImages:
        """The images of a folder index, of its one size (or ``resize``), grey or RGB as
        ``read_image_folder`` would make them."""
        h, w = index.image_size(resize)
        files = ImageFiles(index.folder, index.files, (h, w, index.num_channels), resize)
        return cls(files, np.arange(len(index)), workers)

    @classmethod
    def from_array(cls, array: np.ndarray) -> LazyImages:
        """A uint8 (N, H, W, C) array (memory-mapped) read one batch at a time."""
        return cls(MappedArray(array), np.arange(len(array)))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.positions), *self.source.shape)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, key: Any) -> np.ndarray:
        """``[i]``: one image (H, W, C); ``[a:b]``, ``[index_array]``: uint8 (n, H, W, C)."""
        if isinstance(key, int | np.integer):
            return self.source.read(self.positions[[key]])[0]
        return self.source.read(self.positions[self._select(key)])

    def subset(self, key: Any) -> LazyImages:
        """The images ``key`` selects (a slice or an index array), still unread."""
        return LazyImages(self.source, self.positions[self._select(key)], self.workers)

    def with_workers(self, workers: int) -> LazyImages:
        return LazyImages(self.source, self.positions, workers)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """Every image, read into memory (what an eager caller asking for an array gets)."""
        images = self[:]
        return images if dtype is None else images.astype(dtype)

    def _select(self, key: Any) -> Any:
        if isinstance(key, slice):
            return key
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        key = np.asarray(key)
        if key.dtype == bool or key.dtype.kind not in "iu" or key.ndim != 1:
            raise IndexError(f"LazyImages takes an int, a slice or a 1-D index array, got {key!r}")
        return key

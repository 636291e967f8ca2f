"""The image data set every loader returns, and the seeded split.

Pixel values are stored as uint8 ``(N, H, W, C)``: an array in memory, or ``LazyImages``
read on demand (``lazy.py``); only ``transforms.py`` converts them to the ``[-1, 1]``
channel-first tensors the models see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vqvae.errors import DataError

from .lazy import LazyImages

SPLITS = ("train", "val", "test")  # val: only where the data has one (splits.py)
TEST_FRACTION = 0.1  # for data with no split of its own
SPLIT_SEED = 0


# eq=False: the generated __eq__/__hash__ would compare numpy arrays, which has no single answer
@dataclass(frozen=True, eq=False)
class ImageDataset:
    images: np.ndarray | LazyImages  # uint8 (N, H, W, C), C in {1, 3}
    labels: np.ndarray | None  # int64 (N,)
    name: str  # a registered name such as "mnist", or the path it came from
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        x = self.images
        array = isinstance(x, np.ndarray | LazyImages)
        if not array or x.dtype != np.uint8 or x.ndim != 4:
            got = f"{x.dtype} {x.shape}" if array else type(x).__name__
            raise ValueError(f"{self.name}: images must be uint8 (N, H, W, C), got {got}")
        if x.shape[-1] not in (1, 3):
            raise ValueError(f"{self.name}: images need 1 or 3 channels, got shape {x.shape}")
        y = self.labels
        if y is not None and (
            not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.shape != (len(x),)
        ):
            got = f"{y.dtype} {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
            raise ValueError(f"{self.name}: labels must be int64 ({len(x)},), got {got}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_channels(self) -> int:
        return int(self.images.shape[-1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    @property
    def lazy(self) -> bool:
        """Whether the images are read on demand (``LazyImages``), not held in memory."""
        return isinstance(self.images, LazyImages)

    @property
    def num_classes(self) -> int:
        """The number of classes; 0 when the data set has no labels."""
        return count_classes(self.labels, self.class_names)


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    return split


def split_indices(n: int, split: str, test_fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """Indices of ``split`` in a fixed seeded train/test split of ``n`` items (for data sets
    that have no split of their own). The two splits partition ``range(n)``; each keeps the
    original order so that labels and file order stay easy to follow."""
    if split not in ("train", "test"):
        raise DataError(f"no {split!r} split: a seeded split has only train and test")
    n_test = min(max(1, round(n * test_fraction)), n - 1) if n >= 2 else 0
    test = np.zeros(n, dtype=bool)
    test[np.random.default_rng(seed).permutation(n)[:n_test]] = True
    return np.flatnonzero(test if split == "test" else ~test)


def count_classes(labels: np.ndarray | None, class_names: tuple[str, ...] | None) -> int:
    """How many classes a data set has: its class names, else the largest label + 1; 0 when
    it has no labels."""
    if labels is None:
        return 0
    if class_names is not None:
        return len(class_names)
    return int(labels.max()) + 1 if len(labels) else 0

"""Recorded episodes of a first-person 3-D world: frames and the actions taken between them.

The paper's sections 4.2 and 4.4 used DeepMind Lab frames; our recorder (``maze.py``) writes
episodes of DeepMind's memory-maze in the same layout. An episodes file is an ``.npz`` with

- ``frames``  uint8 ``(N, T, H, W, 3)``: N episodes of T frames each;
- ``actions`` int64 ``(N, T)``: ``actions[n, t]`` was taken after seeing ``frames[n, t]`` and
  led to ``frames[n, t + 1]`` (the last one leads nowhere recorded);
- ``action_names`` str ``(A,)``: the name of each action id, so ``actions < A``.

As a data set of images (``--data maze.npz``) it is its frames, ``(N*T, H, W, 3)``, split by
whole episodes with the fixed seed every seeded split uses: no test frame is a neighbour of a
training frame.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vqvae._io import write_npz
from vqvae.errors import DataError

from .base import SPLIT_SEED, TEST_FRACTION, split_indices

KEYS = ("frames", "actions", "action_names")


# eq=False: the generated __eq__ would compare numpy arrays, which has no single answer
@dataclass(frozen=True, eq=False)
class Episodes:
    frames: np.ndarray  # uint8 (N, T, H, W, 3)
    actions: np.ndarray  # int64 (N, T): actions[n, t] leads from frames[n, t] to frames[n, t+1]
    action_names: tuple[str, ...]  # (A,)
    name: str = "episodes"

    def __post_init__(self) -> None:
        f, a = self.frames, self.actions
        if not isinstance(f, np.ndarray) or f.dtype != np.uint8 or f.ndim != 5 or f.shape[-1] != 3:
            got = f"{f.dtype} {f.shape}" if isinstance(f, np.ndarray) else type(f).__name__
            raise DataError(f"{self.name}: frames must be uint8 (N, T, H, W, 3), got {got}")
        if 0 in f.shape:
            raise DataError(f"{self.name}: no frames (shape {f.shape})")
        if not isinstance(a, np.ndarray) or a.dtype.kind not in "ui" or a.shape != f.shape[:2]:
            got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            raise DataError(f"{self.name}: actions must be integers {f.shape[:2]}, got {got}")
        if not self.action_names:
            raise DataError(f"{self.name}: no action names")
        if a.min() < 0 or a.max() >= len(self.action_names):
            raise DataError(
                f"{self.name}: actions must be in 0..{len(self.action_names) - 1} "
                f"(one per action name), got {int(a.min())}..{int(a.max())}"
            )
        object.__setattr__(self, "actions", a.astype(np.int64, copy=False))
        object.__setattr__(self, "action_names", tuple(str(n) for n in self.action_names))

    @property
    def num_episodes(self) -> int:
        return int(self.frames.shape[0])

    @property
    def steps(self) -> int:
        """T, the frames per episode."""
        return int(self.frames.shape[1])

    @property
    def frame_size(self) -> tuple[int, int]:
        return int(self.frames.shape[2]), int(self.frames.shape[3])

    @property
    def num_actions(self) -> int:
        return len(self.action_names)

    def action_id(self, name: str) -> int:
        """The id of an action name (``forward``, ``right``, ...), or a DataError naming them."""
        if name not in self.action_names:
            names = ", ".join(self.action_names)
            raise DataError(f"unknown action {name!r}: expected one of {names}")
        return self.action_names.index(name)

    def subset(self, episodes: np.ndarray) -> Episodes:
        """These episodes only, by index."""
        return Episodes(self.frames[episodes], self.actions[episodes], self.action_names, self.name)

    def split(self, split: str) -> Episodes:
        """The ``train`` or ``test`` episodes (the seeded split over whole episodes)."""
        return self.subset(episode_split(self.num_episodes, split))

    def flat_frames(self) -> np.ndarray:
        """Every frame: (N, T, H, W, 3) -> (N*T, H, W, 3)."""
        return self.frames.reshape(-1, *self.frames.shape[2:])

    def write(self, path: str | Path) -> Path:
        """Save atomically as an ``.npz`` that ``read_episodes`` reads back."""
        return write_npz(
            path,
            frames=self.frames,
            actions=self.actions,
            action_names=np.array(self.action_names),
        )


def episode_split(num_episodes: int, split: str) -> np.ndarray:
    """Indices of the episodes in ``split`` (``train`` or ``test``), fixed by the split seed."""
    return split_indices(num_episodes, split, test_fraction=TEST_FRACTION, seed=SPLIT_SEED)


def is_episodes_file(path: Path) -> bool:
    """Whether ``path`` is an ``.npz`` with ``frames`` and ``actions`` (reads its listing only)."""
    if path.suffix.lower() != ".npz" or not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            return "frames" in z.files and "actions" in z.files
    except (ValueError, OSError, EOFError, zlib.error):
        return False


def read_episodes(path: str | Path) -> Episodes:
    """The episodes in an ``.npz`` written by ``Episodes.write`` (or ``vqvae data maze``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such episodes file")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in KEYS if k not in z.files]
            if missing:
                raise DataError(
                    f"{path}: not an episodes file: missing {', '.join(missing)} "
                    f"(has {', '.join(z.files) or 'nothing'})"
                )
            frames, actions, names = (z[k] for k in KEYS)
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zlib.error) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: not a readable .npz file ({first})") from None
    if names.dtype.kind != "U" or names.ndim != 1:
        got = f"{names.dtype} {names.shape}"
        raise DataError(f"{path}: action_names must be strings (A,), got {got}")
    return Episodes(frames, actions, tuple(names.tolist()), name=str(path))

"""The index of a folder of images: its files in reading order, their labels, and each
image's size and colour read from its header, never its pixels (``lazy.py`` decodes them on
demand).

An index is cached as an ``.npz`` under the cache folder (``$VQVAE_CACHE``, else
``$XDG_CACHE_HOME/vqvae``, else ``~/.cache/vqvae``), keyed by the folder's listing: every
file's relative name, size and modification time. A second command on an unchanged folder
reads no image header; a file added, removed or rewritten makes a new key, so a stale index
is never used. A cache that cannot be written is skipped: the index is then made each time.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from vqvae._io import write_npz
from vqvae.errors import DataError

from .images import check_same_size, image_header, list_image_folder

CACHE_ENV = "VQVAE_CACHE"
PARALLEL_FROM = 4096  # files: below this, starting processes costs more than it saves
_FORMAT = 1  # bump when what an index holds changes: older cache files are then ignored


@dataclass(frozen=True, eq=False)
class FolderIndex:
    folder: Path
    files: tuple[str, ...]  # relative to ``folder``, in reading order
    labels: np.ndarray | None  # int64 (N,)
    class_names: tuple[str, ...] | None
    sizes: np.ndarray  # int64 (N, 2): each image's (H, W) as stored
    colour: np.ndarray  # bool (N,): whether each image has colour (else grey)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def num_channels(self) -> int:
        """3 when any image has colour (the grey ones are repeated), else 1."""
        return 3 if bool(self.colour.any()) else 1

    def image_size(self, resize: tuple[int, int] | None) -> tuple[int, int]:
        """(H, W) of every image once read: ``resize``, else the one size they share."""
        if resize is not None:
            return resize
        sizes = [(int(h), int(w)) for h, w in self.sizes]
        check_same_size(self.folder, [os.path.join(self.folder, f) for f in self.files], sizes)
        return sizes[0]


def cache_root() -> Path:
    """Where vqvae caches what it can make again: ``$VQVAE_CACHE``, else
    ``$XDG_CACHE_HOME/vqvae``, else ``~/.cache/vqvae``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "vqvae"


def index_image_folder(
    folder: Path,
    class_names: tuple[str, ...] | None = None,
    *,
    cache: bool = True,
    processes: int = 1,
) -> FolderIndex:
    """The index of ``folder`` (as ``read_image_folder`` would read it: the same files in the
    same order, the same labels), from the cache when its listing is unchanged; else its
    headers are read by up to ``processes`` processes."""
    files, labels, class_names = list_image_folder(folder, class_names)
    names = _relative_names(folder, files)
    folder_key, listing_key = _keys(folder, files, names, class_names)
    cached = cache_root() / "folder-index" / f"{folder_key}-{listing_key}.npz"
    if cache and cached.is_file():
        found = _read_cached(cached, folder, names)
        if found is not None:
            sizes, colour = found
            return FolderIndex(folder, names, labels, class_names, sizes, colour)
    headers = _read_headers(files, processes, f"indexing {folder}")
    sizes = np.asarray([h[:2] for h in headers], dtype=np.int64).reshape(-1, 2)
    colour = np.asarray([h[2] for h in headers], dtype=bool)
    if cache:
        _write_cached(cached, folder_key, names, sizes, colour)
    return FolderIndex(folder, names, labels, class_names, sizes, colour)


def _relative_names(folder: Path, files: list[str]) -> tuple[str, ...]:
    """Each file's name relative to ``folder``, with ``/`` between parts."""
    prefix = os.path.join(str(folder), "")
    if os.sep == "/" and all(p.startswith(prefix) for p in files):
        return tuple(p[len(prefix) :] for p in files)  # 10x quicker than relative_to
    return tuple(Path(p).relative_to(folder).as_posix() for p in files)


def _read_headers(
    files: list[str], processes: int, desc: str = "indexing"
) -> list[tuple[int, int, bool]]:
    """(H, W, colour) of every file, in order: in several processes for a large folder
    (60,000 headers take seconds in one)."""
    if processes <= 1 or len(files) < PARALLEL_FROM:
        return _headers(files)
    size = -(-len(files) // (8 * processes))  # a few chunks each, to even out the work
    chunks = [files[i : i + size] for i in range(0, len(files), size)]
    headers: list[tuple[int, int, bool]] = []
    # disable=None: a bar on a terminal, silent in a log file
    bar = tqdm(total=len(files), desc=desc, unit="file", leave=False, disable=None)
    with ProcessPoolExecutor(processes) as pool, bar:
        for part in pool.map(_headers, chunks):
            headers += part
            bar.update(len(part))
    return headers


def _headers(files: list[str]) -> list[tuple[int, int, bool]]:
    return [image_header(p) for p in files]


def _keys(
    folder: Path, files: list[str], names: tuple[str, ...], class_names: tuple[str, ...] | None
) -> tuple[str, str]:
    """A key of the folder (its resolved path) and one of its listing (names, sizes,
    modification times, and the class names that fix the labels)."""
    folder_key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    digest = hashlib.sha256(f"{_FORMAT}\0{class_names!r}".encode())
    for path, name in zip(files, names, strict=True):
        try:
            st = os.stat(path)
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
        digest.update(f"\0{name}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return folder_key, digest.hexdigest()[:32]


def _read_cached(
    path: Path, folder: Path, names: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray] | None:
    """The sizes and colours of a cached index, or None when it is unreadable or not this
    folder's (a cache is never trusted over the files)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            files, sizes, colour = f["files"], f["sizes"], f["colour"]
    except (OSError, ValueError, KeyError, EOFError):
        return None
    n = len(names)
    if files.shape != (n,) or sizes.shape != (n, 2) or colour.shape != (n,):
        return None
    if tuple(files.tolist()) != names:
        return None
    return sizes.astype(np.int64), colour.astype(bool)


def _write_cached(
    path: Path, folder_key: str, names: tuple[str, ...], sizes: np.ndarray, colour: np.ndarray
) -> None:
    """Write the index, replacing older indexes of the same folder; skipped when the cache
    folder cannot be written."""
    try:
        write_npz(path, files=np.asarray(names, dtype=str), sizes=sizes, colour=colour)
        for old in path.parent.glob(f"{folder_key}-*.npz"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        pass

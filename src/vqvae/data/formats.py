"""Readers for the binary formats image data sets come in: idx (MNIST), CIFAR batches, .npy/.npz.

Each reader returns plain numpy arrays and raises ``DataError`` with the file's name when the
bytes are not what the format promises. Nothing here runs code from a file: CIFAR's python
pickles go through an unpickler that refuses every global not on a short allow-list, and
``np.load`` is called with ``allow_pickle=False``: nothing is loaded with a plain pickle.
"""

from __future__ import annotations

import gzip
import pickle
import re
import struct
import zlib
from pathlib import Path

import numpy as np

from vqvae.errors import DataError

# -- idx (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT") --------------------------

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when the name ends in .gz."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip file ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def read_idx(path: str | Path) -> np.ndarray:
    """An idx file (gzipped or not) as a native-endian array of its stored shape."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an idx file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated idx header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: idx header promises shape {dims} ({expected} bytes) "
            f"but the file holds {len(raw) - header} bytes"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


def find_idx(folder: Path, kind: str, prefixes: tuple[str, ...]) -> Path | None:
    """The first ``{prefix}-{kind}-idx?-ubyte[.gz]`` in ``folder``; kind is images or labels."""
    ndim = 3 if kind == "images" else 1
    for prefix in prefixes:
        for suffix in ("", ".gz"):
            p = folder / f"{prefix}-{kind}-idx{ndim}-ubyte{suffix}"
            if p.is_file():
                return p
    return None


def read_idx_pair(
    images_path: Path, labels_path: Path | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Images as uint8 (N, H, W, 1) and labels as int64 (N,) (or None) from two idx files."""
    images = read_idx(images_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(
            f"{images_path}: expected uint8 images of shape (N, H, W), "
            f"got {images.dtype} {images.shape}"
        )
    labels = None
    if labels_path is not None:
        labels = read_idx(labels_path)
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise DataError(
                f"{labels_path}: expected {images.shape[0]} labels, got shape {labels.shape}"
            )
        labels = labels.astype(np.int64)
    return images[..., None], labels  # (N, H, W) -> (N, H, W, 1)


# -- CIFAR-10 python batches (https://www.cs.toronto.edu/~kriz/cifar.html) ----------------------


def _numpy_reconstruct():
    try:  # numpy >= 2 moved numpy.core to numpy._core
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """What ``_codecs.encode`` does for bytes in a protocol-2 pickle written by Python 3."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refused _codecs.encode(..., {encoding!r})")
    return text.encode("latin1")


# The only globals a CIFAR batch needs: numpy's array reconstruction (and, in batches re-saved
# by Python 3 with protocol 2, latin-1 encoding of bytes). Anything else (os.system,
# builtins.eval, ...) is refused before it can be called.
_ALLOWED_GLOBALS = {
    ("_codecs", "encode"): _latin1_encode,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None


def safe_unpickle(path: Path) -> object:
    """Unpickle allowing only plain containers and numpy arrays; raise DataError otherwise."""
    try:
        with open(path, "rb") as f:
            # encoding="bytes": the batches were written by Python 2, their keys are bytes
            return _RestrictedUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise DataError(f"{path}: refused or unreadable pickle ({e})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise DataError(f"{path}: corrupt pickle ({type(e).__name__}: {e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


def is_cifar_folder(folder: Path) -> bool:
    return (folder / "test_batch").is_file() or any(folder.glob("data_batch_*"))


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = safe_unpickle(path)
    if not isinstance(batch, dict):
        raise DataError(f"{path}: expected a CIFAR batch (a dict), got {type(batch).__name__}")
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or (data.shape[1] % 3 != 0)
    ):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else repr(type(data))
        raise DataError(f"{path}: expected 'data' as uint8 (N, 3*H*W), got {got}")
    side = int(round((data.shape[1] // 3) ** 0.5))
    if 3 * side * side != data.shape[1]:
        raise DataError(f"{path}: 'data' rows of {data.shape[1]} bytes are not 3 square planes")
    labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if labels.shape != (len(data),):
        raise DataError(f"{path}: expected {len(data)} labels, got shape {labels.shape}")
    # rows are stored plane by plane: (N, 3*H*W) -> (N, 3, H, W) -> (N, H, W, 3)
    images = data.reshape(-1, 3, side, side).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_cifar(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The train (data_batch_*) or test (test_batch) split of a ``cifar-10-batches-py`` folder."""
    if split == "test":
        files = [folder / "test_batch"]
    else:
        files = sorted(
            (p for p in folder.glob("data_batch_*") if re.fullmatch(r"data_batch_\d+", p.name)),
            key=lambda p: int(p.name.rsplit("_", 1)[1]),
        )
    missing = [p.name for p in files if not p.is_file()]
    if not files or missing:
        raise DataError(
            f"{folder}: no CIFAR {split} batch ({', '.join(missing) or 'data_batch_*'})"
        )
    parts = [_read_cifar_batch(p) for p in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    class_names = CIFAR10_CLASSES
    meta = folder / "batches.meta"
    if meta.is_file():
        names = safe_unpickle(meta)
        names = names.get(b"label_names") if isinstance(names, dict) else None
        if isinstance(names, list) and all(isinstance(n, bytes | str) for n in names):
            class_names = tuple(n.decode() if isinstance(n, bytes) else n for n in names)
    return images, labels, class_names


# -- .npy / .npz arrays ---------------------------------------------------------------------------


def _check_images_array(path: Path, x: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, C) with C in {1, 3} -> uint8 (N, H, W, C)."""
    expected = "uint8 images of shape (N, H, W) or (N, H, W, C) with C in {1, 3}"
    if x.dtype.kind == "f":
        nan = ", and it contains NaN" if np.isnan(x).any() else ""
        raise DataError(f"{path}: expected {expected}, got {x.dtype}{nan}")
    if x.dtype.kind not in "ui":
        raise DataError(f"{path}: expected {expected}, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]  # (N, H, W) -> (N, H, W, 1)
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or 0 in x.shape:
        hint = ""
        if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
            hint = " (channel-first? move the channel axis last)"
        raise DataError(f"{path}: expected {expected}, got shape {x.shape}{hint}")
    if x.dtype != np.uint8:
        # Other integer types are accepted when every value fits in 0..255.
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{path}: expected {expected}, got {x.dtype} values in {lo}..{hi}")
        x = x.astype(np.uint8)
    return x


def read_array(path: Path, mmap: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Images (and labels, from an .npz's ``labels`` key) from a .npy or .npz file; with
    ``mmap``, a uint8 .npy comes back memory-mapped (an ``np.memmap``: nothing read yet)."""
    mode = "r" if mmap and path.suffix.lower() == ".npy" else None
    try:
        loaded = np.load(path, allow_pickle=False, mmap_mode=mode)
    except (ValueError, OSError, EOFError, zlib.error) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: not a readable numpy file ({first})") from None
    labels = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.keys())
            if "images" in keys:
                key = "images"
            elif len([k for k in keys if k != "labels"]) == 1:
                key = next(k for k in keys if k != "labels")
            else:
                raise DataError(
                    f"{path}: expected an 'images' array (or a single array), found keys {keys}"
                )
            try:
                images = loaded[key]
                labels = loaded["labels"] if "labels" in keys else None
            except (ValueError, OSError, EOFError, zlib.error) as e:
                raise DataError(f"{path}: unreadable array in the .npz ({e})") from None
    else:
        images = loaded
    images = _check_images_array(path, images)
    if labels is not None:
        if labels.dtype.kind not in "ui" or labels.shape != (len(images),):
            raise DataError(
                f"{path}: expected 'labels' as integers of shape ({len(images)},), "
                f"got {labels.dtype} {labels.shape}"
            )
        labels = labels.astype(np.int64)
    return images, labels

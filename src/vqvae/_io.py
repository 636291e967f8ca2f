"""Atomic file writes, safe loading and checksums: the only place the package touches the
disk format.

Writes are atomic (write a temporary file, then rename), so a killed run never leaves a
broken checkpoint (tests/test_train.py kills runs mid-write), and nothing is ever loaded with
a plain pickle. A write the disk refuses (full, read-only, over the file-size limit, not
permitted) removes its temporary file and raises ``WriteError``: one line naming the file.

A manifest (``manifest.json``) lists a folder's files with their sizes and SHA-256 digests,
so that a flipped or missing byte is found on reading (docs/run-folders.md). SHA-256 rather
than a faster non-cryptographic hash: measured, it costs little beside the write itself
(BENCHMARKS.md, "Checksums").
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vqvae.errors import VQVAEError

MANIFEST = "manifest.json"
HASH = "sha256"
# What a disk says when it cannot take a write; anything else is a bug, raised as it came.
DISK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EFBIG", "EROFS", "EACCES", "EPERM", "EIO")
    if hasattr(errno, name)
)


class WriteError(VQVAEError):
    """The disk refused a write (full, read-only, too large, not permitted): ``path`` names
    the file, the message says the errno's words; the temporary file is already removed."""

    def __init__(self, path: str | os.PathLike, error: OSError) -> None:
        self.path = Path(path)
        self.errno = error.errno
        words = os.strerror(error.errno) if error.errno else str(error)
        super().__init__(f"{self.path}: could not write it ({words})")


def as_write_error(path: str | os.PathLike, error: OSError) -> OSError | WriteError:
    """A ``WriteError`` for ``path`` when the disk refused the write, else ``error`` itself."""
    return WriteError(path, error) if error.errno in DISK_ERRNOS else error


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)``, fsync, then rename onto ``path``; a crash leaves the old file."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide a run from its group
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError):
            raise as_write_error(path, e) from None
        raise
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """``data`` into ``path``, atomically: serialised in memory first, so that a refused
    write is the disk's ``OSError`` (with its errno), never a serialiser's wrapped message."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


# -- checksums ----------------------------------------------------------------------------


def digest(data: bytes, algorithm: str = HASH) -> str:
    return hashlib.new(algorithm, data).hexdigest()


def manifest_entry(data: bytes, algorithm: str = HASH) -> dict[str, Any]:
    """What a manifest records of one file's bytes: its size and digest."""
    return {"size": len(data), algorithm: digest(data, algorithm)}


def read_manifest(folder: str | os.PathLike) -> dict[str, dict[str, Any]] | None:
    """``folder/manifest.json``'s files (name -> size and digest), or None if there is none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise ValueError(f"{path}: not a manifest (no files)")
    return data["files"]


def write_manifest(folder: str | os.PathLike, files: dict[str, dict[str, Any]]) -> Path:
    return write_json(Path(folder) / MANIFEST, {"files": files})


def set_manifest_entry(path: str | os.PathLike, entry: dict[str, Any] | None) -> None:
    """Record (or, with None, forget) one file in its folder's manifest."""
    path = Path(path)
    try:
        files = read_manifest(path.parent) or {}
    except ValueError:  # a damaged manifest is rewritten from what is known now
        files = {}
    if entry is None and path.name not in files:
        return
    files = {k: v for k, v in files.items() if k != path.name}
    if entry is not None:
        files[path.name] = entry
    write_manifest(path.parent, files)


def entry_problem(path: Path, data: bytes | None, entry: dict[str, Any]) -> str | None:
    """What is wrong with ``data`` (the bytes of ``path``; None: missing) against its
    manifest entry, in a few words, or None."""
    if data is None:
        return f"{path}: missing (listed in its manifest)"
    if len(data) != entry.get("size"):
        return f"{path}: {len(data)} bytes, its manifest says {entry.get('size')} (truncated?)"
    algorithm = next((a for a in entry if a in hashlib.algorithms_available), None)
    if algorithm is None:
        return f"{path}: its manifest entry names no known hash"
    if digest(data, algorithm) != entry[algorithm]:
        return f"{path}: its {algorithm} differs from its manifest's (damaged)"
    return None


def read_checked(path: str | os.PathLike) -> bytes:
    """The bytes of ``path``, checked against its folder's manifest where it is listed there
    (files of runs written before manifests are read unchecked); a mismatch is a one-line
    ``VQVAEError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    data = path.read_bytes()
    entry = (read_manifest(path.parent) or {}).get(path.name)
    problem = entry_problem(path, data, entry) if entry is not None else None
    if problem:
        raise VQVAEError(problem)
    return data


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")

    return atomic_write(path, write)


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def safetensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    # safetensors wants contiguous tensors that do not share memory
    flat = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    return save(flat)


def write_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> Path:
    return write_bytes(path, safetensors_bytes(tensors))


def read_safetensors(path: str | os.PathLike, data: bytes | None = None) -> dict[str, torch.Tensor]:
    """The tensors of ``path`` (or of ``data``, its bytes already read and checked)."""
    from safetensors import SafetensorError
    from safetensors.torch import load, load_file

    path = Path(path)
    if data is None and not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return load_file(str(path)) if data is None else load(data)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from None


def torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def torch_save(path: str | os.PathLike, obj: Any) -> Path:
    return write_bytes(path, torch_bytes(obj))


def torch_load(path: str | os.PathLike, data: bytes | None = None) -> Any:
    """Load with ``weights_only=True``: a pickle that would run code is refused, never executed
    (``data``: the file's bytes, already read and checked)."""
    path = Path(path)
    if data is None and not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles: one line, below
            warnings.simplefilter("ignore")
            source = path if data is None else io.BytesIO(data)
            return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: refused or unreadable checkpoint ({first})") from None


def write_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    import numpy as np

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, **arrays)

    return atomic_write(path, write)

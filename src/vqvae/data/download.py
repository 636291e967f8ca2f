"""Downloading the registered data sets from their public homes, with md5 checksums.

Every file is streamed to a temporary file next to its destination, hashed on the way, and
renamed into place only when the checksum matches (``vqvae._io.atomic_write``), so an
interrupted or corrupted download never leaves a file that looks complete. When no mirror
answers, the error says which files to put in which folder, for machines without internet.

Where the host re-packs its archives (GitHub's archives of a tag: their bytes, hence their
md5, are not promised to stay the same), the *content* is checked instead: the unpacked folder's
``content_digest``, a sha256 over its files' relative names and bytes, before it is renamed
into place; on a mismatch the archive is deleted too.

Mirrors are tried in order. ``REMOTES`` can be patched, and the ``VQVAE_MIRROR`` environment
variable (one base URL, or several separated by commas) replaces the public mirrors with a
server laid out like the data root: ``$VQVAE_MIRROR/mnist/train-images-idx3-ubyte.gz``.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from vqvae.errors import DataError

from .._io import atomic_write

MIRROR_ENV = "VQVAE_MIRROR"
TIMEOUT = 30.0  # seconds without a byte before a mirror counts as down
_CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    filename: str
    md5: str | None  # of the file as downloaded; None where only the content is checked
    unpacks_to: str | None = None  # for an archive: the folder it holds, unpacked in place
    inside: str | None = None  # the archive's top-level folder holding unpacks_to (stripped)
    content_sha256: str | None = None  # content_digest() of the unpacked folder


@dataclass(frozen=True)
class Remote:
    folder: str  # sub-folder of the data root the files are saved in
    files: tuple[RemoteFile, ...]
    mirrors: tuple[str, ...]  # base URLs, tried in order
    expect: str  # what a user without internet should put in the folder


_IDX_NAMES = (
    "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
)  # fmt: skip

# The Free Spoken Digit Dataset as GitHub archives its release tag: the recordings/ folder
# inside free-spoken-digit-dataset-1.0.10/. FSDD_SHA256 is content_digest() of those 3,000 WAVs,
# byte for byte the files of the tag's git tree (each one's git blob hash matches the tree's).
FSDD_VERSION = "1.0.10"
FSDD_SHA256 = "6f9f93bcb41589befe6c07a1bb3419a76285a12979f8a3e5ffa1c59ba83518cf"

REMOTES: dict[str, Remote] = {
    "mnist": Remote(
        folder="mnist",
        # md5s of the .gz files, the same as torchvision's
        files=tuple(
            RemoteFile(n, m)
            for n, m in zip(
                _IDX_NAMES,
                (
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    "9fb629c4189551a2d022fa330f9573f3",
                    "ec29112dd5afa0611ce80d1b7f02629c",
                ),
                strict=True,
            )
        ),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        expect=", ".join(_IDX_NAMES),
    ),
    "fashion-mnist": Remote(
        folder="fashion-mnist",
        files=tuple(
            RemoteFile(n, m)
            for n, m in zip(
                _IDX_NAMES,
                (
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "bef4ecab320f06d8554ea6380940ec79",
                    "bb300cfdad3c16e7a12a480ee83cd310",
                ),
                strict=True,
            )
        ),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        expect=", ".join(_IDX_NAMES),
    ),
    "cifar10": Remote(
        folder="cifar10",
        files=(
            RemoteFile(
                "cifar-10-python.tar.gz",
                "c58f30108f718f92721af3b95e74349a",
                unpacks_to="cifar-10-batches-py",
            ),
        ),
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        expect="the folder cifar-10-batches-py (data_batch_1..5, test_batch, batches.meta) "
        "unpacked from cifar-10-python.tar.gz",
    ),
    "fsdd": Remote(
        folder="fsdd",
        files=(
            RemoteFile(
                f"v{FSDD_VERSION}.tar.gz",
                md5=None,
                unpacks_to="recordings",
                inside=f"free-spoken-digit-dataset-{FSDD_VERSION}",
                content_sha256=FSDD_SHA256,
            ),
        ),
        mirrors=("https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/",),
        expect="the folder recordings (the 3,000 {digit}_{speaker}_{index}.wav files of "
        "github.com/Jakobovski/free-spoken-digit-dataset)",
    ),
}


def where_to_put(name: str, data_root: Path) -> str:
    """The end of a "not found" message: which files go in which folder."""
    remote = REMOTES[name]
    return f"put {remote.expect} in {data_root / remote.folder}"


def mirrors(name: str) -> list[str]:
    """Base URLs to try for ``name``, ``VQVAE_MIRROR`` first and then only it when set."""
    env = os.environ.get(MIRROR_ENV, "").strip()
    if env:
        return [f"{b.strip().rstrip('/')}/{REMOTES[name].folder}/" for b in env.split(",") if b]
    return list(REMOTES[name].mirrors)


class _NetworkError(Exception):
    pass


def _stream(response, tmp: str, *, md5: str | None, url: str, filename: str) -> None:
    """Copy the response into ``tmp`` with a progress bar; raise unless its md5 matches
    (when one is given)."""
    digest = hashlib.md5(usedforsecurity=False)  # a checksum, not a security measure
    total = int(response.headers.get("Content-Length") or 0) or None
    with open(tmp, "wb") as f, tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=filename,
        disable=None, leave=False,
    ) as bar:  # fmt: skip
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as e:
                raise _NetworkError(f"{url}: {e}") from None
            if not chunk:
                break
            f.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))
    if md5 is not None and digest.hexdigest() != md5:
        raise DataError(
            f"{url}: checksum mismatch for {filename} (expected md5 {md5}, got "
            f"{digest.hexdigest()}); the download was deleted"
        )


def download_file(urls: list[str], dest: Path, md5: str | None) -> Path:
    """Fetch the first URL that answers into ``dest``, checking ``md5``.

    Raises ``_NetworkError`` naming every URL tried when none answers, and ``DataError`` on a
    checksum mismatch (not retried: a mirror serving wrong bytes is worth hearing about)."""
    failures = []
    for url in urls:
        try:
            response = urllib.request.urlopen(url, timeout=TIMEOUT)
        except urllib.error.HTTPError as e:
            failures.append(f"{url}: HTTP {e.code} {e.reason}")
            e.close()
            continue
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
            failures.append(f"{url}: {getattr(e, 'reason', None) or e}")
            continue
        try:
            with response:
                write = functools.partial(_stream, response, md5=md5, url=url, filename=dest.name)
                return atomic_write(dest, write)
        except _NetworkError as e:
            failures.append(str(e))
    raise _NetworkError("; ".join(failures) or "no mirror configured")


def content_digest(folder: Path) -> str:
    """sha256 over every file under ``folder``, in sorted order of the relative names: each
    name and each file's bytes, both prefixed by their length. It depends on the files alone,
    not on the archive they came in (its compression, order, timestamps)."""
    digest = hashlib.sha256()
    files = sorted((p.relative_to(folder).as_posix(), p) for p in folder.rglob("*") if p.is_file())
    for name, path in files:
        for part in (name.encode(), path.read_bytes()):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


class _ContentMismatch(DataError):
    pass


def _extract_tar(
    archive: Path,
    folder: Path,
    member: str,
    inside: str | None = None,
    content_sha256: str | None = None,
) -> Path:
    """Unpack the folder ``member`` of ``archive`` (at its top level, or in its top-level
    folder ``inside``) to ``folder/member``, atomically: into a temporary folder first, checked
    against ``content_sha256`` when given, then one rename. Links, devices and paths leaving
    the folder are refused (a tar file can otherwise write anywhere)."""
    target = folder / member
    prefix = (inside, member) if inside else (member,)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=folder))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = []
                for m in tar.getmembers():
                    parts = PurePosixPath(m.name).parts
                    if m.name.startswith("/") or ".." in parts or not (m.isfile() or m.isdir()):
                        raise DataError(f"{archive}: refused unsafe archive entry {m.name!r}")
                    if parts[: len(prefix)] == prefix:
                        members.append(m)
                if not members:
                    raise DataError(f"{archive}: no {'/'.join(prefix)}/ folder inside the archive")
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.10.12
                    tar.extractall(tmp, members=members, filter="data")
                else:  # pragma: no cover - older Pythons; members were checked above
                    tar.extractall(tmp, members=members)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise DataError(f"{archive}: corrupt or unreadable archive ({e})") from None
        unpacked = tmp.joinpath(*prefix)
        if content_sha256 is not None:
            got = content_digest(unpacked)
            if got != content_sha256:
                raise _ContentMismatch(
                    f"{archive}: the unpacked {member}/ is not the expected content (sha256 "
                    f"{content_sha256}, got {got}); the download was deleted"
                )
        if not target.exists():  # another process may have unpacked it meanwhile
            os.replace(unpacked, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def fetch(name: str, data_root: str | os.PathLike) -> Path:
    """Download the missing files of registered data set ``name`` into ``data_root/<folder>``
    and return that folder.

    Archives (CIFAR-10, FSDD) are unpacked next to the downloaded file, which is kept. Raises
    ``DataError`` saying where to put the files when no mirror answers."""
    if name not in REMOTES:
        raise DataError(f"no download known for {name!r}; known: {', '.join(REMOTES)}")
    remote = REMOTES[name]
    folder = Path(data_root).expanduser() / remote.folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{folder}: cannot create the data folder ({e.strerror or e})") from None
    for f in remote.files:
        dest = folder / f.filename
        if (folder / f.unpacks_to).exists() if f.unpacks_to else dest.is_file():
            continue
        if not dest.is_file():
            urls = [base.rstrip("/") + "/" + f.filename for base in mirrors(name)]
            try:
                download_file(urls, dest, f.md5)
            except _NetworkError as e:
                where = where_to_put(name, Path(data_root).expanduser())
                raise DataError(f"could not download {name} ({e}); {where}") from None
            except OSError as e:
                raise DataError(f"{dest}: cannot write ({e.strerror or e})") from None
        if f.unpacks_to:
            try:
                _extract_tar(dest, folder, f.unpacks_to, f.inside, f.content_sha256)
            except _ContentMismatch:
                dest.unlink(missing_ok=True)  # a fresh download next time, not the same bytes
                raise
    return folder

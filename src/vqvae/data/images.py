"""A folder of image files in any format Pillow reads (PNG, JPEG, BMP, GIF, WebP, TIFF,
PGM/PPM/PBM, ...).

Loose images in the folder make an unlabelled data set; sub-folders make classes, labelled
0, 1, ... in sorted order of their names (as torchvision's ImageFolder does). Grey images
stay one channel; if any image has colour, all become RGB. Hidden files and folders (a
leading dot) are ignored.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from operator import attrgetter
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from vqvae.errors import DataError

from .jpeg import JPEG_SUFFIXES, jpeg_header, read_jpeg
from .transforms import _BICUBIC

StrPath = str | os.PathLike[str]
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
# Pillow lists MPEG among the formats it opens but only identifies it: it cannot decode one
# (Pillow's docs, "Identify-only formats"; the others are StubImageFile plugins).
_IDENTIFY_ONLY = ("MPEG",)


def _readable_suffixes() -> tuple[str, ...]:
    """The file suffixes of every format Pillow can open and decode, e.g. ``.png``, ``.pgm``."""
    Image.init()  # load every plugin, not only the common five
    suffixes = []
    for suffix, fmt in Image.registered_extensions().items():
        factory = Image.OPEN.get(fmt, (None,))[0]
        stub = isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile)
        if factory is not None and not stub and fmt not in _IDENTIFY_ONLY:
            suffixes.append(suffix.lower())
    return tuple(sorted(set(suffixes)))


IMAGE_SUFFIXES = _readable_suffixes()
# The format a suffix names: opening with it tries one plugin, not every one before it in
# Pillow's list (a third of a small JPEG's decoding time, measured).
_FORMAT_OF = {s.lower(): f for s, f in Image.registered_extensions().items()}


def _open(path: StrPath) -> Image.Image:
    """``Image.open``, trying the format the suffix names first (a file whose suffix lies
    is still opened by what its bytes are)."""
    fmt = _FORMAT_OF.get(_suffix(path))
    if fmt is not None:
        try:
            return Image.open(path, formats=(fmt,))
        except UnidentifiedImageError:
            pass
    return Image.open(path)


_COMMON = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm")


def _suffix(path: StrPath) -> str:
    return os.path.splitext(path)[1].lower()


def _walk(folder: str, recursive: bool) -> Iterator[str]:
    """Image files in ``folder`` and, if ``recursive``, in its sub-folders (not hidden ones,
    nor symbolic links to folders, which ``Path.rglob`` does not follow either), in the
    order their Paths sort in (part by part: "a/b.png" before "a-c.png"): each folder's
    entries by name, a sub-folder's files in its place."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=attrgetter("name"))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if recursive and entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path, recursive)
        elif _suffix(entry.name) in IMAGE_SUFFIXES and entry.is_file():
            yield entry.path


def _image_files(folder: Path, recursive: bool) -> list[str]:
    return list(_walk(str(folder), recursive))


def has_images(folder: Path) -> bool:
    """Whether ``folder`` holds an image file, at any depth (stops at the first)."""
    return next(_walk(str(folder), recursive=True), None) is not None


def class_folders(folder: Path) -> list[Path]:
    """Sub-folders holding images (the classes of an image folder), sorted by name."""
    return sorted(
        d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".") and has_images(d)
    )


def is_grey_mode(mode: str) -> bool:
    """Whether Pillow's ``mode`` becomes one channel (16-bit grey included)."""
    return mode in _GREY_MODES or mode.startswith("I;16")


def image_header(path: StrPath) -> tuple[int, int, bool]:
    """(H, W, colour) of an image file from its header, without decoding the pixels."""
    try:
        if _suffix(path) in JPEG_SUFFIXES and (found := jpeg_header(str(path))):
            return found
        with _open(path) as img:
            return img.height, img.width, not is_grey_mode(img.mode)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{path}: corrupt or unreadable image ({e})") from None


def read_image(path: StrPath, resize: tuple[int, int] | None) -> np.ndarray:
    """One image file as uint8 (H, W, C), C in {1, 3}."""
    try:
        arr = read_jpeg(str(path)) if _suffix(path) in JPEG_SUFFIXES else None
        if arr is None:
            arr = _read_with_pillow(path)
        if resize is not None and arr.shape[:2] != tuple(resize):
            img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
            arr = np.asarray(img.resize((resize[1], resize[0]), _BICUBIC))  # PIL: (W, H)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{path}: corrupt or unreadable image ({e})") from None
    return arr[..., None] if arr.ndim == 2 else arr  # (H, W) -> (H, W, 1)


def _read_with_pillow(path: StrPath) -> np.ndarray:
    """uint8 (H, W) for a grey image, (H, W, 3) for a colour one."""
    with _open(path) as img:
        img.load()  # decode now, so a truncated file fails here with its name
        if img.mode == "I" or img.mode.startswith("I;16"):
            # 16-bit grey (PGM with maxval > 255, which Pillow scales to 0..65535; PNG;
            # TIFF): 0..65535 -> 0..255, where convert("L") would clip at 255
            wide = np.asarray(img, dtype=np.float64)
            img = Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8))
        target = "L" if is_grey_mode(img.mode) else "RGB"
        if img.mode != target:  # converting to its own mode would only copy the pixels
            img = img.convert(target)
        return np.asarray(img, dtype=np.uint8)


def list_image_folder(
    folder: Path, class_names: tuple[str, ...] | None = None
) -> tuple[list[str], np.ndarray | None, tuple[str, ...] | None]:
    """The image files of ``folder`` in reading order (paths as strings: 60,000 ``Path``
    objects take a second to make), their labels int64 (N,) or None, and the class names or
    None, without opening a file.

    ``class_names`` fixes the labels (a split folder labels its classes by their place in
    the union over all splits); a class missing from this folder is fine."""
    loose = _image_files(folder, recursive=False)
    classes = class_folders(folder)
    if loose and classes:
        raise DataError(
            f"{folder}: holds both loose images ({os.path.basename(loose[0])}, ...) and class "
            f"sub-folders ({classes[0].name}, ...); use one or the other"
        )
    if classes:
        class_names = class_names or tuple(d.name for d in classes)
        index = {name: i for i, name in enumerate(class_names)}
        files: list[str] = []
        labels: list[int] = []
        for d in classes:
            these = _image_files(d, recursive=True)
            files += these
            labels += [index[d.name]] * len(these)
        return files, np.asarray(labels, dtype=np.int64), class_names
    if loose:
        return loose, None, None
    shown = ", ".join(s for s in _COMMON if s in IMAGE_SUFFIXES)
    raise DataError(
        f"{folder}: no images found (looked for the {len(IMAGE_SUFFIXES)} formats Pillow "
        f"reads: {shown}, ...)"
    )


def check_same_size(folder: Path, files: Sequence[StrPath], sizes: list[tuple[int, int]]) -> None:
    """Images of one data set share one size: else a DataError naming two that differ."""
    first = sizes[0]
    for p, size in zip(files, sizes, strict=True):
        if size != first:
            raise DataError(
                f"{folder}: images differ in size ({os.path.basename(files[0])} is "
                f"{first[0]}x{first[1]}, {os.path.basename(p)} is {size[0]}x{size[1]}); "
                "pass resize=(H, W)"
            )


def read_image_folder(
    folder: Path,
    resize: tuple[int, int] | None = None,
    class_names: tuple[str, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...] | None]:
    """Images uint8 (N, H, W, C), labels int64 (N,) or None, and the class names or None,
    all decoded into memory (``folder_index.py`` and ``lazy.py`` read them on demand)."""
    files, labels, class_names = list_image_folder(folder, class_names)
    images = [read_image(p, resize) for p in files]
    check_same_size(folder, files, [img.shape[:2] for img in images])
    if any(img.shape[-1] == 3 for img in images):
        images = [np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img for img in images]
    return np.stack(images), labels, class_names

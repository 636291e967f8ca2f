"""A folder of image files in any format Pillow reads (PNG, JPEG, BMP, GIF, WebP, TIFF,
PGM/PPM/PBM, ...).

Loose images in the folder make an unlabelled data set; sub-folders make classes, labelled
0, 1, ... in sorted order of their names (as torchvision's ImageFolder does). Grey images
stay one channel; if any image has colour, all become RGB. Hidden files and folders (a
leading dot) are ignored.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from vqvae.errors import DataError

from .transforms import _BICUBIC

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


def _open(path: Path) -> Image.Image:
    """``Image.open``, trying the format the suffix names first (a file whose suffix lies
    is still opened by what its bytes are)."""
    fmt = _FORMAT_OF.get(path.suffix.lower())
    if fmt is not None:
        try:
            return Image.open(path, formats=(fmt,))
        except UnidentifiedImageError:
            pass
    return Image.open(path)


_COMMON = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm")


def _walk(folder: Path, recursive: bool) -> Iterator[Path]:
    """Image files in ``folder`` and, if ``recursive``, in its sub-folders (not hidden ones,
    nor symbolic links to folders, which ``Path.rglob`` does not follow either)."""
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:
        return
    below = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if recursive and entry.is_dir(follow_symlinks=False):
            below.append(entry.path)
        elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file():
            yield Path(entry.path)
    for sub in below:
        yield from _walk(Path(sub), recursive)


def _image_files(folder: Path, recursive: bool) -> list[Path]:
    # sorted as Paths compare (part by part): "a/b.png" comes before "a-c.png"
    return sorted(_walk(folder, recursive), key=lambda p: p.parts)


def has_images(folder: Path) -> bool:
    """Whether ``folder`` holds an image file, at any depth (stops at the first)."""
    return next(_walk(folder, recursive=True), None) is not None


def class_folders(folder: Path) -> list[Path]:
    """Sub-folders holding images (the classes of an image folder), sorted by name."""
    return sorted(
        d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".") and has_images(d)
    )


def is_grey_mode(mode: str) -> bool:
    """Whether Pillow's ``mode`` becomes one channel (16-bit grey included)."""
    return mode in _GREY_MODES or mode.startswith("I;16")


def image_header(path: Path) -> tuple[int, int, bool]:
    """(H, W, colour) of an image file from its header, without decoding the pixels."""
    try:
        with _open(path) as img:
            return img.height, img.width, not is_grey_mode(img.mode)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{path}: corrupt or unreadable image ({e})") from None


def read_image(path: Path, resize: tuple[int, int] | None) -> np.ndarray:
    """One image file as uint8 (H, W, C), C in {1, 3}."""
    try:
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
            if resize is not None and img.size != (resize[1], resize[0]):
                img = img.resize((resize[1], resize[0]), _BICUBIC)  # PIL sizes are (W, H)
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{path}: corrupt or unreadable image ({e})") from None
    return arr[..., None] if arr.ndim == 2 else arr  # (H, W) -> (H, W, 1)


def list_image_folder(
    folder: Path, class_names: tuple[str, ...] | None = None
) -> tuple[list[Path], np.ndarray | None, tuple[str, ...] | None]:
    """The image files of ``folder`` in reading order, their labels int64 (N,) or None, and
    the class names or None, without opening a file.

    ``class_names`` fixes the labels (a split folder labels its classes by their place in
    the union over all splits); a class missing from this folder is fine."""
    loose = _image_files(folder, recursive=False)
    classes = class_folders(folder)
    if loose and classes:
        raise DataError(
            f"{folder}: holds both loose images ({loose[0].name}, ...) and class sub-folders "
            f"({classes[0].name}, ...); use one or the other"
        )
    if classes:
        class_names = class_names or tuple(d.name for d in classes)
        index = {name: i for i, name in enumerate(class_names)}
        files: list[Path] = []
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


def check_same_size(folder: Path, files: list[Path], sizes: list[tuple[int, int]]) -> None:
    """Images of one data set share one size: else a DataError naming two that differ."""
    first = sizes[0]
    for p, size in zip(files, sizes, strict=True):
        if size != first:
            raise DataError(
                f"{folder}: images differ in size ({files[0].name} is {first[0]}x{first[1]}, "
                f"{p.name} is {size[0]}x{size[1]}); pass resize=(H, W)"
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

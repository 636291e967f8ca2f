"""A folder of image files (PNG, JPEG, BMP, GIF, WebP, TIFF) read with Pillow.

Loose images in the folder make an unlabelled data set; sub-folders make classes, labelled
0, 1, ... in sorted order of their names (as torchvision's ImageFolder does). Grey images
stay one channel; if any image has colour, all become RGB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vqvae.errors import DataError

from .transforms import _BICUBIC

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _image_files(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p for p in found
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )  # fmt: skip


def _read_image(path: Path, resize: tuple[int, int] | None) -> np.ndarray:
    """One image file as uint8 (H, W, C), C in {1, 3}."""
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so a truncated file fails here with its name
            img = img.convert("L" if img.mode in _GREY_MODES else "RGB")
            if resize is not None and img.size != (resize[1], resize[0]):
                img = img.resize((resize[1], resize[0]), _BICUBIC)  # PIL sizes are (W, H)
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{path}: corrupt or unreadable image ({e})") from None
    return arr[..., None] if arr.ndim == 2 else arr  # (H, W) -> (H, W, 1)


def read_image_folder(
    folder: Path, resize: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...] | None]:
    """Images uint8 (N, H, W, C), labels int64 (N,) or None, and the class names or None."""
    loose = _image_files(folder, recursive=False)
    classes = sorted(
        d for d in folder.iterdir()
        if d.is_dir() and not d.name.startswith(".") and _image_files(d, recursive=True)
    )  # fmt: skip
    if loose and classes:
        raise DataError(
            f"{folder}: holds both loose images ({loose[0].name}, ...) and class sub-folders "
            f"({classes[0].name}, ...); use one or the other"
        )
    if classes:
        files, labels = [], []
        for label, d in enumerate(classes):
            these = _image_files(d, recursive=True)
            files += these
            labels += [label] * len(these)
        label_array = np.asarray(labels, dtype=np.int64)
        class_names = tuple(d.name for d in classes)
    elif loose:
        files, label_array, class_names = loose, None, None
    else:
        raise DataError(f"{folder}: no images found (looked for {', '.join(IMAGE_SUFFIXES)})")

    images = [_read_image(p, resize) for p in files]
    first = images[0].shape[:2]
    for p, img in zip(files, images, strict=True):
        if img.shape[:2] != first:
            raise DataError(
                f"{folder}: images differ in size ({files[0].name} is {first[0]}x{first[1]}, "
                f"{p.name} is {img.shape[0]}x{img.shape[1]}); pass resize=(H, W)"
            )
    if any(img.shape[-1] == 3 for img in images):
        images = [np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img for img in images]
    return np.stack(images), label_array, class_names

"""JPEG files read by libjpeg-turbo through simplejpeg: the very pixels Pillow gives (Pillow
decodes with libjpeg-turbo too, with the same DCT and upsampling), in a sixth of the time
for a small image, most of Pillow's time being its marker parsing in Python.

Grey, YCbCr and RGB JPEGs only. A CMYK one, or a file libjpeg-turbo so much as warns about
(a truncated scan, stray bytes), gives None here: ``images.py`` then hands it to Pillow,
which decides whether it is readable and says why not, so nothing Pillow reads is refused.
"""

from __future__ import annotations

import numpy as np
import simplejpeg

JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")
HEADER_BYTES = 1 << 16  # a JPEG's frame header comes within its first 64 KiB, but for
# unusually large metadata (the header is then read by Pillow)
_TARGET = {"Gray": "GRAY", "YCbCr": "RGB", "RGB": "RGB"}  # colour space -> decoded as


def jpeg_header(path: str) -> tuple[int, int, bool] | None:
    """(H, W, colour) from a JPEG's frame header, or None when simplejpeg does not read it."""
    with open(path, "rb") as f:
        found = _header(f.read(HEADER_BYTES))
    return None if found is None else (found[0], found[1], found[2] != "GRAY")


def read_jpeg(path: str) -> np.ndarray | None:
    """uint8 (H, W, 1) for a grey JPEG, (H, W, 3) for a colour one; None when simplejpeg does
    not decode it cleanly."""
    with open(path, "rb") as f:
        data = f.read()
    found = _header(data)
    if found is None:
        return None
    try:
        return simplejpeg.decode_jpeg(data, colorspace=found[2], strict=True)
    except ValueError:
        return None


def _header(data: bytes) -> tuple[int, int, str] | None:
    """(H, W, the colour space to decode into) or None."""
    try:
        height, width, space, _ = simplejpeg.decode_jpeg_header(data, strict=True)
    except ValueError:
        return None
    target = _TARGET.get(space)
    return None if target is None else (height, width, target)

"""JPEGs read through simplejpeg give Pillow's very pixels and headers; what simplejpeg does
not read cleanly (CMYK, a truncated scan, stray bytes) goes to Pillow, which decides."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vqvae.data import DataError
from vqvae.data.images import image_header, read_image
from vqvae.data.jpeg import jpeg_header, read_jpeg


def _photo(colour: bool, size=(23, 30)) -> np.ndarray:
    """Smooth shapes with noise: what a JPEG's DCT and chroma subsampling have work on."""
    y, x = np.mgrid[0 : size[0], 0 : size[1]]
    rng = np.random.default_rng(0)
    base = 128 + 90 * np.sin(x / 4.0) * np.cos(y / 5.0) + rng.normal(0, 12, size)
    if colour:
        base = np.stack([base, 255 - base, np.roll(base, 7, axis=1)], axis=-1)
    return np.clip(base, 0, 255).astype(np.uint8)


def _pillow(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        arr = np.asarray(img.convert("L" if img.mode == "L" else "RGB"))
    return arr[..., None] if arr.ndim == 2 else arr


SAVES = {
    "grey": (False, {}),
    "colour 4:2:0": (True, {"subsampling": 2}),
    "colour 4:2:2": (True, {"subsampling": 1}),
    "colour 4:4:4, quality 50": (True, {"subsampling": 0, "quality": 50}),
    "colour progressive": (True, {"progressive": True}),
}


@pytest.mark.parametrize("save", SAVES, ids=list(SAVES))
def test_simplejpeg_gives_pillows_pixels_and_header(tmp_path, save):
    colour, options = SAVES[save]
    path = tmp_path / "a.jpg"
    Image.fromarray(_photo(colour)).save(path, **options)
    fast = read_jpeg(str(path))
    assert fast is not None, "simplejpeg should read a plain JPEG"
    np.testing.assert_array_equal(fast, _pillow(path))
    assert jpeg_header(str(path)) == (23, 30, colour)
    np.testing.assert_array_equal(read_image(path, None), fast)
    assert image_header(path) == (23, 30, colour)


def test_resizing_a_jpeg_matches_resizing_pillows_image(tmp_path):
    path = tmp_path / "a.jpg"
    Image.fromarray(_photo(True)).save(path)
    with Image.open(path) as img:
        expected = np.asarray(img.convert("RGB").resize((11, 9), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(read_image(path, (9, 11)), expected)


def test_a_cmyk_jpeg_is_left_to_pillow(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(_photo(True)).convert("CMYK").save(path)
    assert read_jpeg(str(path)) is None and jpeg_header(str(path)) is None
    np.testing.assert_array_equal(read_image(path, None), _pillow(path))
    assert image_header(path) == (23, 30, True)


def test_what_pillow_reads_despite_a_warning_is_still_read(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_photo(False)).save(buf, format="JPEG")
    data = buf.getvalue()
    scan = data.index(b"\xff\xda")
    path = tmp_path / "stray.jpg"
    path.write_bytes(data[:scan] + b"\x00\x00" + data[scan:])  # stray bytes before a marker
    assert read_jpeg(str(path)) is None  # libjpeg-turbo warns: simplejpeg refuses it
    np.testing.assert_array_equal(read_image(path, None), _pillow(path))


def test_a_truncated_jpeg_fails_in_one_line_naming_it(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_photo(True)).save(buf, format="JPEG")
    data = buf.getvalue()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: data.index(b"\xff\xda") + 30])  # the header reads, pixels not
    assert image_header(path) == (23, 30, True)
    with pytest.raises(DataError) as caught:
        read_image(path, None)
    assert str(caught.value).startswith(f"{path}: corrupt or unreadable image")
    assert len(str(caught.value).splitlines()) == 1

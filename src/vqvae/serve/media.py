"""Uploads in, pictures and sounds out: an uploaded file read as the command line reads a
file of a data folder (``vqvae.data``'s readers, so ``/api/encode`` gives the codes
``vqvae encode`` gives), fitted to the run's model, and arrays turned into PNG bytes.

An upload is written to a private temporary folder under a fixed name (never the name the
client sent, so no path it sends reaches the file system) and read from there; a reader's
error names the file the client sent, not the temporary one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from matplotlib import colormaps

from vqvae.data import audio_rate, png_bytes, read_audio
from vqvae.data.images import IMAGE_SUFFIXES, image_header, read_image
from vqvae.errors import VQVAEError
from vqvae.serve.errors import BAD_INPUT, TOO_LARGE, UNSUPPORTED, Refused

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def safe_suffix(filename: str | None, allowed: tuple[str, ...], default: str) -> str:
    """The suffix of the client's file name when it is one the readers know, else
    ``default``: the readers try the format a suffix names first, then any."""
    suffix = os.path.splitext(os.path.basename(filename or ""))[1].lower()
    return suffix if suffix in allowed else default


@contextmanager
def saved_upload(data: bytes, filename: str | None, suffix: str) -> Iterator[Path]:
    """The upload's bytes as a file of its own in a fresh temporary folder (removed after);
    a reader's ``VQVAEError`` inside the block becomes a ``Refused`` naming the client's file."""
    if not data:
        raise Refused("the upload is empty (0 bytes)")
    shown = os.path.basename(filename or "") or "the upload"
    with tempfile.TemporaryDirectory(prefix="vqvae-serve-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            yield path
        except Refused:
            raise
        except VQVAEError as e:
            message = str(e).strip().splitlines()[0].replace(str(path), shown)
            raise Refused(message, UNSUPPORTED if "unreadable" in message else BAD_INPUT) from None


def read_image_upload(
    path: Path, size: tuple[int, int], channels: int, max_pixels: int
) -> np.ndarray:
    """An uploaded image as uint8 (H, W, C) for a model of ``size`` and ``channels``: resized
    as ``--resize`` resizes (bicubic); a grey image becomes RGB for a colour model, as a
    folder that mixes them does; a colour image for a grey model is refused (its colour would
    be thrown away without a word)."""
    h, w, colour = image_header(path)
    if h * w > max_pixels:
        raise Refused(f"the image is {h}x{w}: more than the {max_pixels} pixels read", TOO_LARGE)
    if colour and channels == 1:
        raise Refused(
            "the image has colour (3 channels); this run's model reads grey images "
            "(1 channel): convert it to grey first"
        )
    image = read_image(path, size)  # (H, W, 1 or 3)
    if image.shape[-1] == 1 and channels == 3:
        image = np.repeat(image, 3, axis=-1)  # (H, W, 1) -> (H, W, 3)
    return image


def read_audio_upload(path: Path, sample_rate: int, max_seconds: float) -> np.ndarray:
    """An uploaded clip as float32 mono (T,) at ``sample_rate``, as a data folder's file is
    read (channels averaged, resampled). A clip stored at a lower rate than the model's is
    refused: resampling up adds no band the encoder was trained to read."""
    rate = audio_rate(path)
    if rate < sample_rate:
        raise Refused(
            f"the audio is sampled at {rate} Hz; this run's model needs at least {sample_rate} Hz"
        )
    wave = read_audio(path, sample_rate)
    if len(wave) > max_seconds * sample_rate:
        seconds = len(wave) / sample_rate
        raise Refused(f"the clip lasts {seconds:.1f} s; the server takes at most {max_seconds} s")
    return wave


def image_suffix(filename: str | None) -> str:
    return safe_suffix(filename, IMAGE_SUFFIXES, ".png")


def audio_suffix(filename: str | None) -> str:
    return safe_suffix(filename, AUDIO_SUFFIXES, ".wav")


def heat_png(values: np.ndarray, low: float, high: float, scale: int = 1) -> bytes:
    """A (rows, columns) float array as a PNG in the magma colour map between ``low`` and
    ``high``, row 0 at the bottom (a spectrogram's lowest band), each value ``scale`` pixels
    wide and tall."""
    t = np.clip((values - low) / max(high - low, 1e-6), 0.0, 1.0)[::-1]  # bottom row first
    rgb = (colormaps["magma"](t)[..., :3] * 255).round().astype(np.uint8)  # (R, C, 3)
    return png_bytes(rgb.repeat(scale, axis=0).repeat(scale, axis=1))

"""Conversions between stored pixels and model inputs, resizing, and writing PNGs.

Values enter models in [-1, 1]; loaders and savers do the conversion, nothing else does.
The map is x = u / 127.5 - 1 for u in 0..255, so rounding (x + 1) * 127.5 gives back exactly
the same bytes. Stored data is uint8 with channels last, of any rank (images (N, H, W, C));
models see channels first (N, C, H, W).
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .._io import atomic_write

# Pillow >= 9.1 keeps the filters in Image.Resampling; older ones on Image itself.
_BICUBIC = getattr(Image, "Resampling", Image).BICUBIC


def _check_nhwc(images: np.ndarray) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images)
        raise ValueError(f"expected uint8 images of shape (N, H, W, C), got {got}")
    if images.shape[-1] not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels last (N, H, W, C), got shape {images.shape}")


def to_model_input(data: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, *S, C) -> float32 (N, C, *S) in [-1, 1]; images: (N, H, W, C) -> (N, C, H, W).
    A uint8 tensor is converted where it is (on a GPU: a quarter of the bytes to copy)."""
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(np.ascontiguousarray(data)) if data.dtype == np.uint8 else data
    if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8 or data.ndim < 3:
        got = f"{data.dtype} {tuple(data.shape)}" if hasattr(data, "shape") else type(data)
        raise ValueError(f"expected uint8 data of shape (N, *spatial, C), got {got}")
    x = data.movedim(-1, 1)  # channels last -> first
    return x.float().div(127.5).sub(1.0).contiguous()


def to_uint8_images(x: torch.Tensor) -> np.ndarray:
    """float (N, C, *S) in [-1, 1] -> uint8 (N, *S, C), clamped and rounded."""
    if not isinstance(x, torch.Tensor) or x.ndim < 3 or not x.is_floating_point():
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x)
        raise ValueError(f"expected a float tensor of shape (N, C, *spatial), got {got}")
    return to_uint8_tensor(x.detach()).cpu().numpy().copy()


def to_uint8_tensor(x: torch.Tensor) -> torch.Tensor:
    """``to_uint8_images`` as a tensor where ``x`` is: float (N, C, *S) -> uint8 (N, *S, C)
    (the form an exported decoder computes, vqvae.export)."""
    u = x.float().clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8)
    return u.movedim(1, -1)  # channels first -> last


def resize_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 (N, H, W, C) images to (N, size[0], size[1], C) with bicubic filtering."""
    _check_nhwc(images)
    h, w = size
    if images.shape[1:3] == (h, w):
        return images
    out = np.empty((len(images), h, w, images.shape[-1]), dtype=np.uint8)
    for i, img in enumerate(images):
        out[i] = _pil_resize(img, (h, w))
    return out


def _pil_resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One uint8 (H, W, C) image resized to (size[0], size[1], C)."""
    arr = np.asarray(_to_pil(img).resize((size[1], size[0]), _BICUBIC))  # PIL sizes are (W, H)
    return arr.reshape(size[0], size[1], img.shape[-1])


def _to_pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)  # L or RGB


def _save_png(img: Image.Image, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


def png_bytes(image: np.ndarray) -> bytes:
    """One uint8 (H, W, C) image as the PNG bytes ``save_pngs`` writes for it."""
    buffer = io.BytesIO()
    _to_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


def tile(images: np.ndarray, ncol: int, pad: int = 1, pad_value: int = 255) -> np.ndarray:
    """uint8 (N, H, W, C) -> one (rows*(H+pad)+pad, ncol*(W+pad)+pad, C) array, row-major."""
    n, h, w, c = images.shape
    rows = max(1, math.ceil(n / ncol))
    grid = np.full((pad + rows * (h + pad), pad + ncol * (w + pad), c), pad_value, np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = img
    return grid


def save_png_grid(
    images: np.ndarray,
    path: str | os.PathLike,
    nrow: int | None = None,
    pad: int = 2,
    scale: int = 1,
    pad_value: int = 0,
) -> Path:
    """Tile uint8 (N, H, W, C) images into one PNG: ``nrow`` images per row (default about
    sqrt(N)), ``pad`` pixels of ``pad_value`` around each, every pixel drawn ``scale`` times."""
    _check_nhwc(images)
    if len(images) == 0:
        raise ValueError("no images to save")
    if scale < 1 or pad < 0:
        raise ValueError(f"expected scale >= 1 and pad >= 0, got scale={scale}, pad={pad}")
    grid = tile(images, nrow or math.ceil(math.sqrt(len(images))), pad, pad_value)
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)  # nearest-neighbour upscaling
    return _save_png(_to_pil(grid), path)


def save_pngs(images: np.ndarray, folder: str | os.PathLike) -> list[Path]:
    """Write each uint8 (H, W, C) image as ``folder/000000.png``, ``000001.png``, ..."""
    _check_nhwc(images)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [_save_png(_to_pil(img), folder / f"{i:06d}.png") for i, img in enumerate(images)]

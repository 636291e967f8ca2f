"""What the report measures on a trained run: held-out codes and reconstructions, code usage,
the codebook, prior samples, and the rate-distortion points. Numbers and arrays only;
``figures.py`` draws them and ``build.py`` decides what goes on the page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vqvae import metrics
from vqvae.data import ImageDataset, load_images, resize_images, split_layout
from vqvae.data.loader import read_all
from vqvae.inference import decode, reconstruct
from vqvae.models import VQVAE

DEFAULT_LIMIT = 2000  # held-out images encoded for the report, as TrainConfig.eval_limit
SAMPLES_PER_ROW = 8
MAX_CLASS_ROWS = 16  # a class-conditional prior over many classes shows the first 16


@dataclass(frozen=True)
class HeldOut:
    """The held-out images and what the model makes of them."""

    name: str
    originals: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray | None  # int64 (N,)
    class_names: tuple[str, ...] | None
    codes: np.ndarray  # int64 (N, h, w), or (N, Q, h, w) for residual VQ
    recons: np.ndarray  # uint8 (N, H, W, C)
    levels: int = 1  # Q: levels of codes (residual VQ), the model's num_levels
    note: str = ""  # e.g. that the images were resized to fit the model

    @property
    def level0(self) -> np.ndarray:
        """(N, h, w): the codes of the first (or only) quantizer."""
        return self.codes[:, 0] if self.levels > 1 else self.codes


def load_held_out(
    model: VQVAE,
    spec: str,
    data_root: str | None,
    limit: int = DEFAULT_LIMIT,
    resize: tuple[int, int] | None = None,
) -> HeldOut:
    """Encode and reconstruct the first ``limit`` held-out images of the run's data (its test
    split, or val where it has no test), resized to ``resize`` (the run's ``config.json``
    records it) if given.

    Never downloads: a report is drawn from what is on disk (a missing data set is a
    note on the page, not a network request)."""
    held = split_layout(spec).held_out
    # a folder is indexed and only its first ``limit`` images are decoded
    data: ImageDataset = load_images(
        spec, held, data_root, download=False, resize=resize, lazy=True
    )
    images, note = read_all(data.images, limit), ""
    c, size = model.config.in_channels, tuple(model.config.input_size)
    if data.num_channels != c:
        raise ValueError(
            f"{data.name}: images have {data.num_channels} channel(s), the model expects {c}"
        )
    if data.image_size != size:
        # A run of an older release trained with --resize, which its config.json does not
        # record; or data other than the run's.
        images = resize_images(images, size)
        note = f"images resized from {data.image_size[0]}x{data.image_size[1]} to fit the model"
    codes, recons = reconstruct(model, images)
    labels = None if data.labels is None else data.labels[:limit]
    return HeldOut(
        data.name, images, labels, data.class_names, codes, recons, model.num_levels, note
    )


def codebook_level0(model: VQVAE) -> np.ndarray:
    """(K, D) float array: the codebook, or its first level for residual VQ."""
    book = model.quantizer.codebook.detach().float().cpu().numpy()
    return book[0] if book.ndim == 3 else book  # (Q, K, D) -> (K, D)


def usage_counts(held: HeldOut, num_codes: int) -> np.ndarray:
    """(K,) uses of each code (level 0) over the held-out grids."""
    return metrics.code_histogram(held.level0, num_codes)


@dataclass(frozen=True)
class RatePoints:
    points: list[tuple[str, float, float]]  # (label, bits per image, PSNR dB)
    curve: list[tuple[str, float, float]]  # residual VQ: one per number of levels


def rate_distortion(
    model: VQVAE, held: HeldOut, prior_bits_per_code: float | None, prior_name: str = "prior"
) -> RatePoints:
    """Fixed-length rate (h*w*log2 K per level) and PSNR; with a prior, its rate (its
    held-out cross-entropy, the length of an ideal entropy code) at the same PSNR."""
    shape = model.latent_shape
    k = model.num_codes
    per_level = metrics.bits_per_image(shape, k)
    psnr = metrics.psnr(held.originals, held.recons)
    q = model.num_levels
    curve: list[tuple[str, float, float]] = []
    if q > 1:
        # Residual VQ: the first q levels alone decode to a coarser image at q/Q the bits.
        for levels in range(1, q + 1):
            recon = held.recons if levels == q else decode(model, held.codes[:, :levels])
            curve.append((f"q={levels}", levels * per_level, metrics.psnr(held.originals, recon)))
    levels_text = f"{q} levels x " if q > 1 else ""
    grid = "x".join(map(str, shape))
    points = [(f"fixed-length ({levels_text}{grid} x log2 {k})", q * per_level, psnr)]
    if prior_bits_per_code is not None and q == 1:
        points.append((prior_name, prior_bits_per_code * math.prod(shape), psnr))
    return RatePoints(points, curve)


@dataclass(frozen=True)
class Samples:
    images: np.ndarray  # uint8 (N, H, W, C)
    row_labels: list[str] | None  # one per row for a class-conditional prior


def prior_samples(
    model: VQVAE, prior: Any, class_names: tuple[str, ...] | None = None, seed: int = 0
) -> Samples:
    """Decoded samples from a fixed seed: 4 rows of 8, or one row of 8 per class."""
    generator = torch.Generator().manual_seed(seed)
    num_classes = prior.config.num_classes
    if num_classes:
        rows = min(num_classes, MAX_CLASS_ROWS)
        labels = torch.arange(rows).repeat_interleave(SAMPLES_PER_ROW)  # (rows*8,)
        codes = prior.sample(len(labels), labels, generator=generator)
        names = [
            class_names[i] if class_names and i < len(class_names) else f"class {i}"
            for i in range(rows)
        ]
        return Samples(decode(model, codes), names)
    codes = prior.sample(4 * SAMPLES_PER_ROW, generator=generator)
    return Samples(decode(model, codes), None)

"""Encode, reconstruct and score a VQ-VAE over a whole data set, in batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from vqvae import metrics
from vqvae.data import to_model_input, to_uint8_images
from vqvae.models import VQVAE
from vqvae.train.run import RunError


@dataclass(frozen=True)
class Evaluation:
    mse: float  # on the [0, 1] pixel scale
    psnr: float  # dB
    perplexity: float  # of the code histogram over the whole split
    code_usage: float  # fraction of the K codes used over the whole split
    bits_per_image: float  # of the code grid with a fixed-length code
    compression_ratio: float  # raw 8-bit pixels / bits_per_image
    num_images: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def batches(images: np.ndarray, batch_size: int) -> Iterator[tuple[slice, torch.Tensor]]:
    """uint8 (N, H, W, C) -> model inputs (B, C, H, W) in [-1, 1], one batch at a time.

    A progress bar shows on a terminal when the set is large (silent in logs)."""
    starts = range(0, len(images), batch_size)
    large = len(images) > 20 * batch_size
    for start in tqdm(
        starts, desc="images", unit="batch", leave=False, disable=None if large else True
    ):
        sl = slice(start, start + batch_size)
        yield sl, to_model_input(images[sl])


@torch.no_grad()
def reconstruct(
    model: VQVAE, images: np.ndarray, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """codes (N, h, w) int64 and reconstructions uint8 (N, H, W, C), in eval mode."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    codes, recons = [], []
    try:
        for _, x in batches(images, batch_size):
            c = model.encode(x.to(device))
            codes.append(c.cpu().numpy())
            recons.append(to_uint8_images(model.decode_codes(c).cpu()))
    finally:
        model.train(was_training)
    return np.concatenate(codes), np.concatenate(recons)


@torch.no_grad()
def encode(model: VQVAE, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    device = next(model.parameters()).device
    return np.concatenate(
        [model.encode(x.to(device)).cpu().numpy() for _, x in batches(images, batch_size)]
    )


def score(model: VQVAE, originals: np.ndarray, codes: np.ndarray, recons: np.ndarray) -> Evaluation:
    k = model.num_codes
    counts = metrics.code_histogram(codes, k)
    bits = metrics.bits_per_image(codes.shape[1:], k)
    raw_bits = float(np.prod(originals.shape[1:])) * 8
    return Evaluation(
        mse=metrics.mse(originals, recons),
        psnr=metrics.psnr(originals, recons),
        perplexity=metrics.perplexity(counts),
        code_usage=metrics.code_usage(counts),
        bits_per_image=bits,
        compression_ratio=raw_bits / bits,
        num_images=len(originals),
    )


def evaluate(model: VQVAE, images: np.ndarray, batch_size: int = 256) -> Evaluation:
    codes, recons = reconstruct(model, images, batch_size)
    return score(model, images, codes, recons)


def read_code_file(path: Path, model: VQVAE) -> tuple[np.ndarray, np.ndarray | None]:
    """``codes`` (N, h, w) and ``labels`` (N,) or None of a ``vqvae encode`` .npz, checked
    against the model's grid and codebook size."""
    if not path.is_file():
        raise RunError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "codes" not in f:
                raise RunError(f"{path}: no 'codes' array (write one with `vqvae encode`)")
            codes = f["codes"]
            labels = f["labels"] if "labels" in f else None  # noqa: SIM401 (an NpzFile)
    except (ValueError, OSError) as e:
        raise RunError(f"{path}: not a readable .npz file ({e})") from None
    grid = model.config.grid_size
    if codes.ndim != 3 or codes.shape[1:] != grid or codes.dtype.kind not in "iu":
        raise RunError(
            f"{path}: expected integer codes of shape (N, {grid[0]}, {grid[1]}), "
            f"got {codes.dtype} {codes.shape}"
        )
    if codes.size and (codes.min() < 0 or codes.max() >= model.num_codes):
        raise RunError(
            f"{path}: codes must lie in [0, {model.num_codes}), got [{codes.min()}, {codes.max()}]"
        )
    return codes.astype(np.int64), None if labels is None else labels.astype(np.int64)

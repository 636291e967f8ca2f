"""Batched inference with a trained model and prior: encode, reconstruct, decode, sample and
score a whole data set, under ``torch.inference_mode`` and in eval mode, never training.

Data arrays are uint8, channels last, of any rank: images ``(N, H, W, C)``, sequences
``(N, T, C)``, volumes ``(N, D, H, W, C)``; ``vqvae.data.transforms`` converts them to and
from the ``[-1, 1]`` channel-first tensors the models see. Codes come back as int64 numpy
arrays ``(N, *code_shape)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from vqvae import metrics
from vqvae.data.transforms import to_model_input, to_uint8_images
from vqvae.priors import Condition
from vqvae.torch_utils import eval_mode, module_device

BATCH_SIZE = 256


@dataclass(frozen=True)
class Evaluation:
    mse: float  # on the [0, 1] pixel scale
    psnr: float  # dB
    perplexity: float  # of the code histogram over the whole split
    code_usage: float  # fraction of the K codes used over the whole split
    bits_per_image: float  # of the code grid with a fixed-length code
    compression_ratio: float  # raw 8-bit values / bits_per_image
    num_images: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def batches(n: int, batch_size: int = BATCH_SIZE, desc: str = "batches") -> Iterator[slice]:
    """Slices of ``range(n)``; a progress bar shows on a terminal when there are many."""
    starts = range(0, n, batch_size)
    many = n > 20 * batch_size
    for start in tqdm(starts, desc=desc, unit="batch", leave=False, disable=None if many else True):
        yield slice(start, start + batch_size)


@torch.inference_mode()
def encode(model: Any, data: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """uint8 data (N, *S, C) -> int64 codes (N, *code_shape)."""
    device = module_device(model)
    with eval_mode(model):
        parts = [
            model.encode(to_model_input(data[sl]).to(device)).cpu().numpy()
            for sl in batches(len(data), batch_size, "encoding")
        ]
    return _concat(parts, (0, *model.code_shape), np.int64)


@torch.inference_mode()
def reconstruct(
    model: Any, data: np.ndarray, batch_size: int = BATCH_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 data (N, *S, C) -> codes (N, *code_shape) and reconstructions uint8 (N, *S, C)."""
    device = module_device(model)
    codes, recons = [], []
    with eval_mode(model):
        for sl in batches(len(data), batch_size, "reconstructing"):
            c = model.encode(to_model_input(data[sl]).to(device))
            codes.append(c.cpu().numpy())
            recons.append(to_uint8_images(model.decode_codes(c).cpu()))
    return (
        _concat(codes, (0, *model.code_shape), np.int64),
        _concat(recons, (0, *data.shape[1:]), np.uint8),
    )


@torch.inference_mode()
def decode(
    model: Any, codes: np.ndarray | torch.Tensor, batch_size: int = BATCH_SIZE
) -> np.ndarray:
    """Codes (N, *code_shape) (or fewer residual levels) -> uint8 data (N, *S, C)."""
    codes = torch.as_tensor(codes, dtype=torch.long)
    device = module_device(model)
    with eval_mode(model):
        parts = [
            to_uint8_images(model.decode_codes(codes[sl].to(device)).cpu())
            for sl in batches(len(codes), batch_size, "decoding")
        ]
    c = model.config
    return _concat(parts, (0, *c.input_size, c.in_channels), np.uint8)


def _concat(parts: list[np.ndarray], empty_shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return (
        np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(empty_shape, dtype)
    )


@torch.inference_mode()
def sample(
    model: Any,
    prior: Any,
    n: int,
    cond: Condition | torch.Tensor | int | None = None,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Stage 3 of the paper: draw ``n`` code grids from the prior (given ``cond``) and
    decode them -> uint8 data (N, *S, C) and codes (N, *shape)."""
    generator = torch.Generator().manual_seed(seed)
    codes = prior.sample(n, cond, temperature=temperature, top_k=top_k, generator=generator)
    return decode(model, codes), codes.cpu().numpy()


def score(model: Any, originals: np.ndarray, codes: np.ndarray, recons: np.ndarray) -> Evaluation:
    """Distortion, code statistics and rate of a set of reconstructions."""
    k = model.num_codes
    counts = metrics.code_histogram(codes, k)
    bits = metrics.bits_per_image(codes.shape[1:], k)
    raw_bits = math.prod(originals.shape[1:]) * 8.0
    return Evaluation(
        mse=metrics.mse(originals, recons),
        psnr=metrics.psnr(originals, recons),
        perplexity=float(metrics.perplexity(counts)),
        code_usage=metrics.code_usage(counts),
        bits_per_image=bits,
        compression_ratio=raw_bits / bits,
        num_images=len(originals),
    )


def evaluate(model: Any, data: np.ndarray, batch_size: int = BATCH_SIZE) -> Evaluation:
    codes, recons = reconstruct(model, data, batch_size)
    return score(model, data, codes, recons)

"""Batched inference with a trained model and prior: encode, reconstruct, decode, sample and
score a whole data set, under ``torch.inference_mode`` and in eval mode, never training.

Data arrays are uint8, channels last, of any rank: images ``(N, H, W, C)``, sequences
``(N, T, C)``, volumes ``(N, D, H, W, C)``; ``vqvae.data.transforms`` converts them to and
from the ``[-1, 1]`` channel-first tensors the models see. Images may also be ``LazyImages``
(a folder read on demand): they stream through ``read_batches``, decoded by its worker
processes, and ``evaluate`` keeps no image once scored, so its memory does not grow with the
data. Codes come back as int64 numpy arrays ``(N, *code_shape)``.
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
from vqvae.data import LazyImages, read_batches
from vqvae.data.transforms import to_model_input, to_uint8_images
from vqvae.priors import Condition
from vqvae.torch_utils import eval_mode, module_device

BATCH_SIZE = 256
Data = np.ndarray | LazyImages  # uint8 (N, *S, C)


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


def data_batches(data: Data, batch_size: int = BATCH_SIZE, desc: str = "batches"):
    """uint8 tensors (B, *S, C) of consecutive batches of ``data``, in order, with a progress
    bar (``batches``); lazy images are decoded ahead by ``read_batches``' workers."""
    return read_batches(data, batches(len(data), batch_size, desc))


def _model_input(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (B, *S, C) -> float (B, C, *S) on ``device``, converted there (fewer bytes)."""
    return to_model_input(batch.to(device))


@torch.inference_mode()
def encode(model: Any, data: Data, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """uint8 data (N, *S, C) -> int64 codes (N, *code_shape)."""
    device = module_device(model)
    with eval_mode(model):
        parts = [
            model.encode(_model_input(x, device)).cpu().numpy()
            for x in data_batches(data, batch_size, "encoding")
        ]
    return _concat(parts, (0, *model.code_shape), np.int64)


@torch.inference_mode()
def reconstruct(
    model: Any, data: Data, batch_size: int = BATCH_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 data (N, *S, C) -> codes (N, *code_shape) and reconstructions uint8 (N, *S, C)."""
    device = module_device(model)
    codes, recons = [], []
    with eval_mode(model):
        for x in data_batches(data, batch_size, "reconstructing"):
            c = model.encode(_model_input(x, device))
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
    model: Any, prior: Any, n: int, cond: Condition | torch.Tensor | int | None = None, **draw: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Stage 3 of the paper: draw ``n`` code grids from the prior (given ``cond``; ``draw``:
    ``sample_codes``' temperature, top_k, seed) and decode them -> uint8 data (N, *S, C)
    and codes (N, *shape)."""
    codes = sample_codes(prior, n, cond, **draw)
    return decode(model, codes), codes.cpu().numpy()


@torch.inference_mode()
def sample_codes(
    prior: Any,
    n: int,
    cond: Condition | torch.Tensor | int | None = None,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    **options: Any,
) -> torch.Tensor:
    """``n`` code grids (N, *shape) drawn from the prior given ``cond``, from a generator
    seeded by ``seed``; ``options`` go to the prior's own ``sample`` (e.g. a sampler's
    number of steps)."""
    generator = torch.Generator().manual_seed(seed)
    return prior.sample(
        n, cond, temperature=temperature, top_k=top_k, generator=generator, **options
    )


def box_mask(model: Any, box: tuple[int, int, int, int]) -> np.ndarray:
    """The codes covering a box ``(y0, x0, y1, x1)`` of an image's pixels (ends exclusive):
    a boolean ``latent_shape`` mask, every code whose receptive cell overlaps the box."""
    (h, w), (height, width) = model.latent_shape, model.config.input_size
    y0, x0, y1, x1 = box
    if not (0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width):
        raise ValueError(
            f"box: expected 0 <= Y0 < Y1 <= {height} and 0 <= X0 < X1 <= {width} "
            f"(pixels of a {height}x{width} image), got {y0} {x0} {y1} {x1}"
        )
    mask = np.zeros((h, w), dtype=bool)
    # a code at row r stands for pixel rows [r * height / h, (r + 1) * height / h)
    rows = slice(y0 * h // height, -(-y1 * h // height))
    cols = slice(x0 * w // width, -(-x1 * w // width))
    mask[rows, cols] = True
    return mask


def inpaint(
    model: Any,
    prior: Any,
    codes: np.ndarray,
    mask: np.ndarray,
    cond: Condition | torch.Tensor | int | None = None,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Codes (N, *shape) with those under ``mask`` (bool, ``shape`` or ``(N, *shape)``)
    redrawn by the prior given the others (``Prior.inpaint``), decoded -> uint8 data
    (N, *S, C) and the codes (N, *shape)."""
    generator = torch.Generator().manual_seed(seed)
    drawn = prior.inpaint(
        torch.as_tensor(codes, dtype=torch.long),
        torch.as_tensor(mask, dtype=torch.bool),
        cond,
        temperature=temperature,
        top_k=top_k,
        generator=generator,
        **options,
    )
    return decode(model, drawn), drawn.cpu().numpy()


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


@torch.inference_mode()
def evaluate(model: Any, data: Data, batch_size: int = BATCH_SIZE) -> Evaluation:
    """``score`` of the reconstructions of ``data``, one batch at a time: the squared error
    is summed exactly (integers) and codes are counted, so no image is kept."""
    device = module_device(model)
    k = model.num_codes
    counts = np.zeros(k, dtype=np.int64)
    squared = 0
    with eval_mode(model):
        for x in data_batches(data, batch_size, "evaluating"):
            c = model.encode(_model_input(x, device))
            recons = to_uint8_images(model.decode_codes(c).cpu())
            squared += metrics.squared_error_sum(x.numpy(), recons)
            counts += metrics.code_histogram(c.cpu().numpy(), k)
    values = len(data) * math.prod(data.shape[1:])
    mse = squared / (max(values, 1) * 255.0**2)
    bits = metrics.bits_per_image(model.code_shape, k)
    return Evaluation(
        mse=mse,
        psnr=metrics.psnr_of_mse(mse),
        perplexity=float(metrics.perplexity(counts)),
        code_usage=metrics.code_usage(counts),
        bits_per_image=bits,
        compression_ratio=math.prod(data.shape[1:]) * 8.0 / bits,
        num_images=len(data),
    )

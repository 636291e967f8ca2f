"""Metrics: mse, psnr, perplexity, code usage, bits per image, bits/dim."""

from __future__ import annotations

import math

import numpy as np
import torch


def mse(originals: np.ndarray, reconstructions: np.ndarray) -> float:
    """Mean squared error on the [0, 1] pixel scale, of uint8 images."""
    a = originals.astype(np.float64) / 255.0
    b = reconstructions.astype(np.float64) / 255.0
    return float(np.mean((a - b) ** 2))


def psnr(originals: np.ndarray, reconstructions: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB on the [0, 1] scale: 10 log10(1 / MSE)."""
    return psnr_of_mse(mse(originals, reconstructions))


def psnr_of_mse(err: float) -> float:
    """10 log10(1 / MSE) in dB, for an MSE on the [0, 1] scale; inf for 0."""
    return float("inf") if err == 0 else 10.0 * math.log10(1.0 / err)


def squared_error_sum(originals: np.ndarray, reconstructions: np.ndarray) -> int:
    """The sum of squared differences of two uint8 arrays, exact (an integer): batches add up
    to the whole, and ``total / (count * 255**2)`` is the MSE on the [0, 1] scale."""
    d = originals.astype(np.int64) - reconstructions.astype(np.int64)
    return int(np.einsum("i,i->", d.reshape(-1), d.reshape(-1)))


def code_histogram(codes: torch.Tensor | np.ndarray, num_codes: int) -> np.ndarray:
    """Counts (K,) of every code in a grid of any shape."""
    flat = np.asarray(codes).reshape(-1)
    return np.bincount(flat, minlength=num_codes)


def perplexity(counts: torch.Tensor | np.ndarray) -> torch.Tensor:
    """exp(entropy) of a code histogram (K,): K when all codes are equally used, 1 for one
    code. A 0-d float tensor (``float(...)`` of it for a number); numpy counts are taken too."""
    counts = torch.as_tensor(counts)
    p = counts.double() / counts.sum().clamp(min=1)
    entropy = -(p * torch.log(p.clamp(min=1e-30))).sum()
    return torch.exp(entropy).to(torch.promote_types(counts.dtype, torch.float32))


def code_usage(counts: np.ndarray) -> float:
    """Fraction of the K codes used at least once."""
    return float((counts > 0).mean())


def bits_per_image(grid_shape: tuple[int, ...], num_codes: int) -> float:
    """Bits to store one code grid with a fixed-length code: positions * log2 K."""
    return float(np.prod(grid_shape)) * math.log2(num_codes)


def bits_per_dim(nll_nats: float, num_dims: int) -> float:
    """Negative log-likelihood in nats per example -> bits per data dimension."""
    return nll_nats / (num_dims * math.log(2))

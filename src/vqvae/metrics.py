"""Metrics: mse, psnr, ssim, image gradient, perplexity, code usage, bits per image, bits/dim."""

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


def _gaussian_taps(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()  # (size,): the separable window's taps, summing to 1


def ssim(originals: np.ndarray, reconstructions: np.ndarray) -> float:
    """Mean structural similarity of uint8 images (..., H, W, C) (Wang, Bovik, Sheikh,
    Simoncelli 2004): an 11x11 Gaussian window of sigma 1.5, C1 = (0.01 L)^2 and
    C2 = (0.03 L)^2 for L = 255, each channel apart, averaged over the valid windows of every
    image and channel (as scikit-image's ``structural_similarity(gaussian_weights=True)``).
    The window is applied as two 1-D passes in float32: uint8 moments lose nothing there
    that matters beside C2 (tests/test_image_metrics.py checks it against the definition)."""
    if originals.shape != reconstructions.shape or originals.ndim < 3:
        raise ValueError(
            f"ssim: expected two (..., H, W, C) arrays of one shape, got "
            f"{originals.shape} and {reconstructions.shape}"
        )
    h, w, c = originals.shape[-3:]
    taps = _gaussian_taps()
    if min(h, w) < len(taps):
        raise ValueError(f"ssim: images of {h}x{w} are smaller than the 11x11 window")

    def planes(a: np.ndarray) -> torch.Tensor:  # (..., H, W, C) -> (N * C, 1, H, W)
        t = torch.from_numpy(np.ascontiguousarray(a.reshape(-1, h, w, c))).float()
        return t.permute(0, 3, 1, 2).reshape(-1, 1, h, w)

    def mean(t: torch.Tensor) -> torch.Tensor:  # the window's weighted mean, valid positions
        t = torch.nn.functional.conv2d(t, taps.view(1, 1, -1, 1))
        return torch.nn.functional.conv2d(t, taps.view(1, 1, 1, -1))

    x, y = planes(originals), planes(reconstructions)
    mx, my = mean(x), mean(y)
    vx, vy, cxy = mean(x * x) - mx**2, mean(y * y) - my**2, mean(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.double().mean())


def image_gradient(images: np.ndarray) -> float:
    """The mean absolute difference between neighbouring pixels (down and across), in uint8
    levels, of images (..., H, W, C): how much detail a frame holds. A blurred or flat frame
    scores low, speckle high; real frames set the level to compare with (docs/video.md)."""
    a = images.astype(np.float64)
    down = np.abs(np.diff(a, axis=-3)).mean()
    across = np.abs(np.diff(a, axis=-2)).mean()
    return float((down + across) / 2)


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

"""The image measures of video evaluation: SSIM (Wang et al. 2004) against a direct reading of
its definition, and the image gradient that tells a detailed frame from a flat or speckled
one."""

from __future__ import annotations

import numpy as np
import pytest

from vqvae import metrics


def ssim_by_definition(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004, eq. 13 in every 11x11 window (Gaussian weights, sigma 1.5) that fits,
    one channel at a time, averaged: written out with loops, independent of the convolution."""
    r = np.arange(11) - 5.0
    w = np.exp(-(r[:, None] ** 2 + r[None] ** 2) / (2 * 1.5**2))
    w /= w.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for ch in range(x.shape[-1]):
        a, b = x[..., ch].astype(np.float64), y[..., ch].astype(np.float64)
        for i in range(a.shape[0] - 10):
            for j in range(a.shape[1] - 10):
                pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
                ma, mb = (w * pa).sum(), (w * pb).sum()
                va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
                cov = (w * (pa - ma) * (pb - mb)).sum()
                values.append(
                    (2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
                )
    return float(np.mean(values))


def test_ssim_is_the_definition_averaged_over_windows_and_channels():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (14, 13, 3), dtype=np.uint8)
    y = np.clip(x.astype(int) + rng.integers(-40, 41, x.shape), 0, 255).astype(np.uint8)
    assert metrics.ssim(x, y) == pytest.approx(ssim_by_definition(x, y), rel=1e-5)
    assert metrics.ssim(x, x) == pytest.approx(1.0)
    assert metrics.ssim(x, y) == pytest.approx(metrics.ssim(y, x))  # symmetric
    assert metrics.ssim(x, y) < metrics.ssim(x, (x.astype(int) // 2 * 2).astype(np.uint8))
    # a batch is the mean over its images: (N, H, W, C) as N images
    batch = np.stack([x, y])
    both = metrics.ssim(batch, np.stack([y, y]))
    assert both == pytest.approx((metrics.ssim(x, y) + 1.0) / 2)


def test_ssim_refuses_shapes_it_cannot_compare():
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="one shape"):
        metrics.ssim(a, a[:8])
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        metrics.ssim(a[:8, :8], a[:8, :8])


def test_image_gradient_tells_flat_from_detailed():
    flat = np.full((2, 8, 8, 3), 120, np.uint8)
    assert metrics.image_gradient(flat) == 0.0
    checker = (np.indices((8, 8)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, -1)
    assert metrics.image_gradient(checker) == 255.0  # every neighbour differs by 255
    stripes = np.zeros((8, 8, 1), np.uint8)
    stripes[:, ::2] = 100  # only across: half the mean of the two directions
    assert metrics.image_gradient(stripes) == pytest.approx(50.0)

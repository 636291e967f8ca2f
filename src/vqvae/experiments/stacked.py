"""What 27 bits keep of a frame: the stacked VQ-VAE's evaluation (paper section 4.2, end).

The paper compresses a DeepMind Lab frame's 21x21 grid of K=512 codes to 3 codes of K=512,
27 bits, and finds reconstructions that "show globally the same scene with different
details". Measured here on held-out frames:

- rates: 27 bits per frame beside the grid's fixed-length size (h * w * log2 K1); the
  second stage's ``-log2 p(grid | z_q)`` per grid, and 27 plus it (a two-part code of the
  grid); beside them the first stage's prior's ``-log2 p(grid)`` when the run has one;
- layout: the PSNR of frames decoded from a 27-bit reconstruction (frame -> 3 codes ->
  a grid sampled by the PixelCNN -> the first stage's decoder) against their originals,
  beside the PSNR of a random pair of held-out frames (what "the same scene" must beat) and
  of the first stage's own reconstructions (the best any second stage can do); and the
  fraction of stage-1 codes the resampled grid shares with the original one;
- a figure: per frame, a row of the original, its stage-1 reconstruction and several 27-bit
  reconstructions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqvae import metrics
from vqvae.data import save_png_grid
from vqvae.errors import RunError
from vqvae.inference import batches, decode, encode
from vqvae.models import VQVAE, StackedVQVAE
from vqvae.train.prior import CodeSet, bits_per_code
from vqvae.train.stack import bits_per_grid


@dataclass(frozen=True)
class StackedEvaluation:
    bits_per_frame: float  # the second stage's rate: num_latents x log2 K (27)
    uniform_bits_per_grid: float  # the stage-1 grid with a fixed-length code: h*w*log2 K1
    stage2_bits_per_grid: float  # -log2 p(grid | z_q(grid)), held-out mean
    stage2_total_bits_per_grid: float  # bits_per_frame + stage2_bits_per_grid
    prior_bits_per_grid: float | None  # the first stage's prior's -log2 p(grid); None: none
    psnr_stage1: float  # dB, original vs the first stage's reconstruction
    psnr_27bit: float  # dB, original vs its 27-bit reconstruction
    psnr_random: float  # dB, original vs a random other held-out frame
    same_codes_27bit: float  # fraction of stage-1 codes the resampled grid shares
    same_codes_random: float  # the same for a random other held-out frame's grid
    code_usage: tuple[float, ...]  # per latent: the fraction of its K codes the frames use
    num_frames: int  # held-out frames whose grids were scored
    num_layout_frames: int  # of them, frames decoded through 27 bits

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_prior(prior: Any, stage1: VQVAE) -> None:
    c = prior.config
    if c.conditional or c.shape != stage1.latent_shape or c.num_codes != stage1.num_codes:
        raise RunError(
            "the run's prior does not model its plain code grids "
            f"(shape {c.shape}, K={c.num_codes}, conditional={c.conditional})"
        )


@torch.no_grad()
def resample(
    stacked: StackedVQVAE, grids: torch.Tensor, generator: torch.Generator, temperature: float
) -> torch.Tensor:
    """Grids (N, h, w) -> their 27-bit reconstructions: encoded to 3 codes each, then a grid
    drawn from the PixelCNN given them, in batches."""
    parts = [
        stacked.decode_codes(stacked.encode(grids[sl]), temperature, generator)
        for sl in batches(len(grids), 64, "sampling")
    ]
    return torch.cat(parts) if parts else grids[:0]


def evaluate_stacked(
    stage1: VQVAE,
    stacked: StackedVQVAE,
    images: np.ndarray,
    prior: Any = None,
    *,
    layout_frames: int = 256,
    figure_frames: int = 8,
    samples: int = 4,
    seed: int = 0,
    temperature: float = 1.0,
    figure: Path | None = None,
) -> StackedEvaluation:
    """Score ``stacked`` on held-out ``images`` uint8 (N, H, W, C) of ``stage1``'s kind (see
    the module docstring); ``figure``: write the rows of reconstructions there."""
    if len(images) < 2:
        raise RunError(f"the stacked VQ-VAE's evaluation needs 2 frames or more, got {len(images)}")
    grids = torch.from_numpy(encode(stage1, images))  # (N, h, w)
    positions = math.prod(grids.shape[1:])
    prior_bits = None
    if prior is not None:
        check_prior(prior, stage1)
        prior_bits = bits_per_code(prior, CodeSet(grids)) * positions
    stage2_bits = bits_per_grid(stacked, grids)
    codes = stacked.encode(grids).numpy()  # (N, 3)

    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(images))[: max(2, min(layout_frames, len(images)))]
    partner = np.roll(pick, 1)  # each picked frame beside another picked frame
    sub = grids[pick]
    resampled = resample(stacked, sub, generator, temperature)
    originals = images[pick]
    stage1_recons, recons = decode(stage1, sub), decode(stage1, resampled)
    if figure is not None:
        n = min(figure_frames, len(pick))
        again = resample(stacked, sub[:n].repeat_interleave(samples, 0), generator, temperature)
        many = decode(stage1, again).reshape(n, samples, *images.shape[1:])
        rows = np.concatenate(  # (n, 2 + samples, H, W, C) -> (n * (2 + samples), H, W, C)
            [originals[:n, None], stage1_recons[:n, None], many], axis=1
        ).reshape(-1, *images.shape[1:])
        figure.parent.mkdir(parents=True, exist_ok=True)
        save_png_grid(rows, figure, nrow=2 + samples, scale=max(1, 64 // images.shape[1]))
    k = stacked.num_codes
    return StackedEvaluation(
        bits_per_frame=stacked.bits_per_frame,
        uniform_bits_per_grid=positions * math.log2(stage1.num_codes),
        stage2_bits_per_grid=stage2_bits,
        stage2_total_bits_per_grid=stacked.bits_per_frame + stage2_bits,
        prior_bits_per_grid=prior_bits,
        psnr_stage1=metrics.psnr(originals, stage1_recons),
        psnr_27bit=metrics.psnr(originals, recons),
        psnr_random=metrics.psnr(originals, images[partner]),
        same_codes_27bit=float((resampled == sub).double().mean()),
        same_codes_random=float((grids[partner] == sub).double().mean()),
        code_usage=tuple(len(np.unique(c)) / k for c in codes.T),  # (N, 3) -> 3 x (N,)
        num_frames=len(images),
        num_layout_frames=len(pick),
    )

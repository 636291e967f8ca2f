"""A second VQ-VAE over a first one's code grids, with a PixelCNN decoder (the stacked
VQ-VAE).

van den Oord, Vinyals, Kavukcuoglu 2017 (arXiv:1711.00937), end of section 4.2: "a second
VQ-VAE with a PixelCNN decoder on top of the 21x21x1 latent space" of DeepMind Lab frames
"reduces it to 3 latent variables, each with K=512: 27 bits per frame"; its reconstructions
"show globally the same scene with different details".

Here the data is a stage-1 code grid ``(B, h, w)`` of integers in ``[0, grid_codes)``:

- encoder: the codes embedded, ``(B, h, w) -> (B, E, h, w)``, strided convolutions, and a
  linear map to exactly ``num_latents`` vectors of ``code_dim`` D: ``z_e`` ``(B, 3, D)``;
- quantizer: each latent has its own codebook of K codes (three quantizers of the kind the
  ``quantizer`` config names, one per latent: the first latent's code 7 means something else
  than the second's), ``z_q`` ``(B, 3, D)``, ``codes`` ``(B, 3)``;
- decoder: the project's gated PixelCNN over the ``(h, w)`` grid, conditioned on the
  flattened ``z_q`` ``(B, 3*D)`` as a global vector (``Condition.vector``, the conditional
  PixelCNN's ``V^T y`` gate bias).

The loss is equation 3 with the PixelCNN as ``p(x | z_q)``: the cross-entropy of the grid
given ``z_q`` (per code, so its scale is that of the prior's loss) plus each latent's VQ
terms. The decoder is stochastic, so ``decode_codes`` samples a grid; its likelihood of a
grid given the codes equals the forward pass's (tests/test_stacked.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.pretrained import PretrainedMixin
from vqvae.priors.base import Condition, check_int_grid
from vqvae.priors.pixelcnn import PixelCNNConfig, PixelCNNPrior
from vqvae.quantizers import QuantizerConfig
from vqvae.registry import MODELS
from vqvae.torch_utils import eval_mode


@dataclass(frozen=True)
class StackedVQVAEConfig:
    """The stage-1 alphabet and grid, the encoder, the 3 latents' quantizer and the PixelCNN."""

    grid_codes: int = 512  # K1: the stage-1 codebook size, the alphabet of the data
    grid_shape: tuple[int, int] = (16, 16)  # (h, w) of the stage-1 code grid
    embed_dim: int = 64  # E: width of the stage-1 codes' embedding
    hidden_channels: int = 128  # channels of the strided convolutions
    num_downsamples: int = 2  # strided 4x4 convolutions, each halving h and w
    num_latents: int = 3  # the paper's 3 latent variables per frame
    # each latent's quantizer (its own codebook): EMA with k-means init and dead-code
    # restarts after 20 unpicked steps, as the image presets use, K=512 as the paper. On the
    # 12,000-frame maze the 1,200 test frames use 59% of each latent's codes with it, 44%
    # with the 200 steps before (a batch of 32 picks at most 32 codes, so restarts
    # also re-seed rarely used codes; it cost nothing: 27-bit PSNR 16.22 against 16.15 dB;
    # BENCHMARKS.md section 11)
    quantizer: QuantizerConfig = field(
        default_factory=lambda: QuantizerConfig(
            kind="ema", num_codes=512, code_dim=64, dead_code_steps=20
        )
    )
    # the PixelCNN decoder: 8 gated layers of 3x3 reach 8 rows up (docs/stacked.md)
    pixelcnn_channels: int = 64
    pixelcnn_layers: int = 8
    pixelcnn_kernel_size: int = 3
    pixelcnn_head_channels: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid_shape", tuple(self.grid_shape))
        if len(self.grid_shape) != 2 or min(self.grid_shape) < 1:
            raise ValueError(f"grid_shape: expected (h, w) of positive ints, got {self.grid_shape}")
        if self.grid_codes < 2:
            raise ValueError(f"grid_codes: expected at least 2 codes, got {self.grid_codes}")
        for name in ("embed_dim", "hidden_channels", "num_latents"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive int, got {getattr(self, name)}")
        if self.num_downsamples < 0:
            raise ValueError(f"num_downsamples: expected >= 0, got {self.num_downsamples}")
        if self.quantizer.num_quantizers != 1:
            raise ValueError("quantizer.num_quantizers: each latent has one codebook; expected 1")
        self.pixelcnn  # noqa: B018 (raises if the PixelCNN's settings do not fit)

    @property
    def pixelcnn(self) -> PixelCNNConfig:
        """The decoder's config: a PixelCNN over the grid, conditioned on ``z_q`` flattened."""
        return PixelCNNConfig(
            num_codes=self.grid_codes,
            shape=self.grid_shape,
            cond_dim=self.num_latents * self.quantizer.code_dim,
            channels=self.pixelcnn_channels,
            num_layers=self.pixelcnn_layers,
            kernel_size=self.pixelcnn_kernel_size,
            head_channels=self.pixelcnn_head_channels,
        )

    @property
    def bits_per_frame(self) -> float:
        """The rate of the second stage: ``num_latents * log2 K`` (3 x 9 = 27 bits)."""
        return self.num_latents * math.log2(self.quantizer.num_codes)


@dataclass(frozen=True)
class StackedOutput:
    loss: torch.Tensor  # scalar: nats_per_code + vq_loss, what training minimises
    nll: torch.Tensor  # (B,) -log p(grid | z_q) in nats per grid (eq. 3's reconstruction term)
    nats_per_code: torch.Tensor  # scalar: nll's batch mean / (h * w)
    bits_per_grid: torch.Tensor  # scalar: nll's batch mean in bits
    vq_loss: torch.Tensor  # scalar: the latents' VQ terms, summed
    codes: torch.Tensor  # (B, num_latents) int64, latent i in [0, K) of its own codebook
    z_e: torch.Tensor  # (B, num_latents, D) the encoder's output
    z_q: torch.Tensor  # (B, num_latents, D) straight-through quantized
    perplexity: torch.Tensor  # (num_latents,) of each latent's codes in the batch
    logits: torch.Tensor  # (B, K1, h, w) the PixelCNN's, given z_q


class GridEncoder(nn.Module):
    """Stage-1 codes ``(B, h, w)`` -> ``num_latents`` vectors ``(B, num_latents, D)``."""

    def __init__(self, c: StackedVQVAEConfig) -> None:
        super().__init__()
        self.num_latents, self.code_dim = c.num_latents, c.quantizer.code_dim
        self.embed = nn.Embedding(c.grid_codes, c.embed_dim)
        layers: list[nn.Module] = []
        channels, (h, w) = c.embed_dim, c.grid_shape
        for _ in range(c.num_downsamples):
            layers += [nn.Conv2d(channels, c.hidden_channels, 4, stride=2, padding=1), nn.ReLU()]
            channels, h, w = c.hidden_channels, (h + 1) // 2, (w + 1) // 2
        layers += [nn.Conv2d(channels, c.hidden_channels, 3, padding=1), nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        self.to_latents = nn.Linear(c.hidden_channels * h * w, c.num_latents * self.code_dim)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        x = self.embed(grid).permute(0, 3, 1, 2)  # (B, h, w, E) -> (B, E, h, w)
        x = self.convs(x).flatten(1)  # (B, C, h', w') -> (B, C*h'*w')
        return self.to_latents(x).view(-1, self.num_latents, self.code_dim)  # (B, 3, D)


class StackedVQVAE(nn.Module, PretrainedMixin):
    """A VQ-VAE of stage-1 code grids: 3 latents of K codes each, a PixelCNN decoder."""

    config_class = StackedVQVAEConfig
    config: StackedVQVAEConfig

    def __init__(self, config: StackedVQVAEConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or StackedVQVAEConfig()
        self.encoder = GridEncoder(config)
        # one quantizer per latent, each with its own codebook
        self.quantizers = nn.ModuleList(config.quantizer.build() for _ in range(config.num_latents))
        self.decoder = PixelCNNPrior(config.pixelcnn)

    @property
    def num_codes(self) -> int:
        """K of each latent's codebook."""
        return self.quantizers[0].num_codes

    @property
    def code_shape(self) -> tuple[int, ...]:
        return (self.config.num_latents,)

    @property
    def bits_per_frame(self) -> float:
        return self.config.num_latents * math.log2(self.num_codes)

    def check_grid(self, grid: torch.Tensor) -> torch.Tensor:
        c = self.config
        return check_int_grid(grid, c.grid_shape, c.grid_codes, "stage-1 code grid")

    def check_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return check_int_grid(codes, self.code_shape, self.num_codes, "stacked codes")

    def forward(self, grid: torch.Tensor) -> StackedOutput:
        grid = self.check_grid(grid)
        z_e = self.encoder(grid)  # (B, h, w) -> (B, 3, D)
        # each latent as a (B, D, 1) "sequence" of one position for its quantizer
        outs = [q(z_e[:, i, :, None]) for i, q in enumerate(self.quantizers)]
        z_q = torch.stack([o.z_q[:, :, 0] for o in outs], dim=1)  # 3 x (B, D, 1) -> (B, 3, D)
        codes = torch.stack([o.codes[:, 0] for o in outs], dim=1)  # 3 x (B, 1) -> (B, 3)
        vq_loss = torch.stack([o.loss for o in outs]).sum()
        logits = self.decoder(grid, Condition(vector=z_q.flatten(1)))  # (B, K1, h, w)
        nll = F.cross_entropy(logits, grid, reduction="none").flatten(1).sum(1)  # (B,)
        positions = math.prod(self.config.grid_shape)
        nats_per_code = nll.mean() / positions
        return StackedOutput(
            loss=nats_per_code + vq_loss,
            nll=nll,
            nats_per_code=nats_per_code,
            bits_per_grid=nll.mean() / math.log(2),
            vq_loss=vq_loss,
            codes=codes,
            z_e=z_e,
            z_q=z_q,
            perplexity=torch.stack([o.perplexity for o in outs]),
            logits=logits,
        )

    @torch.no_grad()
    def encode(self, grid: torch.Tensor) -> torch.Tensor:
        """Stage-1 grids (B, h, w) -> codes (B, 3). Never updates a codebook."""
        grid = self.check_grid(grid)
        with eval_mode(self):
            z_e = self.encoder(grid)  # (B, 3, D)
            return torch.stack(
                [q(z_e[:, i, :, None]).codes[:, 0] for i, q in enumerate(self.quantizers)], 1
            )  # 3 x (B,) -> (B, 3)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, 3) -> z_q (B, 3, D): each latent's code vector from its own codebook."""
        codes = self.check_codes(codes)
        return torch.stack(
            [q.lookup(codes[:, i : i + 1])[:, :, 0] for i, q in enumerate(self.quantizers)], 1
        )  # 3 x (B, D, 1) -> (B, 3, D)

    def log_prob(self, grid: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """``log p(grid | z_q(codes))`` in nats, ``(B,)``: the decoder's likelihood."""
        return self.decoder.log_prob(grid, Condition(vector=self.lookup(codes).flatten(1)))

    def decode_codes(
        self,
        codes: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Codes (B, 3) -> stage-1 grids (B, h, w) drawn from the PixelCNN given z_q (its
        fast sampler); without the encoder."""
        vector = self.lookup(codes).flatten(1)  # (B, 3, D) -> (B, 3*D)
        return self.decoder.sample(
            len(codes), Condition(vector=vector), temperature=temperature, generator=generator
        )


MODELS.register("StackedVQVAE", StackedVQVAE)

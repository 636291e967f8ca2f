"""The paper's image encoder and decoder.

van den Oord et al. 2017 (arXiv:1711.00937), section 4.1: "The encoder consists of 2 strided
convolutional layers with stride 2 and window size 4 x 4, followed by two residual 3 x 3
blocks (implemented as ReLU, 3x3 conv, ReLU, 1x1 conv), all having 256 hidden units. The
decoder similarly has two residual 3 x 3 blocks, followed by two transposed convolutions
with stride 2 and window size 4 x 4." As in Sonnet's reference, a 3x3 convolution follows
the strided ones and a 1x1 convolution projects to the code dimension D.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NetConfig:
    hidden_channels: int = 256  # the paper's 256 hidden units
    residual_channels: int = 256  # width inside each residual block
    num_residual_blocks: int = 2
    num_downsamples: int = 2  # each halves H and W: 1 -> x2, 2 -> x4, 3 -> x8

    def __post_init__(self) -> None:
        if not 1 <= self.num_downsamples <= 4:
            raise ValueError(f"expected num_downsamples in 1..4, got {self.num_downsamples}")
        if self.hidden_channels < 2 or self.residual_channels < 1:
            raise ValueError("expected hidden_channels >= 2 and residual_channels >= 1")

    @property
    def downsampling(self) -> int:
        return 2**self.num_downsamples

    def stage_channels(self) -> list[int]:
        """Widths after each strided convolution: half width until the last, as in Sonnet."""
        half = self.hidden_channels // 2
        return [half] * (self.num_downsamples - 1) + [self.hidden_channels]


class ResidualBlock(nn.Module):
    """x + conv1x1(ReLU(conv3x3(ReLU(x)))), the paper's residual block."""

    def __init__(self, channels: int, residual_channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, residual_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(residual_channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def residual_stack(config: NetConfig) -> nn.Sequential:
    blocks = [
        ResidualBlock(config.hidden_channels, config.residual_channels)
        for _ in range(config.num_residual_blocks)
    ]
    return nn.Sequential(*blocks, nn.ReLU())


class Encoder(nn.Module):
    """(B, C, H, W) -> (B, out_channels, H / 2^n, W / 2^n)."""

    def __init__(self, in_channels: int, out_channels: int, config: NetConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for stage in config.stage_channels():
            layers += [nn.Conv2d(width, stage, 4, stride=2, padding=1), nn.ReLU()]
            width = stage
        layers += [
            nn.Conv2d(width, config.hidden_channels, 3, padding=1),
            residual_stack(config),
            nn.Conv2d(config.hidden_channels, out_channels, 1),  # pre-quantization projection
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """(B, in_channels, h, w) -> (B, out_channels, h * 2^n, w * 2^n), mirroring the encoder."""

    def __init__(self, in_channels: int, out_channels: int, config: NetConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, config.hidden_channels, 3, padding=1),
            residual_stack(config),
        ]
        widths = config.stage_channels()[::-1][1:] + [out_channels]
        width = config.hidden_channels
        for i, stage in enumerate(widths):
            layers.append(nn.ConvTranspose2d(width, stage, 4, stride=2, padding=1))
            if i < len(widths) - 1:
                layers.append(nn.ReLU())
            width = stage
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

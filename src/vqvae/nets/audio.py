"""The paper's raw-audio encoder: strided 1-D convolutions down to one latent per 64 samples.

van den Oord et al. 2017, "Neural Discrete Representation Learning" (arXiv:1711.00937),
section 4.3: "The encoder has 6 strided convolutions with stride 2 and window-size 4. This
yields a sequence of latent features that are 64 times smaller than the original
waveform." As in the image encoder (``vqvae.nets.conv2d``), residual blocks (ReLU, 3-tap
conv, ReLU, 1-tap conv) follow, and a 1x1 convolution projects to the code dimension D.
The decoder is a WaveNet conditioned on the latents (``vqvae.nets.wavenet``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class AudioEncoderConfig:
    code_dim: int = 64  # D, the width of each latent vector
    in_channels: int = 1  # mono waveform
    hidden_channels: int = 128  # modest, so that it trains on a CPU
    residual_channels: int = 64  # width inside each residual block
    num_residual_blocks: int = 2
    num_downsamples: int = 6  # the paper's 6 strided convolutions: 2^6 = 64x fewer positions

    def __post_init__(self) -> None:
        for name in ("code_dim", "in_channels", "hidden_channels", "residual_channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if self.num_residual_blocks < 0:
            raise ValueError(f"num_residual_blocks: expected >= 0, got {self.num_residual_blocks}")
        if not 1 <= self.num_downsamples <= 10:
            raise ValueError(f"num_downsamples: expected 1..10, got {self.num_downsamples}")

    @property
    def downsampling(self) -> int:
        """Waveform samples per latent vector (64 in the paper)."""
        return 2**self.num_downsamples


class ResidualBlock1d(nn.Module):
    """x + conv1(ReLU(conv3(ReLU(x)))), the paper's residual block on sequences."""

    def __init__(self, channels: int, residual_channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(channels, residual_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(residual_channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class AudioEncoder(nn.Module):
    """(B, in_channels, T) waveform -> (B, code_dim, T / 64) latents; T a multiple of 64."""

    def __init__(self, config: AudioEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or AudioEncoderConfig()
        width = config.hidden_channels
        layers: list[nn.Module] = []
        channels = config.in_channels
        for _ in range(config.num_downsamples):
            # window 4, stride 2, padding 1: exactly T -> T / 2 for even T
            layers += [nn.Conv1d(channels, width, 4, stride=2, padding=1), nn.ReLU()]
            channels = width
        layers += [nn.Conv1d(width, width, 3, padding=1)]
        layers += [
            ResidualBlock1d(width, config.residual_channels)
            for _ in range(config.num_residual_blocks)
        ]
        layers += [nn.ReLU(), nn.Conv1d(width, config.code_dim, 1)]  # pre-quantization z_e
        self.net = nn.Sequential(*layers)

    def check_input(self, x: torch.Tensor) -> None:
        c, f = self.config.in_channels, self.config.downsampling
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x: expected a floating waveform tensor (B, {c}, T), got {got}")
        if x.dim() != 3 or x.shape[1] != c:
            raise ValueError(f"x: expected shape (B, {c}, T), got {tuple(x.shape)}")
        if x.shape[2] == 0 or x.shape[2] % f:
            raise ValueError(
                f"x: expected a length T divisible by {f} (one latent per {f} samples), "
                f"got T={x.shape[2]}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.net(x)  # (B, C, T) -> (B, D, T / 64)

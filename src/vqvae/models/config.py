"""Frozen dataclass configs of the models.

Saved as ``config.json`` beside the weights and rebuilt from it (``from_pretrained``). A
model's data has ``in_channels`` channels and a spatial ``input_size`` of the rank its
network kind handles (``net.kind``: 1-D sequences, 2-D images, 3-D volumes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from vqvae.nets import NetConfig
from vqvae.quantizers import QuantizerConfig
from vqvae.registry import LIKELIHOODS


@dataclass(frozen=True)
class ModelConfig:
    """What every model shares: the data's shape, the networks and the decoder's likelihood."""

    in_channels: int = 3
    input_size: tuple[int, ...] = (32, 32)  # spatial size of one example: (H, W) for images
    net: NetConfig = field(default_factory=NetConfig)
    likelihood: str = "mse"
    # release 0.1 called the input size image_size (images were all it knew)
    RENAMED: ClassVar[dict[str, str]] = {"image_size": "input_size"}

    def __post_init__(self) -> None:
        if self.in_channels < 1:
            raise ValueError(f"expected in_channels >= 1, got {self.in_channels}")
        LIKELIHOODS.get(self.likelihood)  # "unknown likelihood ...; expected one of [...]"
        object.__setattr__(self, "input_size", tuple(self.input_size))
        self.net.net_kind.latent_size(self.input_size, self.net)  # raises if it does not fit

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """The spatial shape of the code grid: (h, w) for images."""
        return self.net.net_kind.latent_size(self.input_size, self.net)


@dataclass(frozen=True)
class VQVAEConfig(ModelConfig):
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)


@dataclass(frozen=True)
class VAEConfig(ModelConfig):
    latent_dim: int = 64  # channels of the Gaussian latent per grid position


@dataclass(frozen=True)
class VIMCOConfig(ModelConfig):
    """Categorical latents trained with VIMCO (Mnih and Rezende 2016), Table 1's third row."""

    likelihood: str = "softmax256"  # VIMCO needs log p(x|h): a discrete likelihood
    num_codes: int = 512  # K categories per latent position (as the VQ-VAE's codebook)
    code_dim: int = 64  # D of the learned embedding the decoder reads
    num_samples: int = 8  # k; the paper used 50, 8 fits a CPU budget (docs/bits-per-dim.md)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_codes < 2 or self.code_dim < 1:
            raise ValueError(
                f"expected num_codes >= 2 and code_dim >= 1, got {self.num_codes}, {self.code_dim}"
            )
        if self.num_samples < 2:
            raise ValueError(f"VIMCO needs num_samples >= 2, got {self.num_samples}")

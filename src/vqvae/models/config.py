"""Frozen dataclass configs of the models, and the quantizer they name.

Saved as ``config.json`` beside the weights and rebuilt from it (``from_pretrained``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from vqvae.nets import NetConfig
from vqvae.quantizers import EMAVectorQuantizer, ResidualVQ, VectorQuantizer

QUANTIZER_KINDS = ("vq", "ema")


@dataclass(frozen=True)
class QuantizerConfig:
    kind: str = "vq"  # "vq": codebook by gradients (eq. 3); "ema": appendix A.1
    num_codes: int = 512  # K
    code_dim: int = 64  # D
    beta: float = 0.25  # commitment weight
    decay: float = 0.99  # EMA only
    eps: float = 1e-5  # EMA only: Laplace smoothing of the counts
    init: str = "kmeans"  # data-dependent init: "kmeans", "random" (encoder outputs), "none"
    restart_dead_codes: bool = True
    dead_code_steps: int = 20  # restart a code unused for this many training steps
    num_quantizers: int = 1  # > 1: residual VQ with this many levels
    quantizer_dropout: float = 0.0  # residual VQ: chance a batch uses a random number of levels

    def __post_init__(self) -> None:
        if self.kind not in QUANTIZER_KINDS:
            raise ValueError(f"expected quantizer kind in {QUANTIZER_KINDS}, got {self.kind!r}")
        if self.num_quantizers < 1:
            raise ValueError(f"expected num_quantizers >= 1, got {self.num_quantizers}")

    def build(self) -> nn.Module:
        kwargs = {
            "init": self.init,
            "restart_dead_codes": self.restart_dead_codes,
            "dead_code_steps": self.dead_code_steps,
        }
        if self.kind == "ema":
            kwargs |= {"decay": self.decay, "eps": self.eps}
        cls = EMAVectorQuantizer if self.kind == "ema" else VectorQuantizer
        if self.num_quantizers > 1:
            return ResidualVQ(
                self.num_quantizers,
                self.num_codes,
                self.code_dim,
                self.beta,
                quantizer=cls,
                quantizer_dropout=self.quantizer_dropout,
                **kwargs,
            )
        return cls(self.num_codes, self.code_dim, self.beta, **kwargs)


@dataclass(frozen=True)
class ImageModelConfig:
    """What every image model shares: the data's shape and the networks."""

    in_channels: int = 3
    image_size: tuple[int, int] = (32, 32)
    net: NetConfig = field(default_factory=NetConfig)
    likelihood: str = "mse"

    def __post_init__(self) -> None:
        if self.in_channels < 1:
            raise ValueError(f"expected in_channels >= 1, got {self.in_channels}")
        h, w = self.image_size
        f = self.net.downsampling
        if h % f or w % f:
            raise ValueError(
                f"image size {h}x{w} is not divisible by the encoder's downsampling x{f} "
                f"(num_downsamples={self.net.num_downsamples}); pad or resize the images, "
                f"or change net.num_downsamples"
            )

    @property
    def grid_size(self) -> tuple[int, int]:
        """(h, w) of the latent grid."""
        f = self.net.downsampling
        return self.image_size[0] // f, self.image_size[1] // f


@dataclass(frozen=True)
class VQVAEConfig(ImageModelConfig):
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)


@dataclass(frozen=True)
class VAEConfig(ImageModelConfig):
    latent_dim: int = 64  # channels of the Gaussian latent per grid position


@dataclass(frozen=True)
class VIMCOConfig(ImageModelConfig):
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

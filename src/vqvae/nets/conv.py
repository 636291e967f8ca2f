"""The paper's encoder and decoder, for data of any spatial rank (1-D, 2-D, 3-D).

van den Oord et al. 2017 (arXiv:1711.00937), section 4.1: "The encoder consists of 2 strided
convolutional layers with stride 2 and window size 4 x 4, followed by two residual 3 x 3
blocks (implemented as ReLU, 3x3 conv, ReLU, 1x1 conv), all having 256 hidden units. The
decoder similarly has two residual 3 x 3 blocks, followed by two transposed convolutions
with stride 2 and window size 4 x 4." As in Sonnet's reference, a 3x3 convolution follows
the strided ones and a 1x1 convolution projects to the code dimension D. The same layers
over sequences (``conv1d``) and volumes or frame stacks (``conv3d``) are registered beside
the images' ``conv2d``.
"""

from __future__ import annotations

import torch
from torch import nn

from vqvae.nets.config import Builder, NetConfig, NetKind
from vqvae.registry import NETS

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


class ResidualBlock(nn.Module):
    """x + conv1x1(ReLU(conv3x3(ReLU(x)))), the paper's residual block (``config``'s
    activation, and its norm before each activation)."""

    def __init__(
        self, channels: int, residual_channels: int, dims: int = 2, config: NetConfig | None = None
    ) -> None:
        super().__init__()
        conv = _CONV[dims]
        config = config or NetConfig()  # the paper's ReLU, no norm
        self.block = nn.Sequential(
            *config.act(channels),
            conv(channels, residual_channels, 3, padding=1),
            *config.act(residual_channels),
            conv(residual_channels, channels, 1),
        )

    def forward(self, x):
        return x + self.block(x)


def residual_stack(config: NetConfig, dims: int) -> nn.Sequential:
    blocks = [
        ResidualBlock(config.hidden_channels, config.residual_channels, dims, config)
        for _ in range(config.num_residual_blocks)
    ]
    return nn.Sequential(*blocks, *config.act(config.hidden_channels))


class Encoder(nn.Module):
    """(B, C, *S) -> (B, out_channels, *S / 2^n), for ``dims`` spatial dimensions."""

    def __init__(
        self, in_channels: int, out_channels: int, config: NetConfig, dims: int = 2
    ) -> None:
        super().__init__()
        conv = _CONV[dims]
        layers: list[nn.Module] = []
        width = in_channels
        for stage in config.stage_channels():
            layers += [conv(width, stage, 4, stride=2, padding=1), *config.act(stage)]
            width = stage
        layers += [
            conv(width, config.hidden_channels, 3, padding=1),
            residual_stack(config, dims),
            conv(config.hidden_channels, out_channels, 1),  # pre-quantization projection
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class Decoder(nn.Module):
    """(B, in_channels, *s) -> (B, out_channels, *s * 2^n), mirroring the encoder."""

    def __init__(
        self, in_channels: int, out_channels: int, config: NetConfig, dims: int = 2
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            _CONV[dims](in_channels, config.hidden_channels, 3, padding=1),
            residual_stack(config, dims),
        ]
        widths = config.stage_channels()[::-1][1:] + [out_channels]
        width = config.hidden_channels
        for i, stage in enumerate(widths):
            layers.append(_CONV_T[dims](width, stage, 4, stride=2, padding=1))
            if i < len(widths) - 1:
                layers += config.act(stage)
            width = stage
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)


@torch.no_grad()
def he_init(module: nn.Module) -> nn.Module:
    """Re-initialize every convolution of ``module`` for the signal, not the biases, to carry
    through: weights from He et al. (2015)'s fan-in normal (gain sqrt(2) before a ReLU; 1 for
    the last convolution, the linear projection to z_e), biases zero.

    Why (docs/speech.md, "the codebook collapse"): under PyTorch's default initialization each
    layer keeps about a sixth of its input's variance and adds a bias, so after the paper's 6
    strided layers and the residual stack a waveform encoder's outputs are one constant vector
    plus a variation 200 times smaller (spread 0.003 about a mean of norm 0.5 on FSDD). A
    codebook fitted to that cloud is left behind when the variation grows 200-fold within 30
    steps, and all but a few codes fall out of use. With this initialization the outputs vary
    with the input from the first step (spread 0.5) and the codebook keeps up."""
    convs = [m for m in module.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    for i, conv in enumerate(convs):
        last = i == len(convs) - 1
        nn.init.kaiming_normal_(conv.weight, nonlinearity="linear" if last else "relu")
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
    return module


def register_with_paper_decoder(name: str, encoder: Builder, about: str, dims: int = 1) -> None:
    """Register a net kind of rank ``dims``: ``encoder`` and the paper's decoder."""
    NETS.register(
        name,
        NetKind(
            dims=dims,
            encoder=encoder,
            decoder=lambda c_in, c_out, config: Decoder(c_in, c_out, config, dims),
            about=about,
        ),
        about=about,
    )


def _register(dims: int, name: str, about: str) -> None:
    register_with_paper_decoder(
        name, lambda c_in, c_out, config: Encoder(c_in, c_out, config, dims), about, dims
    )


_register(1, "conv1d", "strided 1-D convolutions + residual blocks: sequences (B, C, T)")
_register(2, "conv2d", "the paper's image encoder/decoder (section 4.1): images (B, C, H, W)")
_register(3, "conv3d", "strided 3-D convolutions + residual blocks: volumes (B, C, D, H, W)")

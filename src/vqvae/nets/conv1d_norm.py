"""``conv1d-norm``: the paper's 1-D encoder (``nets/conv.py``) with its outputs normalised
per channel by batch statistics (Ioffe and Szegedy 2015, no learned scale or shift; running
statistics at evaluation), a stationary target for the codebook.

Measured on FSDD with the ``mel`` decoder (docs/speech.md): with the plain ``conv1d``
encoder the encoder's outputs drift together faster than an EMA codebook follows once its
k-means refits stop, and all but a few codes fall out of use (a gradient codebook and an
l2-normalised one collapsed likewise). Taking each channel's mean and scale out of z_e leaves
the codebook only the variation that carries information. Batch statistics, not each
utterance's own (instance normalisation), so that a code does not depend on how much
silence pads an utterance in a batch. It did not stop the collapse, whose cause was
found later: under PyTorch's default initialization the encoder's outputs hardly vary with
the input at first, then grow 200-fold; ``AudioVQVAE`` now He-initializes its encoder
(``vqvae.nets.conv.he_init``), and with that the plain ``conv1d`` encoder's codebook keeps up.
"""

from __future__ import annotations

from torch import nn

from vqvae.nets.config import NetConfig
from vqvae.nets.conv import Encoder, register_with_paper_decoder


class NormalisedEncoder(nn.Module):
    """(B, C, T) -> (B, D, T / 2^n): ``Encoder``, then ``norm`` without affine: BatchNorm1d
    (here) or InstanceNorm1d (``conv1d-inorm``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        config: NetConfig,
        norm: type[nn.Module] = nn.BatchNorm1d,
    ) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, out_channels, config, dims=1)
        self.norm = norm(out_channels, affine=False)

    def forward(self, x):
        return self.norm(self.encoder(x))


def register_normalised(name: str, norm: type[nn.Module], about: str) -> None:
    """Register a 1-D net kind whose encoder ends in ``norm``; the paper's decoder."""
    register_with_paper_decoder(
        name, lambda c_in, c_out, config: NormalisedEncoder(c_in, c_out, config, norm), about
    )


register_normalised(
    "conv1d-norm",
    nn.BatchNorm1d,
    "conv1d with z_e normalised per channel (batch statistics): a stationary codebook target",
)

"""``conv1d-inorm``: the paper's 1-D encoder (``nets/conv.py``) with its outputs normalised
per utterance and channel over time (instance normalisation, Ulyanov et al. 2016, no learned
scale or shift), as AutoVC (Qian et al. 2019) and VQVC (Wu and Lee 2020) take a speaker's
constant colouring, and the recording's level, out of the content codes before quantizing.

Measured on FSDD with the ``mel`` decoder at 800 steps, beside the plain ``conv1d`` encoder
(docs/speech.md, BENCHMARKS.md section 9a): the speaker probe falls from 88% to 46% (the
voice leaves the codes), conversions keep more of the digit and sound more like their
target, reconstructions keep more digits; the digit probe on a bag of codes falls. The
statistics are over every position of an utterance, so its codes depend on the silence that
pads it.
"""

from __future__ import annotations

from torch import nn

from vqvae.nets.config import NetConfig
from vqvae.nets.conv import Encoder, register_with_paper_decoder


class NormalisedEncoder(nn.Module):
    """(B, C, T) -> (B, D, T / 2^n): ``Encoder``, then InstanceNorm1d without affine."""

    def __init__(self, in_channels: int, out_channels: int, config: NetConfig) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, out_channels, config, dims=1)
        self.norm = nn.InstanceNorm1d(out_channels, affine=False)

    def forward(self, x):
        return self.norm(self.encoder(x))


register_with_paper_decoder(
    "conv1d-inorm",
    NormalisedEncoder,
    "conv1d with z_e normalised per utterance and channel (instance norm): voice out of codes",
)

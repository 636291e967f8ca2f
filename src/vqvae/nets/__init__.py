"""Encoders and decoders, one registered kind per file (``vqvae.registry.NETS``), and the
audio networks of the paper's speech experiment (section 4.3): the strided 1-D encoder and
the WaveNet decoder."""

from vqvae.nets import conv1d_inorm, spectrogram1d  # noqa: F401 (register their kinds)
from vqvae.nets.config import NetConfig, NetKind
from vqvae.nets.conv import Decoder, Encoder, ResidualBlock
from vqvae.nets.conv1d_inorm import NormalisedEncoder
from vqvae.nets.mel_decoder import MelDecoder, MelDecoderConfig
from vqvae.nets.wavenet import FastWaveNetGenerator, WaveNet, WaveNetConfig
from vqvae.nets.wavenet_decoder import WaveNetDecoder
from vqvae.registry import NETS

# batch-normalised z_e, tried against a codebook collapse whose cause was the encoder's
# initialization (docs/speech.md, "The spectral route"); it changed nothing measured
NETS.retire(
    "conv1d-norm",
    "it measured no gain (docs/speech.md); commit 87ef430 has it (vqvae.nets.conv1d_norm)",
)

__all__ = [
    "Decoder",
    "Encoder",
    "FastWaveNetGenerator",
    "MelDecoder",
    "MelDecoderConfig",
    "NetConfig",
    "NetKind",
    "NormalisedEncoder",
    "ResidualBlock",
    "WaveNet",
    "WaveNetConfig",
    "WaveNetDecoder",
]

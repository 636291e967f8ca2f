"""Encoders and decoders."""

from vqvae.nets.audio import AudioEncoder, AudioEncoderConfig, ResidualBlock1d
from vqvae.nets.conv2d import Decoder, Encoder, NetConfig, ResidualBlock
from vqvae.nets.wavenet import FastWaveNetGenerator, WaveNet, WaveNetConfig

__all__ = [
    "AudioEncoder",
    "AudioEncoderConfig",
    "Decoder",
    "Encoder",
    "FastWaveNetGenerator",
    "NetConfig",
    "ResidualBlock",
    "ResidualBlock1d",
    "WaveNet",
    "WaveNetConfig",
]

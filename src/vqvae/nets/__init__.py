"""Encoders and decoders, one registered kind per file (``vqvae.registry.NETS``)."""

from vqvae.nets.config import NetConfig, NetKind
from vqvae.nets.conv import Decoder, Encoder, ResidualBlock

__all__ = ["Decoder", "Encoder", "NetConfig", "NetKind", "ResidualBlock"]

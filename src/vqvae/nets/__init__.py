"""Encoders and decoders."""

from vqvae.nets.conv2d import Decoder, Encoder, NetConfig, ResidualBlock

__all__ = ["Decoder", "Encoder", "NetConfig", "ResidualBlock"]

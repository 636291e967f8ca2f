"""Codebook layers: nearest-neighbour vector quantizers (paper section 3.1)."""

from vqvae.quantizers._nearest import nearest_code
from vqvae.quantizers.base import Quantizer, QuantizerOutput
from vqvae.quantizers.config import QuantizerConfig
from vqvae.quantizers.ema import EMAVectorQuantizer
from vqvae.quantizers.kmeans import kmeans
from vqvae.quantizers.residual import ResidualQuantizerOutput, ResidualVQ
from vqvae.quantizers.vq import VectorQuantizer

__all__ = [
    "EMAVectorQuantizer",
    "Quantizer",
    "QuantizerConfig",
    "QuantizerOutput",
    "ResidualQuantizerOutput",
    "ResidualVQ",
    "VectorQuantizer",
    "kmeans",
    "nearest_code",
]

"""Codebook layers: nearest-neighbour vector quantizers (paper section 3.1) and the
quantizers the field added since: FSQ, LFQ, cosine (ViT-VQGAN) VQ and the rotation trick."""

from vqvae.quantizers._nearest import nearest_code
from vqvae.quantizers.base import Quantizer, QuantizerOutput
from vqvae.quantizers.config import QuantizerConfig
from vqvae.quantizers.cosine import CosineVectorQuantizer
from vqvae.quantizers.ema import EMAVectorQuantizer
from vqvae.quantizers.fsq import FiniteScalarQuantizer
from vqvae.quantizers.kmeans import kmeans
from vqvae.quantizers.lfq import LookupFreeQuantizer, LookupFreeQuantizerOutput
from vqvae.quantizers.residual import ResidualQuantizerOutput, ResidualVQ
from vqvae.quantizers.rotation import rotation_trick
from vqvae.quantizers.vq import VectorQuantizer

__all__ = [
    "CosineVectorQuantizer",
    "EMAVectorQuantizer",
    "FiniteScalarQuantizer",
    "LookupFreeQuantizer",
    "LookupFreeQuantizerOutput",
    "Quantizer",
    "QuantizerConfig",
    "QuantizerOutput",
    "ResidualQuantizerOutput",
    "ResidualVQ",
    "VectorQuantizer",
    "kmeans",
    "nearest_code",
    "rotation_trick",
]

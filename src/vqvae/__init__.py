"""vqvae: Neural Discrete Representation Learning (van den Oord et al., NeurIPS 2017)."""

from vqvae.config import PRESETS, TrainConfig, get_preset
from vqvae.models import VAE, VQVAE, QuantizerConfig, VAEConfig, VQVAEConfig
from vqvae.nets import Decoder, Encoder, NetConfig
from vqvae.priors import (
    PixelCNNConfig,
    PixelCNNPrior,
    Prior,
    TransformerConfig,
    TransformerPrior,
)
from vqvae.quantizers import (
    EMAVectorQuantizer,
    QuantizerOutput,
    ResidualVQ,
    VectorQuantizer,
    nearest_code,
)

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "VAE",
    "VQVAE",
    "Decoder",
    "EMAVectorQuantizer",
    "Encoder",
    "NetConfig",
    "PixelCNNConfig",
    "PixelCNNPrior",
    "Prior",
    "TransformerConfig",
    "TransformerPrior",
    "QuantizerConfig",
    "QuantizerOutput",
    "ResidualVQ",
    "TrainConfig",
    "VAEConfig",
    "VQVAEConfig",
    "VectorQuantizer",
    "get_preset",
    "nearest_code",
]

"""vqvae: Neural Discrete Representation Learning (van den Oord et al., NeurIPS 2017).

The public API, re-exported. Importing the package registers every built-in kind
(quantizers, networks, models, priors, likelihoods, presets, data sets) in
``vqvae.registry``.
"""

from vqvae.config import TrainConfig, get_preset
from vqvae.data import (
    AudioDataset,
    ImageDataset,
    load_audio,
    load_dataset,
    load_images,
    split_layout,
)
from vqvae.errors import DataError, RunError, VQVAEError
from vqvae.models import (
    VAE,
    VQVAE,
    ModelConfig,
    QuantizerConfig,
    StackedVQVAE,
    StackedVQVAEConfig,
    VAEConfig,
    VQVAEConfig,
)
from vqvae.nets import Decoder, Encoder, NetConfig, NetKind
from vqvae.priors import (
    Condition,
    MaskGITConfig,
    MaskGITPrior,
    PixelCNNConfig,
    PixelCNNPrior,
    Prior,
    PriorConfig,
    TransformerConfig,
    TransformerPrior,
    build_prior,
)
from vqvae.quantizers import (
    EMAVectorQuantizer,
    QuantizerOutput,
    ResidualVQ,
    VectorQuantizer,
    nearest_code,
)
from vqvae.registry import (
    DATASETS,
    LIKELIHOODS,
    MODELS,
    NETS,
    PRESETS,
    PRIORS,
    QUANTIZERS,
    Registry,
)

__version__ = "0.2.0"

__all__ = [
    "DATASETS",
    "LIKELIHOODS",
    "MODELS",
    "NETS",
    "PRESETS",
    "PRIORS",
    "QUANTIZERS",
    "VAE",
    "VQVAE",
    "AudioDataset",
    "Condition",
    "DataError",
    "Decoder",
    "EMAVectorQuantizer",
    "Encoder",
    "ImageDataset",
    "ModelConfig",
    "NetConfig",
    "MaskGITConfig",
    "MaskGITPrior",
    "NetKind",
    "PixelCNNConfig",
    "PixelCNNPrior",
    "Prior",
    "PriorConfig",
    "QuantizerConfig",
    "QuantizerOutput",
    "Registry",
    "ResidualVQ",
    "RunError",
    "StackedVQVAE",
    "StackedVQVAEConfig",
    "TrainConfig",
    "TransformerConfig",
    "TransformerPrior",
    "VAEConfig",
    "VQVAEConfig",
    "VQVAEError",
    "VectorQuantizer",
    "build_prior",
    "get_preset",
    "load_audio",
    "load_dataset",
    "load_images",
    "nearest_code",
    "split_layout",
]

"""Whole models with their losses."""

from vqvae.models.config import (
    ImageModelConfig,
    QuantizerConfig,
    VAEConfig,
    VIMCOConfig,
    VQVAEConfig,
)
from vqvae.models.vae import VAE, GaussianPosterior, VAEOutput
from vqvae.models.vimco import VIMCO, VIMCOObjective, VIMCOOutput, vimco_surrogate
from vqvae.models.vqvae import VQVAE, VQVAEOutput

__all__ = [
    "VAE",
    "VIMCO",
    "VQVAE",
    "GaussianPosterior",
    "ImageModelConfig",
    "QuantizerConfig",
    "VAEConfig",
    "VAEOutput",
    "VIMCOConfig",
    "VIMCOObjective",
    "VIMCOOutput",
    "VQVAEConfig",
    "VQVAEOutput",
    "vimco_surrogate",
]

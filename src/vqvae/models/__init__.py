"""Whole models with their losses."""

from vqvae.models.config import ImageModelConfig, QuantizerConfig, VAEConfig, VQVAEConfig
from vqvae.models.vae import VAE, GaussianPosterior, VAEOutput
from vqvae.models.vqvae import VQVAE, VQVAEOutput

__all__ = [
    "VAE",
    "VQVAE",
    "GaussianPosterior",
    "ImageModelConfig",
    "QuantizerConfig",
    "VAEConfig",
    "VAEOutput",
    "VQVAEConfig",
    "VQVAEOutput",
]

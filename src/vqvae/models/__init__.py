"""Whole models with their losses, registered by class name (``vqvae.registry.MODELS``)."""

from vqvae.models.audio import AudioVQVAE, AudioVQVAEConfig, AudioVQVAEOutput
from vqvae.models.base import Model
from vqvae.models.config import (
    ModelConfig,
    VAEConfig,
    VIMCOConfig,
    VQVAEConfig,
)
from vqvae.models.stacked import StackedOutput, StackedVQVAE, StackedVQVAEConfig
from vqvae.models.vae import VAE, GaussianPosterior, VAEOutput
from vqvae.models.vimco import VIMCO, VIMCOObjective, VIMCOOutput, vimco_surrogate
from vqvae.models.vqvae import VQVAE, VQVAEOutput
from vqvae.quantizers import QuantizerConfig

__all__ = [
    "AudioVQVAE",
    "AudioVQVAEConfig",
    "AudioVQVAEOutput",
    "StackedOutput",
    "StackedVQVAE",
    "StackedVQVAEConfig",
    "VAE",
    "VIMCO",
    "VQVAE",
    "GaussianPosterior",
    "Model",
    "ModelConfig",
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

"""Autoregressive priors over VQ-VAE code grids (van den Oord et al. 2017, section 3.3).

Both share one interface (``forward`` -> logits, ``log_prob``, ``sample``,
``save_pretrained`` / ``from_pretrained``), defined in ``base.py``.
"""

from vqvae.priors.base import Prior, PriorConfig, draw_codes
from vqvae.priors.pixelcnn import PixelCNNConfig, PixelCNNPrior
from vqvae.priors.transformer import TransformerConfig, TransformerPrior

__all__ = [
    "PixelCNNConfig",
    "PixelCNNPrior",
    "Prior",
    "PriorConfig",
    "TransformerConfig",
    "TransformerPrior",
    "draw_codes",
]

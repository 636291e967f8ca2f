"""Priors over VQ-VAE code grids (van den Oord et al. 2017, section 3.3): autoregressive
ones and the masked-token MaskGIT, registered by kind (``vqvae.registry.PRIORS``).

All share one interface (``forward`` -> logits, ``log_prob``, ``sample``, conditioning by
``Condition``, ``save_pretrained`` / ``from_pretrained``), defined in ``base.py``.
"""

from vqvae.priors.base import Condition, Prior, PriorConfig, build_prior, draw_codes
from vqvae.priors.maskgit import MaskGITConfig, MaskGITPrior
from vqvae.priors.pixelcnn import PixelCNNConfig, PixelCNNPrior
from vqvae.priors.transformer import TransformerConfig, TransformerPrior

__all__ = [
    "Condition",
    "MaskGITConfig",
    "MaskGITPrior",
    "PixelCNNConfig",
    "PixelCNNPrior",
    "Prior",
    "PriorConfig",
    "TransformerConfig",
    "TransformerPrior",
    "build_prior",
    "draw_codes",
]

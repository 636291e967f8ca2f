"""What the image models share: input checks and the decoder's likelihood."""

from __future__ import annotations

import torch
from torch import nn

from vqvae.likelihoods import get_likelihood
from vqvae.models.config import ImageModelConfig
from vqvae.pretrained import PretrainedMixin


class ImageModel(nn.Module, PretrainedMixin):
    config: ImageModelConfig

    def __init__(self, config: ImageModelConfig) -> None:
        super().__init__()
        self.config = config
        self.likelihood = get_likelihood(config.likelihood)

    def check_images(self, x: torch.Tensor) -> None:
        c, (h, w) = self.config.in_channels, self.config.image_size
        if x.dim() != 4 or tuple(x.shape[1:]) != (c, h, w):
            raise ValueError(f"expected images of shape (B, {c}, {h}, {w}), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"expected float images in [-1, 1], got dtype {x.dtype}")

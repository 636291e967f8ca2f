"""What every model shares: input checks from its network kind, the decoder's likelihood,
and the encoder/decoder pair built from ``net.kind``."""

from __future__ import annotations

import torch
from torch import nn

from vqvae.likelihoods import get_likelihood
from vqvae.models.config import ModelConfig
from vqvae.pretrained import PretrainedMixin


class Model(nn.Module, PretrainedMixin):
    config: ModelConfig

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.likelihood = get_likelihood(config.likelihood)

    def build_encoder(self, out_channels: int) -> nn.Module:
        """(B, C, *input_size) -> (B, out_channels, *latent_shape)."""
        c = self.config
        return c.net.net_kind.encoder(c.in_channels, out_channels, c.net)

    def build_decoder(self, in_channels: int) -> nn.Module:
        """(B, in_channels, *latent_shape) -> (B, the likelihood's parameters, *input_size)."""
        c = self.config
        return c.net.net_kind.decoder(
            in_channels, self.likelihood.out_channels(c.in_channels), c.net
        )

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.config.latent_shape

    @property
    def num_dims(self) -> int:
        """Dimensions of one example: channels x every spatial size."""
        n = self.config.in_channels
        for s in self.config.input_size:
            n *= s
        return n

    def check_input(self, x: torch.Tensor) -> None:
        self.config.net.net_kind.check_input(x, self.config.in_channels, self.config.input_size)

    def check_codes(self, codes: torch.Tensor, levels: int = 0) -> None:
        """Codes ``(B, *latent_shape)``, or ``(B, q, *latent_shape)`` with 1 <= q <= ``levels``
        for a model with several levels of codes."""
        shape = self.latent_shape
        ok = codes.dim() == 1 + len(shape) and tuple(codes.shape[1:]) == shape
        if levels > 1:
            ok = (
                codes.dim() == 2 + len(shape)
                and tuple(codes.shape[2:]) == shape
                and 1 <= codes.shape[1] <= levels
            )
            shape = ("q", *shape)
        if not ok:
            want = ", ".join(map(str, shape))
            levels_text = f" with 1 <= q <= {levels}" if levels > 1 else ""
            raise ValueError(
                f"expected codes of shape (B, {want}){levels_text}, got {tuple(codes.shape)}"
            )

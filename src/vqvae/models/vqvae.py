"""The VQ-VAE: encoder -> nearest-neighbour quantizer -> decoder.

van den Oord, Vinyals, Kavukcuoglu, "Neural Discrete Representation Learning", NeurIPS 2017
(arXiv:1711.00937), section 3, equation 3:

    L = log p(x|z_q(x)) + ||sg[z_e(x)] - e||^2 + beta * ||z_e(x) - sg[e]||^2
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vqvae.models.base import ImageModel
from vqvae.models.config import VQVAEConfig
from vqvae.nets import Decoder, Encoder
from vqvae.quantizers import QuantizerOutput


@dataclass(frozen=True)
class VQVAEOutput:
    x_hat: torch.Tensor  # (B, C, H, W) reconstruction in [-1, 1] (unclamped for MSE)
    codes: torch.Tensor  # (B, h, w) int64, or (B, Q, h, w) for residual VQ
    loss: torch.Tensor  # recon_loss + vq_loss
    recon_loss: torch.Tensor  # the -log p(x|z_q) term (MSE by default)
    vq_loss: torch.Tensor  # codebook + beta * commitment
    perplexity: torch.Tensor
    quantizer: QuantizerOutput  # everything the quantizer said, z_e/z_q included
    decoder_params: torch.Tensor  # the decoder's raw output, the likelihood's parameters


class VQVAE(ImageModel):
    config_class = VQVAEConfig
    config: VQVAEConfig

    def __init__(self, config: VQVAEConfig | None = None) -> None:
        config = config or VQVAEConfig()
        super().__init__(config)
        d = config.quantizer.code_dim
        self.encoder = Encoder(config.in_channels, d, config.net)
        self.quantizer = config.quantizer.build()
        self.decoder = Decoder(d, self.likelihood.out_channels(config.in_channels), config.net)

    @property
    def num_codes(self) -> int:
        return self.config.quantizer.num_codes

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        self.check_images(x)
        z_e = self.encoder(x)  # (B, C, H, W) -> (B, D, h, w)
        q = self.quantizer(z_e)
        # One memory layout for the decoder's input here and in decoder_params: convolutions
        # round differently on channels-last and contiguous inputs, and decode_codes must
        # equal this pass exactly (issue 2).
        params = self.decoder(q.z_q.contiguous())  # (B, D, h, w) -> (B, C', H, W)
        recon_loss = self.likelihood.loss(params, x)
        return VQVAEOutput(
            x_hat=self.likelihood.mean(params),
            codes=q.codes,
            loss=recon_loss + q.loss,
            recon_loss=recon_loss,
            vq_loss=q.loss,
            perplexity=q.perplexity,
            quantizer=q,
            decoder_params=params,
        )

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> codes (B, h, w). Never updates the codebook."""
        self.check_images(x)
        was_training = self.training
        self.eval()
        try:
            return self.quantizer(self.encoder(x)).codes
        finally:
            self.train(was_training)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, h, w) -> images (B, C, H, W), without the encoder."""
        return self.likelihood.mean(self.decoder_params(codes))

    def decoder_params(self, codes: torch.Tensor) -> torch.Tensor:
        h, w = self.config.grid_size
        if codes.dim() < 3 or tuple(codes.shape[-2:]) != (h, w):
            raise ValueError(f"expected codes of shape (B, {h}, {w}), got {tuple(codes.shape)}")
        return self.decoder(self.quantizer.lookup(codes).contiguous())

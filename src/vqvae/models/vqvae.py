"""The VQ-VAE: encoder -> nearest-neighbour quantizer -> decoder.

van den Oord, Vinyals, Kavukcuoglu, "Neural Discrete Representation Learning", NeurIPS 2017
(arXiv:1711.00937), section 3, equation 3:

    L = log p(x|z_q(x)) + ||sg[z_e(x)] - e||^2 + beta * ||z_e(x) - sg[e]||^2
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vqvae.models.base import Model
from vqvae.models.config import VQVAEConfig
from vqvae.quantizers import QuantizerOutput
from vqvae.registry import MODELS
from vqvae.torch_utils import eval_mode


@dataclass(frozen=True)
class VQVAEOutput:
    x_hat: torch.Tensor  # (B, C, *S) reconstruction in [-1, 1] (unclamped for MSE)
    codes: torch.Tensor  # (B, *s) int64, or (B, Q, *s) for residual VQ
    loss: torch.Tensor  # recon_loss + vq_loss
    recon_loss: torch.Tensor  # the -log p(x|z_q) term (MSE by default)
    vq_loss: torch.Tensor  # codebook + beta * commitment
    perplexity: torch.Tensor
    quantizer: QuantizerOutput  # everything the quantizer said, z_e/z_q included
    decoder_params: torch.Tensor  # the decoder's raw output, the likelihood's parameters


class VQVAE(Model):
    """Encoder -> nearest-code quantizer -> decoder (paper section 3), for data of any rank."""

    config_class = VQVAEConfig
    config: VQVAEConfig

    def __init__(self, config: VQVAEConfig | None = None) -> None:
        config = config or VQVAEConfig()
        super().__init__(config)
        d = config.quantizer.code_dim
        self.encoder = self.build_encoder(d)
        self.quantizer = config.quantizer.build()
        self.decoder = self.build_decoder(d)

    @property
    def num_codes(self) -> int:
        """K: the size of the built quantizer's codebook (an implicit codebook's size, a
        product of levels or a power of two, can differ from the config's ``num_codes``)."""
        return self.quantizer.num_codes

    @property
    def num_levels(self) -> int:
        """Levels of codes: 1, or Q for residual VQ (codes then have shape (B, Q, *latent))."""
        return self.config.quantizer.num_quantizers

    @property
    def code_shape(self) -> tuple[int, ...]:
        """The shape of one example's codes: ``latent_shape``, with ``Q`` in front for
        residual VQ."""
        q = self.num_levels
        return self.latent_shape if q == 1 else (q, *self.latent_shape)

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        self.check_input(x)
        z_e = self.encoder(x)  # (B, C, *S) -> (B, D, *s)
        q = self.quantizer(z_e)
        # One memory layout for the decoder's input here and in decoder_params: convolutions
        # round differently on channels-last and contiguous inputs, and decode_codes must
        # equal this pass exactly (tests/test_models.py).
        params = self.decoder(q.z_q.contiguous())  # (B, D, *s) -> (B, C', *S)
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
        """Inputs (B, C, *S) -> codes (B, *s) (or (B, Q, *s)). Never updates the codebook."""
        self.check_input(x)
        with eval_mode(self):
            return self.quantizer(self.encoder(x)).codes

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, *s) -> data (B, C, *S), without the encoder."""
        return self.likelihood.mean(self.decoder_params(codes))

    def decoder_params(self, codes: torch.Tensor) -> torch.Tensor:
        self.check_codes(codes, self.num_levels)
        return self.decoder(self.quantizer.lookup(codes).contiguous())


MODELS.register("VQVAE", VQVAE)

"""The paper's vector quantizer with a codebook trained by gradients.

van den Oord, Vinyals, Kavukcuoglu, "Neural Discrete Representation Learning", NeurIPS 2017,
arXiv:1711.00937, section 3.1-3.2, equation 3:

    L = log p(x|z_q(x)) + ||sg[z_e(x)] - e||^2 + beta * ||z_e(x) - sg[e]||^2

This module returns the last two terms (as means over elements, the usual scaling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.quantizers.base import (
    Quantizer,
    QuantizerOutput,
    flatten,
    nearest_and_counts,
    perplexity,
    unflatten,
)
from vqvae.quantizers.rotation import check_gradient, pass_gradient
from vqvae.registry import QUANTIZERS
from vqvae.torch_utils import float32


class VectorQuantizer(Quantizer):
    """Nearest-neighbour quantizer whose codebook is an ``nn.Parameter`` (eq. 3).

    Dead-code restart: a code unused for ``dead_code_steps`` consecutive training steps is
    re-seeded from a random encoder output of the current batch.
    """

    def __init__(
        self,
        num_codes: int = 512,
        code_dim: int = 64,
        beta: float = 0.25,
        *,
        init: str = "kmeans",
        restart_dead_codes: bool = True,
        dead_code_steps: int = 20,
        init_steps: int = 1,
        gradient: str = "ste",
    ) -> None:
        super().__init__(
            num_codes, code_dim, beta, init, restart_dead_codes, dead_code_steps, init_steps
        )
        self.gradient = check_gradient(gradient)  # "ste" or "rotation" (rotation.py)
        # Uniform in +-1/K, the common choice for the paper's random initialization.
        self.embedding = nn.Parameter(
            torch.empty(num_codes, code_dim).uniform_(-1 / num_codes, 1 / num_codes)
        )

    @classmethod
    def from_config(cls, config, level: int = 0) -> VectorQuantizer:
        """From a ``QuantizerConfig``: K, D, beta, the init/restart options, the gradient."""
        return cls(
            config.num_codes,
            config.code_dim,
            config.beta,
            init=config.init,
            restart_dead_codes=config.restart_dead_codes,
            dead_code_steps=config.dead_code_steps,
            init_steps=config.init_steps or 1,
            gradient=config.gradient,
        )

    @property
    def codebook(self) -> torch.Tensor:
        return self.embedding

    def _set_codes(
        self, index: torch.Tensor, vectors: torch.Tensor, counts: torch.Tensor | None = None
    ) -> None:
        self.embedding.data[index] = vectors.to(self.embedding.dtype)

    @float32
    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        flat = flatten(z_e, self.code_dim)  # (B, D, *S) -> (N, D)
        self._maybe_initialize(flat)
        codes, counts = nearest_and_counts(self, flat)  # (N,), (K,)
        e = F.embedding(codes, self.embedding)  # (N, D), differentiable in the codebook

        codebook_loss = F.mse_loss(e, flat.detach())  # moves the codebook toward z_e
        commitment_loss = F.mse_loss(flat, e.detach())  # keeps z_e near its code
        z_q = unflatten(pass_gradient(flat, e, self.gradient), z_e)  # (N, D) -> (B, D, *S)

        restarted = self._statistics(flat, codes, counts)  # restarts

        return QuantizerOutput(
            z_q=z_q,
            codes=codes.reshape(z_e.shape[0], *z_e.shape[2:]),
            loss=codebook_loss + self.beta * commitment_loss,
            perplexity=perplexity(counts),
            commitment_loss=commitment_loss,
            codebook_loss=codebook_loss,
            num_restarted=restarted,
        )


QUANTIZERS.register(
    "vq", VectorQuantizer, about="the paper's codebook, trained by gradients (eq. 3)"
)

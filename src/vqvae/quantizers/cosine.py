"""Vector quantization with factorised, l2-normalised codes.

Yu, Li, Koh, Zhang, Pang, Qin, Ku, Xu, Baldridge, Wu, "Vector-quantized Image Modeling with
Improved VQGAN" (ViT-VQGAN), 2021, arXiv:2110.04627, section 3.2:

- factorised codes: a linear projection takes the encoder output from D dimensions to a
  low-dimensional lookup space (the paper uses 32 or 8) where the nearest code is searched;
  the chosen code is projected back to D for the decoder;
- l2-normalised codes: both the projected encoder output and the codebook are normalised,
  so the nearest code is the one of highest cosine similarity (the nearest point on the unit
  sphere: ||a - b||^2 = 2 - 2 cos(a, b) for unit vectors).

The losses are the VQ-VAE paper's eq. 3 (van den Oord et al. 2017, arXiv:1711.00937) on the
normalised vectors u = l2(W_in z_e) and e = l2(codebook row):

    ||sg[u] - e||^2 + beta * ||u - sg[e]||^2.

The codebook starts from a normal distribution (ViT-VQGAN) unless data-dependent ``init``
replaces it; ``init``, dead-code restarts and ``gradient`` ("ste" or the rotation trick,
rotation.py) act in the lookup space, as ``VectorQuantizer``'s do in D dimensions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.quantizers._nearest import nearest_code
from vqvae.quantizers._projection import projection
from vqvae.quantizers.base import (
    Quantizer,
    QuantizerOutput,
    check_codes,
    flatten,
    nearest_and_counts,
    perplexity,
    unflatten,
)
from vqvae.quantizers.rotation import check_gradient, pass_gradient
from vqvae.registry import QUANTIZERS
from vqvae.torch_utils import float32


class CosineVectorQuantizer(Quantizer):
    """Nearest code by cosine similarity in a ``lookup_dim``-dimensional space (section 3.2)."""

    def __init__(
        self,
        num_codes: int = 512,
        code_dim: int = 64,
        beta: float = 0.25,
        *,
        lookup_dim: int = 32,
        init: str = "kmeans",
        restart_dead_codes: bool = True,
        dead_code_steps: int = 20,
        init_steps: int = 1,
        gradient: str = "ste",
    ) -> None:
        super().__init__(
            num_codes, code_dim, beta, init, restart_dead_codes, dead_code_steps, init_steps
        )
        self.lookup_dim = lookup_dim
        self.gradient = check_gradient(gradient)
        self.project_in = projection(code_dim, lookup_dim)  # D -> lookup_dim
        self.project_out = projection(lookup_dim, code_dim)  # lookup_dim -> D
        self.embedding = nn.Parameter(torch.randn(num_codes, lookup_dim))  # normalised in use

    @classmethod
    def from_config(cls, config, level: int = 0) -> CosineVectorQuantizer:
        """From a ``QuantizerConfig``: K, D, beta, ``lookup_dim``, init/restarts, gradient."""
        return cls(
            config.num_codes,
            config.code_dim,
            config.beta,
            lookup_dim=config.lookup_dim,
            init=config.init,
            restart_dead_codes=config.restart_dead_codes,
            dead_code_steps=config.dead_code_steps,
            init_steps=config.init_steps or 1,
            gradient=config.gradient,
        )

    def normalized_codebook(self) -> torch.Tensor:
        """(K, lookup_dim): the unit-length codes the search and the losses use."""
        return F.normalize(self.embedding, dim=1)

    @property
    def codebook(self) -> torch.Tensor:
        """The (K, D) code vectors as the decoder receives them."""
        return self.project_out(self.normalized_codebook())

    def _set_codes(
        self, index: torch.Tensor, vectors: torch.Tensor, counts: torch.Tensor | None = None
    ) -> None:
        # vectors are (n, lookup_dim) rows of the normalised, projected encoder output
        self.embedding.data[index] = F.normalize(vectors.float(), dim=1).to(self.embedding.dtype)

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """flat (N, lookup_dim), unit rows -> (N,): the code of highest cosine similarity."""
        return nearest_code(flat, self.normalized_codebook())

    @float32
    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        flat = flatten(z_e, self.code_dim)  # (B, D, *S) -> (N, D)
        u = F.normalize(self.project_in(flat), dim=1)  # (N, D) -> (N, lookup_dim), unit rows
        self._maybe_initialize(u)
        codes, counts = nearest_and_counts(self, u)  # (N,), (K,)
        e = F.embedding(codes, self.normalized_codebook())  # (N, lookup_dim), unit rows

        codebook_loss = F.mse_loss(e, u.detach())  # moves the codebook toward u
        commitment_loss = F.mse_loss(u, e.detach())  # keeps u near its code
        through = pass_gradient(u, e, self.gradient)  # (N, lookup_dim), the value of e
        z_q = unflatten(self.project_out(through), z_e)  # (N, lookup_dim) -> (B, D, *S)

        restarted = self._statistics(u, codes, counts)  # restarts

        return QuantizerOutput(
            z_q=z_q,
            codes=codes.reshape(z_e.shape[0], *z_e.shape[2:]),  # (N,) -> (B, *S)
            loss=codebook_loss + self.beta * commitment_loss,
            perplexity=perplexity(counts),
            commitment_loss=commitment_loss,
            codebook_loss=codebook_loss,
            num_restarted=restarted,
        )

    @float32
    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, *spatial) -> (B, D, *spatial), equal to forward's z_q for those codes."""
        check_codes(codes, self.num_codes)
        e = F.embedding(codes.reshape(-1).long(), self.normalized_codebook())  # (N, lookup_dim)
        flat = self.project_out(e)  # (N, lookup_dim) -> (N, D)
        return flat.reshape(*codes.shape, self.code_dim).movedim(-1, 1)  # -> (B, D, *S)


QUANTIZERS.register(
    "cosine", CosineVectorQuantizer, about="l2-normalised low-dimensional codes, ViT-VQGAN"
)

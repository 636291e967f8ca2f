"""Vector quantizer whose codebook moves by exponential moving averages.

van den Oord et al. 2017 (arXiv:1711.00937), appendix A.1: with N_i the number of encoder
outputs assigned to code i in a batch and their sum sum_j z_{i,j},

    N_i^(t) = gamma * N_i^(t-1) + (1 - gamma) * n_i^(t)
    m_i^(t) = gamma * m_i^(t-1) + (1 - gamma) * sum_j z_{i,j}^(t)
    e_i^(t) = m_i^(t) / N_i^(t)

with N_i Laplace-smoothed, (N_i + eps) / (n + K eps) * n, so an unused code never divides
by zero. The codebook is not a parameter; the loss is the commitment term alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vqvae.quantizers.base import (
    Quantizer,
    QuantizerOutput,
    all_reduce_sum,
    flatten,
    nearest_and_counts,
    perplexity,
    unflatten,
)
from vqvae.quantizers.rotation import check_gradient, pass_gradient
from vqvae.registry import QUANTIZERS
from vqvae.torch_utils import float32


class EMAVectorQuantizer(Quantizer):
    """Nearest-neighbour quantizer with an EMA codebook (appendix A.1).

    Dead-code restart: a code unused for ``dead_code_steps`` consecutive training steps is
    re-seeded from a random encoder output, with N_i = 1 and m_i = that output. (A rule on
    steps rather than on N_i reacts in tens of steps, where a decayed count takes hundreds.) The
    data-dependent initialization lasts ``init_steps`` training steps, by default the EMA's time
    constant 1 / (1 - decay): the steps in which a codebook moving by (1 - decay) of the gap per
    step cannot follow the encoder (``Quantizer._maybe_initialize``). At each of them, N_i is
    the number of that batch's outputs nearest to e_i.
    """

    def __init__(
        self,
        num_codes: int = 512,
        code_dim: int = 64,
        beta: float = 0.25,
        decay: float = 0.99,
        eps: float = 1e-5,
        *,
        init: str = "kmeans",
        restart_dead_codes: bool = True,
        dead_code_steps: int = 20,
        init_steps: int | None = None,
        gradient: str = "ste",
    ) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"expected decay in [0, 1), got {decay}")
        if init_steps is None:
            init_steps = round(1 / (1 - decay))  # the EMA's time constant: 100 at decay 0.99
        super().__init__(
            num_codes, code_dim, beta, init, restart_dead_codes, dead_code_steps, init_steps
        )
        self.gradient = check_gradient(gradient)  # "ste" or "rotation" (rotation.py)
        self.decay = decay
        self.eps = eps
        embedding = torch.randn(num_codes, code_dim)
        self.register_buffer("embedding", embedding)  # e: (K, D)
        self.register_buffer("cluster_size", torch.ones(num_codes))  # N: (K,)
        self.register_buffer("embed_sum", embedding.clone())  # m: (K, D)

    @classmethod
    def from_config(cls, config, level: int = 0) -> EMAVectorQuantizer:
        """From a ``QuantizerConfig``: K, D, beta, EMA decay and eps, init/restarts, gradient."""
        return cls(
            config.num_codes,
            config.code_dim,
            config.beta,
            config.decay,
            config.eps,
            init=config.init,
            restart_dead_codes=config.restart_dead_codes,
            dead_code_steps=config.dead_code_steps,
            init_steps=config.init_steps or None,
            gradient=config.gradient,
        )

    @property
    def codebook(self) -> torch.Tensor:
        return self.embedding

    def _set_codes(
        self, index: torch.Tensor, vectors: torch.Tensor, counts: torch.Tensor | None = None
    ) -> None:
        # A restarted code starts as one observation of itself: N_i = 1, m_i = e_i.
        n = torch.ones(len(index), device=vectors.device) if counts is None else counts.clamp(min=1)
        self.embedding[index] = vectors
        self.cluster_size[index] = n
        self.embed_sum[index] = vectors * n.unsqueeze(1)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor) -> None:
        sums = torch.zeros_like(self.embed_sum).index_add_(0, codes, flat.float())  # (K, D)
        counts = all_reduce_sum(counts.float())
        sums = all_reduce_sum(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.num_codes * self.eps) * n  # (K,)
        self.embedding.copy_(self.embed_sum / smoothed.unsqueeze(1))

    def _apply_statistics(
        self, flat: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor
    ) -> int:
        self._ema_update(flat, codes, counts)
        return self._restart_dead_codes(counts, flat)

    @float32
    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        flat = flatten(z_e, self.code_dim)  # (B, D, *S) -> (N, D)
        self._maybe_initialize(flat)
        codes, counts = nearest_and_counts(self, flat)  # (N,), (K,)
        # The code vectors before this step's update, as in Sonnet's VectorQuantizerEMA.
        e = F.embedding(codes, self.embedding).to(flat.dtype)  # (N, D), no gradient

        commitment_loss = F.mse_loss(flat, e)
        z_q = unflatten(pass_gradient(flat, e, self.gradient), z_e)  # (N, D) -> (B, D, *S)

        restarted = self._statistics(flat, codes, counts)  # the EMA update, then restarts

        return QuantizerOutput(
            z_q=z_q,
            codes=codes.reshape(z_e.shape[0], *z_e.shape[2:]),
            loss=self.beta * commitment_loss,
            perplexity=perplexity(counts),
            commitment_loss=commitment_loss,
            codebook_loss=torch.zeros((), device=z_e.device),
            num_restarted=restarted,
        )


QUANTIZERS.register("ema", EMAVectorQuantizer, about="codebook moved by moving averages (app. A.1)")

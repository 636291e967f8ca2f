"""The paper's third row of Table 1: independent categorical latents trained with VIMCO.

Mnih and Rezende, "Variational Inference for Monte Carlo Objectives", ICML 2016
(arXiv:1602.06725), section 3; used by van den Oord et al. 2017 (arXiv:1711.00937),
section 4.1, as the discrete-latent baseline ("VIMCO 5.14 bits/dim" on CIFAR-10).

At every latent grid position the encoder emits K logits of q(h|x); h is K-way categorical,
the prior p(h) is uniform, and the decoder reads a learned embedding (K, D) of the category
(the same Encoder and Decoder classes as the VQ-VAE and the VAE). With k samples h^1..h^k
from q(h|x) and importance weights w_i = p(x, h^i) / q(h^i | x), the multi-sample bound is

    L(h^{1:k}) = log (1/k) sum_i w_i                                    (VIMCO eq. 2)

and its gradient estimator (eq. 9-10) is

    sum_i (L - L_{-i}) grad log q(h^i|x)  +  sum_i w~_i grad log f(x, h^i),

with w~_i = w_i / sum_j w_j and the leave-one-out baseline L_{-i}, in which w_i is replaced by
the geometric mean of the other k - 1 weights:

    L_{-i} = log (1/k) (sum_{j != i} w_j + exp(1/(k-1) sum_{j != i} log w_j)).

``vimco_surrogate`` equals the bound in value and has that estimator as its gradient (the
learning signals are detached); the model minimises minus it, per data dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.models.base import Model
from vqvae.models.config import VIMCOConfig
from vqvae.registry import MODELS


@dataclass(frozen=True)
class VIMCOObjective:
    surrogate: torch.Tensor  # (B,) = bound in value; its gradient is VIMCO's estimator
    bound: torch.Tensor  # (B,) the k-sample bound log (1/k) sum_i w_i, nats
    elbo: torch.Tensor  # (B,) the mean of log w_i: the (single-sample) ELBO estimate
    learning_signal: torch.Tensor  # (k, B) L - L_{-i}, detached


def vimco_surrogate(log_w: torch.Tensor, log_q: torch.Tensor) -> VIMCOObjective:
    """The VIMCO objective from log-weights log w_i (k, B) and log q(h^i|x) (k, B).

    ``log_w`` carries gradients to the decoder and, through its -log q term, to the encoder
    (the "sum_i w~_i grad log f" part); ``log_q`` carries the score-function part.
    """
    if log_w.shape != log_q.shape or log_w.dim() != 2:
        raise ValueError(
            f"expected log_w and log_q of one shape (k, B), got {tuple(log_w.shape)} "
            f"and {tuple(log_q.shape)}"
        )
    k = log_w.shape[0]
    if k < 2:
        raise ValueError(f"VIMCO needs k >= 2 samples for its baselines, got {k}")
    bound = torch.logsumexp(log_w, dim=0) - math.log(k)  # (B,)
    with torch.no_grad():
        lw = log_w.detach()
        total = lw.sum(0, keepdim=True)  # (1, B)
        geometric = (total - lw) / (k - 1)  # mean of the other log w: (k, B)
        eye = torch.eye(k, dtype=torch.bool, device=lw.device)[:, :, None]  # (k, k, 1)
        # row i of (k, k, B): log w_j for j != i and the geometric mean in place of j = i
        loo = torch.where(eye, geometric[:, None], lw[None])
        baseline = torch.logsumexp(loo, dim=1) - math.log(k)  # L_{-i}: (k, B)
        signal = bound.detach()[None] - baseline  # (k, B)
    # log_q - sg[log_q] is zero in value and log_q in gradient: the surrogate's value is the
    # bound itself, so the logged loss means something.
    surrogate = bound + (signal * (log_q - log_q.detach())).sum(0)
    return VIMCOObjective(surrogate, bound, log_w.mean(0), signal)


@dataclass(frozen=True)
class VIMCOOutput:
    x_hat: torch.Tensor  # (B, C, H, W): the mean of p(x|h), h the first sample (train)
    # or the mode of q (eval)
    codes: torch.Tensor  # (B, h, w) the categories x_hat was decoded from
    loss: torch.Tensor  # -surrogate per data dimension (its value is -bound per dimension)
    bound: torch.Tensor  # mean over the batch of the k-sample bound, nats per image
    elbo: torch.Tensor  # mean over the batch of the ELBO estimate, nats per image
    logits: torch.Tensor  # (B, K, h, w) of q(h|x)


class VIMCO(Model):
    """Independent categorical latents trained with VIMCO (Table 1's third row)."""

    config_class = VIMCOConfig
    config: VIMCOConfig

    def __init__(self, config: VIMCOConfig | None = None) -> None:
        config = config or VIMCOConfig()
        super().__init__(config)
        if not self.likelihood.discrete:
            raise ValueError(
                f"VIMCO needs a discrete likelihood for log p(x|h), got {config.likelihood!r} "
                f"(use 'softmax256' or 'logistic_mixture')"
            )
        self.encoder = self.build_encoder(config.num_codes)
        self.embedding = nn.Embedding(config.num_codes, config.code_dim)
        self.decoder = self.build_decoder(config.code_dim)

    @property
    def num_codes(self) -> int:
        return self.config.num_codes

    def log_prior(self) -> float:
        """log p(h) of any grid under the uniform prior: -(positions) * log K."""
        return -math.prod(self.latent_shape) * math.log(self.config.num_codes)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.encoder(x)  # (B, C, *S) -> (B, K, *s)

    def sample_codes(
        self, logits: torch.Tensor, k: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """k draws of h ~ q(h|x): (k, B, *s) int64."""
        b, n, *s = logits.shape
        probs = torch.softmax(logits.detach().movedim(1, -1).reshape(-1, n), dim=1)
        # (B, K, *s) -> (B*prod(s), K); one row of k draws per latent position
        draws = torch.multinomial(probs, k, replacement=True, generator=generator)
        return draws.T.reshape(k, b, *s)  # (B*prod(s), k) -> (k, B, *s)

    def log_weights(
        self, x: torch.Tensor, logits: torch.Tensor, codes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log w = log p(x|h) + log p(h) - log q(h|x) and log q(h|x), both (k, B)."""
        k, b = codes.shape[:2]
        log_q_all = F.log_softmax(logits, dim=1)  # (B, K, h, w)
        log_q = log_q_all[None].expand(k, *log_q_all.shape).gather(2, codes[:, :, None])
        log_q = log_q.flatten(2).sum(2)  # (k, B, 1, h, w) -> (k, B)
        params = self.decoder_params(codes.flatten(0, 1))  # (k*B, h, w) -> (k*B, C', H, W)
        x_rep = x[None].expand(k, *x.shape).flatten(0, 1)  # (B, C, H, W) -> (k*B, C, H, W)
        log_px = -self.likelihood.nll(params, x_rep).view(k, b)  # (k*B,) -> (k, B)
        return log_px + self.log_prior() - log_q, log_q

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> VIMCOOutput:
        logits = self.logits(x)
        codes = self.sample_codes(logits, self.config.num_samples, generator)
        log_w, log_q = self.log_weights(x, logits, codes)
        obj = vimco_surrogate(log_w, log_q)
        shown = codes[0] if self.training else logits.argmax(1)
        with torch.no_grad():
            x_hat = self.decode_codes(shown)
        return VIMCOOutput(
            x_hat=x_hat,
            codes=shown,
            loss=-obj.surrogate.mean() / self.num_dims,
            bound=obj.bound.detach().mean(),
            elbo=obj.elbo.detach().mean(),
            logits=logits,
        )

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> the mode of q(h|x): codes (B, h, w)."""
        return self.logits(x).argmax(1)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, h, w) -> images (B, C, H, W), without the encoder."""
        return self.likelihood.mean(self.decoder_params(codes))

    def decoder_params(self, codes: torch.Tensor) -> torch.Tensor:
        self.check_codes(codes)
        z = self.embedding(codes).movedim(-1, 1)  # (B, *s, D) -> (B, D, *s)
        return self.decoder(z.contiguous())


MODELS.register("VIMCO", VIMCO)

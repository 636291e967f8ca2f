"""Bits per dimension of the three models of the paper's Table 1, as upper bounds on -log p(x).

van den Oord et al. 2017 (arXiv:1711.00937), section 4.1, Table 1: VAE 4.51, VQ-VAE 4.67,
VIMCO 5.14 bits/dim on CIFAR-10, all with the same encoder and decoder. Every estimator here
returns nats per image, (B,), for a batch of images x (B, C, H, W) in [-1, 1]; bits/dim is
nats / (C*H*W * ln 2) (``vqvae.metrics.bits_per_dim``). Definitions: docs/bits-per-dim.md.

- VAE: the negative ELBO, -log p(x|z) + KL(q(z|x) || N(0, I)) with one z ~ q(z|x), and the
  importance-weighted bound of Burda, Grosse, Salakhutdinov 2016 (arXiv:1509.00519),
  -log (1/k) sum_i p(x, z_i) / q(z_i|x), which is tighter (larger log-likelihood bound).
- VQ-VAE: q(z|x) is one-hot on the nearest codes z_q (paper section 3.1), so
  KL(q || p) = -log p(z); with the uniform prior of training that is h*w*log K (section 3.2),
  and with a trained prior (``vqvae.priors``) it is -log p_prior(codes).
- VIMCO: the k-sample bound -log (1/k) sum_i w_i it was trained on, and its ELBO (k = 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from vqvae.metrics import bits_per_dim
from vqvae.models import VAE, VIMCO, VQVAE
from vqvae.torch_utils import eval_mode

Estimator = Callable[[torch.Tensor], torch.Tensor]  # x (B, C, H, W) -> nats per image (B,)
LOG_2PI = math.log(2 * math.pi)


def _check_discrete(model) -> None:
    if not model.likelihood.discrete:
        raise ValueError(
            f"bits/dim need a discrete likelihood, the model has {model.config.likelihood!r} "
            f"(train with likelihood='softmax256' or 'logistic_mixture')"
        )


@torch.no_grad()
def vae_negative_elbo(
    model: VAE, x: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """-log p(x|z) + KL(q(z|x) || N(0, I)), one z ~ q(z|x): (B,) nats."""
    _check_discrete(model)
    q = model.posterior(x)
    params = model.decoder(q.rsample(generator))
    return model.likelihood.nll(params, x) + q.kl()


@torch.no_grad()
def vae_iwae(
    model: VAE,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    chunk: int = 8,
) -> torch.Tensor:
    """-log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x) (Burda et al. 2016): (B,)."""
    _check_discrete(model)
    if k < 1:
        raise ValueError(f"expected k >= 1 samples, got {k}")
    q = model.posterior(x)
    log_w = []
    for start in range(0, k, chunk):
        n = min(chunk, k - start)
        shape = (n, *q.mean.shape)  # (n, B, L, h, w)
        eps = torch.randn(shape, generator=generator, device=x.device)
        z = q.mean + torch.exp(0.5 * q.logvar) * eps
        log_q = -0.5 * (eps.pow(2) + q.logvar + LOG_2PI).flatten(2).sum(2)  # (n, B)
        log_p = -0.5 * (z.pow(2) + LOG_2PI).flatten(2).sum(2)  # (n, B)
        params = model.decoder(z.flatten(0, 1))  # (n, B, L, h, w) -> (n*B, L, h, w)
        x_rep = x[None].expand(n, *x.shape).flatten(0, 1)  # (n*B, C, H, W)
        log_px = -model.likelihood.nll(params, x_rep).view(n, -1)  # (n*B,) -> (n, B)
        log_w.append(log_px + log_p - log_q)
    return -(torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k))


@torch.no_grad()
def vqvae_uniform(model: VQVAE, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z_q) + h*w*log K (the uniform prior of training; Q levels: Q*h*w*log K)."""
    _check_discrete(model)
    codes = model.encode(x)
    nll = model.likelihood.nll(model.decoder_params(codes), x)
    return nll + codes[0].numel() * math.log(model.num_codes)


@torch.no_grad()
def vqvae_with_prior(model: VQVAE, prior, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z_q) - log p_prior(codes), with a trained prior's ``log_prob``: (B,) nats."""
    _check_discrete(model)
    codes = model.encode(x)
    nll = model.likelihood.nll(model.decoder_params(codes), x)
    with eval_mode(prior):
        return nll - prior.log_prob(codes)


@torch.no_grad()
def vimco_bound(
    model: VIMCO, x: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """-log (1/k) sum_i w_i with k samples h_i ~ q(h|x); k = 1 is the negative ELBO: (B,)."""
    logits = model.logits(x)
    codes = model.sample_codes(logits, k, generator)
    log_w, _ = model.log_weights(x, logits, codes)
    return -(torch.logsumexp(log_w, dim=0) - math.log(k))


@torch.no_grad()
def mean_bits_per_dim(estimator: Estimator, x: torch.Tensor, batch_size: int = 100) -> float:
    """The mean of ``estimator`` over images x (N, C, H, W), in bits per dimension."""
    if len(x) == 0:
        raise ValueError("expected at least one image")
    total = 0.0
    for start in range(0, len(x), batch_size):
        total += float(estimator(x[start : start + batch_size]).double().sum())
    return bits_per_dim(total / len(x), x[0].numel())

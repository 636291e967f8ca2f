"""The paper's continuous baseline: a VAE with the same encoder and decoder.

Kingma and Welling, "Auto-Encoding Variational Bayes", 2014; used as the first row of
van den Oord et al. 2017's Table 1. The encoder emits the mean and log-variance of a
diagonal Gaussian q(z|x) at every latent grid position; z is drawn with the
reparameterization trick, z = mu + sigma * eps; the prior is N(0, I), and

    KL(q(z|x) || N(0, I)) = 1/2 * sum(mu^2 + sigma^2 - 1 - log sigma^2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vqvae.models.base import Model
from vqvae.models.config import VAEConfig
from vqvae.registry import MODELS


@dataclass(frozen=True)
class GaussianPosterior:
    mean: torch.Tensor  # (B, L, h, w)
    logvar: torch.Tensor  # (B, L, h, w)

    def rsample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device)
        return self.mean + torch.exp(0.5 * self.logvar) * eps

    def kl(self) -> torch.Tensor:
        """KL to N(0, I), summed over latent dims: (B,) nats."""
        terms = self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar
        return 0.5 * terms.flatten(1).sum(1)


@dataclass(frozen=True)
class VAEOutput:
    x_hat: torch.Tensor  # (B, C, H, W) mean of p(x|z) for the sampled z
    loss: torch.Tensor  # recon_loss + kl / (C*H*W): both per data dimension
    recon_loss: torch.Tensor  # the likelihood's loss (mean over elements)
    kl: torch.Tensor  # mean over the batch of KL(q(z|x) || p(z)), nats per image
    posterior: GaussianPosterior
    decoder_params: torch.Tensor


class VAE(Model):
    """The continuous baseline: a diagonal Gaussian latent per grid position."""

    config_class = VAEConfig
    config: VAEConfig

    def __init__(self, config: VAEConfig | None = None) -> None:
        config = config or VAEConfig()
        super().__init__(config)
        self.encoder = self.build_encoder(2 * config.latent_dim)
        self.decoder = self.build_decoder(config.latent_dim)

    def posterior(self, x: torch.Tensor) -> GaussianPosterior:
        self.check_input(x)
        mean, logvar = self.encoder(x).chunk(2, dim=1)  # (B, 2L, *s) -> 2 x (B, L, *s)
        return GaussianPosterior(mean, logvar.clamp(-30.0, 20.0))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> VAEOutput:
        q = self.posterior(x)
        params = self.decoder(q.rsample(generator))
        recon_loss = self.likelihood.loss(params, x)
        kl = q.kl().mean()
        return VAEOutput(
            x_hat=self.likelihood.mean(params),
            loss=recon_loss + kl / self.num_dims,
            recon_loss=recon_loss,
            kl=kl,
            posterior=q,
            decoder_params=params,
        )

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode n draws from the prior N(0, I): (n, C, H, W)."""
        shape = (n, self.config.latent_dim, *self.latent_shape)
        z = torch.randn(shape, generator=generator, device=next(self.parameters()).device)
        return self.likelihood.mean(self.decoder(z))


MODELS.register("VAE", VAE)

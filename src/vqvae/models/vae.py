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

from vqvae.models.base import ImageModel
from vqvae.models.config import VAEConfig
from vqvae.nets import Decoder, Encoder


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


class VAE(ImageModel):
    config_class = VAEConfig
    config: VAEConfig

    def __init__(self, config: VAEConfig | None = None) -> None:
        config = config or VAEConfig()
        super().__init__(config)
        self.encoder = Encoder(config.in_channels, 2 * config.latent_dim, config.net)
        self.decoder = Decoder(
            config.latent_dim, self.likelihood.out_channels(config.in_channels), config.net
        )

    @property
    def num_dims(self) -> int:
        h, w = self.config.image_size
        return self.config.in_channels * h * w

    def posterior(self, x: torch.Tensor) -> GaussianPosterior:
        self.check_images(x)
        mean, logvar = self.encoder(x).chunk(2, dim=1)  # (B, 2L, h, w) -> 2 x (B, L, h, w)
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
        h, w = self.config.grid_size
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.latent_dim, h, w, generator=generator, device=device)
        return self.likelihood.mean(self.decoder(z))

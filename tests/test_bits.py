"""The bits/dim estimators of Table 1: the VQ-VAE's formula, the IWAE bound's order."""

from __future__ import annotations

import math

import pytest
import torch

from vqvae import bits
from vqvae.models import VAE, VIMCO, VQVAE, QuantizerConfig, VAEConfig, VIMCOConfig, VQVAEConfig
from vqvae.nets import NetConfig

NET = NetConfig(hidden_channels=8, residual_channels=4, num_residual_blocks=1, num_downsamples=1)
SHARED = {"in_channels": 1, "input_size": (8, 8), "net": NET, "likelihood": "softmax256"}


def _images(n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 1, 8, 8), generator=g).float() / 127.5 - 1


def test_vqvae_uniform_prior_is_the_formula() -> None:
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(**SHARED, quantizer=QuantizerConfig(num_codes=16, code_dim=4)))
    model.eval()
    x = _images()
    with torch.no_grad():
        nll = model.likelihood.nll(model(x).decoder_params, x)  # -log p(x|z_q)
    expected = nll + 4 * 4 * math.log(16)  # + h*w*log K
    torch.testing.assert_close(bits.vqvae_uniform(model, x), expected)
    want = float(expected.mean()) / (64 * math.log(2))
    assert bits.mean_bits_per_dim(lambda b: bits.vqvae_uniform(model, b), x, 4) == pytest.approx(
        want, rel=1e-6
    )

    class Uniform(torch.nn.Module):  # a "trained" prior that learned nothing
        def log_prob(self, codes):
            return torch.full((len(codes),), -codes[0].numel() * math.log(16))

    torch.testing.assert_close(bits.vqvae_with_prior(model, Uniform(), x), expected)


def test_iwae_is_tighter_than_the_elbo() -> None:
    torch.manual_seed(0)
    model = VAE(VAEConfig(**SHARED, latent_dim=2)).eval()
    x = _images(4)
    g = torch.Generator().manual_seed(1)
    draws = 60
    elbo = torch.stack([bits.vae_negative_elbo(model, x, g) for _ in range(draws)])  # (60, B)
    one = torch.stack([bits.vae_iwae(model, x, 1, g) for _ in range(draws)])
    iwae = torch.stack([bits.vae_iwae(model, x, 32, g) for _ in range(3)]).mean(0)
    se = elbo.std(0) / math.sqrt(draws)
    # k = 1 estimates the same negative ELBO (with a sampled KL instead of the analytic one)
    assert ((one.mean(0) - elbo.mean(0)).abs() < 5 * (se + one.std(0) / math.sqrt(draws))).all()
    # the k = 32 bound on -log p(x) lies below the negative ELBO, beyond the noise
    assert (iwae < elbo.mean(0) - 3 * se).all()


def test_vimco_bound_k1_is_the_elbo_and_k_tightens_it() -> None:
    torch.manual_seed(0)
    model = VIMCO(VIMCOConfig(**{**SHARED}, num_codes=4, code_dim=3)).eval()
    x = _images(3)
    g = torch.Generator().manual_seed(2)
    elbo = torch.stack([bits.vimco_bound(model, x, 1, g) for _ in range(40)]).mean(0)
    bound = torch.stack([bits.vimco_bound(model, x, 32, g) for _ in range(2)]).mean(0)
    assert (bound <= elbo).all()
    # with k = 1, log w = log p(x|h) + log p(h) - log q(h|x), and its mean is the ELBO
    logits = model.logits(x)
    q = torch.softmax(logits, 1)
    kl = (q * (torch.log_softmax(logits, 1) + math.log(4))).sum(1).flatten(1).sum(1)
    assert (elbo > kl).all()  # -ELBO = E[-log p(x|h)] + KL, both positive


def test_bits_need_a_discrete_likelihood() -> None:
    model = VAE(VAEConfig(**{**SHARED, "likelihood": "mse"}, latent_dim=2))
    with pytest.raises(ValueError, match="discrete likelihood"):
        bits.vae_negative_elbo(model, _images(1))
    with pytest.raises(ValueError, match="at least one"):
        bits.mean_bits_per_dim(lambda b: b.sum((1, 2, 3)), torch.zeros(0, 1, 8, 8))

"""The decoders' distributions over 8-bit pixels: they sum to one, agree with their nll, and
give the bits/dim of distributions we know."""

from __future__ import annotations

import math

import pytest
import torch

from vqvae.likelihoods import (
    LIKELIHOODS,
    LogisticMixtureLikelihood,
    get_likelihood,
    pixel_values,
)
from vqvae.metrics import bits_per_dim
from vqvae.models import VAE, VQVAE, QuantizerConfig, VAEConfig, VQVAEConfig
from vqvae.nets import NetConfig

DISCRETE = ("softmax256", "logistic_mixture")


def _images(b: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(0, 256, (b, c, h, w), generator=g)
    u[0, 0, 0, 0], u[0, 0, 0, 1] = 0, 255  # the two edge bins are always scored
    return u.float() / 127.5 - 1.0


@pytest.mark.parametrize("name", DISCRETE)
@pytest.mark.parametrize("channels", [1, 3])
def test_probabilities_over_256_values_sum_to_one(name: str, channels: int) -> None:
    lik = get_likelihood(name)
    g = torch.Generator().manual_seed(1)
    params = 3 * torch.randn(2, lik.out_channels(channels), 3, 4, generator=g)
    x = _images(2, channels, 3, 4)
    table = lik.log_prob_table(params.double(), x.double())  # (B, C, 256, H, W)
    assert table.shape == (2, channels, 256, 3, 4)
    torch.testing.assert_close(table.exp().sum(2), torch.ones(2, channels, 3, 4).double())


@pytest.mark.parametrize("name", DISCRETE)
@pytest.mark.parametrize("channels", [1, 3])
def test_table_at_the_data_is_minus_nll(name: str, channels: int) -> None:
    """Chain rule: sum over channels of log p(x_c | x_<c, z) = log p(x | z)."""
    lik = get_likelihood(name)
    params = 2 * torch.randn(3, lik.out_channels(channels), 4, 4).double()
    x = _images(3, channels, 4, 4, seed=2).double()
    table = lik.log_prob_table(params, x)
    at_x = table.gather(2, pixel_values(x)[:, :, None]).squeeze(2)  # (B, C, H, W)
    torch.testing.assert_close(-at_x.flatten(1).sum(1), lik.nll(params, x))
    torch.testing.assert_close(lik.loss(params, x), lik.nll(params, x).mean() / x[0].numel())


def test_uniform_softmax_is_exactly_eight_bits_per_dim() -> None:
    lik = get_likelihood("softmax256")
    x = _images(4, 3, 5, 5)
    params = torch.zeros(4, lik.out_channels(3), 5, 5, dtype=torch.float64)
    nll = lik.nll(params, x.double())
    torch.testing.assert_close(nll, torch.full((4,), 75 * math.log(256), dtype=torch.float64))
    assert bits_per_dim(float(nll.mean()), 75) == pytest.approx(8.0, abs=1e-12)


def test_softmax_mean_and_a_certain_pixel() -> None:
    lik = get_likelihood("softmax256")
    params = torch.full((1, 256, 1, 1), -50.0)
    params[0, 200] = 50.0  # all mass on u = 200
    x = torch.tensor(200 / 127.5 - 1.0).view(1, 1, 1, 1)
    assert float(lik.nll(params, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(lik.mean(params)) == pytest.approx(200 / 127.5 - 1.0, abs=1e-6)
    # uniform logits: the mean of u / 127.5 - 1 over 0..255 is 0
    assert float(lik.mean(torch.zeros(1, 256, 1, 1))) == pytest.approx(0.0, abs=1e-6)


def test_logistic_mixture_concentrated_component() -> None:
    """One component with the smallest scale at a bin centre: the bin's mass is
    sigmoid(a) - sigmoid(-a), a = (1/255) / s, and the mean is mu."""
    lik = LogisticMixtureLikelihood(num_mixtures=2)
    v = 100 / 127.5 - 1.0
    params = torch.zeros(1, lik.out_channels(1), 1, 1)
    params[0, 0], params[0, 1] = 20.0, -20.0  # mixture logits: the first component
    params[0, 2], params[0, 3] = v, -0.7  # means
    params[0, 4], params[0, 5] = -7.0, 0.0  # log-scales (the floor for the first)
    x = torch.full((1, 1, 1, 1), v)
    a = math.exp(7.0) / 255.0
    mass = 1 / (1 + math.exp(-a)) - 1 / (1 + math.exp(a))
    assert float(lik.nll(params, x)) == pytest.approx(-math.log(mass), abs=1e-4)
    assert float(lik.mean(params)) == pytest.approx(v, abs=1e-4)


def test_logistic_mixture_edges_take_the_tails() -> None:
    """A component far below -1 puts (almost) all mass on u = 0, far above 1 on u = 255."""
    lik = LogisticMixtureLikelihood(num_mixtures=1)
    params = torch.tensor([0.0, -5.0, -3.0]).view(1, 3, 1, 1)  # logit, mu = -5, log s = -3
    assert float(lik.nll(params, torch.full((1, 1, 1, 1), -1.0))) == pytest.approx(0, abs=1e-6)
    params = torch.tensor([0.0, 5.0, -3.0]).view(1, 3, 1, 1)
    assert float(lik.nll(params, torch.full((1, 1, 1, 1), 1.0))) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("name", DISCRETE)
def test_gradients_are_finite(name: str) -> None:
    lik = get_likelihood(name)
    params = (5 * torch.randn(2, lik.out_channels(3), 4, 4)).requires_grad_()
    lik.loss(params, _images(2, 3, 4, 4)).backward()
    assert torch.isfinite(params.grad).all()


def test_registry_and_errors() -> None:
    assert set(LIKELIHOODS) == {"mse", *DISCRETE}
    with pytest.raises(ValueError, match="unknown likelihood"):
        get_likelihood("gaussian")
    with pytest.raises(ValueError, match="discrete"):
        get_likelihood("mse").nll(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="softmax256"):
        get_likelihood("softmax256").nll(torch.zeros(1, 255, 2, 2), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="fit"):
        get_likelihood("softmax256").nll(torch.zeros(1, 256, 2, 2), torch.zeros(1, 1, 3, 3))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        LogisticMixtureLikelihood().out_channels(2)


@pytest.mark.parametrize("name", DISCRETE)
def test_every_model_takes_a_discrete_likelihood(name: str) -> None:
    net = NetConfig(
        hidden_channels=8, residual_channels=4, num_residual_blocks=1, num_downsamples=1
    )
    shared = {"in_channels": 3, "input_size": (8, 8), "net": net, "likelihood": name}
    x = _images(2, 3, 8, 8)
    vq = VQVAE(VQVAEConfig(**shared, quantizer=QuantizerConfig(num_codes=8, code_dim=4)))
    out = vq(x)
    assert out.decoder_params.shape[1] == get_likelihood(name).out_channels(3)
    assert out.x_hat.shape == x.shape and out.x_hat.abs().max() <= 1.0 + 1e-6
    vq.eval()
    torch.testing.assert_close(vq.decode_codes(vq.encode(x)), vq(x).x_hat)
    vae_out = VAE(VAEConfig(**shared, latent_dim=2))(x)
    vae_out.loss.backward()
    assert torch.isfinite(vae_out.loss)

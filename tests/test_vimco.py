"""VIMCO (Mnih and Rezende 2016): the leave-one-out baselines, and the estimator's gradient
is unbiased for the gradient of the expected k-sample bound, checked against the exact one
on a problem small enough to enumerate every draw."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from vqvae.models import VIMCO, VIMCOConfig, vimco_surrogate
from vqvae.nets import NetConfig

L, K, SAMPLES = 2, 3, 3  # latent positions, categories, samples per draw


def test_baselines_match_the_definition() -> None:
    """L_{-i}: w_i replaced by the geometric mean of the other weights (eq. 10)."""
    log_w = torch.randn(4, 3, dtype=torch.float64)
    obj = vimco_surrogate(log_w, torch.zeros_like(log_w))
    k = log_w.shape[0]
    for b in range(3):
        bound = math.log(sum(math.exp(v) for v in log_w[:, b].tolist()) / k)
        assert float(obj.bound[b]) == pytest.approx(bound)
        for i in range(k):
            others = [float(log_w[j, b]) for j in range(k) if j != i]
            geo = math.exp(sum(others) / (k - 1))
            loo = math.log((sum(math.exp(v) for v in others) + geo) / k)
            assert float(obj.learning_signal[i, b]) == pytest.approx(bound - loo)
    torch.testing.assert_close(obj.elbo, log_w.mean(0))


def _log_w(log_px: torch.Tensor, logits: torch.Tensor, h: torch.Tensor):
    """Toy model: log w = log p(x|h) + log p(h) - log q(h|x) for h (k, N, L); logits (N, L, K)
    or (L, K); log_px (K**L,) a fixed decoder table over the joint latent."""
    log_q_all = F.log_softmax(logits, dim=-1)
    log_q_all = log_q_all.expand(h.shape[1], L, K) if log_q_all.dim() == 2 else log_q_all
    # (N, L, K) gathered at h (k, N, L) -> (k, N, L) -> (k, N)
    log_q = log_q_all[None].expand(h.shape[0], -1, -1, -1).gather(3, h[..., None])
    log_q = log_q.squeeze(3).sum(2)
    index = (h * K ** torch.arange(L - 1, -1, -1)).sum(2)  # (k, N): joint category
    return log_px[index] - L * math.log(K) - log_q, log_q


def _problem():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(L, K, generator=g, dtype=torch.float64)
    log_px = 3 * torch.randn(K**L, generator=g, dtype=torch.float64)  # a fixed decoder
    return logits, log_px


def test_vimco_gradient_is_unbiased() -> None:
    logits, log_px = _problem()

    # Exact: E_{h^1..h^k ~ q}[log (1/k) sum_i w_i], all (K**L)**k draws enumerated.
    phi = logits.clone().requires_grad_()
    joint = torch.tensor(list(itertools.product(range(K), repeat=L)))  # (K**L, L)
    draws = torch.tensor(list(itertools.product(range(K**L), repeat=SAMPLES)))  # (M, k)
    h = joint[draws].permute(1, 0, 2)  # (M, k, L) -> (k, M, L)
    log_w, log_q = _log_w(log_px, phi, h)
    prob = log_q.sum(0).exp()  # q(h^1) ... q(h^k): (M,)
    bound = torch.logsumexp(log_w, 0) - math.log(SAMPLES)
    assert float(prob.detach().sum()) == pytest.approx(1.0)
    (exact,) = torch.autograd.grad((prob * bound).sum(), phi)

    # Monte Carlo: N independent draws, one copy of the logits per draw so that autograd
    # gives the per-draw gradients of the VIMCO surrogate.
    n = 40_000
    g = torch.Generator().manual_seed(1)
    phi_n = logits.expand(n, L, K).clone().requires_grad_()
    probs = torch.softmax(logits, -1)
    h = torch.multinomial(probs, n * SAMPLES, replacement=True, generator=g)  # (L, n*k)
    h = h.view(L, SAMPLES, n).permute(1, 2, 0)  # (L, k*n) -> (k, n, L)
    log_w, log_q = _log_w(log_px, phi_n, h)
    vimco_surrogate(log_w, log_q).surrogate.sum().backward()
    grads = phi_n.grad  # (n, L, K)
    mean = grads.mean(0)
    stderr = grads.std(0) / math.sqrt(n)
    assert (stderr > 0).all()
    z = (mean - exact).abs() / stderr
    assert z.max() < 4.5, f"VIMCO gradient off by {z.max():.1f} standard errors"


def test_the_check_has_power() -> None:
    """Dropping the score-function term (only the pathwise part) is biased, and the same
    check catches it."""
    logits, log_px = _problem()
    phi = logits.clone().requires_grad_()
    joint = torch.tensor(list(itertools.product(range(K), repeat=L)))
    draws = torch.tensor(list(itertools.product(range(K**L), repeat=SAMPLES)))
    log_w, log_q = _log_w(log_px, phi, joint[draws].permute(1, 0, 2))
    bound = torch.logsumexp(log_w, 0) - math.log(SAMPLES)
    (exact,) = torch.autograd.grad((log_q.sum(0).exp() * bound).sum(), phi)
    n = 40_000
    g = torch.Generator().manual_seed(2)
    phi_n = logits.expand(n, L, K).clone().requires_grad_()
    h = torch.multinomial(torch.softmax(logits, -1), n * SAMPLES, replacement=True, generator=g)
    log_w, _ = _log_w(log_px, phi_n, h.view(L, SAMPLES, n).permute(1, 2, 0))
    (torch.logsumexp(log_w, 0)).sum().backward()
    grads = phi_n.grad
    z = (grads.mean(0) - exact).abs() / (grads.std(0) / math.sqrt(n))
    assert z.max() > 10


def _tiny(**overrides) -> VIMCO:
    net = NetConfig(
        hidden_channels=8, residual_channels=4, num_residual_blocks=1, num_downsamples=1
    )
    config = {"in_channels": 1, "input_size": (8, 8), "net": net, "num_codes": 5, "code_dim": 3}
    return VIMCO(VIMCOConfig(**{**config, **overrides}))


def test_model_trains_and_decodes() -> None:
    torch.manual_seed(0)
    model = _tiny(num_samples=3)
    x = torch.randint(0, 256, (4, 1, 8, 8)).float() / 127.5 - 1
    out = model(x)
    assert out.codes.shape == (4, 4, 4) and out.logits.shape == (4, 5, 4, 4)
    # the surrogate's value is the bound's: loss = -bound per dimension
    assert float(out.loss.detach()) == pytest.approx(-float(out.bound) / 64, rel=1e-5)
    # Jensen: the mean of log w never exceeds log of the mean of w, draw by draw
    assert float(out.elbo) <= float(out.bound) + 1e-6
    out.loss.backward()
    assert model.encoder.net[0].weight.grad.abs().sum() > 0
    assert model.embedding.weight.grad.abs().sum() > 0
    model.eval()
    torch.testing.assert_close(model.decode_codes(model.encode(x)), model(x).x_hat)


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="discrete likelihood"):
        _tiny(likelihood="mse")
    with pytest.raises(ValueError, match="num_samples"):
        _tiny(num_samples=1)
    with pytest.raises(ValueError, match="k >= 2"):
        vimco_surrogate(torch.zeros(1, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="codes of shape"):
        _tiny().decode_codes(torch.zeros(1, 3, 3, dtype=torch.long))

"""Decoder output distributions p(x | z): what the decoder's channels mean.

The decoder emits ``out_channels(C)`` channels of parameters; a likelihood turns them into
a training loss, a mean image in [-1, 1], and (for the discrete ones) log p(x|z) in nats.
Mean-squared error is the default for plain reconstruction training; the two discrete
likelihoods over 8-bit pixels give the bits/dim of the paper's Table 1 (docs/bits-per-dim.md):

- ``softmax256``: a 256-way softmax per channel and pixel, as the paper's authors used for
  CIFAR-10 (van den Oord et al. 2017, arXiv:1711.00937, section 4.1; the same output as
  PixelRNN, van den Oord et al. 2016, arXiv:1601.06759, section 5.3);
- ``logistic_mixture``: the discretized logistic mixture of PixelCNN++ (Salimans, Karpathy,
  Chen, Kingma 2017, arXiv:1701.05517, section 2.1-2.2), with the linear coupling of the
  red, green and blue sub-pixels inside each mixture component for colour images.

Pixels are x = u / 127.5 - 1 for u in 0..255 (``vqvae.data.transforms``); a discrete
likelihood recovers u by rounding. ``nll`` is in nats per image, ``loss`` in nats per
dimension (so a VAE's loss, recon + KL / dims, is its negative ELBO per dimension).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vqvae.registry import LIKELIHOODS
from vqvae.torch_utils import float32

NUM_VALUES = 256  # 8-bit pixels


def pixel_values(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> integer pixel values u in 0..255 (int64, same shape)."""
    return (x + 1.0).mul(127.5).round().clamp(0, NUM_VALUES - 1).long()


def value_grid(like: torch.Tensor) -> torch.Tensor:
    """The 256 pixel values on the model's scale, u / 127.5 - 1: (256,)."""
    u = torch.arange(NUM_VALUES, device=like.device, dtype=like.dtype)
    return u / 127.5 - 1.0


class Likelihood:
    """Interface: the decoder-side half of a model's reconstruction term."""

    name: str = ""
    discrete: bool = False  # True: nll and log_prob_table are defined

    def out_channels(self, in_channels: int) -> int:
        raise NotImplementedError

    def loss(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Scalar training loss for images x (B, C, H, W) in [-1, 1]."""
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The reconstruction x_hat (B, C, H, W) in [-1, 1] (unclamped for MSE)."""
        raise NotImplementedError

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) in nats per image: (B,). Discrete likelihoods only."""
        raise ValueError(
            f"the {self.name!r} likelihood has no discrete log-likelihood; bits/dim need "
            f"likelihood='softmax256' or 'logistic_mixture'"
        )

    def log_prob_table(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x_c = v | x_<c, z) for all 256 values v: (B, C, 256, H, W).

        The earlier channels x_<c are taken from ``x`` (only the coupled colour mixture uses
        them); summed over v, exp of each slice is one; gathered at x and summed over C, H, W
        it is -nll(params, x). Discrete likelihoods only; meant for tests and small batches.
        """
        raise ValueError(f"the {self.name!r} likelihood has no discrete log-likelihood")


class MSELikelihood(Likelihood):
    """A Gaussian of fixed variance, up to constants: the loss is ||x - x_hat||^2 (mean)."""

    name = "mse"

    def out_channels(self, in_channels: int) -> int:
        return in_channels

    @float32
    def loss(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(params, x)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params


class DiscreteLikelihood(Likelihood):
    """A distribution over the 256 values of every sub-pixel; the loss is nll per dimension."""

    discrete = True

    @float32
    def loss(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.nll(params, x).mean() / x[0].numel()

    def _check(self, params: torch.Tensor, x: torch.Tensor | None = None) -> int:
        """The number of image channels C that ``params`` describe."""
        c = self._channels(params)
        if params.dim() != 4 or c < 1 or params.shape[1] != self.out_channels(c):
            raise ValueError(
                f"{self.name}: expected decoder params (B, {self.out_channels(1)}*C, H, W), "
                f"got {tuple(params.shape)}"
            )
        if x is not None and (
            x.dim() != 4 or x.shape[:2] != (params.shape[0], c) or x.shape[2:] != params.shape[2:]
        ):
            raise ValueError(
                f"{self.name}: params {tuple(params.shape)} do not fit images {tuple(x.shape)}"
            )
        return c

    def _channels(self, params: torch.Tensor) -> int:
        raise NotImplementedError


class Softmax256Likelihood(DiscreteLikelihood):
    """A 256-way categorical per sub-pixel, channels independent given z."""

    name = "softmax256"

    def out_channels(self, in_channels: int) -> int:
        return NUM_VALUES * in_channels

    def _channels(self, params: torch.Tensor) -> int:
        return params.shape[1] // NUM_VALUES if params.dim() == 4 else 0

    def _log_probs(self, params: torch.Tensor) -> torch.Tensor:
        b, _, h, w = params.shape
        c = self._check(params)
        logits = params.view(b, c, NUM_VALUES, h, w)  # (B, 256*C, H, W) -> (B, C, 256, H, W)
        return F.log_softmax(logits, dim=2)

    @float32
    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self._check(params, x)
        b, c, h, w = x.shape
        logits = params.view(b, c, NUM_VALUES, h, w)  # (B, 256*C, H, W) -> (B, C, 256, H, W)
        # cross_entropy wants the classes in dim 1: (B, C, 256, H, W) -> (B, 256, C, H, W)
        nll = F.cross_entropy(logits.transpose(1, 2), pixel_values(x), reduction="none")
        return nll.flatten(1).sum(1)  # (B, C, H, W) -> (B,)

    @float32
    def log_prob_table(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self._check(params, x)
        return self._log_probs(params)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        probs = self._log_probs(params).exp()  # (B, C, 256, H, W)
        return torch.einsum("bcvhw,v->bchw", probs, value_grid(params))


def _log_discretized_logistic(
    u: torch.Tensor, mu: torch.Tensor, log_s: torch.Tensor
) -> torch.Tensor:
    """log P(value u) of a logistic(mu, s) on [-1, 1] discretized into 256 bins of width 2/255.

    PixelCNN++ section 2.1: the mass of bin u is sigmoid((x + 1/255 - mu)/s) -
    sigmoid((x - 1/255 - mu)/s), with the edge bins taking all the mass beyond -1 and 1, so the
    256 masses sum to one exactly. The difference of sigmoids is evaluated in log space with
    sigma(a) - sigma(b) = sigma(a) * sigma(-b) * (1 - exp(b - a)), which needs no threshold.
    ``u`` is an int64 tensor broadcastable with ``mu`` and ``log_s``.
    """
    x = u.to(mu.dtype) / 127.5 - 1.0
    inv_s = torch.exp(-log_s)
    plus = inv_s * (x - mu + 1.0 / 255.0)  # a
    minus = inv_s * (x - mu - 1.0 / 255.0)  # b
    log_cdf_plus = F.logsigmoid(plus)  # u = 0: everything below the bin's upper edge
    log_one_minus_cdf_min = F.logsigmoid(-minus)  # u = 255: everything above the lower edge
    width = (plus - minus).clamp_min(1e-12)  # = 2 / (255 s) > 0
    log_mid = log_cdf_plus + log_one_minus_cdf_min + torch.log(-torch.expm1(-width))
    return torch.where(
        u == 0, log_cdf_plus, torch.where(u == NUM_VALUES - 1, log_one_minus_cdf_min, log_mid)
    )


class LogisticMixtureLikelihood(DiscreteLikelihood):
    """A mixture of ``num_mixtures`` discretized logistics per pixel (PixelCNN++).

    Params per pixel and component m: a mixture logit pi_m, and for each channel c a mean
    mu_{m,c} and log-scale log s_{m,c}; for 3 channels also 3 coupling coefficients
    (tanh-squashed), so that within a component the green mean is mu_g + a * x_r and the blue
    mean mu_b + b * x_r + c * x_g (PixelCNN++ section 2.2). For C = 1 there is no coupling.
    Channel layout of ``params`` (B, M * (1 + 2C + C(C-1)/2), H, W): [logits (M), means (M*C),
    log-scales (M*C), coefficients (M*C(C-1)/2)].
    """

    name = "logistic_mixture"
    min_log_scale = -7.0  # PixelCNN++'s floor on log s

    def __init__(self, num_mixtures: int = 10) -> None:
        if num_mixtures < 1:
            raise ValueError(f"expected num_mixtures >= 1, got {num_mixtures}")
        self.num_mixtures = num_mixtures

    @staticmethod
    def _per_mixture(c: int) -> int:
        return 1 + 2 * c + c * (c - 1) // 2

    def out_channels(self, in_channels: int) -> int:
        if in_channels not in (1, 3):
            raise ValueError(f"logistic_mixture: expected 1 or 3 channels, got {in_channels}")
        return self.num_mixtures * self._per_mixture(in_channels)

    def _channels(self, params: torch.Tensor) -> int:
        for c in (1, 3):
            if params.dim() == 4 and params.shape[1] == self.out_channels(c):
                return c
        raise ValueError(
            f"logistic_mixture: expected decoder params with {self.out_channels(1)} (grey) or "
            f"{self.out_channels(3)} (colour) channels, got {tuple(params.shape)}"
        )

    def _split(self, params: torch.Tensor):
        """params (B, M*(1+2C+C(C-1)/2), H, W) -> logits (B, M, H, W), means and log-scales
        (B, M, C, H, W), coefficients (B, M, C(C-1)/2, H, W)."""
        c = self._check(params)
        b, _, h, w = params.shape
        m = self.num_mixtures
        logits, means, log_s, coeffs = params.split([m, m * c, m * c, m * c * (c - 1) // 2], 1)
        means = means.reshape(b, m, c, h, w)  # (B, M*C, H, W) -> (B, M, C, H, W)
        log_s = log_s.reshape(b, m, c, h, w).clamp_min(self.min_log_scale)
        coeffs = torch.tanh(coeffs.reshape(b, m, c * (c - 1) // 2, h, w))
        return logits, means, log_s, coeffs

    @staticmethod
    def _coupled_means(means: torch.Tensor, coeffs: torch.Tensor, x: torch.Tensor):
        """Means after the colour coupling, given the observed earlier channels x (B, C, H, W)."""
        if means.shape[2] == 1:
            return means
        xr, xg = x[:, None, 0], x[:, None, 1]  # (B, 1, H, W) each, broadcast over M
        mr = means[:, :, 0]
        mg = means[:, :, 1] + coeffs[:, :, 0] * xr
        mb = means[:, :, 2] + coeffs[:, :, 1] * xr + coeffs[:, :, 2] * xg
        return torch.stack([mr, mg, mb], dim=2)  # 3 x (B, M, H, W) -> (B, M, 3, H, W)

    def _component_log_probs(self, params: torch.Tensor, x: torch.Tensor):
        """log pi_m (B, M, H, W) and log p_m(x_c | x_<c) (B, M, C, H, W) at the observed x."""
        logits, means, log_s, coeffs = self._split(params)
        mu = self._coupled_means(means, coeffs, x)
        u = pixel_values(x)[:, None]  # (B, C, H, W) -> (B, 1, C, H, W)
        return F.log_softmax(logits, dim=1), _log_discretized_logistic(u, mu, log_s)

    @float32
    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self._check(params, x)
        log_pi, log_p = self._component_log_probs(params, x)
        joint = log_pi + log_p.sum(2)  # log pi_m + sum_c log p_m(x_c | x_<c): (B, M, H, W)
        return -torch.logsumexp(joint, dim=1).flatten(1).sum(1)  # (B, H, W) -> (B,)

    @float32
    def log_prob_table(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self._check(params, x)
        log_pi, log_p = self._component_log_probs(params, x)
        _, means, log_s, coeffs = self._split(params)
        mu = self._coupled_means(means, coeffs, x)  # (B, M, C, H, W)
        v = torch.arange(NUM_VALUES, device=params.device)[:, None, None, None, None, None]
        # (256, 1, 1, 1, 1, 1) against (B, M, C, H, W): (256, B, M, C, H, W)
        table = _log_discretized_logistic(v, mu, log_s)
        # The posterior weight of component m after seeing the earlier channels x_<c:
        # log pi_m + sum_{c' < c} log p_m(x_c' | x_<c'), normalised over m.
        seen = torch.cumsum(log_p, dim=2) - log_p  # exclusive prefix sum: (B, M, C, H, W)
        weight = F.log_softmax(log_pi[:, :, None] + seen, dim=1)
        out = torch.logsumexp(weight + table, dim=2)  # (256, B, C, H, W)
        return out.permute(1, 2, 0, 3, 4)  # (256, B, C, H, W) -> (B, C, 256, H, W)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """E[x] under the mixture, each component's logistic taken as continuous and its
        mean clamped to [-1, 1] (the discretization moves the mean only for components near
        an edge); for colour the coupling uses the red and green means in place of x."""
        logits, means, _, coeffs = self._split(params)
        pi = torch.softmax(logits, dim=1)[:, :, None]  # (B, M, 1, H, W)
        if means.shape[2] == 3:
            mr = means[:, :, 0].clamp(-1.0, 1.0)
            mg = (means[:, :, 1] + coeffs[:, :, 0] * mr).clamp(-1.0, 1.0)
            mb = means[:, :, 2] + coeffs[:, :, 1] * mr + coeffs[:, :, 2] * mg
            means = torch.stack([mr, mg, mb], dim=2)  # (B, M, 3, H, W)
        return (pi * means.clamp(-1.0, 1.0)).sum(1)  # (B, M, C, H, W) -> (B, C, H, W)


LIKELIHOODS.register("mse", MSELikelihood)
LIKELIHOODS.register("softmax256", Softmax256Likelihood)
LIKELIHOODS.register("logistic_mixture", LogisticMixtureLikelihood)


def get_likelihood(name: str) -> Likelihood:
    """A new likelihood of a registered name (``vqvae.registry.LIKELIHOODS``)."""
    return LIKELIHOODS.get(name)()

"""Decoder output distributions p(x | z): what the decoder's channels mean.

The decoder emits ``out_channels(C)`` channels of parameters; a likelihood turns them into
a training loss, a mean image in [-1, 1], and (for discrete ones) log p(x|z) in nats.
Mean-squared error is the default for plain reconstruction training (issue 5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Likelihood:
    """Interface: the decoder-side half of a model's reconstruction term."""

    name: str = ""

    def out_channels(self, in_channels: int) -> int:
        raise NotImplementedError

    def loss(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Scalar training loss for images x (B, C, H, W) in [-1, 1]."""
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The reconstruction x_hat (B, C, H, W) in [-1, 1] (unclamped for MSE)."""
        raise NotImplementedError


class MSELikelihood(Likelihood):
    """A Gaussian of fixed variance, up to constants: the loss is ||x - x_hat||^2 (mean)."""

    name = "mse"

    def out_channels(self, in_channels: int) -> int:
        return in_channels

    def loss(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(params, x)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params


LIKELIHOODS: dict[str, type[Likelihood]] = {"mse": MSELikelihood}


def get_likelihood(name: str) -> Likelihood:
    if name not in LIKELIHOODS:
        raise ValueError(f"expected likelihood in {sorted(LIKELIHOODS)}, got {name!r}")
    return LIKELIHOODS[name]()

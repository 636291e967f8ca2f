"""The encoder/decoder config, tagged with its kind, and what a kind provides.

``NetConfig.kind`` names a registered ``NetKind`` (``vqvae.registry.NETS``): ``conv1d``,
``conv2d`` and ``conv3d`` are the paper's strided-convolution nets for sequences, images
and volumes; a new modality is a new file registering its kind, not a new model class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from vqvae.registry import NETS

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}
NORMS = ("none", "group")


@dataclass(frozen=True)
class NetConfig:
    kind: str = "conv2d"  # a registered network kind
    hidden_channels: int = 256  # the paper's 256 hidden units
    residual_channels: int = 256  # width inside each residual block
    num_residual_blocks: int = 2
    num_downsamples: int = 2  # each halves every spatial size: 1 -> x2, 2 -> x4, 3 -> x8
    activation: str = "relu"  # the paper's ReLU, or "silu" / "gelu"
    norm: str = "none"  # the paper's none, or "group": GroupNorm before each activation

    def __post_init__(self) -> None:
        NETS.get(self.kind)  # "unknown network kind ...; expected one of [...]"
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; expected one of {sorted(ACTIVATIONS)}"
            )
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; expected one of {list(NORMS)}")
        if not 1 <= self.num_downsamples <= 8:
            raise ValueError(f"expected num_downsamples in 1..8, got {self.num_downsamples}")
        if self.hidden_channels < 2 or self.residual_channels < 1:
            raise ValueError("expected hidden_channels >= 2 and residual_channels >= 1")

    @property
    def downsampling(self) -> int:
        return 2**self.num_downsamples

    @property
    def net_kind(self) -> NetKind:
        return NETS.get(self.kind)

    def act(self, channels: int) -> list[nn.Module]:
        """The layers between two convolutions of ``channels``: [norm,] activation."""
        norm = [nn.GroupNorm(min(32, channels), channels)] if self.norm == "group" else []
        return [*norm, ACTIVATIONS[self.activation]()]

    def stage_channels(self) -> list[int]:
        """Widths after each strided convolution: half width until the last, as in Sonnet."""
        half = self.hidden_channels // 2
        return [half] * (self.num_downsamples - 1) + [self.hidden_channels]


Builder = Callable[[int, int, NetConfig], nn.Module]  # (in_channels, out_channels, config)


@dataclass(frozen=True)
class NetKind:
    """A registered network kind: the rank of its data and how to build its two halves."""

    dims: int  # spatial rank of the data and of the code grid: 1, 2 or 3
    encoder: Builder  # (B, C, *input_size) -> (B, D, *latent_size)
    decoder: Builder  # (B, D, *latent_size) -> (B, C', *input_size)
    about: str = ""

    def latent_size(self, input_size: tuple[int, ...], config: NetConfig) -> tuple[int, ...]:
        """The code grid's size for inputs of ``input_size``; a ``ValueError`` if the input
        does not divide by the encoder's downsampling."""
        f = config.downsampling
        size = "x".join(map(str, input_size))
        if len(input_size) != self.dims:
            raise ValueError(
                f"input size {size} has {len(input_size)} dimension(s); a {config.kind} net "
                f"takes {self.dims}"
            )
        if any(s % f for s in input_size):
            raise ValueError(
                f"input size {size} is not divisible by the encoder's downsampling x{f} "
                f"(num_downsamples={config.num_downsamples}); pad or resize the data, or change "
                f"net.num_downsamples"
            )
        return tuple(s // f for s in input_size)

    def check_input(self, x: torch.Tensor, in_channels: int, input_size: tuple[int, ...]) -> None:
        """One line saying what was expected and what came, for a batch of inputs."""
        want = (in_channels, *input_size)
        if x.dim() != 2 + self.dims or tuple(x.shape[1:]) != want:
            shape = ", ".join(map(str, want))
            raise ValueError(f"expected inputs of shape (B, {shape}), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"expected float inputs in [-1, 1], got dtype {x.dtype}")

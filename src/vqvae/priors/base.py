"""What every autoregressive prior over VQ-VAE code grids shares.

A VQ-VAE turns an image into a ``(h, w)`` grid of integers in ``[0, K)``; a prior models
``p(codes) = prod_i p(c_i | c_<i)`` over that grid scanned in raster order, is fitted
after the VQ-VAE with cross-entropy, and is sampled to generate new grids
(van den Oord, Vinyals, Kavukcuoglu 2017, "Neural Discrete Representation Learning",
arXiv:1711.00937, sections 3.3 and 4.2). Here live the parts that do not depend on the
network: the config fields, the input checks, ``log_prob`` from logits, and the sampling
loop with its temperature / top-k draw.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.pretrained import PretrainedMixin

# Draws one code per row of a (n, K) logits matrix.
Draw = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PriorConfig:
    """Fields every prior has: the code alphabet, the grid, and the number of classes."""

    num_codes: int  # K, the codebook size of the VQ-VAE whose codes are modelled
    grid_size: tuple[int, int]  # (h, w) of the code grid
    num_classes: int = 0  # 0 = unconditional; otherwise labels in [0, num_classes)

    def __post_init__(self) -> None:
        grid = self.grid_size
        if isinstance(grid, int):
            grid = (grid, grid)
        grid = tuple(grid)
        if len(grid) != 2 or not all(isinstance(g, int) and g >= 1 for g in grid):
            raise ValueError(f"grid_size: expected two positive ints (h, w), got {self.grid_size}")
        # frozen dataclass: normalise a list or an int to the canonical tuple once, here
        object.__setattr__(self, "grid_size", grid)
        if self.num_codes < 2:
            raise ValueError(f"num_codes: expected at least 2 codes, got {self.num_codes}")
        if self.num_classes < 0:
            raise ValueError(
                f"num_classes: expected >= 0 (0 = unconditional), got {self.num_classes}"
            )


def _is_integer_dtype(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def draw_codes(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One code per row of ``logits`` (n, K), from ``softmax(logits / temperature)``.

    Inverse-CDF sampling with exactly one uniform number per row, so two samplers that
    compute the same logits in a different way consume the generator identically and
    draw the same codes (the fast and naive samplers are tested against each other).
    A code of probability zero (outside the top k) is never returned, even for u = 0.
    """
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (n, 1) the k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    cdf = probs.cumsum(dim=-1)  # (n, K)
    u = torch.rand(logits.shape[0], 1, generator=generator, device=logits.device)
    # the first index whose cdf exceeds u * total; zero-probability codes repeat the previous
    # cdf value and are therefore always skipped
    index = (cdf <= u * cdf[:, -1:]).sum(dim=-1)
    return index.clamp_(max=logits.shape[-1] - 1)


class Prior(nn.Module, PretrainedMixin, metaclass=abc.ABCMeta):
    """Abstract autoregressive prior over ``(B, h, w)`` int64 code grids.

    Build with a config, ``Prior(Config(num_codes=K, grid_size=(h, w)))``, or with the
    config's fields as keywords, ``Prior(num_codes=K, grid_size=(h, w))``.
    """

    config_class: type[PriorConfig] = PriorConfig

    def __init__(self, config: PriorConfig | None = None, **kwargs) -> None:
        super().__init__()
        if config is None:
            config = self.config_class(**kwargs)
        elif kwargs:
            raise TypeError(f"{type(self).__name__}: pass a config or keywords, not both")
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__}: expected a {self.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        self.config = config

    # -- what a concrete prior provides -------------------------------------------------

    @abc.abstractmethod
    def _logits(self, codes: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """(B, h, w) checked codes, (B,) checked labels or None -> (B, K, h, w) logits."""

    # -- public interface -----------------------------------------------------------------

    def forward(
        self, codes: torch.Tensor, labels: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        """Logits ``(B, K, h, w)``: position i's logits depend only on codes before i."""
        codes = self.check_codes(codes)
        labels = self.check_labels(labels, codes.shape[0])
        return self._logits(codes, labels)

    def log_prob(
        self, codes: torch.Tensor, labels: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        """``log p(codes | labels)`` in nats, one per grid: ``(B, h, w) -> (B,)``."""
        codes = self.check_codes(codes)
        labels = self.check_labels(labels, codes.shape[0])
        logits = self._logits(codes, labels)  # (B, K, h, w)
        # half-precision logits are scored in float32; float64 stays float64
        logp = F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=1)
        at_true = logp.gather(1, codes.unsqueeze(1)).squeeze(1)  # (B, 1, h, w) -> (B, h, w)
        return at_true.flatten(1).sum(dim=1)  # (B, h, w) -> (B, h*w) -> (B,)

    def _run_sampler(
        self,
        sampler: Callable[[int, torch.Tensor | None, Draw], torch.Tensor],
        n: int,
        labels: torch.Tensor | int | None,
        temperature: float,
        top_k: int | None,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Check the arguments, then run ``sampler(n, labels, draw)`` in eval mode, no grad."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected a positive number of samples, got {n!r}")
        if not temperature > 0:
            raise ValueError(f"temperature: expected a number > 0, got {temperature!r}")
        if top_k is not None and (
            isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1
        ):
            raise ValueError(f"top_k: expected None or an int >= 1, got {top_k!r}")
        labels = self.check_labels(labels, n)

        def draw(logits: torch.Tensor) -> torch.Tensor:
            return draw_codes(logits, temperature, top_k, generator)

        was_training = self.training
        self.eval()  # dropout off: samples come from the model as trained, not a noisy copy
        try:
            with torch.no_grad():
                return sampler(n, labels, draw)
        finally:
            self.train(was_training)

    def _sample_naive(self, n: int, labels: torch.Tensor | None, draw: Draw) -> torch.Tensor:
        """The reference sampler: one full forward pass over the whole grid per position."""
        h, w = self.config.grid_size
        codes = torch.zeros(n, h, w, dtype=torch.long, device=self.device)
        for i in range(h):
            for j in range(w):
                codes[:, i, j] = draw(self._logits(codes, labels)[:, :, i, j])
        return codes

    # -- input checks: one clear line saying what was expected and what came --------------

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def check_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Validate a ``(B, h, w)`` integer grid in ``[0, K)``; return it as int64."""
        h, w = self.config.grid_size
        k = self.config.num_codes
        if not isinstance(codes, torch.Tensor):
            raise ValueError(
                f"codes: expected a tensor of shape (B, {h}, {w}), got {type(codes).__name__}"
            )
        if not _is_integer_dtype(codes.dtype):
            raise ValueError(f"codes: expected an integer (int64) tensor, got dtype {codes.dtype}")
        if codes.dim() != 3 or tuple(codes.shape[1:]) != (h, w):
            raise ValueError(f"codes: expected shape (B, {h}, {w}), got {tuple(codes.shape)}")
        if codes.numel():
            lo, hi = int(codes.min()), int(codes.max())
            if lo < 0 or hi >= k:
                raise ValueError(f"codes: expected values in [0, {k}), got values in [{lo}, {hi}]")
        return codes.to(device=self.device, dtype=torch.long)

    def check_labels(self, labels: torch.Tensor | int | None, batch: int) -> torch.Tensor | None:
        """Validate class labels for a batch: ``None`` if unconditional, else ``(batch,)`` int64."""
        num_classes = self.config.num_classes
        if num_classes == 0:
            if labels is not None:
                raise ValueError("labels: this prior is unconditional (num_classes=0), got labels")
            return None
        if labels is None:
            raise ValueError(
                f"labels: this prior is class-conditional (num_classes={num_classes}), "
                f"expected labels of shape ({batch},) or an int, got None"
            )
        if isinstance(labels, bool) or not isinstance(labels, (int, torch.Tensor)):
            raise ValueError(
                f"labels: expected an int or a ({batch},) tensor, got {type(labels).__name__}"
            )
        if isinstance(labels, int):
            labels = torch.full((batch,), labels, dtype=torch.long)
        if not _is_integer_dtype(labels.dtype):
            raise ValueError(f"labels: expected an integer tensor, got dtype {labels.dtype}")
        if labels.dim() == 0:
            labels = labels.expand(batch)
        if tuple(labels.shape) != (batch,):
            raise ValueError(f"labels: expected shape ({batch},), got {tuple(labels.shape)}")
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"labels: expected values in [0, {num_classes}), got values in [{lo}, {hi}]"
            )
        return labels.to(device=self.device, dtype=torch.long)

    def extra_repr(self) -> str:
        fields = ", ".join(
            f"{f.name}={getattr(self.config, f.name)}" for f in dataclasses.fields(self.config)
        )
        return fields

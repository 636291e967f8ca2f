"""Residual vector quantization: Q quantizers on successive residuals.

Zeghidour et al., "SoundStream: An End-to-End Neural Audio Codec", 2021 (arXiv:2107.03312),
algorithm 1: quantizer i quantizes what quantizers 0..i-1 left over, and the quantized
vector is the sum of the Q code vectors. Quantizer dropout (section 3.3 there) trains with a
random number of levels per batch, so one model decodes at several bit rates.

Residual FSQ (each level a ``FiniteScalarQuantizer``, quantizing residuals ever closer to zero)
works best when level i scales its input up, i.e. uses a finer grid: give level i
``scale=[(L - 1) ** -i for L in levels]``, as vector-quantize-pytorch's ResidualFSQ does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from vqvae.quantizers.base import Quantizer, QuantizerOutput, straight_through
from vqvae.quantizers.ema import EMAVectorQuantizer
from vqvae.torch_utils import float32

# Marks a level that quantizer dropout switched off for a batch.
DROPPED = -1


@dataclass(frozen=True)
class ResidualQuantizerOutput(QuantizerOutput):
    levels: tuple[QuantizerOutput, ...] = ()  # one output per level used, coarse to fine


class ResidualVQ(nn.Module):
    """``num_quantizers`` quantizers applied to successive residuals.

    ``quantizer`` is either a ``Quantizer`` subclass (``EMAVectorQuantizer`` by default,
    ``VectorQuantizer``, ``CosineVectorQuantizer``), built as
    ``quantizer(num_codes, code_dim, beta, **quantizer_kwargs)`` for every level, or a factory
    called with the level's index, for quantizers with other constructors, e.g.
    ``quantizer=lambda i: FiniteScalarQuantizer((8, 5, 5, 5), code_dim)``. A factory's levels
    must all take ``code_dim`` channels and have one ``num_codes``, which they set: the
    ``num_codes`` and ``beta`` arguments are not used, and ``quantizer_kwargs`` must be empty.
    """

    def __init__(
        self,
        num_quantizers: int = 4,
        num_codes: int = 512,
        code_dim: int = 64,
        beta: float = 0.25,
        *,
        quantizer: type[Quantizer] | Callable[[int], nn.Module] = EMAVectorQuantizer,
        quantizer_dropout: float = 0.0,
        **quantizer_kwargs,
    ) -> None:
        super().__init__()
        if num_quantizers < 1:
            raise ValueError(f"expected num_quantizers >= 1, got {num_quantizers}")
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise ValueError(f"expected quantizer_dropout in [0, 1], got {quantizer_dropout}")
        if isinstance(quantizer, type) and issubclass(quantizer, Quantizer):
            levels = [
                quantizer(num_codes, code_dim, beta, **quantizer_kwargs)
                for _ in range(num_quantizers)
            ]
        else:
            if quantizer_kwargs:
                raise ValueError(
                    f"expected no quantizer keyword arguments with a quantizer factory, "
                    f"got {sorted(quantizer_kwargs)}"
                )
            levels = [quantizer(i) for i in range(num_quantizers)]
            num_codes = _check_levels(levels, code_dim)
        self.levels = nn.ModuleList(levels)
        self.num_quantizers = num_quantizers
        self.num_codes = num_codes
        self.code_dim = code_dim
        self.quantizer_dropout = quantizer_dropout

    @property
    def codebook(self) -> torch.Tensor:
        """(Q, K, D): the codebook of every level."""
        return torch.stack([q.codebook for q in self.levels])

    def _num_active(self) -> int:
        if self.training and self.quantizer_dropout > 0 and torch.rand(()) < self.quantizer_dropout:
            return int(torch.randint(1, self.num_quantizers + 1, ()))
        return self.num_quantizers

    @float32
    def forward(self, z_e: torch.Tensor, num_levels: int | None = None) -> ResidualQuantizerOutput:
        """Quantize with the first ``num_levels`` levels (all, or a random number under
        quantizer dropout in training)."""
        q = self._num_active() if num_levels is None else num_levels
        if not 1 <= q <= self.num_quantizers:
            raise ValueError(f"expected num_levels in [1, {self.num_quantizers}], got {q}")
        residual = z_e
        quantized = torch.zeros_like(z_e)
        outputs: list[QuantizerOutput] = []
        for level in self.levels[:q]:
            out: QuantizerOutput = level(residual)
            # out.z_q has the value of the chosen code vectors; the residual for the next
            # level carries no gradient through it, each level's loss trains its own codebook.
            quantized = quantized + out.z_q.detach()
            residual = residual - out.z_q.detach()
            outputs.append(out)

        codes = torch.stack([o.codes for o in outputs], dim=1)  # (B, q, *S)
        if q < self.num_quantizers:
            pad = codes.new_full(
                (codes.shape[0], self.num_quantizers - q, *codes.shape[2:]), DROPPED
            )
            codes = torch.cat([codes, pad], dim=1)  # (B, Q, *S)
        # One straight-through over the sum: d z_q / d z_e is the identity, not q times it.
        z_q = straight_through(z_e.movedim(1, -1), quantized.movedim(1, -1)).movedim(-1, 1)
        return ResidualQuantizerOutput(
            z_q=z_q,
            codes=codes,
            loss=torch.stack([o.loss for o in outputs]).sum(),
            perplexity=torch.stack([o.perplexity for o in outputs]).mean(),
            commitment_loss=torch.stack([o.commitment_loss for o in outputs]).sum(),
            codebook_loss=torch.stack([o.codebook_loss for o in outputs]).sum(),
            num_restarted=sum(o.num_restarted for o in outputs),
            levels=tuple(outputs),
        )

    @float32
    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, q, *S) with q <= Q -> (B, D, *S), the sum of the first q levels' vectors.

        Fewer levels give a coarser reconstruction at a lower bit rate.
        """
        if codes.dim() < 3 or not 1 <= codes.shape[1] <= self.num_quantizers:
            raise ValueError(
                f"expected codes of shape (B, q, *spatial) with 1 <= q <= {self.num_quantizers}, "
                f"got {tuple(codes.shape)}"
            )
        levels: list[nn.Module] = list(self.levels)
        return sum(levels[i].lookup(codes[:, i]) for i in range(codes.shape[1]))


def _check_levels(levels: list[nn.Module], code_dim: int) -> int:
    """The one ``num_codes`` of a factory's levels, which must all accept ``code_dim`` channels."""
    dims = {getattr(q, "code_dim", None) for q in levels}
    sizes = {getattr(q, "num_codes", None) for q in levels}
    if dims != {code_dim} or len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"expected every level to have code_dim {code_dim} and one num_codes, "
            f"got code_dim {sorted(dims, key=str)} and num_codes {sorted(sizes, key=str)}"
        )
    return sizes.pop()

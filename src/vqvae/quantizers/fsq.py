"""Finite scalar quantization: a fixed grid in a few dimensions instead of a learned codebook.

Mentzer, Minnen, Agustsson, Tschannen, "Finite Scalar Quantization: VQ-VAE Made Simple",
2023, arXiv:2309.15505, section 3.1 and the code of appendix A.1. The encoder output is
projected to d = len(L) dimensions, each dimension i is bounded to L_i values,

    f(z) = floor(L/2) * tanh(z)    (odd L; for even L shifted by half a level, appendix A.1:
                                    f(z) = tanh(z + shift) * (L - 1)(1 - eps)/2 - 1/2)

and rounded with a straight-through gradient, z_hat = round(f(z)) (section 3.1, eq. 2);
z_hat / floor(L/2) in [-1, 1] is projected back to D dimensions for the decoder.

The implicit codebook is the product grid of prod(L) points. A point's index is its level
vector read as a mixed-radix number, digit i = z_hat_i + floor(L_i/2) in base L_i with the
first dimension least significant (the paper's `codes_to_indexes`). FSQ has no codebook loss
and no commitment loss: ``loss`` is zero.

Projections: D -> d and d -> D are 1x1 linear maps, the identity (no parameters) when
``code_dim == len(levels)``, which is the paper's set-up of an encoder emitting d channels.

``scale`` (default 1, the paper) divides z before the bound and multiplies z_hat after it: a
grid of the same L points, scale times as fine. Residual FSQ's later levels, which see small
residuals, use scale < 1 (residual.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from vqvae.quantizers._projection import projection
from vqvae.quantizers.base import (
    QuantizerOutput,
    check_codes,
    code_counts,
    flatten,
    perplexity,
    straight_through,
    unflatten,
)
from vqvae.registry import QUANTIZERS
from vqvae.torch_utils import float32

# Keeps tanh's bound strictly inside the outermost levels (appendix A.1's eps).
EPS = 1e-3


class FiniteScalarQuantizer(nn.Module):
    """FSQ with levels L = ``levels`` (the paper's recommended (8, 5, 5, 5) gives 1,000 codes)."""

    def __init__(
        self,
        levels: Sequence[int] = (8, 5, 5, 5),
        code_dim: int = 64,
        *,
        scale: float | Sequence[float] = 1.0,
    ) -> None:
        super().__init__()
        levels = tuple(int(n) for n in levels)
        if not levels or min(levels) < 2:
            raise ValueError(f"expected levels: one or more integers >= 2, got {levels}")
        scale = torch.as_tensor(scale, dtype=torch.float32).expand(len(levels)).clone()  # (d,)
        if not bool((scale > 0).all()):
            raise ValueError(f"expected scale > 0, got {scale.tolist()}")
        self.levels = levels
        self.num_codes = math.prod(levels)  # K = prod(L)
        self.code_dim = code_dim  # D
        self.project_in = projection(code_dim, len(levels))  # D -> d
        self.project_out = projection(len(levels), code_dim)  # d -> D

        L = torch.tensor(levels, dtype=torch.float64)
        half_l = (L - 1) * (1 - EPS) / 2
        offset = (L % 2 == 0).double() * 0.5  # even L: the grid is shifted by half a level
        # As the appendix code: tan(offset / half_l). (atanh would put f(0) exactly on 0, and
        # agrees to ~1e-5 for L >= 4, but is undefined for L = 2, where offset > half_l.)
        shift = torch.tan(offset / half_l)
        basis = torch.cumprod(torch.tensor((1, *levels[:-1])), 0)  # (d,) mixed-radix weights
        # Constants of the grid, rebuilt from the arguments: not saved with the weights.
        constants = {
            "_levels": torch.tensor(levels),  # (d,) L
            "_half_width": torch.tensor(levels) // 2,  # (d,) floor(L/2)
            "_basis": basis,
            "_half_l": half_l.float(),
            "_offset": offset.float(),
            "_shift": shift.float(),
            "_scale": scale,
        }
        for name, value in constants.items():
            self.register_buffer(name, value, persistent=False)

    @classmethod
    def from_config(cls, config, level: int = 0) -> FiniteScalarQuantizer:
        """From a ``QuantizerConfig``: ``levels`` (or levels giving about ``num_codes``
        codes) and D. Level ``level`` of a residual FSQ works on a grid ``(L - 1)^-level``
        times as fine, as its residuals are that much smaller."""
        levels = tuple(config.levels) or levels_for(config.num_codes)
        scale = [float(n - 1) ** -level for n in levels]
        return cls(levels, config.code_dim, scale=scale)

    # -- the grid ------------------------------------------------------------------------
    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """(N, d) -> (N, d): dimension i squashed into (-L_i/2, L_i/2), to round to L_i values."""
        return torch.tanh(z + self._shift) * self._half_l - self._offset

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (N, d) -> (the grid point scale * z_hat / floor(L/2), in [-1, 1] for scale 1, with
        a straight-through gradient (N, d); its digits in [0, L_i) (N, d) int64).

        Computed in float32, even under autocast."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            bounded = self.bound(z.float() / self._scale)  # (N, d)
            rounded = torch.round(bounded)  # z_hat, integers in [-floor(L/2), ceil(L/2) - 1]
            digits = rounded.long() + self._half_width  # (N, d) in [0, L_i)
            # value exactly round(f(z)), gradient the identity (paper eq. 2's round_ste)
            z_hat = straight_through(bounded, rounded) / self._half_width * self._scale
        return z_hat, digits

    def digits_to_codes(self, digits: torch.Tensor) -> torch.Tensor:
        """(N, d) level digits -> (N,) mixed-radix code indices."""
        return (digits * self._basis).sum(1)

    def codes_to_digits(self, codes: torch.Tensor) -> torch.Tensor:
        """(N,) code indices -> (N, d) level digits: the inverse of ``digits_to_codes``."""
        return codes.long().unsqueeze(1).div(self._basis, rounding_mode="floor") % self._levels

    def _decode_digits(self, digits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(N, d) digits -> (N, D) vectors for the decoder (the same arithmetic as forward)."""
        z_hat = (digits - self._half_width).float() / self._half_width * self._scale  # (N, d)
        return self.project_out(z_hat.to(dtype))

    def _param_dtype(self) -> torch.dtype:
        return next(self.parameters(), torch.empty(0)).dtype

    @property
    def codebook(self) -> torch.Tensor:
        """The (K, D) implicit code vectors as the decoder receives them, code k in row k."""
        codes = torch.arange(self.num_codes, device=self._levels.device)
        return self._decode_digits(self.codes_to_digits(codes), self._param_dtype())

    # -- forward and back ----------------------------------------------------------------
    @float32
    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        flat = flatten(z_e, self.code_dim)  # (B, D, *S) -> (N, D)
        z = self.project_in(flat)  # (N, D) -> (N, d)
        z_hat, digits = self.quantize(z)  # (N, d), (N, d)
        codes = self.digits_to_codes(digits)  # (N,)
        z_q = unflatten(self.project_out(z_hat.to(z.dtype)), z_e)  # (N, d) -> (B, D, *S)
        zero = torch.zeros((), device=z_e.device)
        return QuantizerOutput(
            z_q=z_q,
            codes=codes.reshape(z_e.shape[0], *z_e.shape[2:]),  # (N,) -> (B, *S)
            loss=zero,
            perplexity=perplexity(code_counts(codes, self.num_codes)),
            commitment_loss=zero,
            codebook_loss=zero,
        )

    @float32
    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, *spatial) -> (B, D, *spatial), equal to forward's z_q for those codes."""
        check_codes(codes, self.num_codes)
        digits = self.codes_to_digits(codes.reshape(-1))  # (B, *S) -> (N, d)
        flat = self._decode_digits(digits, self._param_dtype())  # (N, D)
        return flat.reshape(*codes.shape, self.code_dim).movedim(-1, 1)  # -> (B, D, *S)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, code_dim={self.code_dim}, num_codes={self.num_codes}"


# The levels the FSQ paper recommends (its table 3) for codebooks of 2^8 .. 2^16 codes; other
# sizes take the nearest power of two listed, or three equal levels for small codebooks.
RECOMMENDED_LEVELS = {
    2**8: (8, 6, 5),
    2**9: (8, 8, 8),
    2**10: (8, 5, 5, 5),
    2**11: (8, 8, 6, 5),
    2**12: (7, 5, 5, 5, 5),
    2**14: (8, 8, 8, 6, 5),
    2**16: (8, 8, 8, 5, 5, 5),
}


def levels_for(num_codes: int) -> tuple[int, ...]:
    """Levels whose product is about ``num_codes`` (``RECOMMENDED_LEVELS``)."""
    if num_codes < 2**8:
        side = max(2, round(num_codes ** (1 / 3)))
        return (side, side, side)
    nearest = min(RECOMMENDED_LEVELS, key=lambda k: abs(math.log2(k) - math.log2(num_codes)))
    return RECOMMENDED_LEVELS[nearest]


QUANTIZERS.register(
    "fsq", FiniteScalarQuantizer, about="finite scalar quantization (Mentzer et al. 2023)"
)

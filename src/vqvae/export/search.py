"""Every quantizer kind's code choice as a graph ONNX can hold, and where it is decided.

A quantizer's ``forward`` also computes losses and a code histogram (``torch.bincount``, whose
output size depends on the data), and ``nearest_code`` picks its blocking from the number of
rows in Python: neither traces with a dynamic batch. These modules compute the codes alone,
with the quantizer's own parameters and methods:

- ``vq``, ``ema``: argmin_k ||z - e_k||^2 = argmin_k (||e_k||^2 - 2 z.e_k), the one-shot form
  of ``nearest_code`` (paper section 3.1);
- ``cosine``: the same in the l2-normalised lookup space (ViT-VQGAN, section 3.2);
- ``fsq``: the bounded value rounded to the grid, read as a mixed-radix number (Mentzer et
  al. 2023, section 3.1);
- ``lfq``: the sign of each bit (Yu et al. 2023, section 3.1);
- residual levels of any of these: each level quantizes what the earlier ones left
  (SoundStream, algorithm 1).

``decided`` says, for codes computed from one ``z_e``, where no rounding can change them: the
nearest and second-nearest points of the kind's codebook or grid are further apart than
``tie_rtol`` of the distance (the rule of ``vqvae.quantizers._nearest.decided_rows``). Two
implementations of the same graph (PyTorch and ONNX Runtime) must agree there; elsewhere a
last-bit difference may pick the other of two nearly equal codes (docs/export.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.errors import VQVAEError
from vqvae.quantizers import (
    CosineVectorQuantizer,
    FiniteScalarQuantizer,
    LookupFreeQuantizer,
    Quantizer,
    ResidualVQ,
)
from vqvae.quantizers._nearest import decided_rows

TIE_RTOL = 1e-4  # as tests/test_compat.py: far above float32 rounding of the search's terms


class NearestSearch(nn.Module):
    """Rows (N, D) -> the index of the nearest codebook row (N,); for the cosine quantizer,
    in its l2-normalised lookup space."""

    def __init__(self, q: Quantizer) -> None:
        super().__init__()
        cosine = isinstance(q, CosineVectorQuantizer)
        codebook = (q.normalized_codebook() if cosine else q.codebook).detach().float()  # (K, d)
        self.project_in = q.project_in if cosine else nn.Identity()
        self.cosine = cosine
        self.register_buffer("codebook", codebook)
        self.register_buffer("e_sq", codebook.pow(2).sum(1))  # (K,)
        self.register_buffer("e_t", codebook.t().contiguous())  # (d, K)

    def space(self, flat: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, d): the rows where the search happens."""
        u = self.project_in(flat)
        return F.normalize(u, dim=1) if self.cosine else u

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        # ||e||^2 - 2 z.e: (N, d) @ (d, K) -> (N, K), as nearest_code's one-shot branch
        return torch.addmm(self.e_sq, self.space(flat), self.e_t, alpha=-2.0).argmin(1)

    def decided(self, flat: torch.Tensor, tie_rtol: float) -> torch.Tensor:
        return decided_rows(self.space(flat), self.codebook, tie_rtol)


class GridSearch(nn.Module):
    """FSQ: rows (N, D) -> the index of the grid point ``round(f(z))`` (N,)."""

    def __init__(self, q: FiniteScalarQuantizer) -> None:
        super().__init__()
        self.q = q

    def bounded(self, flat: torch.Tensor) -> torch.Tensor:
        q = self.q
        return q.bound(q.project_in(flat).float() / q._scale)  # (N, d), as q.quantize

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        _, digits = self.q.quantize(self.q.project_in(flat))  # (N, d) in [0, L_i)
        return self.q.digits_to_codes(digits)

    def decided(self, flat: torch.Tensor, tie_rtol: float) -> torch.Tensor:
        # per dimension r = |b - round(b)|; the second-nearest grid point moves the dimension
        # with the largest r to its other neighbour: d2 - d1 = (1 - r)^2 - r^2 = 1 - 2 r
        b = self.bounded(flat).double()
        r = (b - b.round()).abs()  # (N, d)
        d1 = r.square().sum(1)
        worst = r.max(1).values
        d2 = d1 + 1 - 2 * worst
        return 1 - 2 * worst > tie_rtol * d2.clamp_min(1e-12)


class SignSearch(nn.Module):
    """LFQ: rows (N, D) -> the binary number of the signs of their d projected dimensions."""

    def __init__(self, q: LookupFreeQuantizer) -> None:
        super().__init__()
        self.q = q

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        return self.q.bit_codes(self.q.project_in(flat) > 0)

    def decided(self, flat: torch.Tensor, tie_rtol: float) -> torch.Tensor:
        # the nearest corner of {-1, +1}^d and the second (the bit of smallest |z| flipped):
        # d2 - d1 = (|z| + 1)^2 - (|z| - 1)^2 = 4 |z|
        z = self.q.project_in(flat).double().abs()  # (N, d)
        d1 = (z - 1).square().sum(1)
        gap = 4 * z.min(1).values
        return gap > tie_rtol * (d1 + gap).clamp_min(1e-12)


def level_search(q: nn.Module) -> nn.Module:
    """The search module of one (non-residual) quantizer; one line for a kind without one."""
    if isinstance(q, FiniteScalarQuantizer):
        return GridSearch(q)
    if isinstance(q, LookupFreeQuantizer):
        return SignSearch(q)
    if isinstance(q, Quantizer):  # vq, ema, cosine: a codebook searched by distance
        return NearestSearch(q)
    raise VQVAEError(f"the quantizer {type(q).__name__} has no ONNX form of its code search")


class CodeSearch(nn.Module):
    """z_e (B, D, *S) -> codes (B, *S), or (B, Q, *S) for Q residual levels: what the model's
    ``encode`` returns."""

    def __init__(self, quantizer: nn.Module) -> None:
        super().__init__()
        self.residual = isinstance(quantizer, ResidualVQ)
        levels = list(quantizer.levels) if self.residual else [quantizer]
        self.levels = nn.ModuleList(level_search(q) for q in levels)
        # each level's (K, D) code vectors, subtracted from the residual as ResidualVQ does
        self.register_buffer("tables", torch.stack([q.codebook.detach().float() for q in levels]))

    def flat_codes(self, flat: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(N, D) -> codes (N, Q) and each level's input rows (N, D)."""
        codes, inputs = [], []
        residual = flat
        for search, table in zip(self.levels, self.tables, strict=True):
            inputs.append(residual)
            c = search(residual)  # (N,)
            codes.append(c)
            residual = residual - F.embedding(c, table)
        return torch.stack(codes, 1), inputs

    def forward(self, z_e: torch.Tensor) -> torch.Tensor:
        b, d, *s = z_e.shape
        flat = z_e.movedim(1, -1).reshape(-1, d)  # (B, D, *S) -> (N, D)
        codes, _ = self.flat_codes(flat)  # (N, Q)
        if not self.residual:
            return codes.reshape(b, *s)  # (N, 1) -> (B, *S)
        return codes.reshape(b, *s, len(self.levels)).movedim(-1, 1)  # (N, Q) -> (B, Q, *S)

    @torch.no_grad()
    def decided(self, z_e: torch.Tensor, tie_rtol: float = TIE_RTOL) -> torch.Tensor:
        """(B, *S) bool: where every level's code is decided (``decided``: module doc)."""
        b, d, *s = z_e.shape
        flat = z_e.float().movedim(1, -1).reshape(-1, d)  # (B, D, *S) -> (N, D)
        _, inputs = self.flat_codes(flat)
        ok = torch.ones(flat.shape[0], dtype=torch.bool, device=flat.device)
        for search, rows in zip(self.levels, inputs, strict=True):
            ok &= search.decided(rows, tie_rtol)
        return ok.reshape(b, *s)


class CodeLookup(nn.Module):
    """Codes (B, *S), or (B, Q, *S) -> z_q (B, D, *S): each level's code vector, summed over
    the levels (the quantizer's ``lookup`` as one gather from its (K, D) code vectors)."""

    def __init__(self, quantizer: nn.Module) -> None:
        super().__init__()
        self.residual = isinstance(quantizer, ResidualVQ)
        levels = list(quantizer.levels) if self.residual else [quantizer]
        self.register_buffer("tables", torch.stack([q.codebook.detach().float() for q in levels]))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        if not self.residual:
            return F.embedding(codes, self.tables[0]).movedim(-1, 1)  # (B, *S, D) -> (B, D, *S)
        z = sum(F.embedding(codes[:, i], t) for i, t in enumerate(self.tables))  # (B, *S, D)
        return z.movedim(-1, 1)

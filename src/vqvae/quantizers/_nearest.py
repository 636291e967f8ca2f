"""The one nearest-code search that every quantizer uses.

argmin_k ||z - e_k||^2 = argmin_k (||e_k||^2 - 2 z.e_k), since ||z||^2 does not depend on k:
one matrix product per block, in float32 even under autocast (half precision distances pick
the wrong code often enough to hurt), with no autograd graph. When the N x K distance
matrix would exceed ``ONE_SHOT_BYTES`` (or ``chunk_bytes``, if smaller) it is never held
whole: rows are searched a chunk at a time, and within a chunk the codes a block of
``code_block`` at a time, keeping each row's nearest so far, each block ``chunk_bytes`` at
most. Blocks near the CPU's cache size are
what make a large K fast: against chunks of 64 MiB of whole rows (release 0.3's search), one
MNIST batch's 6,272 vectors were searched 1.45-1.95x faster among 4,096 to 65,536 codes
(``benchmarks/nearest_search.py``, BENCHMARKS.md section 8).
"""

from __future__ import annotations

import torch

# Bytes of the whole (N x K) float32 distance matrix computed in one call; beyond it, blocks
# of at most CHUNK_BYTES (16 MiB: near the cache, and matrix products still large enough
# to be fast) of at most CODE_BLOCK codes.
ONE_SHOT_BYTES = 64 * 2**20
CHUNK_BYTES = 16 * 2**20
CODE_BLOCK = 4096


@torch.no_grad()
def nearest_code(
    z: torch.Tensor,
    codebook: torch.Tensor,
    chunk_bytes: int = CHUNK_BYTES,
    code_block: int = CODE_BLOCK,
) -> torch.Tensor:
    """Index of the nearest codebook row for every row of ``z`` (the first on a tie).

    z: (N, D), codebook: (K, D) -> (N,) int64.
    """
    if z.dim() != 2 or codebook.dim() != 2 or z.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"nearest_code: expected z (N, D) and codebook (K, D) with the same D, "
            f"got {tuple(z.shape)} and {tuple(codebook.shape)}"
        )
    with torch.autocast(device_type=z.device.type, enabled=False):
        z = z.float()
        e = codebook.float()
        n, k = z.shape[0], e.shape[0]
        e_sq = e.pow(2).sum(1)  # (K,)
        e_t = e.t().contiguous()  # (D, K)
        if 4 * n * k <= min(ONE_SHOT_BYTES, chunk_bytes):
            # ||e||^2 - 2 z.e in one fused call: (N, D) @ (D, K) -> (N, K)
            return torch.addmm(e_sq, z, e_t, alpha=-2.0).argmin(1)
        cols = min(k, code_block)
        rows = max(1, chunk_bytes // (4 * cols))
        codes = torch.empty(n, dtype=torch.long, device=z.device)
        for start in range(0, n, rows):
            chunk = z[start : start + rows]  # (rows, D)
            best, index = None, None
            for first in range(0, k, cols):
                d = torch.addmm(
                    e_sq[first : first + cols], chunk, e_t[:, first : first + cols], alpha=-2.0
                )
                value, i = d.min(1)  # (rows,) each: the block's nearest, its first on a tie
                if best is None:
                    best, index = value, i
                else:  # strictly closer only, so a tie keeps the earlier code, as argmin does
                    closer = value < best
                    best = torch.where(closer, value, best)
                    index = torch.where(closer, i + first, index)
            codes[start : start + rows] = index
        return codes


def decided_rows(z: torch.Tensor, codebook: torch.Tensor, tie_rtol: float = 1e-4) -> torch.Tensor:
    """(N,) bool: rows of ``z`` (N, D) whose nearest code in ``codebook`` (K, D) beats the
    second nearest by more than ``tie_rtol`` of the size of the numbers a float32 search
    computes, so that no other kernel's rounding (another CPU's, ONNX Runtime's) can reorder
    them: where codes computed by two implementations must agree (docs/export.md).

    The size is the larger of the second-nearest squared distance and ||z||^2 + ||e||^2 (in
    float64): the search computes ||e||^2 - 2 z.e, whose rounding error grows with the norms,
    not with the distance, so a vector very near two codes far from the origin is a tie even
    when the two distances differ by more than 1e-4 of themselves. (tests/test_compat.py
    takes the margin relative to the distance alone; on the ``mnist`` preset's MNIST test
    split one code decided that way came out otherwise from PyTorch and ONNX Runtime: a margin
    of 2.5e-4 of the distance, 0.005, with ||z||^2 = 3.2. BENCHMARKS.md, "ONNX export".)"""
    with torch.no_grad():
        z, e = z.double(), codebook.double()
        d = torch.cdist(z, e) ** 2  # (N, K)
    if d.shape[1] < 2:
        return torch.ones(d.shape[0], dtype=torch.bool, device=d.device)
    two, index = d.topk(2, dim=-1, largest=False)  # (N, 2) each
    size = z.pow(2).sum(1) + e.pow(2).sum(1)[index[:, 1]]  # (N,)
    size = torch.maximum(size, two[:, 1]).clamp_min(1e-12)
    return two[:, 1] - two[:, 0] > tie_rtol * size

"""The one nearest-code search that every quantizer uses.

argmin_k ||z - e_k||^2 = argmin_k (||e_k||^2 - 2 z.e_k), since ||z||^2 does not depend on k:
one matrix product per chunk of rows, in float32 even under autocast (half precision
distances pick the wrong code often enough to hurt), with no autograd graph, and in row
chunks so the full N x K distance matrix is never held at once.
"""

from __future__ import annotations

import torch

# Bytes of one chunk's (rows x K) float32 distance block; 64 MiB keeps the 65,536 x 65,536
# search far below 1 GiB of extra memory while the matmuls stay large enough to be fast.
CHUNK_BYTES = 64 * 2**20


@torch.no_grad()
def nearest_code(
    z: torch.Tensor, codebook: torch.Tensor, chunk_bytes: int = CHUNK_BYTES
) -> torch.Tensor:
    """Index of the nearest codebook row for every row of ``z``.

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
        e_sq = e.pow(2).sum(1)  # (K,)
        e_t = e.t().contiguous()  # (D, K)
        rows = max(1, chunk_bytes // (4 * e.shape[0]))
        if rows >= z.shape[0]:
            # ||e||^2 - 2 z.e in one fused call: (N, D) @ (D, K) -> (N, K)
            return torch.addmm(e_sq, z, e_t, alpha=-2.0).argmin(1)
        codes = torch.empty(z.shape[0], dtype=torch.long, device=z.device)
        for start in range(0, z.shape[0], rows):
            chunk = z[start : start + rows]  # (rows, D)
            codes[start : start + rows] = torch.addmm(e_sq, chunk, e_t, alpha=-2.0).argmin(1)
        return codes

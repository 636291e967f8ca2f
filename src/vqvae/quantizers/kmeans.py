"""k-means (Lloyd's algorithm) for data-dependent codebook initialization (docs/design-notes.md).

Seeding the codebook from the first batch of encoder outputs, instead of a random
uniform codebook far from the data, is what keeps most codes in use from step one.
"""

from __future__ import annotations

import torch

from vqvae.quantizers._nearest import nearest_code


def sample_rows(x: torch.Tensor, k: int) -> torch.Tensor:
    """k random rows of x (N, D) -> (k, D), without replacement when N >= k.

    Uses the global RNG on purpose, so that checkpointed RNG state makes restarts reproducible.
    """
    n = x.shape[0]
    if n >= k:
        idx = torch.randperm(n, device=x.device)[:k]
    else:
        idx = torch.randint(0, n, (k,), device=x.device)
    return x[idx].clone()


@torch.no_grad()
def kmeans(
    x: torch.Tensor, k: int, iters: int = 10, init: torch.Tensor | None = None
) -> torch.Tensor:
    """Cluster x (N, D) into k centroids (k, D). Empty clusters are re-seeded from data rows.

    ``init`` (k, D): start from these centroids (a warm start) instead of k random rows.
    """
    x = x.float()
    centroids = sample_rows(x, k) if init is None else init.detach().float().clone()
    for _ in range(iters):
        codes = nearest_code(x, centroids)  # (N,)
        counts = torch.bincount(codes, minlength=k).to(x.dtype)  # (k,)
        sums = torch.zeros_like(centroids).index_add_(0, codes, x)  # (k, D)
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids, sums / counts.clamp(min=1)[:, None])
        if empty.any():
            centroids[empty] = sample_rows(x, int(empty.sum()))
    return centroids

"""Drawing one discrete value per row of logits: what every autoregressive sampler shares
(the priors over codes, the WaveNet over mu-law samples)."""

from __future__ import annotations

from collections.abc import Callable

import torch

# Draws one value per row of a (n, K) logits matrix.
Draw = Callable[[torch.Tensor], torch.Tensor]


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

"""The 1x1 linear maps between the encoder's D channels and a quantizer's own low dimension.

The factorised quantizers (FSQ, LFQ, cosine VQ) quantize in a space of d dimensions and hand
the decoder D channels. On flattened rows a 1x1 convolution is a linear layer: (N, D) -> (N, d).
When D == d the map is the identity with no parameters, so a quantizer built with
code_dim == d quantizes the encoder output itself, as the FSQ and LFQ papers do.
"""

from __future__ import annotations

from torch import nn


def projection(in_dim: int, out_dim: int) -> nn.Module:
    """A linear map (N, in_dim) -> (N, out_dim); ``nn.Identity`` when the sizes agree."""
    if in_dim < 1 or out_dim < 1:
        raise ValueError(f"expected projection sizes >= 1, got {in_dim} -> {out_dim}")
    return nn.Identity() if in_dim == out_dim else nn.Linear(in_dim, out_dim)

"""Transformer prior over VQ-VAE code grids.

A decoder-only, pre-LayerNorm Transformer with causal self-attention (Vaswani et al. 2017,
"Attention Is All You Need", arXiv:1706.03762; the GPT-2 layout of Radford et al. 2019,
as in nanoGPT's ``model.py``) over the raster-scanned grid, the prior used on VQ-VAE codes
by VQGAN (Esser, Rombach, Ommer 2021, arXiv:2012.09841, section 3.2). It stands beside the
gated PixelCNN of the VQ-VAE paper (van den Oord et al. 2017, arXiv:1711.00937, section 4.2).

- Codes of any rank are scanned in raster order; a position's embedding is the sum of one
  learned embedding per axis (row + column for images, frame + row + column for video), so
  that the model knows which codes are neighbours in the grid.
- A start token opens the sequence (one learned vector when unconditional, one per class
  when conditional, plus a projection of a global conditioning vector), so that the first
  code is predicted too and the condition is a token the whole grid attends to.
- A code context (``Condition.context``, such as the previous frames' codes) is a prefix of
  tokens before the start token, with its own code and axis embeddings: every code attends
  to all of it.
- Sampling keeps a key/value cache: each new code runs one token through the network
  instead of the whole prefix (``use_cache=False`` keeps the prefix recomputation, to
  compare against).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.priors.base import Condition, Draw, Prior, PriorConfig
from vqvae.registry import PRIORS


@dataclass(frozen=True)
class TransformerConfig(PriorConfig):
    # Defaults sized for MNIST's 7x7 grids with K=512 on a laptop CPU (a few hundred
    # milliseconds per batch of 64 on 2 cores); scale d_model / num_layers up on a GPU.
    d_model: int = 128
    num_layers: int = 6
    num_heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("d_model", "num_layers", "num_heads", "mlp_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive int, got {getattr(self, name)}")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model: expected a multiple of num_heads={self.num_heads}, got {self.d_model}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {self.dropout}")


def grid_positions(axes: nn.ModuleList) -> torch.Tensor:
    """The sum of one learned embedding per axis at every raster position of a grid:
    (prod(shape), d)."""
    n = len(axes)
    pos: torch.Tensor | float = 0.0
    for i, emb in enumerate(axes):
        view = [1] * n + [emb.weight.shape[1]]
        view[i] = emb.weight.shape[0]
        pos = pos + emb.weight.view(view)  # broadcast to (s_0, ..., s_{n-1}, d)
    assert isinstance(pos, torch.Tensor)
    return pos.reshape(-1, pos.shape[-1])  # (*shape, d) -> (prod(shape), d)


def init_gpt2_weights(m: nn.Module) -> None:
    """GPT-2's N(0, 0.02): PyTorch's default N(0, 1) embeddings would swamp the LayerNorms."""
    if isinstance(m, (nn.Linear, nn.Embedding)):
        nn.init.normal_(m.weight, std=0.02)
    if isinstance(m, nn.Linear) and m.bias is not None:
        nn.init.zeros_(m.bias)


@dataclass
class KVCache:
    """Keys and values of one attention layer for every position so far: (B, H, T, d_head)."""

    k: torch.Tensor
    v: torch.Tensor


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention, causal unless ``causal=False`` (the bidirectional
    attention of the masked-token prior, ``maskgit.py``)."""

    def __init__(self, d_model: int, num_heads: int, dropout: float, causal: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.causal = causal
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, start: int = 0
    ) -> torch.Tensor:
        """``x`` (B, S, d) holds positions ``start .. start + S``; with a cache, their keys
        and values are written into it and the queries attend to every cached position."""
        b, s, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        # (B, S, d) -> (B, H, S, d/H)
        q, k, v = (
            t.view(b, s, self.num_heads, d // self.num_heads).transpose(1, 2) for t in (q, k, v)
        )
        if cache is not None:
            if s > 1 and start > 0:
                raise ValueError("KV cache: expected one new token at a time after the first chunk")
            cache.k[:, :, start : start + s] = k
            cache.v[:, :, start : start + s] = v
            k, v = cache.k[:, :, : start + s], cache.v[:, :, : start + s]
        # a single new query may see every cached key: no mask needed then
        causal = self.causal and s > 1
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=causal, dropout_p=self.dropout if self.training else 0.0
        )
        y = y.transpose(1, 2).reshape(b, s, d)  # (B, H, S, d/H) -> (B, S, d)
        return self.proj(y)


class Block(nn.Module):
    """Pre-LayerNorm block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))`` (GPT-2)."""

    def __init__(
        self, d_model: int, num_heads: int, mlp_ratio: int, dropout: float, causal: bool = True
    ) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, num_heads, dropout, causal)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, mlp_ratio * d_model),
            nn.GELU(),
            nn.Linear(mlp_ratio * d_model, d_model),
            nn.Dropout(dropout),
        )

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, start: int = 0
    ) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, start)
        return x + self.mlp(self.ln2(x))


class TransformerPrior(Prior):
    """GPT-style prior over ``(B, *shape)`` code grids of any rank, optionally conditional.

    Step t of the sequence reads the code at raster position t - 1 (the start token at
    t = 0) and predicts the code at position t; a context, if any, comes before the start.
    """

    config_class = TransformerConfig
    config: TransformerConfig

    def __init__(self, config: TransformerConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.tok = nn.Embedding(c.num_codes, c.d_model)
        self.start = nn.Embedding(max(c.num_classes, 1), c.d_model)  # one start token per class
        self.axes = nn.ModuleList(nn.Embedding(s, c.d_model) for s in c.shape)
        self.vec = nn.Linear(c.cond_dim, c.d_model) if c.cond_dim else None
        if c.context_shape:
            self.context_tok = nn.Embedding(c.context_codes, c.d_model)
            self.context_axes = nn.ModuleList(nn.Embedding(s, c.d_model) for s in c.context_shape)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            Block(c.d_model, c.num_heads, c.mlp_ratio, c.dropout) for _ in range(c.num_layers)
        )
        self.ln_f = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.num_codes)
        self.apply(self._init_weights)

    @classmethod
    def migrate_state_dict(cls, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Release 0.1 (2-D only) named the two axis embeddings ``row`` and ``col``."""
        renames = {"row.weight": "axes.0.weight", "col.weight": "axes.1.weight"}
        return {renames.get(k, k): v for k, v in state.items()}

    _init_weights = staticmethod(init_gpt2_weights)

    _positions = staticmethod(grid_positions)

    def _context_tokens(self, cond: Condition) -> torch.Tensor | None:
        """The context's codes as tokens with their positions: (B, m, d), or None."""
        if cond.context is None:
            return None
        flat = cond.context.reshape(cond.context.shape[0], -1)  # (B, *ctx) -> (B, m)
        return self.context_tok(flat) + self._positions(self.context_axes)

    def _embed(self, prefix: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Input for the context (m tokens), then steps 0 .. L: the start token and the codes
        of ``prefix`` (B, L) -> (B, m + L + 1, d).

        The position added at step t is that of the code predicted there (position t), so
        every step knows where it writes; it carries no data, so causality is unchanged.
        """
        b, length = prefix.shape
        start_ids = cond.labels if cond.labels is not None else prefix.new_zeros(b)
        start = self.start(start_ids)  # (B, d)
        if self.vec is not None and cond.vector is not None:
            start = start + self.vec(cond.vector)
        x = torch.cat([start[:, None], self.tok(prefix)], dim=1)  # (B, L+1, d)
        x = x + self._positions(self.axes)[: length + 1]
        context = self._context_tokens(cond)
        if context is not None:
            x = torch.cat([context, x], dim=1)  # (B, m + L + 1, d)
        return self.drop(x)

    @property
    def _context_length(self) -> int:
        return math.prod(self.config.context_shape) if self.config.context_shape else 0

    def _logits(self, codes: torch.Tensor, cond: Condition) -> torch.Tensor:
        b = codes.shape[0]
        x = self._embed(codes.reshape(b, -1)[:, :-1], cond)  # (B, *shape) -> (B, m + L, d)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x[:, self._context_length :]))  # (B, L, K)
        # (B, L, K) -> (B, K, L) -> (B, K, *shape)
        return logits.transpose(1, 2).reshape(b, -1, *codes.shape[1:])

    def sample(
        self,
        n: int,
        cond: Condition | torch.Tensor | int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """``n`` grids ``(n, *shape)`` int64, drawn position by position in raster order.

        ``cond``: a ``Condition`` (or labels alone: an int or ``(n,)`` tensor) for a
        conditional prior, else None.
        ``use_cache``: keep keys/values between steps (default) or recompute the prefix.
        """
        sampler = self._sample_cached if use_cache else self._sample_uncached
        return self._run_sampler(sampler, n, cond, temperature, top_k, generator)

    def _sample_uncached(self, n: int, cond: Condition, draw: Draw) -> torch.Tensor:
        """Run the whole prefix through the network for every new code."""
        shape = self.config.shape
        codes = torch.zeros(n, math.prod(shape), dtype=torch.long, device=self.device)
        for t in range(codes.shape[1]):
            x = self._embed(codes[:, :t], cond)  # (n, m + t + 1, d)
            for block in self.blocks:
                x = block(x)
            codes[:, t] = draw(self.head(self.ln_f(x[:, -1])))  # logits (n, K)
        return codes.view(n, *shape)  # (n, L) -> (n, *shape)

    def _sample_cached(self, n: int, cond: Condition, draw: Draw) -> torch.Tensor:
        """Run one token per step; earlier keys and values come from the cache."""
        c = self.config
        steps = math.prod(c.shape)
        total = self._context_length + steps
        d_head = c.d_model // c.num_heads
        ref = self.tok.weight
        caches = [
            KVCache(
                k=ref.new_zeros(n, c.num_heads, total, d_head),
                v=ref.new_zeros(n, c.num_heads, total, d_head),
            )
            for _ in self.blocks
        ]
        positions = self._positions(self.axes)  # (L, d)
        codes = torch.zeros(n, steps, dtype=torch.long, device=ref.device)
        x = self._embed(codes[:, :0], cond)  # the context and the start token: (n, m + 1, d)
        done = 0  # tokens already in the caches
        for t in range(steps):
            for block, cache in zip(self.blocks, caches, strict=True):
                x = block(x, cache, start=done)
            done += x.shape[1]
            codes[:, t] = draw(self.head(self.ln_f(x[:, -1])))  # logits (n, K)
            if t + 1 < steps:
                x = (self.tok(codes[:, t]) + positions[t + 1])[:, None]  # (n, d) -> (n, 1, d)
        return codes.view(n, *c.shape)  # (n, L) -> (n, *shape)


PRIORS.register(
    "transformer", TransformerPrior, about="decoder-only Transformer (GPT-2 layout): any rank"
)

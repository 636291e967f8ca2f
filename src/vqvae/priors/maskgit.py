"""Masked-token (MaskGIT) prior over VQ-VAE code grids: a whole grid in a handful of passes.

MaskGIT (Chang, Zhang, Jiang, Liu, Freeman 2022, "MaskGIT: Masked Generative Image
Transformer", arXiv:2202.04200) replaces the raster-order prior of the VQ-VAE paper
(van den Oord et al. 2017, arXiv:1711.00937, section 3.3) with a bidirectional Transformer
that predicts masked codes from every visible one:

- Training (MaskGIT section 3.1): each grid gets its own mask ratio ``gamma(r)``,
  ``r ~ U(0, 1)``, from the cosine schedule ``gamma(r) = cos(pi r / 2)``; that many of its
  positions, chosen at random, are replaced by a [MASK] token, and the cross-entropy is
  taken on the masked positions only.
- Sampling (MaskGIT section 3.2): start from an all-[MASK] grid; at pass ``s`` of ``S``
  draw a code at every masked position, score each by its log-probability plus Gumbel
  noise annealed linearly to zero (MaskGIT's "choice temperature", 4.5 in its code; without
  the noise the samples lose their diversity), and keep all but the
  ``floor(N cos(pi/2 (s+1)/S))`` least confident, which are masked again. After ``S``
  passes every position holds a code (``masked_counts``).
- Classifier-free guidance (Ho & Salimans 2022, arXiv:2207.12598, as Muse does, Chang et
  al. 2023, arXiv:2301.00704): a conditional prior drops its global condition (labels, a
  vector) for ``cond_dropout`` of the training grids, replacing it by a learned null; at
  sampling the logits are ``uncond + guidance * (cond - uncond)``, so ``guidance = 1`` is
  the plain conditional.
- Inpainting: ``inpaint`` starts from the given grid with only the chosen positions
  masked; the others are never redrawn and come back exactly (tested).

MaskGIT has no exact likelihood. ``nll`` gives instead the order-agnostic bound of
Hoogeboom et al. 2022 ("Autoregressive Diffusion Models", arXiv:2110.02037, eq. 4): every
order of the positions defines a normalised autoregressive model from the same network, so
``-log p(x) <= E_sigma[-log p_sigma(x)] = D E_t [1/(D-t+1) sum_{k >= t} -log p(x_sigma(k) |
x_sigma(<t))]``, estimated with one random ``t`` and order per grid: an upper bound, never
to be read as an exact figure. A code context (``Condition.context``, the previous frames'
codes) is a prefix of tokens every position attends to, as in the Transformer prior.

Width, depth and heads default to the Transformer prior's, so that a speed comparison
compares the decoding, not the size of the network (docs/maskgit.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.priors.base import Condition, CondLike, Draw, Prior
from vqvae.priors.parallel import DilatedBlock
from vqvae.priors.transformer import Block, TransformerConfig, grid_positions, init_gpt2_weights
from vqvae.registry import PRIORS


@dataclass(frozen=True)
class MaskGITConfig(TransformerConfig):
    # the fraction of training grids whose labels / vector are replaced by the null
    # condition, so that the same network also gives the unconditional logits that
    # classifier-free guidance needs (Muse: 0.1); only used by a conditional prior
    cond_dropout: float = 0.1
    # sampling defaults, measured on MNIST (BENCHMARKS.md section 16): 8 passes judged as
    # well as 10 and 12; guidance 2 lifted the samples judged as their class from 82% to 98%
    steps: int = 8
    guidance: float = 2.0  # classifier-free guidance scale (1 = none; unconditional: unused)
    noise: float = 4.5  # Gumbel noise on the log-confidences at pass 0 (MaskGIT's 4.5)
    # A context of k frames of the grid's own shape, (k, *shape), read where it lies: at each
    # position, the k context codes there are embedded, concatenated and projected into that
    # position's token, and the last frame's code gets a copy logit (as the PixelCNN's copy
    # path, pixelcnn.py). The sequence stays the grid's own length, where a prefix of k more
    # grids of tokens (False: the Transformer prior's way) would make every pass (k + 1)^2
    # times dearer in attention; the video prior's next frame (video.py) reads its previous
    # frames this way.
    context_aligned: bool = False
    # An aligned 2-D context through this many residual blocks of dilated 3x3 convolutions
    # (the parallel video prior's, parallel.py; dilations 1, 2, 4, 8, ...) before it joins
    # the tokens: what lies near a position in the context (a turn shifts the view) reaches
    # it through translation-equivariant convolutions rather than learnt attention. Each
    # block reads the label (the null one where guidance drops it). 0: none.
    context_blocks: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.context_aligned and self.context_shape[1:] != self.shape:
            raise ValueError(
                f"context_aligned: expected a context of frames of the grid's shape "
                f"(k, {', '.join(map(str, self.shape))}), got {self.context_shape}"
            )
        if self.context_blocks < 0 or (
            self.context_blocks and not (self.context_aligned and len(self.shape) == 2)
        ):
            raise ValueError(
                f"context_blocks: expected 0, or blocks over an aligned context of 2-D "
                f"frames, got {self.context_blocks}"
            )
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ValueError(
                f"cond_dropout: expected a probability in [0, 1), got {self.cond_dropout}"
            )
        check_steps(self.steps)
        check_guidance(self.guidance)
        if not self.noise >= 0:
            raise ValueError(f"noise: expected a number >= 0, got {self.noise!r}")


def check_steps(steps: object) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected a positive number of passes, got {steps!r}")
    return steps


def check_guidance(guidance: object) -> float:
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or guidance < 0:
        raise ValueError(f"guidance: expected a number >= 0, got {guidance!r}")
    return float(guidance)


def cosine_schedule(r: torch.Tensor) -> torch.Tensor:
    """MaskGIT's mask ratio ``gamma(r) = cos(pi r / 2)``: 1 at r = 0, 0 at r = 1."""
    return torch.cos(0.5 * math.pi * r)


def masked_counts(total: torch.Tensor, steps: int) -> torch.Tensor:
    """How many of each grid's ``total`` (n,) unknown positions stay masked after each of
    ``steps`` passes: (steps, n), ``floor(total * gamma((s + 1) / steps))``, with at least
    one position fixed per pass while any remain and none left after the last."""
    ratio = torch.arange(1, steps + 1, dtype=torch.float64) / steps  # (S,)
    counts = torch.floor(total.double()[None] * cosine_schedule(ratio)[:, None]).long()
    counts[-1] = 0
    previous = total.long()
    for s in range(steps):
        counts[s] = torch.minimum(counts[s], previous - 1).clamp(min=0)
        previous = counts[s]
    return counts


def random_subset(count: torch.Tensor, length: int, generator: torch.Generator | None = None):
    """A boolean (n, length) mask with ``count[i]`` positions of row i chosen uniformly."""
    noise = torch.rand(len(count), length, generator=generator, device=count.device)
    rank = noise.argsort(dim=1).argsort(dim=1)  # each position's place in a random order
    return rank < count[:, None]


def _repeat(cond: Condition, times: int) -> Condition:
    """The condition of a batch repeated ``times`` over (the guided pass's two halves)."""

    def rep(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.repeat(times, *[1] * (t.dim() - 1))

    return Condition(labels=rep(cond.labels), vector=rep(cond.vector), context=rep(cond.context))


class MaskGITPrior(Prior):
    """Bidirectional Transformer over ``(B, *shape)`` code grids of any rank with a [MASK]
    token (id ``num_codes``), drawn in ``steps`` passes (see the module docstring)."""

    config_class = MaskGITConfig
    config: MaskGITConfig
    exact_likelihood: ClassVar[bool] = False
    sampling_options: ClassVar[tuple[str, ...]] = ("steps", "guidance")
    can_inpaint: ClassVar[bool] = True

    def __init__(self, config: MaskGITConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.mask_id = c.num_codes
        self.tok = nn.Embedding(c.num_codes + 1, c.d_model)  # the codes and [MASK]
        self.axes = nn.ModuleList(nn.Embedding(s, c.d_model) for s in c.shape)
        # one condition token: a label's embedding, the last one the null (no label, or
        # dropped for guidance), plus a projection of the global vector when given
        self.cond_tok = nn.Embedding(c.num_classes + 1, c.d_model)
        self.vec = nn.Linear(c.cond_dim, c.d_model) if c.cond_dim else None
        if c.context_aligned:
            self.context_tok = nn.Embedding(c.context_codes, c.d_model)
            self.context_mix = nn.Linear(c.context_shape[0] * c.d_model, c.d_model)
            self.context_net = nn.ModuleList(
                DilatedBlock(c.d_model, 2 ** (i % 4), c.num_classes + 1)
                for i in range(c.context_blocks)
            )
            self.copy = nn.Linear(c.d_model, 1)
        elif c.context_shape:
            self.context_tok = nn.Embedding(c.context_codes, c.d_model)
            self.context_axes = nn.ModuleList(nn.Embedding(s, c.d_model) for s in c.context_shape)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            Block(c.d_model, c.num_heads, c.mlp_ratio, c.dropout, causal=False)
            for _ in range(c.num_layers)
        )
        self.ln_f = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.num_codes)
        self.apply(init_gpt2_weights)
        if c.context_aligned:
            # starts where the copied code holds about half the probability among K codes
            nn.init.constant_(self.copy.bias, math.log(c.num_codes))

    # -- the network ----------------------------------------------------------------------

    def _global(self, cond: Condition) -> bool:
        """Whether ``cond`` holds a global condition that guidance can drop."""
        return cond.labels is not None or cond.vector is not None

    def _labels(self, cond: Condition, keep: torch.Tensor | None, b: int) -> torch.Tensor:
        """(B,) label ids, the null one where there is none or ``keep`` drops it."""
        null = self.config.num_classes
        labels = cond.labels
        if labels is None:
            labels = torch.full((b,), null, device=self.device)
        return labels if keep is None else torch.where(keep, labels, null)

    def _aligned_context(self, cond: Condition, keep: torch.Tensor | None) -> torch.Tensor:
        """An aligned context's contribution to each position's token, (B, L, d): the same at
        every pass of a draw, so ``_decode`` computes it once."""
        assert cond.context is not None
        b, length = cond.context.shape[0], math.prod(self.config.shape)
        frames = cond.context.reshape(b, -1, length)  # (B, k, *shape) -> (B, k, L)
        here = self.context_tok(frames.transpose(1, 2))  # (B, L, k, d)
        z = self.context_mix(here.flatten(2))  # (B, L, k*d) -> (B, L, d)
        if self.context_net:
            labels = self._labels(cond, keep, b)
            z = z.transpose(1, 2).reshape(b, -1, *self.config.shape)  # -> (B, d, h, w)
            for block in self.context_net:
                z = block(z, labels)
            z = z.flatten(2).transpose(1, 2)  # (B, d, h, w) -> (B, L, d)
        return z

    def _network(
        self,
        tokens: torch.Tensor,
        cond: Condition,
        keep: torch.Tensor | None = None,
        aligned: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Tokens (B, L) in ``[0, K]`` ([MASK] = K) -> logits (B, L, K). ``keep`` (B,) bool:
        which grids see their global condition (the others the null); None: all.
        ``aligned``: ``_aligned_context(cond, keep)`` when already computed."""
        b, length = tokens.shape
        g = self.cond_tok(self._labels(cond, keep, b))  # (B, d)
        if self.vec is not None and cond.vector is not None:
            v = self.vec(cond.vector)  # (B, d)
            g = g + (v if keep is None else v * keep[:, None].to(v.dtype))
        x = self.tok(tokens) + grid_positions(self.axes)  # (B, L, d)
        parts = [g[:, None], x]  # (B, 1, d), (B, L, d)
        if self.config.context_aligned:
            parts[1] = x + (self._aligned_context(cond, keep) if aligned is None else aligned)
        elif cond.context is not None:
            flat = cond.context.reshape(b, -1)  # (B, *context_shape) -> (B, m)
            parts.insert(0, self.context_tok(flat) + grid_positions(self.context_axes))
        x = self.drop(torch.cat(parts, dim=1))  # (B, m + 1 + L, d)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x[:, -length:])  # (B, L, d)
        logits = self.head(x)  # (B, L, K)
        if self.config.context_aligned:
            assert cond.context is not None
            last = cond.context[:, -1].reshape(b, length, 1)  # the last frame's codes (B, L, 1)
            logits = logits.scatter_add(2, last, self.copy(x).to(logits.dtype))
        return logits

    def _logits(self, codes: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Codes (B, *shape) in ``[0, K]``, [MASK] = K at hidden positions -> (B, K, *shape)
        logits of every position given the visible codes."""
        b = codes.shape[0]
        logits = self._network(codes.reshape(b, -1), cond)  # (B, *shape) -> (B, L) -> (B, L, K)
        return logits.transpose(1, 2).reshape(b, -1, *codes.shape[1:])  # -> (B, K, *shape)

    def check_mask(self, mask: object, batch: int) -> torch.Tensor:
        """A boolean mask of shape ``shape`` or ``(B, *shape)`` as (B, *shape) on the device."""
        shape = self.config.shape
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"mask: expected a bool tensor of shape {shape}, got {got}")
        if tuple(mask.shape) == shape:
            mask = mask.expand(batch, *shape)
        if tuple(mask.shape) != (batch, *shape):
            raise ValueError(
                f"mask: expected shape {shape} or {(batch, *shape)}, got {tuple(mask.shape)}"
            )
        return mask.to(self.device)

    def forward(
        self, codes: torch.Tensor, cond: CondLike = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits ``(B, K, *shape)`` of every position given the codes outside ``mask``
        (bool, ``shape`` or ``(B, *shape)``, True = hidden; default: all hidden)."""
        codes = self.check_codes(codes)
        cond = self.check_condition(cond, codes.shape[0])
        hidden = (
            torch.ones_like(codes, dtype=torch.bool)
            if mask is None
            else self.check_mask(mask, codes.shape[0])
        )
        return self._logits(codes.masked_fill(hidden, self.mask_id), cond)

    # -- training and held-out figures ---------------------------------------------------

    def log_prob(self, codes: torch.Tensor, cond: CondLike = None) -> torch.Tensor:
        raise ValueError(
            "a maskgit prior gives no exact likelihood; nll() gives the order-agnostic upper bound"
        )

    def _masked_cross_entropy(
        self,
        codes: torch.Tensor,
        cond: Condition,
        count: torch.Tensor,
        generator: torch.Generator | None,
        keep: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask ``count`` (B,) random positions of each grid: their cross-entropies (B, L),
        zero elsewhere, and the mask (B, L)."""
        b = codes.shape[0]
        flat = codes.reshape(b, -1)  # (B, *shape) -> (B, L)
        mask = random_subset(count, flat.shape[1], generator)
        logits = self._network(flat.masked_fill(mask, self.mask_id), cond, keep)  # (B, L, K)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        nats = F.cross_entropy(logits.transpose(1, 2), flat, reduction="none")  # (B, L)
        return nats * mask, mask

    def training_loss(
        self, codes: torch.Tensor, cond: CondLike = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """MaskGIT's loss: mean cross-entropy (nats) on the masked positions, each grid masked
        at its own cosine-schedule ratio; in training mode, a conditional prior's global
        condition is dropped for ``cond_dropout`` of the grids."""
        codes = self.check_codes(codes)
        b, length = codes.shape[0], math.prod(self.config.shape)
        cond = self.check_condition(cond, b)
        r = torch.rand(b, generator=generator, device=codes.device)
        count = torch.ceil(cosine_schedule(r) * length).long().clamp(1, length)
        keep = None
        if self.training and self._global(cond) and self.config.cond_dropout > 0:
            u = torch.rand(b, generator=generator, device=codes.device)
            keep = u >= self.config.cond_dropout
        nats, mask = self._masked_cross_entropy(codes, cond, count, generator, keep)
        return nats.sum() / mask.sum()

    def nll(
        self, codes: torch.Tensor, cond: CondLike = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """An upper bound on ``-log p(codes | cond)`` in nats, (B,): the order-agnostic bound
        (module docstring) estimated with one random order and step per grid."""
        codes = self.check_codes(codes)
        b, length = codes.shape[0], math.prod(self.config.shape)
        cond = self.check_condition(cond, b)
        visible = torch.randint(0, length, (b,), generator=generator).to(codes.device)
        count = length - visible  # 1 .. L masked
        nats, _ = self._masked_cross_entropy(codes, cond, count, generator)
        return length * nats.sum(dim=1) / count

    # -- sampling and inpainting ----------------------------------------------------------

    def samplers(self):
        return {"maskgit": partial(self._draw_all, steps=None, guidance=None, generator=None)}

    def sample(
        self,
        n: int,
        cond: CondLike = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        method: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """``n`` grids ``(n, *shape)`` int64 drawn in ``steps`` passes (default: the
        config's), each code from ``softmax(logits / temperature)`` among the ``top_k``
        likeliest, the logits guided by ``guidance`` (default: the config's)."""
        if method not in (None, "maskgit"):
            raise ValueError(f"method: expected 'maskgit', got {method!r}")
        sampler = partial(self._draw_all, steps=steps, guidance=guidance, generator=generator)
        return self._run_sampler(sampler, n, cond, temperature, top_k, generator)

    def inpaint(
        self,
        codes: torch.Tensor,
        mask: torch.Tensor,
        cond: CondLike = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """``codes`` (B, *shape) with the positions under ``mask`` (bool, ``shape`` or
        ``(B, *shape)``) drawn given all the others, which are returned exactly."""
        codes = self.check_codes(codes)
        hidden = self.check_mask(mask, codes.shape[0])
        start = codes.masked_fill(hidden, self.mask_id)

        def sampler(n: int, checked: Condition, draw: Draw) -> torch.Tensor:
            return self._decode(start, checked, draw, steps, guidance, generator)

        return self._run_sampler(sampler, codes.shape[0], cond, temperature, top_k, generator)

    def _draw_all(
        self,
        n: int,
        cond: Condition,
        draw: Draw,
        steps: int | None,
        guidance: float | None,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        start = torch.full((n, *self.config.shape), self.mask_id, device=self.device)
        return self._decode(start, cond, draw, steps, guidance, generator)

    def _guided_batch(
        self, cond: Condition, n: int, guidance: float
    ) -> tuple[Condition, torch.Tensor | None]:
        """The condition and ``keep`` of a pass's batch: n grids, or with guidance 2n, the
        first half conditioned and the second given the null condition."""
        if guidance == 1.0 or not self._global(cond):
            return cond, None
        return _repeat(cond, 2), torch.arange(2 * n, device=self.device) < n

    def _guided_logits(
        self,
        tokens: torch.Tensor,
        cond: Condition,
        guidance: float,
        aligned: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(n, L) tokens -> (n, L, K) logits, ``uncond + guidance * (cond - uncond)``;
        ``aligned``: the aligned context of ``_guided_batch``'s batch, when computed."""
        batch, keep = self._guided_batch(cond, tokens.shape[0], guidance)
        if keep is None:
            return self._network(tokens, batch, aligned=aligned)
        both = self._network(tokens.repeat(2, 1), batch, keep, aligned)  # (2n, L, K)
        conditioned, unconditioned = both.float().chunk(2)
        return unconditioned + guidance * (conditioned - unconditioned)

    def _decode(
        self,
        start: torch.Tensor,
        cond: Condition,
        draw: Draw,
        steps: int | None,
        guidance: float | None,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """MaskGIT's iterative decoding of ``start`` (n, *shape), [MASK] where unknown."""
        c = self.config
        steps = check_steps(c.steps if steps is None else steps)
        guidance = check_guidance(c.guidance if guidance is None else guidance)
        n = start.shape[0]
        tokens = start.reshape(n, -1).clone()  # (n, *shape) -> (n, L)
        counts = masked_counts((tokens == self.mask_id).sum(dim=1), steps)  # (S, n)
        aligned = None  # the aligned context does not change between passes: computed once
        if c.context_aligned:
            aligned = self._aligned_context(*self._guided_batch(cond, n, guidance))
        for s in range(steps):
            unknown = tokens == self.mask_id  # (n, L)
            if not unknown.any():
                break
            logits = self._guided_logits(tokens, cond, guidance, aligned)  # (n, L, K)
            drawn = draw(logits[unknown])  # (u, K) -> (u,)
            logp = F.log_softmax(logits[unknown].float(), dim=-1)
            confidence = torch.full(tokens.shape, math.inf, device=tokens.device)
            confidence[unknown] = logp.gather(1, drawn[:, None]).squeeze(1)
            scale = c.noise * (1.0 - (s + 1) / steps)  # annealed to 0 at the last pass
            if scale > 0:
                u = torch.rand(tokens.shape, generator=generator).to(tokens.device)
                gumbel = -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))
                confidence = confidence + scale * gumbel  # inf stays inf: known stay known
            candidate = tokens.clone()
            candidate[unknown] = drawn
            # the least confident counts[s] unknown positions are masked again: known
            # positions rank last (confidence inf) and counts[s] < the unknown count
            rank = confidence.argsort(dim=1).argsort(dim=1)
            tokens = candidate.masked_fill(rank < counts[s][:, None], self.mask_id)
        return tokens.view(n, *c.shape)  # (n, L) -> (n, *shape)


PRIORS.register(
    "maskgit",
    MaskGITPrior,
    about="masked-token bidirectional Transformer (MaskGIT): any rank, S passes, inpainting",
)

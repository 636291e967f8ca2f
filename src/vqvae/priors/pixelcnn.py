"""Gated PixelCNN prior over VQ-VAE code grids.

van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves, Kavukcuoglu (2016), "Conditional
Image Generation with PixelCNN Decoders", arXiv:1606.05328, section 2 and figure 2: a
vertical stack (everything above the current row) and a horizontal stack (the current
row, left of the current position) replace the single masked convolution of the
original PixelCNN, which removes its blind spot; gated units ``tanh(W_f * x + V_f^T y) *
sigmoid(W_g * x + V_g^T y)`` (eq. 2, 4) with a class embedding or a vector ``y`` for global
conditioning, and ``V * s`` with a 1x1 convolution of a map ``s`` (eq. 5) for a code
context of the grid's own shape (such as the previous frame's codes).
VQ-VAE uses it as the prior over the latent grid (van den Oord et al. 2017,
arXiv:1711.00937, section 4.2).

Causality, as built here (``p`` = kernel_size // 2):

- vertical stack: a ``(p + 1) x k`` convolution padded ``p`` rows on top only, so row i
  sees rows ``i - p .. i``; it reaches the horizontal stack only after a shift down by
  one row, so position (i, j) gets information from rows < i only;
- horizontal stack: a ``1 x (p + 1)`` convolution padded on the left only, so column j
  sees columns ``j - p .. j`` of its own row; in the first layer the centre tap is
  masked out (mask "A", the position does not see its own code), later layers keep it
  (mask "B", it sees the features of its own position, which never held its code).

Fast sampling follows from the same picture: the vertical stack of row i needs only rows
< i, so it is computed once per row, one row per layer; the horizontal stack of column j
needs only columns <= j of the layer below, so each new code costs one column per layer.
Together that is the work of a single forward pass, against ``h * w`` passes naively.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.priors.base import Condition, Draw, Prior, PriorConfig, Sampler
from vqvae.registry import PRIORS


@dataclass(frozen=True)
class PixelCNNConfig(PriorConfig):
    # Defaults sized for MNIST's 7x7 grids with K=512 on a laptop CPU: 10 layers of 3x3
    # reach every earlier position of a 7x7 grid (the receptive field grows by one row
    # and one column per layer), and 64 channels train an epoch in minutes on 2 cores.
    channels: int = 64
    num_layers: int = 10
    kernel_size: int = 3  # odd; the paper's figure 2 draws 3x3 (n x n in general)
    head_channels: int = 256  # the 1x1 ReLU layer between the skip sum and the logits
    # A context of k frames' codes (context_shape (k, h, w)) is embedded frame by frame and
    # concatenated on channels; context_layers unmasked 3x3 convolutions (dilations 1, 2, 4,
    # ...) then give each position a view of its neighbourhood in the context: eq. 5's
    # s = m(h) of van den Oord et al. 2016. 0 = the 1x1 map of release 0.1, which sees the
    # context only at the position itself.
    context_layers: int = 0
    # A copy path: at each position, the last context frame's code there gets an extra logit
    # g = a(s) + b(skip) (two 1x1 maps, of the context map and of the causal features), so
    # that "this code persists" is one learned number instead of an identity over K codes
    # through the embedding and the head (docs/video.md measures why it matters).
    context_copy: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.shape) != 2:
            raise ValueError(
                f"shape: the gated PixelCNN models 2-D grids (h, w), got {self.shape}; "
                f"use the transformer prior for codes of another rank"
            )
        ctx = self.context_shape
        if ctx and (len(ctx) not in (2, 3) or ctx[-2:] != self.shape):
            raise ValueError(
                f"context_shape: the PixelCNN reads a context of the grid's own shape "
                f"{self.shape} or k frames of it (k, {', '.join(map(str, self.shape))}), got "
                f"{self.context_shape}; use the transformer prior for others"
            )
        if self.context_layers < 0:
            raise ValueError(f"context_layers: expected >= 0, got {self.context_layers}")
        if self.context_copy and (not ctx or self.context_codes != self.num_codes):
            raise ValueError(
                "context_copy: copies context codes into the grid, so it needs a context of "
                f"the grid's own codes (context_codes = num_codes = {self.num_codes})"
            )

    @property
    def context_frames(self) -> int:
        """k, the frames of codes in the context: 1 for an (h, w) context, 0 for none."""
        if not self.context_shape:
            return 0
        return self.context_shape[0] if len(self.context_shape) == 3 else 1

    @property
    def context_channels(self) -> int:
        """Channels of the context map that every layer's 1x1 convolutions read."""
        return self.channels if self.context_layers else self.context_frames * self.channels
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: expected an odd int >= 3, got {self.kernel_size}")
        for name in ("channels", "num_layers", "head_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive int, got {getattr(self, name)}")


def gate(x: torch.Tensor) -> torch.Tensor:
    """``tanh(a) * sigmoid(b)`` over the two halves of the channels (paper eq. 2)."""
    a, b = x.chunk(2, dim=1)  # (B, 2C, ...) -> 2 x (B, C, ...)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One layer of both stacks (figure 2), cut into the pieces the fast sampler reuses.

    Every piece takes inputs that are already padded, so that the full forward pass and
    the one-row sampling step run the same convolutions on different crops.
    """

    def __init__(
        self, channels: int, kernel_size: int, config: PixelCNNConfig, first: bool
    ) -> None:
        super().__init__()
        p = kernel_size // 2
        self.pad = p
        self.first = first
        self.v_conv = nn.Conv2d(channels, 2 * channels, (p + 1, kernel_size))
        self.h_conv = nn.Conv2d(channels, 2 * channels, (1, p + 1))
        # mask "A" in the first layer hides the centre tap (the position's own code);
        # mask "B" afterwards lets a position see its own (code-free) features
        mask = torch.ones(1, 1, 1, p + 1)
        if first:
            mask[..., -1] = 0
        self.register_buffer("h_mask", mask, persistent=False)
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)  # the vertical -> horizontal link
        self.h_out = nn.Conv2d(channels, channels, 1)
        self.skip = nn.Conv2d(channels, channels, 1)
        # conditioning biases inside each gate, one per stack: V^T y of a class or a vector
        # (eq. 4), and V * s of a context map (eq. 5)
        n, d, ctx = config.num_classes, config.cond_dim, config.context_shape
        ctx_ch = config.context_channels
        self.v_cond = nn.Embedding(n, 2 * channels) if n else None
        self.h_cond = nn.Embedding(n, 2 * channels) if n else None
        self.v_vec = nn.Linear(d, 2 * channels) if d else None
        self.h_vec = nn.Linear(d, 2 * channels) if d else None
        self.v_ctx = nn.Conv2d(ctx_ch, 2 * channels, 1) if ctx else None
        self.h_ctx = nn.Conv2d(ctx_ch, 2 * channels, 1) if ctx else None

    def cond_biases(self, cond: Condition, context: torch.Tensor | None):
        """Two biases (vertical, horizontal), each 0.0, (B, 2C, 1, 1) or, with a context map
        ``context`` (B, C, h, w), (B, 2C, h, w)."""
        v: torch.Tensor | float = 0.0
        h: torch.Tensor | float = 0.0
        if self.v_cond is not None and self.h_cond is not None and cond.labels is not None:
            v = v + self.v_cond(cond.labels)[:, :, None, None]
            h = h + self.h_cond(cond.labels)[:, :, None, None]
        if self.v_vec is not None and self.h_vec is not None and cond.vector is not None:
            v = v + self.v_vec(cond.vector)[:, :, None, None]
            h = h + self.h_vec(cond.vector)[:, :, None, None]
        if self.v_ctx is not None and self.h_ctx is not None and context is not None:
            v = v + self.v_ctx(context)
            h = h + self.h_ctx(context)
        return v, h

    def vertical(self, v_padded: torch.Tensor, v_bias) -> torch.Tensor:
        """Pre-gate vertical features from an input padded p rows on top and p columns each
        side: (B, C, r + p, w + 2p) -> (B, 2C, r, w)."""
        return self.v_conv(v_padded) + v_bias

    def horizontal(self, h_padded: torch.Tensor, link: torch.Tensor, h_bias):
        """From an input padded p columns on the left, (B, C, r, c + p), and the link from
        the row above, (B, 2C, r, c): the next horizontal input and this layer's skip."""
        pre = F.conv2d(h_padded, self.h_conv.weight * self.h_mask, self.h_conv.bias)
        g = gate(pre + link + h_bias)  # (B, C, r, c)
        out = self.h_out(g)
        if not self.first:  # residual; the first layer's input holds the codes themselves
            out = out + h_padded[..., self.pad :]
        return out, self.skip(g)

    def link(self, v_pre_above: torch.Tensor) -> torch.Tensor:
        """The vertical features of the row above -> the horizontal stack's extra input."""
        return self.v_to_h(v_pre_above)

    def horizontal_column(self, window: torch.Tensor, link: torch.Tensor, h_bias):
        """``horizontal`` for a single column, the sampler's inner loop, as matrix products
        with the convolution weights reshaped (a k-tap convolution at one position is one
        matrix product, and it skips the convolution set-up that dominates at this size).

        window (n, C, p + 1) holds columns j - p .. j, link and h_bias are (n, 2C):
        returns the next layer's input at column j and this layer's skip, both (n, C).
        """
        weight = (self.h_conv.weight * self.h_mask).flatten(1)  # (2C, C, 1, p+1) -> (2C, C*(p+1))
        pre = F.linear(window.flatten(1), weight, self.h_conv.bias)  # (n, C*(p+1)) -> (n, 2C)
        g = gate(pre + link + h_bias)  # (n, C)
        out = F.linear(g, self.h_out.weight.flatten(1), self.h_out.bias)
        if not self.first:
            out = out + window[:, :, -1]
        return out, F.linear(g, self.skip.weight.flatten(1), self.skip.bias)


class PixelCNNPrior(Prior):
    """Gated PixelCNN over ``(B, h, w)`` code grids, optionally conditional (``Condition``).

    ``sample(..., method="fast")`` (default) computes each row of the vertical stack once
    and one column of the horizontal stack per new code; ``method="naive"`` reruns the
    whole network for every position. Both draw the same codes from the same generator.
    """

    config_class = PixelCNNConfig
    config: PixelCNNConfig

    def __init__(self, config: PixelCNNConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.embed = nn.Embedding(c.num_codes, c.channels)
        self.layers = nn.ModuleList(
            GatedLayer(c.channels, c.kernel_size, c, first=(i == 0)) for i in range(c.num_layers)
        )
        self.context_embed = nn.Embedding(c.context_codes, c.channels) if c.context_shape else None
        # m(h) of eq. 5: unmasked (the context is known in full), absent in release 0.1's priors
        self.context_net = nn.ModuleList(
            nn.Conv2d(c.context_channels if i else c.context_frames * c.channels, c.channels, 3,
                      padding=2 ** (i % 3), dilation=2 ** (i % 3))
            for i in range(c.context_layers if c.context_shape else 0)
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c.channels, c.head_channels, 1),
            nn.ReLU(),
            nn.Conv2d(c.head_channels, c.num_codes, 1),
        )
        self.copy_context = self.copy_skip = None
        if c.context_copy:
            self.copy_context = nn.Conv2d(c.context_channels, 1, 1)
            self.copy_skip = nn.Conv2d(c.channels, 1, 1)
            # starts where the copied code holds about half the probability among K codes
            nn.init.constant_(self.copy_context.bias, math.log(c.num_codes))

    def _context_map(self, cond: Condition) -> torch.Tensor | None:
        """The context's codes embedded, (B, h, w) -> (B, C, h, w), or k frames of them
        concatenated on channels, (B, k, h, w) -> (B, k*C, h, w), then through ``context_net``
        (-> (B, C, h, w)); None without a context."""
        if self.context_embed is None or cond.context is None:
            return None
        h, w = self.config.shape
        # (B, h, w) or (B, k, h, w) -> (B, k, h, w)
        context = cond.context.reshape(len(cond.context), -1, h, w)
        x = self.context_embed(context)  # (B, k, h, w, C)
        x = x.permute(0, 1, 4, 2, 3).flatten(1, 2)  # (B, k, C, h, w) -> (B, k*C, h, w)
        for i, conv in enumerate(self.context_net):
            y = conv(F.relu(x) if i else x)
            x = y if i == 0 else x + y  # residual after the first, which changes the channels
        return x

    def _logits(self, codes: torch.Tensor, cond: Condition) -> torch.Tensor:
        p = self.config.kernel_size // 2
        x = self.embed(codes).permute(0, 3, 1, 2)  # (B, h, w, C) -> (B, C, h, w)
        context = self._context_map(cond)
        v, h, skip = x, x, 0.0
        for layer in self.layers:
            v_bias, h_bias = layer.cond_biases(cond, context)
            v_pre = layer.vertical(F.pad(v, (p, p, p, 0)), v_bias)  # (B, 2C, h, w)
            # shift down one row: row i's horizontal stack sees vertical features of rows < i
            above = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]  # (B, 2C, h, w)
            h, s = layer.horizontal(F.pad(h, (p, 0)), layer.link(above), h_bias)
            v = gate(v_pre)
            skip = skip + s
        logits = self.head(skip)  # (B, K, h, w)
        if self.copy_context is not None and self.copy_skip is not None and context is not None:
            g = self.copy_context(context) + self.copy_skip(F.relu(skip))  # (B, 1, h, w)
            logits = logits.scatter_add(1, self._last_frame(cond)[:, None], g)
        return logits

    def _last_frame(self, cond: Condition) -> torch.Tensor:
        """The context's last frame of codes, (B, h, w): what the copy path copies."""
        assert cond.context is not None
        return cond.context.reshape(len(cond.context), -1, *self.config.shape)[:, -1]

    def samplers(self) -> dict[str, Sampler]:
        """ "fast" (incremental, the default) or "naive" (h*w full passes): the same codes
        from the same generator."""
        return {"fast": self._sample_fast, "naive": self._sample_naive}

    def _head_column(self, skip: torch.Tensor) -> torch.Tensor:
        """``head`` at one position as matrix products: (n, C) -> (n, K) logits."""
        hidden = F.linear(F.relu(skip), self.head[1].weight.flatten(1), self.head[1].bias)
        return F.linear(F.relu(hidden), self.head[3].weight.flatten(1), self.head[3].bias)

    def _sample_fast(
        self, n: int, cond: Condition, draw: Draw, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Recompute only what a new code can change (see the module docstring). ``bias``
        (n, K, h, w), when given, is added to the logits of each position before its draw
        (another expert's, in a product of experts: ``priors/hybrid.py``)."""
        c = self.config
        (h, w), p, ch = c.shape, c.kernel_size // 2, c.channels
        dev = self.embed.weight.device
        dtype = self.embed.weight.dtype
        codes = torch.zeros(n, h, w, dtype=torch.long, device=dev)
        context = self._context_map(cond)
        # per layer: 0.0, (n, 2C, 1, 1) or, with a context, (n, 2C, h, w)
        biases = [layer.cond_biases(cond, context) for layer in self.layers]
        v_biases, h_biases = [b[0] for b in biases], [b[1] for b in biases]
        copy = None  # (n, 1, h, w) the copy path's context part, and the codes it copies
        if self.copy_context is not None and context is not None:
            copy = self.copy_context(context), self._last_frame(cond)
        # v_in[l]: the vertical input of layer l over the whole grid, stored with the same
        # zero padding the full pass adds (p rows on top, p columns each side)
        v_in = [torch.zeros(n, ch, h + p, w + 2 * p, dtype=dtype, device=dev) for _ in self.layers]
        # pre-gate vertical features of the row above, per layer; zeros above row 0, as
        # the full pass's shift-down pads them
        above = [torch.zeros(n, 2 * ch, 1, w, dtype=dtype, device=dev) for _ in self.layers]
        for i in range(h):
            # what row i's horizontal stack receives from above, per layer:
            # (n, 2C, 1, w) -> (n, w, 2C) so that column j is a contiguous (n, 2C) slice
            links = [
                layer.link(a)[:, :, 0].transpose(1, 2).contiguous()
                for layer, a in zip(self.layers, above, strict=True)
            ]
            # the horizontal stack's conditioning bias at each column of row i, per layer
            h_cols = [_columns(b, i, w) for b in h_biases]
            # h_in[l]: the horizontal input of layer l on row i, left-padded with p zeros
            h_in = [torch.zeros(n, ch, w + p, dtype=dtype, device=dev) for _ in self.layers]
            for j in range(w):
                skip = 0.0
                for l, layer in enumerate(self.layers):
                    window = h_in[l][:, :, j : j + p + 1]  # columns j-p .. j: (n, C, p + 1)
                    out, s = layer.horizontal_column(window, links[l][:, j], h_cols[l][j])
                    if l + 1 < len(self.layers):
                        h_in[l + 1][:, :, p + j] = out  # (n, C)
                    skip = skip + s
                logits = self._head_column(skip)  # (n, K)
                if copy is not None and self.copy_skip is not None:
                    weight = self.copy_skip.weight.flatten(1)  # (1, C, 1, 1) -> (1, C)
                    g = F.linear(F.relu(skip), weight, self.copy_skip.bias) + copy[0][:, :, i, j]
                    logits = logits.scatter_add(1, copy[1][:, i, j, None], g)  # g: (n, 1)
                if bias is not None:
                    logits = logits + bias[:, :, i, j]
                codes[:, i, j] = draw(logits)
                h_in[0][:, :, p + j] = self.embed(codes[:, i, j])  # (n, C), seen from column j+1
            # row i is complete: run the vertical stack on it, one row per layer
            v_in[0][:, :, p + i, p : p + w] = self.embed(codes[:, i]).transpose(1, 2)  # (n, C, w)
            for l, layer in enumerate(self.layers):
                v_pre = layer.vertical(v_in[l][:, :, i : i + p + 1], _row(v_biases[l], i))
                above[l] = v_pre
                if l + 1 < len(self.layers):
                    v_in[l + 1][:, :, p + i, p : p + w] = gate(v_pre)[:, :, 0]
        return codes


def _row(bias: torch.Tensor | float, i: int) -> torch.Tensor | float:
    """Row i of a bias map (n, 2C, h, w) -> (n, 2C, 1, w); a global bias as it is."""
    if not torch.is_tensor(bias) or bias.shape[2] == 1:
        return bias
    return bias[:, :, i : i + 1]


def _columns(bias: torch.Tensor | float, i: int, w: int) -> list:
    """A bias at each of the w columns of row i, made once per row so that the sampler's
    inner loop only indexes a list: 0.0, one (n, 2C) global bias, or (n, 2C) per column of a
    bias map (n, 2C, h, w)."""
    if not torch.is_tensor(bias):
        return [bias] * w
    if bias.shape[2] == 1:  # global: (n, 2C, 1, 1)
        return [bias[:, :, 0, 0]] * w
    return list(bias[:, :, i].unbind(2))  # (n, 2C, w) -> w x (n, 2C)


PRIORS.register(
    "pixelcnn", PixelCNNPrior, about="gated PixelCNN (van den Oord et al. 2016): 2-D grids"
)

"""A next-frame prior that draws every code of the frame at once: the factorised

    p(codes | cond) = prod_i p(c_i | cond)

where cond is the k previous frames' codes and a label (the agent's action). It is not
autoregressive within the frame, so its bits per frame, a true likelihood, are those of a
weaker model (a frame's codes are not independent given the context), but its argmax at
each position is the most likely code *given the context alone*. That is what a rollout
needs: drawn in raster order, a PixelCNN conditions each code on the codes it drew before
it, and one wrong code early in the frame steers the rest (docs/video.md measures it); here
no position reads another's draw.

The network (unmasked: the context is known in full): each previous frame's codes are
embedded and concatenated on channels, a 1x1 convolution mixes them, then residual blocks of
dilated 3x3 convolutions (dilations 1, 2, 4, 8, ...: a reach of the whole 16x16 grid) each
add the label's embedding as a bias, as eq. 4 of the conditional PixelCNN does in its gates;
a 1x1 head gives K logits per position. A copy path gives the last frame's code at each
position one extra logit, as the PixelCNN's (``pixelcnn.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.priors.base import Condition, Prior, PriorConfig, Sampler
from vqvae.sampling import Draw


@dataclass(frozen=True)
class ParallelFrameConfig(PriorConfig):
    channels: int = 128
    num_blocks: int = 8  # dilations 1, 2, 4, 8, 1, 2, 4, 8
    head_channels: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.shape) != 2 or len(self.context_shape) != 3:
            raise ValueError(
                "the parallel frame prior reads k frames (k, h, w) and predicts one (h, w); "
                f"got shape {self.shape}, context_shape {self.context_shape}"
            )
        if self.context_shape[1:] != self.shape or self.context_codes != self.num_codes:
            raise ValueError(
                f"context_shape {self.context_shape}: expected frames of the predicted grid's "
                f"shape {self.shape} and codes (context_codes = num_codes = {self.num_codes})"
            )
        for name in ("channels", "num_blocks", "head_channels", "num_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")


class DilatedBlock(nn.Module):
    """x + conv1x1(relu(conv3x3_dilated(relu(x)) + label bias)): (B, C, h, w) -> same."""

    def __init__(self, channels: int, dilation: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.label = nn.Embedding(num_classes, channels)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.relu(x)) + self.label(labels)[:, :, None, None]  # (B, C, h, w)
        return x + self.out(F.relu(y))


class ParallelFramePrior(Prior):
    """``p(next frame's codes | k previous frames, label)``, every position independent given
    them (module doc); ``sample`` draws the whole frame in one pass."""

    config_class = ParallelFrameConfig
    config: ParallelFrameConfig

    def __init__(self, config: ParallelFrameConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        k = c.context_shape[0]
        self.context_embed = nn.Embedding(c.num_codes, c.channels)
        self.mix = nn.Conv2d(k * c.channels, c.channels, 1)
        self.blocks = nn.ModuleList(
            DilatedBlock(c.channels, 2 ** (i % 4), c.num_classes) for i in range(c.num_blocks)
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c.channels, c.head_channels, 1),
            nn.ReLU(),
            nn.Conv2d(c.head_channels, c.num_codes, 1),
        )
        self.copy = nn.Conv2d(c.channels, 1, 1)
        # starts where the copied code holds about half the probability among K codes
        nn.init.constant_(self.copy.bias, math.log(c.num_codes))

    def _logits(self, codes: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Logits (B, K, h, w): no position reads ``codes``."""
        return self.context_logits(cond)

    def context_logits(self, cond: Condition) -> torch.Tensor:
        """Logits (B, K, h, w) of every position from a checked condition alone."""
        assert cond.context is not None and cond.labels is not None
        x = self.context_embed(cond.context)  # (B, k, h, w, C)
        x = self.mix(x.permute(0, 1, 4, 2, 3).flatten(1, 2))  # (B, k*C, h, w) -> (B, C, h, w)
        for block in self.blocks:
            x = block(x, cond.labels)
        logits = self.head(x)  # (B, K, h, w)
        last = cond.context[:, -1:]  # (B, 1, h, w): the last frame's codes
        return logits.scatter_add(1, last, self.copy(F.relu(x)))

    def samplers(self) -> dict[str, Sampler]:
        """Only "parallel": every code of the frame at once, one pass."""
        return {"parallel": self._sample_all}

    def _sample_all(self, n: int, cond: Condition, draw: Draw) -> torch.Tensor:
        logits = self.context_logits(cond)  # (n, K, h, w)
        flat = logits.flatten(2).transpose(1, 2).flatten(0, 1)  # (n * h * w, K), raster order
        return draw(flat).reshape(n, *self.config.shape)

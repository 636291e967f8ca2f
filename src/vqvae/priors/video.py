"""Video in latent space: a prior over the next frame's codes given the previous frames' codes
and the agent's action (van den Oord, Vinyals, Kavukcuoglu 2017, arXiv:1711.00937, section 4.4).

Frames are encoded once by an image VQ-VAE into ``(h, w)`` code grids; this prior models

    p(codes_{t+1} | codes_{t-k+1..t}, a_t)

with the conditional gated PixelCNN (``pixelcnn.py``): the action is its global label
(eq. 4 of van den Oord et al. 2016) and the k previous frames its context map (eq. 5), so a
frame costs one fast PixelCNN sample. ``rollout`` generates video entirely in latent space,
one frame at a time, each generated frame becoming context for the next; only the caller
decodes, with the image VQ-VAE's decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from vqvae.pretrained import PretrainedMixin
from vqvae.priors.base import Condition, check_int_grid
from vqvae.priors.pixelcnn import PixelCNNConfig, PixelCNNPrior
from vqvae.torch_utils import eval_mode


@dataclass(frozen=True)
class VideoPriorConfig:
    num_codes: int  # K of the image VQ-VAE whose frame codes are modelled
    shape: tuple[int, ...]  # (h, w): one frame's code grid
    action_names: tuple[str, ...]  # action id -> name, as the episodes file names them
    # k = 3: the action says how the view moves, the last frame what it shows; two more frames
    # hold what a turn just hid, which a turn back brings into view again (docs/video.md)
    context_frames: int = 3
    # Sized for 16x16 grids of K=512 on a 2-core CPU (docs/video.md): the next frame is mostly
    # the context moved, which the context net sees in full, so 6 causal layers (6 rows up)
    # suffice; a step of 32 examples takes 1.1-2.1 s
    channels: int = 64
    num_layers: int = 6
    kernel_size: int = 3
    head_channels: int = 256
    context_layers: int = 4  # 3x3 convolutions over the context, dilations 1, 2, 4, 1
    # the copy path of the PixelCNN (pixelcnn.py): most codes of the next frame are the last
    # frame's at the same position (docs/video.md measures how many)
    copy_last: bool = True
    # saved video priors from before the copy path rebuild without it
    ABSENT: ClassVar[dict[str, Any]] = {"copy_last": False}

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(self.shape))
        object.__setattr__(self, "action_names", tuple(self.action_names))
        if len(self.shape) != 2:
            raise ValueError(f"shape: expected a frame's code grid (h, w), got {self.shape}")
        if not self.action_names:
            raise ValueError("action_names: expected at least one action")
        if self.context_frames < 1:
            raise ValueError(f"context_frames: expected >= 1, got {self.context_frames}")
        self.frame_config()  # the PixelCNN's own checks

    @property
    def num_actions(self) -> int:
        return len(self.action_names)

    def frame_config(self) -> PixelCNNConfig:
        """The conditional PixelCNN of one frame: labels = actions, context = k frames."""
        return PixelCNNConfig(
            num_codes=self.num_codes,
            shape=self.shape,
            num_classes=self.num_actions,
            context_shape=(self.context_frames, *self.shape),
            channels=self.channels,
            num_layers=self.num_layers,
            kernel_size=self.kernel_size,
            head_channels=self.head_channels,
            context_layers=self.context_layers,
            context_copy=self.copy_last,
        )


class VideoPrior(nn.Module, PretrainedMixin):
    """``p(codes_{t+1} | k previous frames' codes, action)`` and its rollout (module doc)."""

    config_class = VideoPriorConfig
    config: VideoPriorConfig

    def __init__(self, config: VideoPriorConfig | None = None, **kwargs) -> None:
        super().__init__()
        if config is None:
            config = VideoPriorConfig(**kwargs)
        elif kwargs:
            raise TypeError("VideoPrior: pass a config or keywords, not both")
        self.config = config
        self.frame = PixelCNNPrior(config.frame_config())

    @property
    def context_frames(self) -> int:
        return self.config.context_frames

    def condition(self, previous: torch.Tensor, actions: torch.Tensor) -> Condition:
        """previous (B, k, h, w) codes, actions (B,) ids -> the frame prior's Condition."""
        return Condition(labels=actions, context=previous)

    def forward(
        self, codes: torch.Tensor, previous: torch.Tensor, actions: torch.Tensor
    ) -> torch.Tensor:
        """Logits (B, K, h, w) of the next frame's codes (B, h, w), teacher-forced."""
        return self.frame(codes, self.condition(previous, actions))

    def log_prob(
        self, codes: torch.Tensor, previous: torch.Tensor, actions: torch.Tensor
    ) -> torch.Tensor:
        """``log p(next frame's codes | previous, action)`` in nats, (B,)."""
        return self.frame.log_prob(codes, self.condition(previous, actions))

    def sample_next(
        self,
        previous: torch.Tensor,
        actions: torch.Tensor,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        method: str = "fast",
    ) -> torch.Tensor:
        """One next frame's codes (B, h, w) for each of B contexts (B, k, h, w) and actions;
        ``top_k=1`` draws the argmax code at every position (a greedy rollout)."""
        return self.frame.sample(
            len(previous),
            self.condition(previous, actions),
            temperature=temperature,
            top_k=top_k,
            generator=generator,
            method=method,
        )

    @torch.no_grad()
    def rollout(
        self,
        context: torch.Tensor,
        actions: torch.Tensor,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        method: str = "fast",
    ) -> torch.Tensor:
        """Generate frames in latent space: context (B, c, h, w) codes of c >= k real frames,
        actions (B, F) (or (F,) for every rollout), actions[:, i] leading to generated frame
        i -> (B, F, h, w) codes of the F generated frames."""
        c = self.config
        if not torch.is_tensor(context) or context.dim() != 4 or context.shape[2:] != c.shape:
            got = tuple(context.shape) if torch.is_tensor(context) else type(context).__name__
            raise ValueError(
                f"context: expected codes (B, frames, {', '.join(map(str, c.shape))}), got {got}"
            )
        context = check_int_grid(context, tuple(context.shape[1:]), c.num_codes, "context")
        if context.shape[1] < c.context_frames:
            raise ValueError(
                f"context: this prior reads {c.context_frames} previous frames, "
                f"got {context.shape[1]}"
            )
        actions = torch.as_tensor(actions, dtype=torch.long)
        if actions.dim() == 1:
            actions = actions.expand(len(context), -1)  # (F,) -> (B, F)
        if actions.dim() != 2 or actions.shape[0] != len(context):
            raise ValueError(
                f"actions: expected ({len(context)}, frames) or (frames,), got "
                f"{tuple(actions.shape)}"
            )
        device = self.frame.device
        frames = list(context[:, -c.context_frames :].to(device).unbind(1))  # k x (B, h, w)
        actions = actions.to(device)
        with eval_mode(self):
            for i in range(actions.shape[1]):
                previous = torch.stack(frames[-c.context_frames :], dim=1)  # (B, k, h, w)
                frames.append(
                    self.sample_next(
                        previous,
                        actions[:, i],
                        temperature=temperature,
                        top_k=top_k,
                        generator=generator,
                        method=method,
                    )
                )
        return torch.stack(frames[c.context_frames :], dim=1)  # (B, F, h, w)

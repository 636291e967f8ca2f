"""Video in latent space: a prior over the next frame's codes given the previous frames' codes
and the agent's action (van den Oord, Vinyals, Kavukcuoglu 2017, arXiv:1711.00937, section 4.4).

Frames are encoded once by an image VQ-VAE into ``(h, w)`` code grids; this prior models

    p(codes_{t+1} | codes_{t-k+1..t}, a_t)

with one of four networks of a frame (``VideoPriorConfig.kind``), each conditioned on the
action as a global label (eq. 4 of van den Oord et al. 2016) and on the k previous frames as
a context map (eq. 5):

- ``pixelcnn``: the conditional gated PixelCNN (``pixelcnn.py``), autoregressive within the
  frame; a frame costs one fast PixelCNN sample, drawn in raster order;
- ``parallel``: every code from the context alone (``parallel.py``), drawn all at once;
- ``hybrid``: the product of the two (``hybrid.py``), scored autoregressively and drawn by
  either;
- ``maskgit``: a masked-token Transformer (``maskgit.py``, Chang et al. 2022), the frame
  drawn in a few passes, each keeping its most confident codes given the context and the
  codes already kept; it gives an upper bound on the bits per frame, not an exact figure.

``rollout`` generates video entirely in latent space, one frame at a time, each generated
frame becoming context for the next; only the caller decodes, with the image VQ-VAE's
decoder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.pretrained import PretrainedMixin
from vqvae.priors.base import Condition, Prior, check_int_grid
from vqvae.priors.hybrid import HybridFramePrior
from vqvae.priors.maskgit import MaskGITConfig, MaskGITPrior
from vqvae.priors.parallel import ParallelFrameConfig, ParallelFramePrior
from vqvae.priors.pixelcnn import PixelCNNConfig, PixelCNNPrior
from vqvae.registry import VIDEO_PRIORS
from vqvae.torch_utils import eval_mode


@dataclass(frozen=True)
class VideoPriorConfig:
    num_codes: int  # K of the image VQ-VAE whose frame codes are modelled
    shape: tuple[int, ...]  # (h, w): one frame's code grid
    action_names: tuple[str, ...]  # action id -> name, as the episodes file names them
    # k = 3: the action says how the view moves, the last frame what it shows; two more frames
    # hold what a turn just hid, which a turn back brings into view again (docs/video.md)
    context_frames: int = 3
    # The PixelCNN (pixelcnn.py), sized for 16x16 grids of K=512 on a 2-core CPU
    # (docs/video.md): the next frame is mostly the context moved, which the context net sees
    # in full, so 6 causal layers (6 rows up) suffice; a step of 32 examples takes 1.1-2.1 s
    channels: int = 64
    num_layers: int = 6
    kernel_size: int = 3
    head_channels: int = 256  # the PixelCNN's and the parallel expert's
    context_layers: int = 4  # 3x3 convolutions over the context, dilations 1, 2, 4, 1
    # the copy path of the PixelCNN (pixelcnn.py): most codes of the next frame are the last
    # frame's at the same position (docs/video.md measures how many)
    copy_last: bool = True
    # The network of one frame: "pixelcnn", autoregressive within the frame; "parallel", every
    # code from the context alone (parallel.py, always with its copy path); "hybrid", the
    # product of the two, trained together (hybrid.py). The hybrid scores frames best and its
    # rollouts, drawn by the parallel expert, beat holding the last frame (docs/video.md)
    kind: str = "hybrid"
    # the parallel network: residual blocks of dilated 3x3 convolutions of this width
    parallel_channels: int = 128
    parallel_blocks: int = 8
    # The masked-token kind (maskgit.py): a bidirectional Transformer over the next frame's
    # codes, each position reading the k previous frames' codes where it lies, the whole frame
    # drawn in ``steps`` passes, most confident codes first; the action is its label, dropped
    # for ``cond_dropout`` of the training examples so that ``guidance`` can weigh it at
    # sampling. Width, depth and heads are the Transformer prior's.
    maskgit_width: int = 128
    maskgit_layers: int = 6
    maskgit_heads: int = 4
    # dilated convolutions over the context (maskgit.py): with them the maze's maskgit
    # prior reads the action (docs/video.md); saved maskgit priors without the field had none
    maskgit_context_blocks: int = 8
    steps: int = 8
    guidance: float = 1.0
    noise: float = 4.5
    cond_dropout: float = 0.1
    # How a rollout draws each code unless told (``sample_next``; ``vqvae rollout`` and
    # ``vqvae video eval`` without --temperature, --top-k or --greedy): from
    # softmax(logits / temperature) among the top_k likeliest (0: all; 1: the argmax).
    # 0.5: on the maze the hybrid's frames then hold the real frames' detail, where
    # temperature 1 turns them to speckle and the argmax smooths them (docs/video.md)
    temperature: float = 0.5
    top_k: int = 0
    # saved video priors from before the copy path rebuild without it, and from before the
    # kinds as PixelCNNs
    ABSENT: ClassVar[dict[str, Any]] = {
        "copy_last": False, "kind": "pixelcnn", "temperature": 1.0, "top_k": 0,
        "maskgit_context_blocks": 0,
    }  # fmt: skip

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(self.shape))
        object.__setattr__(self, "action_names", tuple(self.action_names))
        if len(self.shape) != 2:
            raise ValueError(f"shape: expected a frame's code grid (h, w), got {self.shape}")
        if not self.action_names:
            raise ValueError("action_names: expected at least one action")
        if self.context_frames < 1:
            raise ValueError(f"context_frames: expected >= 1, got {self.context_frames}")
        if not self.temperature > 0 or self.top_k < 0:
            raise ValueError(
                f"temperature, top_k: expected a temperature > 0 and top_k >= 0 (0: all "
                f"codes), got {self.temperature!r} and {self.top_k!r}"
            )
        if self.kind not in VIDEO_PRIORS:
            kinds = ", ".join(VIDEO_PRIORS)
            raise ValueError(f"kind: expected one of {kinds}, got {self.kind!r}")
        self.pixelcnn_config()  # the networks' own checks
        self.parallel_config()
        self.maskgit_config()

    @property
    def num_actions(self) -> int:
        return len(self.action_names)

    def _frame_conditioning(self) -> dict[str, Any]:
        """What every network of one frame models and reads: K codes of an (h, w) grid,
        labels = the actions, context = the k previous frames."""
        return dict(
            num_codes=self.num_codes,
            shape=self.shape,
            num_classes=self.num_actions,
            context_shape=(self.context_frames, *self.shape),
        )

    def pixelcnn_config(self) -> PixelCNNConfig:
        """The conditional PixelCNN of one frame."""
        return PixelCNNConfig(
            **self._frame_conditioning(),
            channels=self.channels,
            num_layers=self.num_layers,
            kernel_size=self.kernel_size,
            head_channels=self.head_channels,
            context_layers=self.context_layers,
            context_copy=self.copy_last,
        )

    def parallel_config(self) -> ParallelFrameConfig:
        """The parallel network of one frame, conditioned the same way."""
        return ParallelFrameConfig(
            **self._frame_conditioning(),
            channels=self.parallel_channels,
            num_blocks=self.parallel_blocks,
            head_channels=self.head_channels,
        )

    def maskgit_config(self) -> MaskGITConfig:
        """The masked-token Transformer of one frame, reading its context where it lies."""
        return MaskGITConfig(
            **self._frame_conditioning(),
            d_model=self.maskgit_width,
            num_layers=self.maskgit_layers,
            num_heads=self.maskgit_heads,
            context_aligned=True,
            context_blocks=self.maskgit_context_blocks,
            steps=self.steps,
            guidance=self.guidance,
            noise=self.noise,
            cond_dropout=self.cond_dropout,
        )

    def frame_prior(self) -> Prior:
        """A new network of one frame, of this kind."""
        return VIDEO_PRIORS.get(self.kind).build(self)


@dataclass(frozen=True)
class FrameKind:
    """A registered kind of video prior (``vqvae list video-priors``): its network of one
    frame, and how a rollout draws a frame unless told ("fast": code by code in raster
    order, the PixelCNN's cached sampler; "parallel": every code of the frame at once)."""

    build: Callable[[VideoPriorConfig], Prior]
    draw: str


VIDEO_PRIORS.register(
    "pixelcnn",
    FrameKind(lambda c: PixelCNNPrior(c.pixelcnn_config()), "fast"),
    about="the conditional gated PixelCNN: autoregressive within the frame (raster order)",
)
VIDEO_PRIORS.register(
    "parallel",
    FrameKind(lambda c: ParallelFramePrior(c.parallel_config()), "parallel"),
    about="every code of the frame from the context alone, drawn at once",
)
VIDEO_PRIORS.register(
    "maskgit",
    FrameKind(lambda c: MaskGITPrior(c.maskgit_config()), "maskgit"),
    about="masked tokens (MaskGIT): the frame drawn in a few passes, most confident first",
)
VIDEO_PRIORS.register(
    "hybrid",
    FrameKind(lambda c: HybridFramePrior(c.pixelcnn_config(), c.parallel_config()), "parallel"),
    about="the product of the two, scored autoregressively, drawn by the parallel expert",
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
        self.frame = config.frame_prior()

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

    @property
    def exact_likelihood(self) -> bool:
        """False for the maskgit kind, whose ``nll`` is an upper bound (maskgit.py)."""
        return self.frame.exact_likelihood

    def nll(
        self,
        codes: torch.Tensor,
        previous: torch.Tensor,
        actions: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``-log p(next frame's codes | previous, action)`` in nats, (B,): exact, or for the
        maskgit kind the order-agnostic upper bound, drawn with ``generator``."""
        return self.frame.nll(codes, self.condition(previous, actions), generator)

    def loss(
        self, codes: torch.Tensor, previous: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss and the NLL of the next frame's codes (B, h, w), both in nats per
        code: the cross-entropies of the frame prior's ``training_logits`` summed (for the
        hybrid kind, its parallel expert's too, so that it can draw frames by itself), and
        that of its own logits. The maskgit kind has no NLL to fit: both are its masked-token
        cross-entropy (maskgit.py)."""
        codes = self.frame.check_codes(codes)
        cond = self.frame.check_condition(self.condition(previous, actions), len(codes))
        if not self.exact_likelihood:
            loss = self.frame.training_loss(codes, cond)
            return loss, loss.detach()
        nats = [F.cross_entropy(x, codes) for x in self.frame.training_logits(codes, cond)]
        return sum(nats[1:], nats[0]), nats[0]

    @property
    def default_method(self) -> str:
        """How a rollout draws a frame unless told: "fast" (raster order) for the PixelCNN,
        "parallel" (every code at once) for the parallel and hybrid kinds, "maskgit" (in
        passes) for the maskgit kind."""
        return VIDEO_PRIORS.get(self.config.kind).draw

    def draw_settings(
        self, temperature: float | None = None, top_k: int | None = None
    ) -> tuple[float, int | None]:
        """The temperature and top-k a draw uses: the config's when neither is given, else
        the given ones (temperature 1 and every code where one is left out)."""
        if temperature is None and top_k is None:
            return self.config.temperature, self.config.top_k or None
        return (1.0 if temperature is None else temperature), top_k

    def sample_next(
        self,
        previous: torch.Tensor,
        actions: torch.Tensor,
        *,
        temperature: float | None = None,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        method: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """One next frame's codes (B, h, w) for each of B contexts (B, k, h, w) and actions;
        ``top_k=1`` draws the argmax code at every position (a greedy rollout); neither
        ``temperature`` nor ``top_k``: the config's (``draw_settings``); ``method``
        (default ``default_method``): the frame prior's sampler; ``steps`` and ``guidance``
        (default: the config's): the maskgit kind's passes and action guidance."""
        temperature, top_k = self.draw_settings(temperature, top_k)
        passes = {k: v for k, v in (("steps", steps), ("guidance", guidance)) if v is not None}
        if any(name not in self.frame.sampling_options for name in passes):
            raise ValueError(
                f"{', '.join(passes)}: only a maskgit video prior draws a frame in passes; "
                f"this one is {self.config.kind}"
            )
        return self.frame.sample(
            len(previous),
            self.condition(previous, actions),
            temperature=temperature,
            top_k=top_k,
            generator=generator,
            method=method or self.default_method,
            **passes,
        )

    @torch.no_grad()
    def rollout(
        self,
        context: torch.Tensor,
        actions: torch.Tensor,
        *,
        temperature: float | None = None,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        method: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """Generate frames in latent space: context (B, c, h, w) codes of c >= k real frames,
        actions (B, F) (or (F,) for every rollout), actions[:, i] leading to generated frame
        i -> (B, F, h, w) codes of the F generated frames (``sample_next``'s options)."""
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
                        steps=steps,
                        guidance=guidance,
                    )
                )
        return torch.stack(frames[c.context_frames :], dim=1)  # (B, F, h, w)

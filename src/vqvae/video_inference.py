"""Video in latent space with a trained image VQ-VAE and a ``VideoPrior`` (paper section 4.4):
episodes encoded to frame codes, (previous frames, action, next frame) examples, the prior's
bits per frame, rollouts decoded to frames, and the evaluation that says whether the actions
matter: the same numbers under the recorded actions and under shuffled ones.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from vqvae import metrics
from vqvae.data.episodes import Episodes
from vqvae.errors import DataError, RunError
from vqvae.inference import batches, decode, encode
from vqvae.priors.video import VideoPrior
from vqvae.runs import RunDir
from vqvae.torch_utils import eval_mode

SHUFFLE_SEED = 1234  # the fixed permutation of the held-out actions (docs/video.md)


def load_video_prior(run: RunDir) -> VideoPrior:
    """The trained video prior in ``RUN/video/``, in eval mode."""
    folder = run.video
    if not folder.weights_file.is_file():
        raise RunError(
            f"{run.path}: no trained video prior; run `vqvae video train {run.path}` first"
        )
    return VideoPrior.from_pretrained(folder.path).eval()


@dataclass(frozen=True)
class FrameCodes:
    """Episodes as code grids: the (previous k frames, action, next frame) examples."""

    codes: torch.Tensor  # (N, T, h, w) int64
    actions: torch.Tensor  # (N, T) int64: actions[n, t] leads to codes[n, t + 1]
    context_frames: int  # k
    index: torch.Tensor = field(init=False, repr=False)  # (M, 2): (episode, t) of each example

    def __post_init__(self) -> None:
        n, t = self.codes.shape[:2]
        if self.context_frames >= t:
            raise DataError(
                f"episodes of {t} frames hold no example of {self.context_frames} previous "
                f"frames and a next one; use fewer --context-frames"
            )
        # example i predicts frame t_i + 1 of episode n_i from frames t_i - k + 1 .. t_i
        steps = torch.arange(self.context_frames - 1, t - 1)
        index = torch.cartesian_prod(torch.arange(n), steps)  # (N * (T - k), 2)
        object.__setattr__(self, "index", index)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def num_frames(self) -> int:
        return int(self.codes.shape[0] * self.codes.shape[1])

    def take(self, i: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Examples ``i``: previous (B, k, h, w), actions (B,), next frame (B, h, w)."""
        n, t = self.index[i].unbind(1)
        back = torch.arange(-self.context_frames + 1, 1)  # (k,): t - k + 1 .. t
        previous = self.codes[n[:, None], t[:, None] + back]  # (B, k, h, w)
        return previous, self.actions[n, t], self.codes[n, t + 1]

    def with_actions(self, actions: torch.Tensor) -> FrameCodes:
        return FrameCodes(self.codes, actions, self.context_frames)


def encode_episodes(model, episodes: Episodes, context_frames: int) -> FrameCodes:
    """Every frame of ``episodes`` through the image VQ-VAE's encoder, once."""
    n, t = episodes.frames.shape[:2]
    codes = encode(model, episodes.flat_frames())  # (N*T, h, w)
    codes = codes.reshape(n, t, *codes.shape[1:])  # (N*T, h, w) -> (N, T, h, w)
    return FrameCodes(torch.from_numpy(codes), torch.from_numpy(episodes.actions), context_frames)


def shuffled_actions(actions: torch.Tensor, seed: int = SHUFFLE_SEED) -> torch.Tensor:
    """The same actions in a fixed-seed random order over the whole set: the control in which
    every frame keeps its context but gets another step's action."""
    generator = torch.Generator().manual_seed(seed)
    flat = actions.reshape(-1)
    return flat[torch.randperm(len(flat), generator=generator)].reshape(actions.shape)


@torch.no_grad()
def bits_per_frame(
    prior: VideoPrior, data: FrameCodes, limit: int | None = None, batch_size: int = 64
) -> float:
    """Mean ``-log2 p(next frame's codes | previous frames, action)`` over ``data``'s examples,
    or over ``limit`` of them evenly spaced (the periodic evaluation's quick look)."""
    chosen = torch.arange(len(data))
    if limit is not None and limit < len(data):
        chosen = chosen[:: len(data) // limit][:limit]
    total = 0.0
    with eval_mode(prior):
        for sl in batches(len(chosen), batch_size, "scoring"):
            previous, actions, nxt = data.take(chosen[sl])
            total -= float(prior.log_prob(nxt, previous, actions).sum())
    return total / (len(chosen) * math.log(2))


@dataclass(frozen=True)
class Rollout:
    """Real context frames and generated ones, as codes and decoded frames."""

    context_codes: np.ndarray  # (B, c, h, w)
    codes: np.ndarray  # (B, F, h, w): generated in latent space
    context_frames: np.ndarray  # uint8 (B, c, H, W, 3): the stage-1 decoder's context frames
    frames: np.ndarray  # uint8 (B, F, H, W, 3): the decoded generated frames


def rollout(
    model,
    prior: VideoPrior,
    context: np.ndarray | torch.Tensor,
    actions: np.ndarray | torch.Tensor,
    *,
    seed: int = 0,
    temperature: float = 1.0,
) -> Rollout:
    """Generate codes from context codes (B, c, h, w) and actions (B, F) or (F,), then decode
    context and generated frames with the image VQ-VAE (its decoder only)."""
    context = torch.as_tensor(context, dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    codes = prior.rollout(context, torch.as_tensor(actions), generator=generator,
                          temperature=temperature).cpu()  # fmt: skip
    b, c, f = context.shape[0], context.shape[1], codes.shape[1]
    both = decode(model, torch.cat([context, codes], dim=1).flatten(0, 1))  # (B*(c+F), H, W, 3)
    both = both.reshape(b, c + f, *both.shape[1:])  # (B*(c+F), ...) -> (B, c+F, H, W, 3)
    return Rollout(context.numpy(), codes.numpy(), both[:, :c], both[:, c:])


@dataclass(frozen=True)
class RolloutScore:
    mse: float  # per pixel on the [0, 1] scale, generated against the real future frames
    psnr: float  # dB
    code_match: float  # fraction of generated codes equal to the real future frame's


@dataclass(frozen=True)
class VideoEvaluation:
    """Section 4.4's evidence that the prior uses the actions: held-out numbers under the
    recorded actions and under a fixed-seed shuffle of them (docs/video.md)."""

    bits_per_frame_recorded: float
    bits_per_frame_shuffled: float
    rollout_recorded: RolloutScore
    rollout_shuffled: RolloutScore
    rollout_copy_last: RolloutScore  # reference: the last context frame held still
    num_examples: int  # held-out (previous, action, next) examples scored
    num_rollouts: int
    context: int
    frames: int

    def to_dict(self) -> dict:
        return asdict(self)


def _score(real: np.ndarray, fake: np.ndarray, real_codes: np.ndarray, codes: np.ndarray):
    return RolloutScore(
        mse=metrics.mse(real, fake),
        psnr=metrics.psnr(real, fake),
        code_match=float((real_codes == codes).mean()),
    )


def evaluate_video(
    model,
    prior: VideoPrior,
    episodes: Episodes,
    data: FrameCodes,
    *,
    context: int = 6,
    frames: int = 10,
    rollouts: int = 2,
    seed: int = 0,
) -> VideoEvaluation:
    """Score held-out ``episodes`` (encoded as ``data``): bits per frame, and ``rollouts``
    rollouts per episode of ``frames`` frames from its first ``context`` real frames."""
    check_rollout_length(prior, context, frames, episodes.steps)
    check_evaluation_length(context, frames, episodes.steps)
    shuffled = data.with_actions(shuffled_actions(data.actions))
    start = torch.arange(context - 1, context - 1 + frames)  # actions to frames c .. c+F-1
    reps = torch.arange(data.codes.shape[0]).repeat_interleave(rollouts)  # (N*R,) episodes
    ctx = data.codes[reps, :context]  # (N*R, c, h, w)
    real_codes = data.codes[reps, context : context + frames].numpy()  # (N*R, F, h, w)
    real = episodes.frames[reps.numpy(), context : context + frames]  # (N*R, F, H, W, 3)
    scores = {}
    for name, source in (("recorded", data), ("shuffled", shuffled)):
        out = rollout(model, prior, ctx, source.actions[reps][:, start], seed=seed)
        scores[name] = _score(real, out.frames, real_codes, out.codes)
    still = np.repeat(ctx[:, -1:].numpy(), frames, axis=1)  # (N*R, F, h, w)
    still_frames = decode(model, still.reshape(-1, *still.shape[2:])).reshape(real.shape)
    return VideoEvaluation(
        bits_per_frame_recorded=bits_per_frame(prior, data),
        bits_per_frame_shuffled=bits_per_frame(prior, shuffled),
        rollout_recorded=scores["recorded"],
        rollout_shuffled=scores["shuffled"],
        rollout_copy_last=_score(real, still_frames, real_codes, still),
        num_examples=len(data),
        num_rollouts=len(reps),
        context=context,
        frames=frames,
    )


def check_rollout_length(prior: VideoPrior, context: int, frames: int, steps: int) -> None:
    """A one-line DataError unless ``context`` real frames (at least the prior's k) and
    ``frames`` future ones fit in an episode of ``steps`` frames."""
    k = prior.context_frames
    if context < k:
        raise DataError(f"--context {context}: the prior reads {k} previous frames; use >= {k}")
    if frames < 1:
        raise DataError(f"--frames {frames}: expected at least one frame to generate")
    if context > steps:
        raise DataError(f"--context {context}: longer than the episodes ({steps} frames)")


def check_evaluation_length(context: int, frames: int, steps: int) -> None:
    """Evaluation, and a rollout under the recorded actions, need the real future (its
    actions, its frames): context + frames must fit in an episode."""
    if context + frames > steps:
        raise DataError(
            f"--context {context} + --frames {frames} exceed the episodes' {steps} frames: "
            f"there is no real future to compare with"
        )

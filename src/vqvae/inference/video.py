"""Video in latent space with a trained image VQ-VAE and a ``VideoPrior`` (paper section 4.4):
episodes encoded to frame codes, (previous frames, action, next frame) examples, the prior's
bits per frame, rollouts decoded to frames, and the evaluation that says whether the actions
matter: the same numbers under the recorded actions and under shuffled ones.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from vqvae import metrics
from vqvae.data.episodes import Episodes, episode_split, read_episodes
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


def load_episodes(spec: str, model) -> Episodes:
    """An episodes file whose frames the model takes, or a one-line DataError."""
    path = Path(spec).expanduser()
    if path.suffix.lower() != ".npz" or not path.is_file():
        raise DataError(
            f"{spec}: not an episodes file (expected an .npz of frames and actions, as "
            f"`vqvae data maze` writes)"
        )
    episodes = read_episodes(path)
    want = (*model.config.input_size, model.config.in_channels)
    got = (*episodes.frame_size, 3)
    if got != want:
        raise DataError(
            f"{spec}: frames are {got[0]}x{got[1]} with {got[2]} channels; the run's model "
            f"takes {want[0]}x{want[1]} with {want[2]}"
        )
    return episodes


def split(episodes: Episodes, name: str) -> Episodes:
    """The ``train`` or ``test`` episodes, or a one-line DataError when there are none."""
    if not len(episode_split(episodes.num_episodes, name)):
        raise DataError(
            f"{episodes.name}: its {episodes.num_episodes} episode(s) leave none for the "
            f"{name} split; record more episodes"
        )
    return episodes.split(name)


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
    prior: VideoPrior,
    data: FrameCodes,
    limit: int | None = None,
    batch_size: int = 64,
    context_from: torch.Tensor | None = None,
) -> float:
    """Mean ``-log2 p(next frame's codes | previous frames, action)`` over ``data``'s examples,
    or over ``limit`` of them evenly spaced (the periodic evaluation's quick look). With
    ``context_from`` (M,), example i is scored given the previous frames of example
    ``context_from[i]``. For a prior without an exact likelihood (the maskgit kind), the
    mean of its upper bound, drawn with a fixed seed so that two calls agree."""
    chosen = torch.arange(len(data))
    if limit is not None and limit < len(data):
        chosen = chosen[:: len(data) // limit][:limit]
    total = 0.0
    generator = torch.Generator().manual_seed(0)
    with eval_mode(prior):
        for sl in batches(len(chosen), batch_size, "scoring"):
            previous, actions, nxt = data.take(chosen[sl])
            if context_from is not None:
                previous = data.take(context_from[chosen[sl]])[0]
            total += float(prior.nll(nxt, previous, actions, generator).sum())
    return total / (len(chosen) * math.log(2))


# --draw: how a frame's codes are drawn -> the frame prior's sampler
DRAWS = {"raster": "fast", "parallel": "parallel", "passes": "maskgit"}


@dataclass(frozen=True)
class Sampling:
    """How a rollout draws each code: from ``softmax(logits / temperature)``, among the
    ``top_k`` likeliest codes only when given; ``top_k=1`` is the greedy (argmax) rollout;
    neither: the prior's own (``VideoPrior.draw_settings``).
    ``method``: the frame prior's sampler ("fast": in raster order, each code given those
    before it; "parallel": every code at once; "maskgit": in passes), None for the prior's
    own default. ``steps`` and ``guidance``: a maskgit prior's passes and action guidance
    (None: its config's)."""

    temperature: float | None = None
    top_k: int | None = None
    method: str | None = None
    steps: int | None = None
    guidance: float | None = None

    def __post_init__(self) -> None:
        if self.temperature is not None and not self.temperature > 0:
            raise DataError(f"--temperature {self.temperature}: expected a number > 0")
        if self.top_k is not None and self.top_k < 1:
            raise DataError(f"--top-k {self.top_k}: expected at least 1 code")
        if self.steps is not None and self.steps < 1:
            raise DataError(f"--steps {self.steps}: expected at least 1 pass")
        if self.guidance is not None and not self.guidance >= 0:
            raise DataError(f"--guidance {self.guidance}: expected a number >= 0")

    @classmethod
    def choose(
        cls,
        temperature: float | None,
        top_k: int | None,
        greedy: bool,
        draw: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
    ) -> Sampling:
        """From the command line's --temperature, --top-k, --greedy (which wins), --draw,
        --steps and --guidance."""
        method = DRAWS[draw] if draw else None
        return cls(temperature, 1 if greedy else top_k, method, steps, guidance)

    def passes_for(self, prior: VideoPrior) -> dict[str, int | float]:
        """``steps`` and ``guidance`` as given, for ``prior.rollout``; a one-line DataError
        for a prior that does not draw in passes."""
        given = {k: v for k, v in (("steps", self.steps), ("guidance", self.guidance))
                 if v is not None}  # fmt: skip
        if given and prior.config.kind != "maskgit":
            raise DataError(
                f"--{' and --'.join(given)}: only a maskgit video prior draws a frame in "
                f"passes; this one is {prior.config.kind}"
            )
        return given

    def method_for(self, prior: VideoPrior) -> str:
        """The sampler used with ``prior``; a one-line DataError if it has none such."""
        method = self.method or prior.default_method
        if (method == "maskgit") != (prior.config.kind == "maskgit"):
            name = {m: d for d, m in DRAWS.items()}.get(method, method)
            raise DataError(
                f"--draw {name}: a maskgit video prior draws a frame in passes only"
                if prior.config.kind == "maskgit"
                else f"--draw {name}: this video prior is a {prior.config.kind}; a maskgit one "
                "draws in passes (--set kind=maskgit)"
            )
        if method == "parallel" and prior.config.kind == "pixelcnn":
            raise DataError(
                "--draw parallel: this video prior is a PixelCNN, which draws in raster order "
                "only; train one with --set kind=parallel or kind=hybrid"
            )
        if method != "parallel" and prior.config.kind == "parallel":
            raise DataError(
                "--draw raster: this video prior draws every code of a frame at once only; "
                "train one with --set kind=hybrid to draw in raster order too"
            )
        return method


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
    sampling: Sampling = Sampling(),
) -> Rollout:
    """Generate codes from context codes (B, c, h, w) and actions (B, F) or (F,), then decode
    context and generated frames with the image VQ-VAE (its decoder only)."""
    context = torch.as_tensor(context, dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    codes = prior.rollout(
        context, torch.as_tensor(actions), generator=generator,
        temperature=sampling.temperature, top_k=sampling.top_k,
        method=sampling.method_for(prior), **sampling.passes_for(prior),
    ).cpu()  # fmt: skip
    b, c, f = context.shape[0], context.shape[1], codes.shape[1]
    both = decode(model, torch.cat([context, codes], dim=1).flatten(0, 1))  # (B*(c+F), H, W, 3)
    both = both.reshape(b, c + f, *both.shape[1:])  # (B*(c+F), ...) -> (B, c+F, H, W, 3)
    return Rollout(context.numpy(), codes.numpy(), both[:, :c], both[:, c:])


@dataclass(frozen=True)
class RolloutScore:
    mse: float  # per pixel on the [0, 1] scale, generated against the real future frames
    psnr: float  # dB
    code_match: float  # fraction of generated codes equal to the real future frame's
    ssim: float  # mean structural similarity with the real future frames (metrics.ssim)
    gradient: float  # the frames' own detail (metrics.image_gradient), uint8 levels


# The evaluation's four futures (docs/video.md): rollouts under the recorded and the shuffled
# actions; the last real context frame held still; and the prior that copies the last
# frame's codes, decoded (the held frame through the first stage: the same codes).
CONDITIONS = ("recorded", "shuffled", "held", "copy")


@dataclass(frozen=True)
class OneStep:
    """Teacher-forced next-frame predictions split by what the true code does: codes that
    persist (equal to the last frame's at the same position) and codes that change."""

    persist_fraction: float  # of the true next codes
    accuracy_persist: float  # the argmax code is the true one, where it persists
    accuracy_change: float  # ... where it changes
    bits_persist: float  # mean -log2 p(true code) per code, where it persists
    bits_change: float
    argmax_copies: float  # fraction of argmax codes equal to the last frame's


@dataclass(frozen=True)
class VideoEvaluation:
    """Section 4.4's evidence that the prior uses the actions: held-out numbers under the
    recorded actions and under a fixed-seed shuffle of them, overall and by horizon
    (docs/video.md)."""

    bits_per_frame_recorded: float
    bits_per_frame_shuffled: float
    # the previous frames of another example (the same fixed permutation): how much the
    # prior reads its context
    bits_per_frame_other_context: float
    rollout_recorded: RolloutScore
    rollout_shuffled: RolloutScore
    rollout_copy_last: RolloutScore  # the last context frame's codes held, decoded
    rollout_held: RolloutScore  # the last real context frame held still
    one_step: OneStep
    horizons: tuple[int, ...]  # 1 .. F
    # {measure: {condition: [F values]}}, measures "psnr", "ssim", "code_agreement", "detail"
    by_horizon: dict[str, dict[str, list[float]]]
    gradient_real: float  # the real future frames' detail, the level rollouts should keep
    num_examples: int  # held-out (previous, action, next) examples scored
    num_rollouts: int
    context: int
    frames: int
    temperature: float
    top_k: int | None
    method: str = "fast"  # the frame prior's sampler: "fast" (raster order) or "parallel"
    starts: int = 1  # rollouts begin at this many evenly spaced points of each episode
    # False: the bits per frame are an upper bound (the maskgit kind), not exact figures
    bits_exact: bool = True
    steps: int | None = None  # a maskgit prior's passes and guidance, as drawn
    guidance: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _score(real, fake, real_codes, codes, by_horizon: dict[str, list[float]]) -> RolloutScore:
    """The overall scores of (B, F, ...) rollouts. SSIM and detail are means over windows and
    pixel pairs, and every horizon holds as many of them: the mean of the horizons' values
    (``_horizon_scores``), not computed again."""
    return RolloutScore(
        mse=metrics.mse(real, fake),
        psnr=metrics.psnr(real, fake),
        code_match=float((real_codes == codes).mean()),
        ssim=float(np.mean(by_horizon["ssim"])),
        gradient=float(np.mean(by_horizon["detail"])),
    )


def _horizon_scores(real, fake, real_codes, codes) -> dict[str, list[float]]:
    """PSNR, SSIM, code agreement and the frames' own detail at each horizon: (B, F, ...)
    pairs -> F values each."""
    frames = range(real.shape[1])
    return {
        "psnr": [metrics.psnr(real[:, f], fake[:, f]) for f in frames],
        "ssim": [metrics.ssim(real[:, f], fake[:, f]) for f in frames],
        "code_agreement": [float((real_codes[:, f] == codes[:, f]).mean()) for f in frames],
        "detail": [metrics.image_gradient(fake[:, f]) for f in frames],
    }


@torch.no_grad()
def one_step_accuracy(prior: VideoPrior, data: FrameCodes, batch_size: int = 64) -> OneStep:
    """``OneStep`` over every example of ``data``, teacher-forced (each position sees the
    true codes before it)."""
    counts = torch.zeros(6, dtype=torch.float64)  # persist, hit|persist, hit|change, bits.., copy
    bits = torch.zeros(2, dtype=torch.float64)
    with eval_mode(prior):
        for sl in batches(len(data), batch_size, "one-step"):
            previous, actions, nxt = data.take(torch.arange(len(data))[sl])
            logits = prior(nxt, previous, actions)  # (B, K, h, w)
            nats = torch.nn.functional.cross_entropy(logits, nxt, reduction="none")  # (B, h, w)
            guess = logits.argmax(1)  # (B, h, w)
            persist = nxt == previous[:, -1]
            hit = guess == nxt
            counts += torch.tensor([
                persist.sum(), (hit & persist).sum(), (hit & ~persist).sum(), (~persist).sum(),
                (guess == previous[:, -1]).sum(), nxt.numel(),
            ], dtype=torch.float64)  # fmt: skip
            bits += torch.stack([nats[persist].sum(), nats[~persist].sum()]).double()
    persist, hit_p, hit_c, change, copies, total = counts.tolist()
    bits = (bits / math.log(2)).tolist()
    return OneStep(
        persist_fraction=persist / total,
        accuracy_persist=hit_p / max(persist, 1),
        accuracy_change=hit_c / max(change, 1),
        bits_persist=bits[0] / max(persist, 1),
        bits_change=bits[1] / max(change, 1),
        argmax_copies=copies / total,
    )


def other_contexts(data: FrameCodes, seed: int = SHUFFLE_SEED) -> torch.Tensor:
    """For each example, the example whose previous frames it gets in the control that asks
    how much the prior reads its context: a fixed-seed random permutation, (M,)."""
    return torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))


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
    sampling: Sampling = Sampling(),
    starts: int = 1,
) -> VideoEvaluation:
    """Score held-out ``episodes`` (encoded as ``data``): bits per frame, the one-step
    predictions, and ``rollouts`` rollouts of ``frames`` frames from ``context`` real frames
    at each of ``starts`` evenly spaced points of every episode (1: its first frames),
    overall and at each horizon 1 .. ``frames``."""
    check_rollout_length(prior, context, frames, episodes.steps)
    check_evaluation_length(context, frames, episodes.steps)
    if starts < 1:
        raise DataError(f"--starts {starts}: expected at least 1 point of each episode")
    shuffled = data.with_actions(shuffled_actions(data.actions))
    # rollout r: episode n[r] from frame t0[r], N * starts * rollouts of them
    last = episodes.steps - context - frames  # the latest first frame with a real future
    offsets = torch.linspace(0, last, starts).round().long().unique()  # (S,)
    n = torch.arange(data.codes.shape[0]).repeat_interleave(len(offsets) * rollouts)
    t0 = offsets.repeat_interleave(rollouts).repeat(data.codes.shape[0])  # (N*S*R,)
    t_ctx = t0[:, None] + torch.arange(context)  # (R', c)
    t_fut = t0[:, None] + context + torch.arange(frames)  # (R', F): frames c .. c+F-1
    ctx = data.codes[n[:, None], t_ctx]  # (R', c, h, w)
    real_codes = data.codes[n[:, None], t_fut].numpy()  # (R', F, h, w)
    real = episodes.frames[n[:, None].numpy(), t_fut.numpy()]  # (R', F, H, W, 3)
    futures = {}  # condition -> (frames (R', F, H, W, 3), codes (R', F, h, w))
    for name, source in (("recorded", data), ("shuffled", shuffled)):
        actions = source.actions[n[:, None], t_fut - 1]  # actions[t] leads to frame t + 1
        out = rollout(model, prior, ctx, actions, seed=seed, sampling=sampling)
        futures[name] = out.frames, out.codes
    still = np.repeat(ctx[:, -1:].numpy(), frames, axis=1)  # (R', F, h, w)
    held = np.repeat(
        episodes.frames[n.numpy(), (t0 + context - 1).numpy()][:, None], frames, axis=1
    )
    futures["held"] = held, still  # the real frame's codes are the last context codes
    futures["copy"] = decode(model, still.reshape(-1, *still.shape[2:])).reshape(real.shape), still
    scores, by_horizon = {}, {}  # condition -> RolloutScore; measure -> condition -> values
    for name in CONDITIONS:
        fake, codes = futures[name]
        horizons = _horizon_scores(real, fake, real_codes, codes)
        scores[name] = _score(real, fake, real_codes, codes, horizons)
        for measure, values in horizons.items():
            by_horizon.setdefault(measure, {})[name] = values
    drawn = prior.draw_settings(sampling.temperature, sampling.top_k)
    return VideoEvaluation(
        bits_per_frame_recorded=bits_per_frame(prior, data),
        bits_per_frame_shuffled=bits_per_frame(prior, shuffled),
        bits_per_frame_other_context=bits_per_frame(prior, data, context_from=other_contexts(data)),
        rollout_recorded=scores["recorded"],
        rollout_shuffled=scores["shuffled"],
        rollout_copy_last=scores["copy"],
        rollout_held=scores["held"],
        one_step=one_step_accuracy(prior, data),
        horizons=tuple(range(1, frames + 1)),
        by_horizon=by_horizon,
        gradient_real=metrics.image_gradient(real),
        num_examples=len(data),
        num_rollouts=len(n),
        context=context,
        frames=frames,
        temperature=drawn[0],
        top_k=drawn[1],
        method=sampling.method_for(prior),
        starts=len(offsets),
        bits_exact=prior.exact_likelihood,
        **_passes(prior, sampling),
    )


def _passes(prior: VideoPrior, sampling: Sampling) -> dict[str, int | float]:
    """The passes and guidance a maskgit prior drew with (given, else its config's)."""
    given = sampling.passes_for(prior)
    if prior.config.kind != "maskgit":
        return given
    return {"steps": prior.config.steps, "guidance": prior.config.guidance, **given}


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

"""Fitting the video prior (paper section 4.4): frames are encoded once by the image VQ-VAE,
and ``VideoPrior`` learns the next frame's codes from the previous k frames' codes and the
action between them, by cross-entropy with the shared ``fit`` loop, in ``RUN/video/``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from vqvae._io import write_json
from vqvae.config import TrainConfig
from vqvae.inference.video import FrameCodes, bits_per_frame, shuffled_actions
from vqvae.priors.video import VideoPrior
from vqvae.runs import RunDir
from vqvae.train.loop import StepOutput
from vqvae.train.prior import fit_and_save

# About 20 minutes on 2 CPU cores for ~4,500 frames of 16x16 grids, K=512 (35 when they are
# shared): a step of 32 examples takes 1.1-2.1 s at the default sizes, and 1,000 steps are
# about 7 passes over the examples (docs/video.md has the measurements).
VIDEO_TRAIN = TrainConfig(
    steps=1000, batch_size=32, lr=1e-3, checkpoint_every=250, eval_every=250, log_every=10,
    eval_limit=256,
)  # fmt: skip


@dataclass(frozen=True)
class VideoTraining:
    """Held-out bits per frame after training, under the recorded and shuffled actions."""

    test_bits_per_frame: float
    test_bits_per_frame_shuffled: float
    uniform_bits_per_frame: float  # h * w * log2 K: every code equally likely
    # True for the maskgit kind: the bits per frame are its upper bound (maskgit.py)
    upper_bound: bool = False


def train_video(
    prior: VideoPrior,
    folder: RunDir,
    train_set: FrameCodes,
    test_set: FrameCodes,
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
) -> VideoTraining:
    """Fit ``prior`` in ``folder`` (its config.json written by the caller); write
    ``model.safetensors`` and ``metrics.json``."""
    positions = math.prod(prior.config.shape)

    def step_fn(idx: torch.Tensor) -> StepOutput:
        prior.train()
        previous, actions, nxt = train_set.take(idx)
        loss, nll = prior.loss(nxt, previous, actions)  # nats per code
        bits = nll.item() / math.log(2)
        if not prior.exact_likelihood:  # the cross-entropy of masked codes, not an NLL
            return StepOutput(loss, {"masked_bits_per_code": bits})
        return StepOutput(loss, {"bits_per_code": bits, "bits_per_frame": bits * positions})

    def evaluate(step: int) -> dict[str, Any]:
        return {"test_bits_per_frame": bits_per_frame(prior, test_set, config.eval_limit)}

    fit_and_save(
        prior, folder, config, len(train_set), step_fn, evaluate,
        resume=resume, progress=progress, desc="video prior",
    )  # fmt: skip
    shuffled = test_set.with_actions(shuffled_actions(test_set.actions))
    result = VideoTraining(
        test_bits_per_frame=bits_per_frame(prior, test_set),
        test_bits_per_frame_shuffled=bits_per_frame(prior, shuffled),
        uniform_bits_per_frame=positions * math.log2(prior.config.num_codes),
        upper_bound=not prior.exact_likelihood,
    )
    write_json(folder.path / "metrics.json", asdict(result))
    return result

"""Training the stacked VQ-VAE (paper section 4.2, end) on a first-stage run's code grids.

The first stage's run encodes its data once (batched, no gradients: ``inference.encode``);
the second-stage model (``models/stacked.py``) is fitted to those fixed grids with the shared
``fit`` loop in ``RUN/stack/``, a run folder of its own (``config.json``, checkpoints that
resume exactly, ``metrics.jsonl`` with the training loss and the held-out bits per grid,
``model.safetensors``). docs/stacked.md has the commands and the measurements.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vqvae._io import write_json
from vqvae.config import TrainConfig, apply_overrides
from vqvae.errors import RunError
from vqvae.inference import encode
from vqvae.models import VQVAE, StackedVQVAE, StackedVQVAEConfig
from vqvae.pretrained import write_weights
from vqvae.runs import RunDir
from vqvae.torch_utils import eval_mode
from vqvae.train.loop import StepOutput, fit
from vqvae.train.vqvae import start_session

# 8 gated layers x 64 channels over 16x16 grids of K=512, 32 grids a step: 1.2 to 1.9 s a step
# on one thread of a busy 2-core CPU, so 1,000 steps (about 7 epochs of 4,500 frames) take
# 20 to 30 minutes (docs/stacked.md).
STACK_TRAIN = TrainConfig(
    steps=1000, batch_size=32, lr=1e-3, checkpoint_every=250, eval_every=250, log_every=10,
    eval_limit=500,
)  # fmt: skip


@dataclass(frozen=True)
class StackResult:
    model: StackedVQVAE
    test_bits_per_grid: float  # -log2 p(grid | z_q), mean over the held-out grids
    bits_per_frame: float  # 3 x log2 K
    resumed_from: int


def encode_grids(model: VQVAE, images: Any) -> torch.Tensor:
    """uint8 images (N, H, W, C) -> stage-1 code grids (N, h, w) int64, batched, no grad."""
    return torch.from_numpy(encode(model, images))


def stacked_config(
    model: VQVAE, overrides: Iterable[str] = (), train: TrainConfig = STACK_TRAIN
) -> tuple[StackedVQVAEConfig, TrainConfig]:
    """The second stage's config for ``model``'s grids (its alphabet and grid shape), with
    ``key=value`` overrides (``--set``) of it and of the training config."""
    base = StackedVQVAEConfig(grid_codes=model.num_codes, grid_shape=model.latent_shape)
    config, train = apply_overrides(base, train, list(overrides))
    if (config.grid_codes, config.grid_shape) != (base.grid_codes, base.grid_shape):
        raise RunError(
            f"grid_codes and grid_shape come from the first stage ({base.grid_codes}, "
            f"{base.grid_shape}); they cannot be set"
        )
    return config, train


@torch.no_grad()
def bits_per_grid(model: StackedVQVAE, grids: torch.Tensor, batch_size: int = 256) -> float:
    """Mean ``-log2 p(grid | z_q(grid))`` over ``grids`` (N, h, w), in eval mode."""
    total = 0.0
    with eval_mode(model):
        for start in range(0, len(grids), batch_size):
            total += float(model(grids[start : start + batch_size]).nll.sum())
    return total / (max(len(grids), 1) * math.log(2))


def train_stack(
    folder: RunDir,
    config: StackedVQVAEConfig,
    train_config: TrainConfig,
    train_grids: torch.Tensor,
    test_grids: torch.Tensor,
    meta: dict[str, Any],
    *,
    resume: bool = False,
    progress: bool = True,
) -> StackResult:
    """Fit a ``StackedVQVAE`` to ``train_grids`` (N, h, w) in ``folder`` (prepared by the
    caller), logging the held-out bits per grid of ``test_grids``; ``meta`` goes into
    ``config.json`` (the data spec) and must match on ``resume``."""
    s = start_session(folder, StackedVQVAE, config, train_config, meta, resume, device=None)
    model: StackedVQVAE = s.model
    held_out = test_grids[: train_config.eval_limit]

    def step_fn(idx: torch.Tensor) -> StepOutput:
        s.trained.train()
        out = s.trained(train_grids[idx].to(s.device))
        logs = {
            "bits_per_grid": out.bits_per_grid.item(),
            "vq_loss": out.vq_loss.item(),
            "perplexity": out.perplexity.mean().item(),
        }
        return StepOutput(out.loss, logs)

    def evaluate(step: int) -> dict[str, Any]:
        return {"test_bits_per_grid": bits_per_grid(model, held_out.to(s.device))}

    result = fit(
        s.trained,
        s.optimizer,
        train_config,
        num_examples=len(train_grids),
        step_fn=step_fn,
        run=folder,
        evaluate=evaluate,
        resume=resume,
        progress=progress,
        desc="stacked VQ-VAE",
    )
    test_bits = bits_per_grid(model, test_grids.to(s.device))
    if s.world.is_main:
        write_weights(folder.weights_file, model.state_dict())
        codes = model.encode(test_grids.to(s.device)).cpu().numpy()
        # the fraction of each latent's K codes that the held-out grids use
        usage = [len(np.unique(c)) / model.num_codes for c in codes.T]  # (N, 3) -> 3 x (N,)
        summary = {"test_bits_per_grid": test_bits, "bits_per_frame": model.bits_per_frame}
        write_json(folder.path / "metrics.json", summary | {"code_usage": usage})
    s.world.barrier()
    return StackResult(model, test_bits, model.bits_per_frame, result.start_step)

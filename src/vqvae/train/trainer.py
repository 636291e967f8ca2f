"""``vqvae train``: fit a VQ-VAE to a data set and keep everything in its run folder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vqvae._io import write_json, write_safetensors
from vqvae.config import TrainConfig
from vqvae.data import ImageDataset, save_png_grid, to_model_input
from vqvae.models import VQVAE, VQVAEConfig
from vqvae.pretrained import config_to_dict
from vqvae.train import distributed
from vqvae.train.evaluate import Evaluation, reconstruct, score
from vqvae.train.loop import StepOutput, fit
from vqvae.train.run import RunDir, RunError, resume_differences

GRID_IMAGES = 32  # originals and reconstructions shown in the periodic grid


@dataclass(frozen=True)
class TrainResult:
    model: VQVAE
    evaluation: Evaluation | None  # on the held-out images, after the last step
    resumed_from: int


def run_config(
    model_config: VQVAEConfig, train_config: TrainConfig, meta: dict[str, Any]
) -> dict[str, Any]:
    """What ``config.json`` holds: the model's config (what ``from_pretrained`` reads), the
    training config, and how they were chosen (data, preset, --set pairs)."""
    return {
        "class": "VQVAE",
        "config": config_to_dict(model_config),
        "train": config_to_dict(train_config),
        **meta,
    }


def check_resumable(saved: dict[str, Any], wanted: dict[str, Any], run: RunDir) -> None:
    """--resume must continue the same run: same model, same trajectory-shaping settings."""
    diffs = resume_differences(saved, wanted, top_keys=("data",))
    if diffs:
        raise RunError(
            f"{run.path}: --resume with a config that does not match the run (differs in "
            f"{', '.join(diffs)}); drop the changed options, or start a new run"
        )


def load_run_model(run: RunDir) -> VQVAE:
    """The trained VQ-VAE of a run folder, in eval mode."""
    if not run.path.is_dir():
        raise RunError(f"{run.path}: no such run folder")
    if not run.weights_file.is_file():
        raise RunError(f"{run.path}: no trained weights (model.safetensors); is training finished?")
    return VQVAE.from_pretrained(run.path).eval()


def save_reconstruction_grid(path, originals: np.ndarray, recons: np.ndarray) -> None:
    """Rows alternate: 8 originals, then their 8 reconstructions."""
    n = min(len(originals), GRID_IMAGES) // 8 * 8 or min(len(originals), GRID_IMAGES)
    rows = []
    for start in range(0, n, 8):
        rows += [originals[start : start + 8], recons[start : start + 8]]
    scale = max(1, 64 // originals.shape[1])
    save_png_grid(np.concatenate(rows), path, nrow=min(8, n), scale=scale)


def train_vqvae(
    run: RunDir,
    train_set: ImageDataset,
    test_set: ImageDataset,
    model_config: VQVAEConfig,
    train_config: TrainConfig,
    *,
    meta: dict[str, Any],
    resume: bool = False,
    progress: bool = True,
    device: str | None = None,
) -> TrainResult:
    world, dev = distributed.setup(device)
    wanted = run_config(model_config, train_config, meta)
    if resume:
        check_resumable(run.read_config(), wanted, run)
    if world.is_main:
        write_json(run.config_file, wanted)

    # The initial weights come from --seed too, not from whatever state the global generator
    # happens to be in (a second run in one process would start elsewhere).
    torch.manual_seed(train_config.seed)
    model = VQVAE(model_config).to(dev)
    trained = distributed.wrap(model, dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.lr)
    x_train = to_model_input(train_set.images)  # (N, C, H, W) in [-1, 1], kept in memory
    held_out = test_set.images[: train_config.eval_limit]

    def step_fn(idx: torch.Tensor) -> StepOutput:
        model.train()
        out = trained(x_train[idx].to(dev))
        used = torch.unique(out.codes).numel() / model.num_codes
        return StepOutput(
            out.loss,
            {
                "recon_loss": out.recon_loss.item(),
                "vq_loss": out.vq_loss.item(),
                "perplexity": out.perplexity.item(),
                "code_usage": used,
                "restarted": out.quantizer.num_restarted,
            },
        )

    latest: list[Evaluation] = []

    def evaluate(step: int) -> dict[str, Any]:
        codes, recons = reconstruct(model, held_out)
        if world.is_main:
            save_reconstruction_grid(run.path / "reconstructions.png", held_out, recons)
        latest[:] = [score(model, held_out, codes, recons)]
        return latest[0].to_dict()

    result = fit(
        model,
        optimizer,
        train_config,
        num_examples=len(x_train),
        step_fn=step_fn,
        run=run,
        evaluate=evaluate,
        resume=resume,
        progress=progress,
        desc=f"train {run.path.name}",
    )
    if world.is_main:
        write_safetensors(run.weights_file, model.state_dict())
        if not latest and len(held_out):  # resumed a run that had already finished
            evaluate(train_config.steps)
    world.barrier()
    return TrainResult(model, latest[0] if latest else None, result.start_step)

"""Training a VQ-VAE: its step function and periodic evaluation around the shared loop.

The run folder keeps everything (``vqvae.runs``): the resolved config, checkpoints that
resume exactly, ``metrics.jsonl``, a grid of held-out reconstructions refreshed at every
evaluation, and the final weights.

The training images are read one batch at a time, the batches the loop's ``batch_indices``
name: from memory, from a memory-mapped array, or decoded from files by worker processes
(``vqvae.data.read_batches``), which read ahead while the model trains. Each comes to the
step as uint8 and is converted to ``[-1, 1]`` on the device, so memory holds the images as
they are stored (or none of them), not a float copy of the data set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vqvae._io import write_json
from vqvae.config import TrainConfig
from vqvae.data import ImageDataset, read_all, read_batches, save_png_grid, to_model_input
from vqvae.errors import RunError
from vqvae.inference import Evaluation, reconstruct, score
from vqvae.models import VQVAE, VQVAEConfig
from vqvae.pretrained import write_weights
from vqvae.runs import RunDir, resume_differences, run_config
from vqvae.train import distributed
from vqvae.train.loop import StepOutput, fit

GRID_IMAGES = 32  # originals and reconstructions shown in the periodic grid


@dataclass(frozen=True)
class TrainResult:
    model: VQVAE
    evaluation: Evaluation | None  # on the held-out images, after the last step
    resumed_from: int


def check_resumable(run: RunDir, wanted: dict[str, Any], config_class: type = VQVAEConfig) -> None:
    """--resume must continue the same run: same model, same trajectory-shaping settings,
    same data (its spec, and where recorded, its resize and split layout: runs of older
    releases and speech runs record neither)."""
    saved = run.read_config()
    keys = ("data", *(k for k in ("resize", "split_layout") if k in saved))
    diffs = resume_differences(saved, wanted, config_class, top_keys=keys)
    if diffs:
        raise RunError(
            f"{run.path}: --resume with a config that does not match the run (differs in "
            f"{', '.join(diffs)}); drop the changed options, or start a new run"
        )


@dataclass(frozen=True)
class Session:
    """What every VQ-VAE trainer sets up before its first step."""

    world: distributed.World
    device: torch.device
    model: Any  # the model of ``model_class``
    trained: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer


def start_session(
    run: RunDir,
    model_class: type,
    model_config: Any,
    train_config: TrainConfig,
    meta: dict[str, Any],
    resume: bool,
    device: str | None,
) -> Session:
    """Check a resumed run, write ``config.json``, build the model from ``--seed``."""
    world, dev = distributed.setup(device)
    wanted = run_config(model_class.__name__, model_config, train_config, **meta)
    if resume:
        check_resumable(run, wanted, model_class.config_class)
    if world.is_main:
        write_json(run.config_file, wanted)
    # The initial weights come from --seed too, not from whatever state the global generator
    # happens to be in (a second run in one process would start elsewhere).
    torch.manual_seed(train_config.seed)
    model = model_class(model_config).to(dev)
    if train_config.channels_last:  # the 4-D (2-D convolution) weights; others keep theirs
        model = model.to(memory_format=torch.channels_last)
    trained = distributed.wrap(model, dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.lr)
    return Session(world, dev, model, trained, optimizer)


def end_session(
    s: Session, run: RunDir, start_step: int, latest: list, evaluate, steps: int
) -> TrainResult:
    """Write the final weights (and evaluate a resumed run that had already finished)."""
    if s.world.is_main:
        write_weights(run.weights_file, s.model.state_dict())
        if not latest and evaluate is not None:
            evaluate(steps)
    s.world.barrier()
    return TrainResult(s.model, latest[0] if latest else None, start_step)


def save_reconstruction_grid(path, originals: np.ndarray, recons: np.ndarray) -> None:
    """Rows alternate: 8 originals, then their 8 reconstructions."""
    n = min(len(originals), GRID_IMAGES) // 8 * 8 or min(len(originals), GRID_IMAGES)
    rows = []
    for start in range(0, n, 8):
        rows += [originals[start : start + 8], recons[start : start + 8]]
    scale = max(1, 64 // originals.shape[1])
    save_png_grid(np.concatenate(rows), path, nrow=min(8, n), scale=scale)


# quantizer output fields logged when a kind has them (nats; the batch's maximum is log K)
ENTROPY_LOGS = ("sample_entropy", "codebook_entropy")


def vqvae_step(
    model: VQVAE,
    trained: torch.nn.Module,
    device: torch.device,
    layout: torch.memory_format = torch.contiguous_format,
) -> Callable:
    """One training step's loss and logs on a batch of uint8 images (B, H, W, C)
    (``trained``: the model, or its DistributedDataParallel wrapper; ``layout``: the
    memory format the images are given to it in, ``channels_last`` for NHWC)."""

    def step_fn(batch: torch.Tensor) -> StepOutput:
        model.train()
        x = to_model_input(batch.to(device, non_blocking=True))  # (B, C, H, W) in [-1, 1]
        x = x.contiguous(memory_format=layout if x.dim() == 4 else torch.contiguous_format)
        out = trained(x)
        used = torch.unique(out.codes).numel() / model.num_codes
        logs = {
            "recon_loss": out.recon_loss.item(),
            "vq_loss": out.vq_loss.item(),
            "perplexity": out.perplexity.item(),
            "code_usage": used,
            "restarted": out.quantizer.num_restarted,
        }
        for name in ENTROPY_LOGS:  # LFQ's entropy terms, to watch the batch entropy's rise
            value = getattr(out.quantizer, name, None)
            if value is not None:
                logs[name] = value.item()
        return StepOutput(out.loss, logs)

    return step_fn


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
    s = start_session(run, VQVAE, model_config, train_config, meta, resume, device)
    world, dev, model, trained = s.world, s.device, s.model, s.trained
    images = train_set.images  # uint8 (N, H, W, C): in memory, memory-mapped or files
    held_out = read_all(test_set.images, train_config.eval_limit)  # scored at every evaluation
    latest: list[Evaluation] = []
    layout = torch.channels_last if train_config.channels_last else torch.contiguous_format

    def fetch(index_batches: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
        return read_batches(images, index_batches, pin_memory=dev.type == "cuda")

    def evaluate(step: int) -> dict[str, Any]:
        codes, recons = reconstruct(model, held_out)
        if world.is_main:
            save_reconstruction_grid(run.path / "reconstructions.png", held_out, recons)
        latest[:] = [score(model, held_out, codes, recons)]
        return latest[0].to_dict()

    result = fit(
        model,
        s.optimizer,
        train_config,
        num_examples=len(images),
        step_fn=vqvae_step(model, trained, dev, layout),
        fetch=fetch,
        run=run,
        evaluate=evaluate,
        resume=resume,
        progress=progress,
        trained=s.trained,
        desc=f"train {run.path.name}",
    )
    score_at_end = evaluate if len(held_out) else None
    return end_session(s, run, result.start_step, latest, score_at_end, train_config.steps)

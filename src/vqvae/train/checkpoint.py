"""Checkpoints that resume training exactly, and survive being killed at any moment.

A checkpoint is a folder ``checkpoints/step-NNNNNNN/`` holding ``model.safetensors`` and
``state.pt`` (optimizer, step, random-number state, float16's loss scale; read back with
``weights_only=True``).
It is written as a hidden temporary folder and renamed into place, so a folder with a
step name is always complete; a SIGKILL mid-write leaves only a temporary folder, which
the next run deletes.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vqvae._io import read_safetensors, torch_load, torch_save, write_safetensors
from vqvae.pretrained import load_state_checked

_STEP_DIR = re.compile(r"^step-(\d{7,})$")
KEEP = 2  # checkpoints kept; older ones are removed once a newer one is complete


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    folder: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
) -> Checkpoint:
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:07d}"
    tmp = folder / f".tmp-step-{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write_safetensors(tmp / "model.safetensors", model.state_dict())
    torch_save(
        tmp / "state.pt",
        {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            # float16's loss scale and its growth counter (empty without --precision 16)
            "scaler": scaler.state_dict() if scaler is not None else {},
        },
    )
    if final.exists():  # re-saving the same step (after Ctrl-C at a checkpoint step)
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(folder)
    for old in list_checkpoints(folder)[:-KEEP]:
        shutil.rmtree(old.path, ignore_errors=True)
    return Checkpoint(final, step)


def list_checkpoints(folder: Path) -> list[Checkpoint]:
    """Complete checkpoints, oldest first."""
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir():
            found.append(Checkpoint(p, int(m.group(1))))
    return sorted(found, key=lambda c: c.step)


def clean_partial(folder: Path) -> None:
    """Remove temporary folders left by a process killed while saving."""
    if folder.is_dir():
        for p in folder.glob(".tmp-step-*"):
            shutil.rmtree(p, ignore_errors=True)


def load_checkpoint(
    checkpoint: Checkpoint,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, Any]:
    """Restore model, optimizer, loss scaler and RNG state in place; return the state dict."""
    weights = read_safetensors(checkpoint.path / "model.safetensors")
    migrate = getattr(model, "migrate_state_dict", None)  # weights named by an older release
    if migrate is not None:
        weights = migrate(weights)
    load_state_checked(model, weights, checkpoint.path / "model.safetensors")
    state = torch_load(checkpoint.path / "state.pt")
    if not isinstance(state, dict) or state.get("step") != checkpoint.step:
        raise ValueError(f"{checkpoint.path}/state.pt: not a checkpoint of step {checkpoint.step}")
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError) as e:
        raise ValueError(
            f"{checkpoint.path}/state.pt: optimizer state does not fit ({e})"
        ) from None
    if scaler is not None and scaler.is_enabled():
        if not state.get("scaler"):
            raise ValueError(
                f"{checkpoint.path}/state.pt: no loss-scaler state (not a --precision 16 run)"
            )
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return state

"""Checkpoints that resume training exactly, and survive being killed at any moment.

A checkpoint is a folder ``checkpoints/step-NNNNNNN/`` holding ``model.safetensors`` and
``state.pt`` (optimizer, step, random-number state, float16's loss scale; read back with
``weights_only=True``).
It is written as a hidden temporary folder and renamed into place, so a folder with a
step name is always complete; a SIGKILL mid-write leaves only a temporary folder, which
the next run deletes.

Each checkpoint's ``manifest.json`` (the files' sizes and SHA-256, ``vqvae._io``) is written
last, so a checkpoint without one is incomplete by definition, and a flipped byte or a cut
file is found before anything is loaded: ``newest_good`` passes over such a checkpoint to
the one before it. Checkpoints written before manifests existed are told apart by the
folder's ``format.json`` (``MANIFESTS_SINCE``): written before the first checkpoint that has a
manifest, it records that step, and a checkpoint of an earlier step, or of a folder with no
``format.json``, is an old one, read unchecked as before (docs/run-folders.md).

A write the disk refuses removes the temporary folder and raises ``WriteError`` naming the
file and the last good checkpoint; nothing complete is touched.
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

from vqvae._io import (
    WriteError,
    as_write_error,
    entry_problem,
    manifest_entry,
    read_json,
    read_manifest,
    read_safetensors,
    safetensors_bytes,
    torch_bytes,
    torch_load,
    write_bytes,
    write_json,
    write_manifest,
)
from vqvae.errors import RunError
from vqvae.pretrained import load_state_checked

_STEP_DIR = re.compile(r"^step-(\d{7,})$")
KEEP = 2  # checkpoints kept; older ones are removed once a newer one is complete
FILES = ("model.safetensors", "state.pt")  # what a checkpoint holds besides its manifest
FORMAT_FILE = "format.json"
MANIFESTS_SINCE = "manifests_since_step"  # the first step whose checkpoint has a manifest
DAMAGED_PREFIX = "damaged-"  # a damaged checkpoint set aside by --resume (not listed)


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
    final = folder / f"step-{step:07d}"
    tmp = folder / f".tmp-step-{step:07d}"
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        # float16's loss scale and its growth counter (empty without --precision 16)
        "scaler": scaler.state_dict() if scaler is not None else {},
    }
    contents = {"model.safetensors": safetensors_bytes(model.state_dict()),
                "state.pt": torch_bytes(state)}  # fmt: skip
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, data in contents.items():
            write_bytes(tmp / name, data)
        if manifests_since(folder) is None:  # before the first checkpoint with a manifest
            write_json(folder / FORMAT_FILE, {MANIFESTS_SINCE: step})
        write_manifest(tmp, {name: manifest_entry(data) for name, data in contents.items()})
        if final.exists():  # re-saving the same step (after Ctrl-C at a checkpoint step)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(folder)
    except (OSError, WriteError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        failed = e if isinstance(e, WriteError) else as_write_error(tmp, e)
        if not isinstance(failed, WriteError):
            raise
        if failed.path.is_relative_to(tmp):  # named as the checkpoint it was to become
            failed = WriteError(final / failed.path.relative_to(tmp), OSError(failed.errno, ""))
        raise RunError(f"{failed}; {last_good_note(folder)}") from None
    for old in list_checkpoints(folder)[:-KEEP]:
        shutil.rmtree(old.path, ignore_errors=True)
    return Checkpoint(final, step)


def last_good_note(folder: Path) -> str:
    """Where a run that stopped now would continue from, for an error line."""
    found = list_checkpoints(folder)
    if not found:
        return "no checkpoint written yet"
    return f"the last good checkpoint is step {found[-1].step} (continue with --resume)"


def manifests_since(folder: Path) -> int | None:
    """The first step whose checkpoint was written with a manifest, None before any was."""
    path = folder / FORMAT_FILE
    if not path.is_file():
        return None
    try:
        return int(read_json(path)[MANIFESTS_SINCE])
    except (ValueError, KeyError, TypeError):
        return 0  # unreadable: hold every checkpoint to a manifest (the safe reading)


def checkpoint_problems(checkpoint: Checkpoint, since: int | None) -> list[str]:
    """What is wrong with a checkpoint, one short line each; [] if it is good. One with a
    manifest is checked against it; one without is incomplete, unless it is older than
    manifests (``since``: ``manifests_since``), when its files are read as before."""
    path = checkpoint.path
    if not path.is_dir():  # pruned by the run's writer while being looked at
        return []
    try:
        files = read_manifest(path)
    except ValueError as e:
        return [str(e)]
    if files is None:
        if since is not None and checkpoint.step >= since:
            return [f"{path}: incomplete (no {path.name}/manifest.json)"]
        try:  # a checkpoint of an older release: readable is all that can be asked
            read_safetensors(path / FILES[0])
            torch_load(path / FILES[1])
        except (ValueError, FileNotFoundError) as e:
            return [str(e)]
        return []
    problems = [f"{path}: its manifest lacks {n}" for n in FILES if n not in files]
    for name, entry in files.items():
        file = path / name
        problem = entry_problem(file, file.read_bytes() if file.is_file() else None, entry)
        if problem:
            problems.append(problem)
    return problems


@dataclass(frozen=True)
class Choice:
    """The checkpoint ``--resume`` continues from, and the newer ones it passed over."""

    checkpoint: Checkpoint | None
    damaged: list[tuple[Checkpoint, str]]  # newest first, each with its first problem


def newest_good(folder: Path) -> Choice:
    """The newest checkpoint that passes ``checkpoint_problems``, reading the newest first."""
    since = manifests_since(folder)
    damaged = []
    for checkpoint in reversed(list_checkpoints(folder)):
        problems = checkpoint_problems(checkpoint, since)
        if not problems:
            return Choice(checkpoint, damaged)
        damaged.append((checkpoint, problems[0]))
    return Choice(None, damaged)


def set_aside(checkpoint: Checkpoint) -> Path:
    """Rename a damaged checkpoint out of the list (``damaged-step-N``), kept for a look."""
    aside = checkpoint.path.with_name(DAMAGED_PREFIX + checkpoint.path.name)
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(checkpoint.path, aside)
    return aside


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
    *,
    checked: bool = False,
) -> dict[str, Any]:
    """Restore model, optimizer, loss scaler and RNG state in place; return the state dict.
    A damaged or incomplete checkpoint is refused in one line before anything is restored
    (``checked``: ``newest_good`` has just checked it)."""
    if not checked:
        problems = checkpoint_problems(checkpoint, manifests_since(checkpoint.path.parent))
        if problems:
            raise RunError(problems[0])
    weights = read_safetensors(checkpoint.path / FILES[0])
    migrate = getattr(model, "migrate_state_dict", None)  # weights named by an older release
    if migrate is not None:
        weights = migrate(weights)
    load_state_checked(model, weights, checkpoint.path / "model.safetensors")
    state = torch_load(checkpoint.path / FILES[1])
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


@dataclass(frozen=True)
class Verification:
    """What ``verify_run`` found: one line per problem, and how much it checked."""

    problems: list[str]
    weights: int  # weight files checked (the run's, its prior's, ...)
    checkpoints: int


def verify_run(path: Path) -> Verification:
    """Check every folder of a run that holds a model (the run, its prior, stack, video
    prior, vocoder, ...): ``config.json`` readable, the weights against their manifest (or,
    written before manifests, readable), every checkpoint by ``checkpoint_problems``."""
    if not path.is_dir():
        raise RunError(f"{path}: no such run folder")
    folders = [path] + sorted(
        p.parent
        for p in path.rglob("config.json")
        if p.parent != path and "checkpoints" not in p.relative_to(path).parts
    )
    problems: list[str] = []
    weights = checkpoints = 0
    for folder in folders:
        config = folder / "config.json"
        if folder != path or config.is_file():
            try:
                read_json(config)
            except (ValueError, FileNotFoundError) as e:
                problems.append(str(e))
        try:
            listed = read_manifest(folder) or {}
        except ValueError as e:
            problems.append(str(e))
            listed = {}
        for name in sorted({p.name for p in folder.glob("*.safetensors")} | set(listed)):
            weights += 1
            file = folder / name
            data = file.read_bytes() if file.is_file() else None
            problem = entry_problem(file, data, listed[name]) if name in listed else None
            if problem is None and data is not None and name.endswith(".safetensors"):
                try:
                    read_safetensors(file, data)
                except ValueError as e:
                    problem = str(e)
            if problem:
                problems.append(problem)
        since = manifests_since(folder / "checkpoints")
        for checkpoint in list_checkpoints(folder / "checkpoints"):
            checkpoints += 1
            problems += checkpoint_problems(checkpoint, since)
    return Verification(problems, weights, checkpoints)

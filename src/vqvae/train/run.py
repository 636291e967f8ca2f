"""A run is a folder (DESIGN.md): ``config.json``, ``model.safetensors``, ``metrics.jsonl``,
``checkpoints/`` and ``report/``. This module owns its layout and its safety rules:
never overwrite a run without ``--force`` or ``--resume``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from vqvae._io import atomic_write, read_json


class RunError(ValueError):
    """A problem with a run folder that the user can fix (one line)."""


def say(message: str) -> None:
    """A progress or choice message for the user, on stderr (stdout carries results)."""
    print(message, file=sys.stderr)


def refuse_overwrite(path: Path, force: bool) -> None:
    """An output file or non-empty folder is only replaced with ``--force``."""
    if path.exists() and not (path.is_dir() and not any(path.iterdir())) and not force:
        raise RunError(f"{path}: already exists; use --force to overwrite it")


# Training settings that shape the trajectory: --resume must keep them (--steps may grow).
TRAJECTORY_KEYS = ("batch_size", "lr", "seed")


def resume_differences(
    saved: dict[str, Any], wanted: dict[str, Any], top_keys: tuple[str, ...] = ()
) -> list[str]:
    """Where a run's saved config.json and the config asked for now disagree, as dotted
    names: model fields, trajectory-shaping training fields, and ``top_keys``."""
    wanted = json.loads(json.dumps(wanted))  # as config.json holds it: tuples become lists
    model, train = saved.get("config", {}), saved.get("train", {})
    diffs = [f"model.{k}" for k in wanted["config"] if model.get(k) != wanted["config"][k]]
    diffs += [f"train.{k}" for k in TRAJECTORY_KEYS if train.get(k) != wanted["train"][k]]
    return diffs + [k for k in top_keys if saved.get(k) != wanted.get(k)]


class RunDir:
    def __init__(self, path: str | Path, kind: str = "run") -> None:
        self.path = Path(path)
        self.kind = kind  # what the folder holds, for messages: "run", "prior"

    # -- layout --------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def weights_file(self) -> Path:
        return self.path / "model.safetensors"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def report(self) -> Path:
        return self.path / "report"

    # -- life cycle ----------------------------------------------------------------------
    def is_empty(self) -> bool:
        return not self.path.exists() or (self.path.is_dir() and not any(self.path.iterdir()))

    def check(self, *, resume: bool, force: bool) -> None:
        """Refuse what ``prepare`` would refuse, touching nothing: commands call it before
        slow work (loading, encoding) so that a refusal comes at once."""
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"{self.path}: exists and is not a folder")
        if resume and not self.config_file.is_file():
            raise RunError(f"{self.path}: nothing to resume (no config.json)")
        if not resume and not force and not self.is_empty():
            raise RunError(
                f"{self.path}: already holds a {self.kind}; use --resume to continue it "
                f"or --force to replace it"
            )

    def prepare(self, *, resume: bool, force: bool) -> None:
        """Create the folder for a fresh run (replacing an old one under ``force``), or
        check it can be resumed."""
        self.check(resume=resume, force=force)
        if resume:
            return
        if not self.is_empty():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)

    def read_config(self) -> dict[str, Any]:
        data = read_json(self.config_file)
        if not isinstance(data, dict) or "config" not in data:
            raise RunError(f"{self.config_file}: not a vqvae run config")
        return data

    # -- metrics -------------------------------------------------------------------------
    def log(self, record: dict[str, Any]) -> None:
        with open(self.metrics_file, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_file.is_file():
            return []
        records = []
        for line in self.metrics_file.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
        return records

    def truncate_metrics(self, step: int) -> None:
        """On resume: drop records written after the checkpoint, which will be redone."""
        kept = [r for r in self.read_metrics() if r.get("step", 0) <= step]
        text = "".join(json.dumps(r) + "\n" for r in kept)
        atomic_write(self.metrics_file, lambda tmp: Path(tmp).write_text(text))

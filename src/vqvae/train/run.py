"""A run is a folder (DESIGN.md): ``config.json``, ``model.safetensors``, ``metrics.jsonl``,
``checkpoints/`` and ``report/``. This module owns its layout and its safety rules:
never overwrite a run without ``--force`` or ``--resume``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from vqvae._io import atomic_write, read_json


class RunError(ValueError):
    """A problem with a run folder that the user can fix (one line)."""


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

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

    def prepare(self, *, resume: bool, force: bool) -> None:
        """Create the folder for a fresh run, or check it can be resumed."""
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"{self.path}: exists and is not a folder")
        if resume:
            if not self.config_file.is_file():
                raise RunError(f"{self.path}: nothing to resume (no config.json)")
            return
        if not self.is_empty():
            if not force:
                raise RunError(
                    f"{self.path}: already holds a run; use --resume to continue it "
                    f"or --force to replace it"
                )
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

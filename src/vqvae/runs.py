"""A run is a folder: ``config.json``, ``model.safetensors``, ``metrics.jsonl``,
``checkpoints/``, ``report/`` and, once fitted, ``prior/`` and ``stack/`` (folders of the same
layout). This module owns that layout, its one ``config.json`` reader and writer, loading a run's
model and prior, and the safety rules: never overwrite a run without ``--force`` or
``--resume``, and one writer at a time (``RunDir.lock``: an OS lock on ``RUN/.lock`` held by
every command that writes into the run, docs/run-folders.md).

``config.json`` of a run is what ``from_pretrained`` reads (``class`` and ``config``) plus
``train`` (the training config) and how the run was made (``data``, ``preset``,
``overrides``; a prior's adds ``kind``). Configs of older releases are migrated on reading
(the ``RENAMED`` keys of each config class, ``pretrained.renamed_keys``; tests/test_compat.py).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vqvae._io import as_write_error, atomic_write, read_json
from vqvae.errors import RunError
from vqvae.models import VQVAE
from vqvae.pretrained import (
    config_file_dict,
    config_from_dict,
    config_to_dict,
)
from vqvae.registry import MODELS, PRIORS

PRIOR_FOLDER = "prior"
STACK_FOLDER = "stack"  # the stacked VQ-VAE over the run's code grids (docs/stacked.md)
STACK_FIGURE = "stacked.png"  # `vqvae stack eval`'s figure and numbers, in RUN/stack/eval/
STACK_SUMMARY = "eval.json"
VIDEO_FOLDER = "video"  # the video prior over the run's frame codes (docs/video.md)
LOCK_FILE = ".lock"  # held (flock) by the one command writing the run; names it inside

try:
    import fcntl
except ImportError:  # not POSIX (Windows): runs are not locked there
    fcntl = None  # type: ignore[assignment]


def refuse_overwrite(path: Path, force: bool) -> None:
    """An output file or non-empty folder is only replaced with ``--force``."""
    if path.exists() and not (path.is_dir() and not any(path.iterdir())) and not force:
        raise RunError(f"{path}: already exists; use --force to overwrite it")


# Training settings that shape the trajectory: --resume must keep them (--steps may grow).
# Precision, compilation and micro-batching each round differently, and a schedule sets the
# rate of every step: a resumed run that changed one would not take the steps it would have.
TRAJECTORY_KEYS = (
    "batch_size", "lr", "seed", "lr_schedule", "warmup_steps", "lr_final",
    "precision", "compile", "accumulate", "channels_last",
)  # fmt: skip
# What a run written before a setting existed trained with.
_TRAJECTORY_DEFAULTS = {"lr_schedule": "constant", "warmup_steps": 0, "lr_final": 0.0,
                        "precision": "32", "compile": False, "accumulate": 1,
                        "channels_last": False}  # fmt: skip


def resume_differences(
    saved: dict[str, Any],
    wanted: dict[str, Any],
    config_class: type | None = None,
    top_keys: tuple[str, ...] = (),
) -> list[str]:
    """Where a run's saved config.json and the config asked for now disagree, as dotted
    names: model fields, trajectory-shaping training fields, and ``top_keys``. With
    ``config_class`` the saved config is first read as today's code reads it (the keys of
    older releases migrated), so a run written by an older release can be resumed."""
    wanted = json.loads(json.dumps(wanted))  # as config.json holds it: tuples become lists
    model, train = saved.get("config", {}), saved.get("train", {})
    if config_class is not None:
        try:
            model = json.loads(json.dumps(config_to_dict(config_from_dict(config_class, model))))
        except (TypeError, ValueError) as e:
            raise RunError(f"the saved config is not a {config_class.__name__} ({e})") from None
    diffs = [f"model.{k}" for k in wanted["config"] if model.get(k) != wanted["config"][k]]
    for k in TRAJECTORY_KEYS:
        was = train.get(k, _TRAJECTORY_DEFAULTS.get(k))
        now = wanted["train"].get(k, _TRAJECTORY_DEFAULTS.get(k))
        if was != now:
            diffs.append(f"train.{k}: {was} in the run, {now} asked")
    decays = wanted["train"].get("lr_schedule", "constant") != "constant"
    if decays and train.get("steps") != wanted["train"].get("steps"):
        diffs.append("train.steps (the schedule's horizon)")
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

    @property
    def vocoder(self) -> Path:
        """A mel run's trained vocoder, copied in by ``vqvae train --vocoder`` (optional)."""
        return self.path / "vocoder"

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    # -- life cycle ----------------------------------------------------------------------
    def _contents(self) -> list[Path]:
        """What the folder holds, but for the lock file of the command writing it."""
        return [p for p in self.path.iterdir() if p.name != LOCK_FILE]

    def is_empty(self) -> bool:
        return not self.path.exists() or (self.path.is_dir() and not self._contents())

    @contextmanager
    def lock(self, command: str, create: bool = False) -> Iterator[None]:
        """Hold the run for one writer: an exclusive ``flock`` on ``RUN/.lock``, which names
        the holder (pid, host, command, start) so that a second writer is refused in one line
        saying who. The OS drops the lock when its process dies, so a killed command never
        blocks the next. ``create``: make the folder (a new run); else a missing folder is
        left to the command to refuse. A folder this made and left empty is removed again."""
        if fcntl is None or (not create and not self.path.is_dir()):
            yield
            return
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"{self.path}: exists and is not a folder")
        made = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = self._acquire(command)
        except OSError as e:  # a read-only or foreign folder: one line naming the file
            raise as_write_error(self.lock_file, e) from None
        try:
            yield
        finally:
            # removed while still held: a command that opened the old file finds it gone
            # (``_acquire`` checks) rather than locking a file nobody else will see
            try:
                self.lock_file.unlink(missing_ok=True)
            finally:
                os.close(fd)
            if made and not any(self.path.iterdir()):
                self.path.rmdir()

    def _acquire(self, command: str) -> int:
        while True:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunError(
                    f"{self.path}: another command is writing this {self.kind} ({holder}); "
                    f"wait for it to finish, or stop it, and try again"
                ) from None
            except OSError as e:  # a file system without locks: go on, unguarded
                os.close(fd)
                from vqvae.console import say

                say(f"vqvae: note: {self.lock_file} cannot be locked here ({e.strerror})")
                return os.open(os.devnull, os.O_RDONLY)
            try:
                same = os.stat(self.lock_file).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed it as it finished: lock the new one
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                  "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}  # fmt: skip
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, unnamed
            pass
        return fd

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
        if self.path.is_dir():  # the lock file stays: the command replacing the run holds it
            for p in self._contents():
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def prior(self) -> RunDir:
        """``RUN/prior/``: the folder of the run's prior."""
        return RunDir(self.path / PRIOR_FOLDER, kind="prior")

    @property
    def stack(self) -> RunDir:
        """``RUN/stack/``: the folder of the second-stage (stacked) VQ-VAE over the codes."""
        return RunDir(self.path / STACK_FOLDER, kind="stacked VQ-VAE")

    @property
    def stack_eval(self) -> Path:
        """``RUN/stack/eval/``: where ``vqvae stack eval`` writes by default."""
        return self.path / STACK_FOLDER / "eval"

    @property
    def video(self) -> RunDir:
        """``RUN/video/``: the folder of the video prior over the run's frame codes."""
        return RunDir(self.path / VIDEO_FOLDER, kind="video prior")

    def read_config(self) -> dict[str, Any]:
        """``config.json`` as written (migration happens when a config is rebuilt)."""
        data = read_json(self.config_file)
        if not isinstance(data, dict) or "config" not in data:
            raise RunError(f"{self.config_file}: not a vqvae run config")
        return data

    # -- metrics -------------------------------------------------------------------------
    def log(self, record: dict[str, Any]) -> None:
        try:
            with open(self.metrics_file, "a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
        except OSError as e:  # a line cut short is dropped on reading, and redone on --resume
            raise as_write_error(self.metrics_file, e) from None

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


def _read_holder(fd: int) -> str:
    """Who holds a run's lock, from what it wrote into the lock file."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {info['pid']} on {info['host']}, `{info['command']}`, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not said which"


def run_config(class_name: str, config: Any, train: Any, **meta: Any) -> dict[str, Any]:
    """The ``config.json`` dict of a run or prior (``RunDir.write_config`` writes it)."""
    return config_file_dict(class_name, config, train=config_to_dict(train), **meta)


def load_run_model(run: RunDir, vocoder: str | Path | None = None) -> Any:
    """The trained model of a run folder (the class ``config.json`` names), in eval mode. A
    speech run with a mel decoder makes audio with ``vocoder`` (a trained vocoder's folder),
    else with the one the run keeps (``RunDir.vocoder``), else with Griffin-Lim."""
    if not run.path.is_dir():
        raise RunError(f"{run.path}: no such run folder")
    if not run.weights_file.is_file():
        raise RunError(f"{run.path}: no trained weights (model.safetensors); is training finished?")
    name = run.read_config().get("class")
    if name not in MODELS:
        raise RunError(f"{run.config_file}: unknown model class {name!r}")
    model = MODELS.get(name).from_pretrained(run.path).eval()
    if vocoder is None and run.vocoder.is_dir():
        vocoder = run.vocoder
    if vocoder is not None:
        attach_vocoder(model, vocoder, run)
    return model


def attach_vocoder(model: Any, path: str | Path, run: RunDir) -> None:
    """Let a mel run make audio with the trained vocoder in ``path``; one line if it cannot
    (another decoder, or log-mels of another setting: both named)."""
    model.use_vocoder(checked_vocoder(getattr(model, "config", None), path, f"the run {run.path}"))


def checked_vocoder(config: Any, path: str | Path, run_name: str) -> Any:
    """The trained vocoder in ``path``, if it can serve a model of ``config`` (a speech
    config with a mel decoder whose log-mels it reads); else one line naming both settings."""
    from vqvae.vocoders import load_vocoder

    decoder = getattr(config, "decoder", None)
    if decoder != "mel":
        raise RunError(f"{run_name}: --vocoder serves a mel decoder; its decoder is {decoder!r}")
    vocoder = load_vocoder(path)
    try:
        config.mel_settings.check_same(vocoder.settings, run_name, f"the vocoder {path}")
    except ValueError as e:
        raise RunError(str(e)) from None
    return vocoder


def load_frame_model(run: RunDir, needed_by: str) -> VQVAE:
    """The run's image VQ-VAE with one 2-D grid of codes per image (a frame): what the
    stacked VQ-VAE and the video prior build on. Any other run is a one-line ``RunError``
    saying what it holds and what ``needed_by`` needs."""
    model = load_run_model(run)
    if type(model) is not VQVAE or len(model.latent_shape) != 2 or model.num_levels != 1:
        codes = f" with codes {model.code_shape}" if isinstance(model, VQVAE) else ""
        raise RunError(
            f"{run.path}: not an image VQ-VAE run with one grid of codes per frame (a "
            f"{type(model).__name__}{codes}); {needed_by} needs a first-stage image VQ-VAE"
        )
    return model


def prior_kind(saved: dict[str, Any]) -> str:
    """The registered kind of a prior's ``config.json``: its ``kind``, else its class."""
    kind = saved.get("kind")
    if kind in PRIORS:
        return kind
    entry = PRIORS.find(lambda cls: cls.__name__ == saved.get("class"))
    if entry is None:
        raise RunError(f"unknown prior {kind or saved.get('class')!r}; expected {PRIORS.names()}")
    return entry.name


def load_prior(run: RunDir) -> Any:
    """The trained prior in ``RUN/prior/``, in eval mode."""
    folder = run.prior
    if not folder.weights_file.is_file():
        raise RunError(f"{run.path}: no trained prior; run `vqvae prior train {run.path}` first")
    cls = PRIORS.get(prior_kind(folder.read_config()))
    return cls.from_pretrained(folder.path).eval()

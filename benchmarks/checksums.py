"""What the checkpoints' checksums cost: writing a checkpoint and resuming from it, with the
manifest's SHA-256 (the default), with BLAKE2b (the other fast hash in Python's standard
library), and with sizes only (no hash), for the ``mnist`` and ``imagenet128`` presets' models.

A write is ``save_checkpoint`` (weights and optimizer state serialised, written, fsynced,
renamed, the manifest last); a resume is what ``--resume`` does before its first step:
``newest_good`` (reading and hashing every file of the newest checkpoint) and
``load_checkpoint``; without a hash, the newest checkpoint is loaded unchecked, as before
manifests existed (the manifest then holds sizes only). Weights are
untrained and the Adam moments zero: the cost depends on the bytes, not on their values.
In each of ``--rounds`` rounds every variant runs once in turn; a variant's figure is its
median over rounds, and a ratio the median over rounds of the ratio within a round (a
shared machine's load drifts between rounds more than within one).

    OMP_NUM_THREADS=1 python benchmarks/checksums.py --folder /tmp/checksums
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

import torch

from vqvae import _io
from vqvae.config import get_full_preset
from vqvae.models import VQVAE
from vqvae.train import checkpoint

VARIANTS = ("none", "sha256", "blake2b")


def _entry(variant: str):
    if variant == "none":
        return lambda data: {"size": len(data)}
    return lambda data: _io.manifest_entry(data, variant)


def _model_and_optimizer(preset: str) -> tuple[VQVAE, torch.optim.Adam]:
    model = VQVAE(get_full_preset(preset).model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for p in model.parameters():  # the moments exist after one step: a zero gradient's
        p.grad = torch.zeros_like(p)
    optimizer.step()
    return model, optimizer


def _time_variant(variant: str, folder: Path, model, optimizer) -> tuple[float, float]:
    """Seconds to write one checkpoint, and to choose and load it, under ``variant``."""
    shutil.rmtree(folder, ignore_errors=True)
    checkpoint.manifest_entry = _entry(variant)  # what save_checkpoint records per file
    start = time.perf_counter()
    checkpoint.save_checkpoint(folder, 1, model, optimizer)
    write = time.perf_counter() - start
    start = time.perf_counter()
    if variant == "none":  # as before checksums: the newest checkpoint, unchecked
        chosen = checkpoint.list_checkpoints(folder)[-1]
    else:
        choice = checkpoint.newest_good(folder)
        assert not choice.damaged
        chosen = choice.checkpoint
    checkpoint.load_checkpoint(chosen, model, optimizer, checked=True)  # checked above, or not
    resume = time.perf_counter() - start
    return write, resume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["mnist", "imagenet128"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--folder", default="checksums-benchmark", help="a scratch folder")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    root = Path(args.folder)
    print(f"load average {os.getloadavg()[0]:.2f} (1 minute) on {os.cpu_count()} CPUs")
    print("| preset | checkpoint | write: no hash | sha256 | blake2b | resume: unchecked | "
          "sha256 | blake2b | sha256 / no hash (write, resume) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for preset in args.presets:
        model, optimizer = _model_and_optimizer(preset)
        times: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
        for _ in range(args.rounds):
            for variant in VARIANTS:
                times[variant].append(_time_variant(variant, root / preset, model, optimizer))
        step = root / preset / "step-0000001"
        size = sum(f.stat().st_size for f in step.iterdir()) / 1e6
        med = {v: [statistics.median(t[i] for t in times[v]) for i in (0, 1)] for v in VARIANTS}
        ratio = [
            statistics.median(
                s[i] / n[i] for s, n in zip(times["sha256"], times["none"], strict=True)
            )
            for i in (0, 1)
        ]
        print(
            f"| {preset} | {size:.1f} MB | {med['none'][0]:.3f} s | {med['sha256'][0]:.3f} s | "
            f"{med['blake2b'][0]:.3f} s | {med['none'][1]:.3f} s | {med['sha256'][1]:.3f} s | "
            f"{med['blake2b'][1]:.3f} s | {ratio[0]:.2f}x, {ratio[1]:.2f}x |"
        )
    shutil.rmtree(root, ignore_errors=True)
    checkpoint.manifest_entry = _io.manifest_entry


if __name__ == "__main__":
    main()

"""Training-step time under --precision and --compile, on this machine's CPU.

For each preset (``mnist``, ``cifar10``), four copies of its model train side by side:
fp32 eager, bf16 eager, fp32 compiled, bf16 compiled (``vqvae.train.precision``,
``vqvae.train.compiled``, the very step function ``vqvae train`` runs). First each copy
takes one step, timed: for a compiled copy that is its compilation (forward and backward
graphs) plus a step. Then ``--rounds`` rounds: in each, every copy takes ``--steps`` steps in
turn and its median step time is kept; a copy's figure is the median over rounds, a
speed-up the median over rounds of the ratio within a round (the load on a shared machine
drifts between rounds far more than within one). The codebook starts fitted
(``quantizer.init=none``): the k-means steps of initialization are not the steady step.

    OMP_NUM_THREADS=1 python benchmarks/precision.py
    OMP_NUM_THREADS=1 python benchmarks/precision.py --presets mnist --rounds 3   # quicker
    OMP_NUM_THREADS=1 python benchmarks/precision.py --presets mnist --variants fp32 fp16
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
from dataclasses import replace

import torch

from vqvae.config import get_full_preset
from vqvae.models import VQVAE
from vqvae.train.compiled import compile_networks
from vqvae.train.precision import autocast, grad_scaler
from vqvae.train.vqvae import vqvae_step

VARIANTS = {"fp32": ("32", False), "bf16": ("bf16", False), "compile": ("32", True),
            "compile+bf16": ("bf16", True), "fp16": ("16", False)}  # fmt: skip


class Copy:
    """One model, optimizer and step under one precision, compiled or not."""

    def __init__(self, model: VQVAE, precision: str, compile: bool, device: torch.device):
        self.model = copy.deepcopy(model)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.precision = precision
        self.scaler = grad_scaler(precision, device)
        self.compiled = compile_networks(self.model, device) if compile else None
        self.step_fn = vqvae_step(self.model, self.model, device)
        self.device = device

    def step(self, batch: torch.Tensor) -> float:
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.precision, self.device):
            if self.compiled is not None:
                with self.compiled.active():
                    out = self.step_fn(batch)
            else:
                out = self.step_fn(batch)
        self.scaler.scale(out.loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return time.perf_counter() - start


def bench(preset: str, batch_size: int, steps: int, rounds: int, variants: list[str]) -> None:
    config = get_full_preset(preset).model
    config = replace(config, quantizer=replace(config.quantizer, init="none"))
    torch.manual_seed(0)
    model = VQVAE(config)
    h, w = config.input_size
    batch = torch.randint(0, 256, (batch_size, h, w, config.in_channels), dtype=torch.uint8)
    device = torch.device("cpu")
    copies = {name: Copy(model, *VARIANTS[name], device) for name in variants}
    first = {name: c.step(batch) for name, c in copies.items()}
    medians: dict[str, list[float]] = {name: [] for name in copies}
    for _ in range(rounds):
        for name, c in copies.items():
            medians[name].append(statistics.median(c.step(batch) for _ in range(steps)))
    base = medians[variants[0]]
    print(f"\n{preset}: batch {batch_size}, {rounds} rounds of {steps} steps per copy")
    print(f"| variant | step (ms) | speed-up vs {variants[0]} | first step (s) |")
    print("|---|---:|---:|---:|")
    for name in copies:
        ms = statistics.median(medians[name]) * 1e3
        ratio = statistics.median(b / m for b, m in zip(base, medians[name], strict=True))
        print(f"| {name} | {ms:.0f} | {ratio:.2f}x | {first[name]:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["mnist-paper", "cifar10"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[128, 32])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS,
                        default=["fp32", "bf16", "compile", "compile+bf16"])  # fmt: skip
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}, "
          f"load average {load:.1f} at the start")  # fmt: skip
    for preset, batch_size in zip(args.presets, args.batch_sizes, strict=False):
        bench(preset, batch_size, args.steps, args.rounds, args.variants)


if __name__ == "__main__":
    main()

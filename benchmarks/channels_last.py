"""Does ``channels_last`` memory help the preset networks' convolutions on this machine?

The encoder and decoder of a preset (no quantizer: the layout is the networks' question)
take forward and backward steps on a batch, in the default layout and in channels_last
(weights and input converted), in fp32 and under bf16 autocast. ``--rounds`` rounds, each
timing ``--steps`` steps of every variant in turn; a variant's figure is the median of its
round medians, a ratio the median of the rounds' ratios.

    OMP_NUM_THREADS=1 python benchmarks/channels_last.py
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import torch

from vqvae.config import get_full_preset
from vqvae.models import VQVAE


def step_time(nets: torch.nn.Module, x: torch.Tensor, bf16: bool) -> float:
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = nets(x)
    out.float().square().mean().backward()
    return time.perf_counter() - start


def bench(preset: str, batch_size: int, steps: int, rounds: int) -> None:
    config = get_full_preset(preset).model
    torch.manual_seed(0)
    model = VQVAE(config)
    nets = torch.nn.Sequential(model.encoder, model.decoder)
    h, w = config.input_size
    x = torch.randn(batch_size, config.in_channels, h, w)
    last = copy.deepcopy(nets).to(memory_format=torch.channels_last)
    x_last = x.contiguous(memory_format=torch.channels_last)
    variants = {
        "fp32": (nets, x, False), "fp32 channels_last": (last, x_last, False),
        "bf16": (nets, x, True), "bf16 channels_last": (last, x_last, True),
    }  # fmt: skip
    for v in variants.values():
        step_time(*v)  # warm-up
    rows: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for k, v in variants.items():
            rows[k].append(statistics.median(step_time(*v) for _ in range(steps)))
    print(f"\n{preset}: encoder + decoder, batch {batch_size}, forward and backward")
    print("| layout | step (ms) | speed-up vs its default layout |")
    print("|---|---:|---:|")
    for k in variants:
        base = rows[k.split()[0]]
        ratio = statistics.median(b / m for b, m in zip(base, rows[k], strict=True))
        print(f"| {k} | {statistics.median(rows[k]) * 1e3:.0f} | {ratio:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, {torch.get_num_threads()} thread(s), torch "
          f"{torch.__version__}, load average {os.getloadavg()[0]:.1f} at the start")  # fmt: skip
    bench("mnist", 128, args.steps, args.rounds)
    bench("cifar10", 32, args.steps, args.rounds)


if __name__ == "__main__":
    main()

"""Sampling speed of the masked-token (MaskGIT) prior against the cached Transformer.

Both priors at their default width, depth and heads (d_model 128, 6 layers, 4 heads), K=512,
untrained weights (the cost of a pass or a step does not depend on the weights), unconditional.
The MaskGIT prior draws a grid in ``steps`` full passes (default: its config's); the
Transformer draws one code per step through its key/value cache. Both sides are timed in the
same run, at each thread count and number of grids, best of ``--repeats``.

    .venv/bin/python benchmarks/maskgit_sampling.py                  # 1, 8, 64 grids; 1, 2 threads
    .venv/bin/python benchmarks/maskgit_sampling.py --n 1 8 --threads 2 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from sampling import K, timed  # benchmarks/sampling.py: best of repeats, wall clock

from vqvae.priors import MaskGITPrior, TransformerPrior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, help="MaskGIT passes (default: its config's)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}), load average "
        f"{os.getloadavg()[0]:.1f} at start\n"
    )
    header = (
        "| threads | grid | grids drawn | MaskGIT, S passes (s) | Transformer, cached (s) "
        "| MaskGIT faster by |"
    )
    rows = [header, "|" + "---|" * 6]
    print(header, flush=True)
    begin = time.perf_counter()
    for threads in args.threads:
        torch.set_num_threads(threads)
        for g in args.grids:
            torch.manual_seed(0)
            masked = MaskGITPrior(num_codes=K, shape=(g, g)).eval()
            steps = args.steps or masked.config.steps
            cached = TransformerPrior(num_codes=K, shape=(g, g)).eval()
            masked.sample(1, steps=steps)  # warm-up: first-call allocations, kernel choice
            cached.sample(1)
            for n in args.n:
                t_masked, _ = timed(masked, n, 0, args.repeats, steps=steps)
                t_cached, _ = timed(cached, n, 0, args.repeats)
                row = (
                    f"| {threads} | {g}x{g} | {n} | {t_masked:.3f} (S={steps}) | "
                    f"{t_cached:.3f} | {t_cached / t_masked:.1f}x |"
                )
                rows.append(row)
                print(row, flush=True)
    load = os.getloadavg()[0]
    print(f"\ntotal {time.perf_counter() - begin:.0f} s, load average {load:.1f} at end")
    print("\n" + "\n".join(rows))


if __name__ == "__main__":
    main()

"""Sampling speed of the priors: fast samplers against their reference in the same run.

- TransformerPrior: key/value cache (one token per step) against recomputing the prefix.
- PixelCNNPrior: incremental sampler (one row of the vertical stack per row, one column
  of the horizontal stack per code) against h*w full forward passes.

Default-sized models with K=512 and untrained weights (speed does not depend on the
weights). Each fast sampler is timed at n=64 grids (best of 2); the comparison is timed
at a smaller n where the slow side would take minutes (both sides at the same n; fast
side best of 3, slow side once), and the two sides are checked to draw the same codes
from the same seed.

    .venv/bin/python benchmarks/sampling.py            # the full table, ~10 min on 2 cores
    .venv/bin/python benchmarks/sampling.py --grids 7  # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from vqvae.priors import PixelCNNPrior, TransformerPrior

K = 512
# samples per side of the comparison: the slow samplers cost ~(h*w)^2 positions per grid,
# so larger grids are compared at smaller n to keep the run within minutes
COMPARE_N = {7: 64, 16: 8, 32: 1}
PRIORS = {
    "PixelCNN": (PixelCNNPrior, {"method": "fast"}, {"method": "naive"}, "fast / naive"),
    "Transformer": (
        TransformerPrior,
        {"use_cache": True},
        {"use_cache": False},
        "cached / uncached",
    ),
}


def timed(prior, n: int, seed: int, repeats: int = 1, **options) -> tuple[float, torch.Tensor]:
    """Best wall-clock time of ``repeats`` runs (the least disturbed by other work)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        codes = prior.sample(n, generator=torch.Generator().manual_seed(seed), **options)
        best = min(best, time.perf_counter() - start)
    return best, codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, nargs="+", default=[7, 16, 32])
    parser.add_argument("--n", type=int, default=64, help="grids per fast-sampler timing")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--priors", nargs="+", default=list(PRIORS), choices=list(PRIORS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(
        f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}), load average "
        f"{os.getloadavg()[0]:.1f} at start\n"
    )
    header = (
        "| prior | grid | fast: n=64 (s) | compared at n | fast (s) | reference (s) "
        "| speed-up | same codes |"
    )
    rows = [header, "|" + "---|" * 8]
    print(header, flush=True)
    begin = time.perf_counter()
    for g in args.grids:
        for name in args.priors:
            cls, fast, slow, what = PRIORS[name]
            torch.manual_seed(0)
            prior = cls(num_codes=K, shape=(g, g)).eval()
            timed(prior, 2, 0, **fast)  # warm-up: first-call allocations, kernel selection
            t_full, _ = timed(prior, args.n, 0, repeats=2, **fast)
            n = min(COMPARE_N.get(g, 1), args.n)
            t_fast, a = timed(prior, n, 1, repeats=3, **fast)
            # the slow side runs once: at minutes per run, a spike of other work is a small part
            t_slow, b = timed(prior, n, 1, **slow)
            row = (
                f"| {name} ({what}) | {g}x{g} | {t_full:.2f} | {n} | {t_fast:.2f} | "
                f"{t_slow:.2f} | {t_slow / t_fast:.1f}x | {'yes' if torch.equal(a, b) else 'NO'} |"
            )
            rows.append(row)
            print(row, flush=True)
    load = os.getloadavg()[0]
    print(f"\ntotal {time.perf_counter() - begin:.0f} s, load average {load:.1f} at end")
    print("\n" + "\n".join(rows))


if __name__ == "__main__":
    main()

"""Rollout speed of the video prior: 10 frames for 8 contexts, with the copy path against
without it, in the same run.

The default-sized ``VideoPrior`` (16x16 grids of K=512, k=3 context frames, 6 actions) with
untrained weights (speed does not depend on them). Each side is timed ``--repeats`` times,
alternating, and the best time of each is kept (the least disturbed by other work).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/video_rollout.py
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from vqvae.priors.video import VideoPrior, VideoPriorConfig

ACTIONS = ("noop", "forward", "left", "right", "forward_left", "forward_right")


def timed(prior: VideoPrior, context: torch.Tensor, actions: torch.Tensor) -> float:
    start = time.perf_counter()
    prior.rollout(context, actions, generator=torch.Generator().manual_seed(0))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, default=8)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    priors = {}
    for copy in (True, False):
        torch.manual_seed(0)
        config = VideoPriorConfig(512, (16, 16), ACTIONS, copy_last=copy)
        priors["copy path" if copy else "no copy path"] = VideoPrior(config).eval()
    g = torch.Generator().manual_seed(0)
    context = torch.randint(0, 512, (args.contexts, 3, 16, 16), generator=g)
    actions = torch.randint(0, len(ACTIONS), (args.contexts, args.frames), generator=g)
    best = dict.fromkeys(priors, float("inf"))
    for _ in range(args.repeats):
        for name, prior in priors.items():
            best[name] = min(best[name], timed(prior, context, actions))
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{args.threads} thread(s), torch {torch.__version__}"
    )
    print(f"rollout of {args.frames} frames for {args.contexts} contexts (best of {args.repeats})")
    for name, seconds in best.items():
        print(f"  {name:14s} {seconds:6.2f} s")
    print(f"  ratio copy / no copy: {best['copy path'] / best['no copy path']:.2f}")


if __name__ == "__main__":
    main()

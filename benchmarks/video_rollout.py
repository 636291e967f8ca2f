"""Rollout speed of the video prior: 10 frames for 8 contexts, by kind and way of drawing,
in the same run: the maskgit kind in its default 8 passes (and without the convolutions over
its context, ``maskgit_context_blocks=0``, in 4, 8 and 12), the hybrid
drawing every code of a frame at once and in raster order, and the PixelCNN with and
without its copy path (raster order). Also the time per generated frame of each.

Default-sized ``VideoPrior``s (16x16 grids of K=512, k=3 context frames, 6 actions) with
untrained weights (speed does not depend on them). Each is timed ``--repeats`` times, in
turn, and the best time of each is kept (the least disturbed by other work).

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
NO_CONVS = {"kind": "maskgit", "maskgit_context_blocks": 0}  # the context read where it lies


def timed(
    prior: VideoPrior, method: str, options: dict, context: torch.Tensor, actions: torch.Tensor
) -> float:
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    prior.rollout(context, actions, generator=generator, method=method, **options)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, default=8)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    kinds = {
        "maskgit, 8 passes": ({"kind": "maskgit"}, "maskgit", {}),
        "no convs, 8 passes": (NO_CONVS, "maskgit", {}),
        "no convs, 4 passes": (NO_CONVS, "maskgit", {"steps": 4}),
        "no convs, 12 passes": (NO_CONVS, "maskgit", {"steps": 12}),
        "hybrid, parallel": ({"kind": "hybrid"}, "parallel", {}),
        "hybrid, raster": ({"kind": "hybrid"}, "fast", {}),
        "pixelcnn, copy path": ({"kind": "pixelcnn"}, "fast", {}),
        "pixelcnn, no copy": ({"kind": "pixelcnn", "copy_last": False}, "fast", {}),
    }
    priors = {}
    for name, (fields, method, options) in kinds.items():
        torch.manual_seed(0)
        config = VideoPriorConfig(512, (16, 16), ACTIONS, **fields)
        priors[name] = VideoPrior(config).eval(), method, options
    g = torch.Generator().manual_seed(0)
    context = torch.randint(0, 512, (args.contexts, 3, 16, 16), generator=g)
    actions = torch.randint(0, len(ACTIONS), (args.contexts, args.frames), generator=g)
    best = dict.fromkeys(priors, float("inf"))
    for _ in range(args.repeats):
        for name, (prior, method, options) in priors.items():
            best[name] = min(best[name], timed(prior, method, options, context, actions))
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{args.threads} thread(s), torch {torch.__version__}"
    )
    print(f"rollout of {args.frames} frames for {args.contexts} contexts (best of {args.repeats})")
    per_frame = args.contexts * args.frames
    for name, seconds in best.items():
        print(f"  {name:20s} {seconds:6.2f} s, {1000 * seconds / per_frame:7.1f} ms a frame")
    pixelcnn = best["pixelcnn, copy path"]
    maskgit = best["maskgit, 8 passes"]
    print(f"  ratio maskgit / hybrid parallel: {maskgit / best['hybrid, parallel']:.2f}")
    print(f"  ratio hybrid parallel / pixelcnn: {best['hybrid, parallel'] / pixelcnn:.3f}")
    print(f"  ratio pixelcnn copy / no copy: {pixelcnn / best['pixelcnn, no copy']:.2f}")


if __name__ == "__main__":
    main()

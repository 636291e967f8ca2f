"""Rollouts of several video priors from the same held-out contexts, greedy and sampled at
temperatures 0.5 and 1, above
the real future: the figure that shows whether generated frames look like the maze
(docs/video.md), and each row's detail (``metrics.image_gradient``) beside the real frames'.

    python benchmarks/video_figure.py --run hybrid=RUN_A --run maskgit=RUN_B \\
        --data maze.npz --contexts 2:12 3:36 --out docs/maze-rollouts-kinds.png

Every run must hold the same image VQ-VAE (the same codes); each ``RUN/video`` is its prior.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from vqvae import metrics
from vqvae.inference.video import (
    Sampling,
    encode_episodes,
    load_episodes,
    load_video_prior,
    rollout,
    split,
)
from vqvae.report.video import rollout_strip
from vqvae.runs import RunDir, load_frame_model

SAMPLINGS = {"greedy": Sampling(top_k=1), "T 0.5": Sampling(temperature=0.5),
             "T 1": Sampling(temperature=1.0)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", required=True, metavar="NAME=RUN")
    p.add_argument("--data", required=True, help="the episodes .npz the runs trained on")
    p.add_argument("--contexts", nargs="+", default=["0:0"], metavar="EPISODE:FRAME",
                   help="test episodes and the first context frame in each")  # fmt: skip
    p.add_argument("--context", type=int, default=4)
    p.add_argument("--frames", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="the PNG to write")
    args = p.parse_args()
    runs = dict(item.split("=", 1) for item in args.run)
    first = RunDir(next(iter(runs.values())))
    model = load_frame_model(first, "the figure")
    episodes = split(load_episodes(args.data, model), "test")
    priors = {name: load_video_prior(RunDir(path)) for name, path in runs.items()}
    k = max(prior.context_frames for prior in priors.values())
    codes = encode_episodes(model, episodes, k).codes  # (N, T, h, w)
    c, f = args.context, args.frames
    strips, detail = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.contexts:
            e, t0 = (int(x) for x in spec.split(":"))
            context = codes[e : e + 1, t0 : t0 + c]  # (1, c, h, w)
            actions = episodes.actions[e, t0 + c - 1 : t0 + c - 1 + f]  # lead to frames c..
            rows = {}
            for name, prior in priors.items():
                for how, sampling in SAMPLINGS.items():
                    out = rollout(model, prior, context, actions, seed=args.seed,
                                  sampling=sampling)  # fmt: skip
                    rows[f"{name} {how}"] = out.frames[0]
                    detail.setdefault(f"{name} {how}", []).append(out.frames[0])
            real = episodes.frames[e, t0 + c : t0 + c + f]
            detail.setdefault("real", []).append(real)
            path = Path(tmp) / f"{e}-{t0}.png"
            rollout_strip(out.context_frames[0], rows, path, real=real)
            strips.append(np.asarray(Image.open(path).convert("RGB")))
    width = max(s.shape[1] for s in strips)
    gap = np.full((8, width, 3), 255, np.uint8)
    parts = []
    for s in strips:
        padded = np.full((s.shape[0], width, 3), 255, np.uint8)
        padded[:, : s.shape[1]] = s
        parts += [padded, gap]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(parts[:-1])).save(args.out)
    print(f"wrote {args.out}: contexts {' '.join(args.contexts)}, {c} + {f} frames each")
    for name, frames in detail.items():
        gradient = metrics.image_gradient(np.stack(frames))
        print(f"  detail (mean image gradient) {name:20s} {gradient:.2f}")


if __name__ == "__main__":
    main()

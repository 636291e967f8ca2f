"""``vqvae rollout``: video generated in latent space (paper section 4.4). An episode's first
real frames are encoded, the video prior generates the next frames' codes under the chosen
actions, and only then are all of them decoded: ``rollout.png`` and ``rollout.gif``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from vqvae._io import write_npz
from vqvae.cli.common import recorded_data
from vqvae.cli.video import (
    EPISODES_HINT,
    add_sampling_options,
    image_model,
    load_episodes,
    sampling_of,
    split,
)
from vqvae.data.episodes import Episodes
from vqvae.errors import DataError
from vqvae.inference.video import (
    check_evaluation_length,
    check_rollout_length,
    encode_episodes,
    load_video_prior,
    rollout,
)
from vqvae.report.video import rollout_gif, rollout_strip
from vqvae.runs import RunDir, refuse_overwrite


def add_parser(sub: Any) -> None:
    p = sub.add_parser("rollout", help="generate video in latent space from an episode's start")
    p.add_argument("run")
    p.add_argument("--data", help="an episodes .npz (default: the data the run trained on)")
    p.add_argument("--episode", type=int, default=0, help="the episode of --split (default: 0)")
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--context", type=int, default=6, help="real frames given (default: 6)")
    p.add_argument("--frames", type=int, default=10, help="frames generated (default: 10)")
    p.add_argument(
        "--actions",
        default="forward",
        help="an action name for every frame (forward, right, ...), `recorded` (the episode's "
        "own, shown beside its real future), or a comma-separated list, one per frame",
    )
    p.add_argument("--seed", type=int, default=0)
    add_sampling_options(p)
    p.add_argument("--out", required=True, help="a folder for rollout.png, rollout.gif, .npz")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=run)


def parse_actions(text: str, episodes: Episodes, episode: int, context: int, frames: int):
    """Action ids (F,) for the generated frames, and whether they are the recorded ones."""
    if text == "recorded":
        check_evaluation_length(context, frames, episodes.steps)
        return episodes.actions[episode, context - 1 : context - 1 + frames], True
    names = [n.strip() for n in text.split(",")]
    if len(names) == 1:
        names = names * frames
    if len(names) != frames:
        raise DataError(f"--actions: {len(names)} actions given for --frames {frames}")
    return np.array([episodes.action_id(n) for n in names]), False


def run(args: argparse.Namespace) -> int:
    run_dir = RunDir(args.run)
    out = Path(args.out)
    refuse_overwrite(out, args.force)
    sampling = sampling_of(args)
    model = image_model(run_dir)
    prior = load_video_prior(run_dir)
    episodes = split(load_episodes(recorded_data(args, run_dir, EPISODES_HINT), model), args.split)
    if not 0 <= args.episode < episodes.num_episodes:
        raise DataError(
            f"--episode {args.episode}: the {args.split} split has {episodes.num_episodes} "
            f"episodes (0..{episodes.num_episodes - 1})"
        )
    check_rollout_length(prior, args.context, args.frames, episodes.steps)
    actions, recorded = parse_actions(
        args.actions, episodes, args.episode, args.context, args.frames
    )
    one = episodes.subset(np.array([args.episode]))
    codes = encode_episodes(model, one, prior.context_frames).codes[:, : args.context]
    result = rollout(model, prior, codes, actions, seed=args.seed, sampling=sampling)
    context = result.context_frames[0]  # decoded from their codes, as the prior saw them
    real = one.frames[0, args.context : args.context + args.frames] if recorded else None
    label = "recorded" if recorded else args.actions
    out.mkdir(parents=True, exist_ok=True)
    rollout_strip(context, {label: result.frames[0]}, out / "rollout.png", real=real)
    rollout_gif(context, {label: result.frames[0]}, out / "rollout.gif")
    write_npz(out / "rollout.npz", context_codes=result.context_codes[0], codes=result.codes[0],
              frames=result.frames[0], actions=actions)  # fmt: skip
    print(f"wrote {out}/rollout.png, rollout.gif and rollout.npz: {args.context} real + "
          f"{args.frames} generated frames")  # fmt: skip
    return 0

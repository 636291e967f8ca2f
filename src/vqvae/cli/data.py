"""``vqvae data maze``: record episodes of a 3-D maze (``vqvae.data.maze``) into an episodes
``.npz`` (``vqvae.data.episodes``), which ``--data`` then reads like any data set."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from vqvae.cli.common import add_output
from vqvae.data.maze import MAZES, record_maze
from vqvae.runs import refuse_overwrite


def add_parser(sub: Any) -> None:
    p = sub.add_parser("data", help="make data sets (record a 3-D maze)")
    kinds = p.add_subparsers(dest="data_command", metavar="KIND", required=True)
    maze = kinds.add_parser(
        "maze", help="record first-person episodes of memory-maze (pip install 'vqvae[maze]')"
    )
    maze.add_argument("--episodes", type=int, required=True, help="episodes, each a new maze")
    maze.add_argument("--steps", type=int, required=True, help="frames per episode")
    maze.add_argument("--size", type=int, default=64, help="frame height and width (default 64)")
    maze.add_argument("--maze", choices=MAZES, default="9x9", help="maze size (default 9x9)")
    maze.add_argument("--seed", type=int, default=0)
    maze.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="record in N processes, each its own seed stream; the file depends on --seed "
        "and N (default 1)",
    )
    maze.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_output(maze, "the episodes .npz")
    maze.set_defaults(func=run_maze)


def run_maze(args: argparse.Namespace) -> int:
    out = Path(args.out)
    refuse_overwrite(out, args.force)
    start = time.perf_counter()
    episodes = record_maze(
        args.episodes, args.steps, args.size, args.maze, args.seed,
        progress=not args.no_progress, jobs=args.jobs,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    episodes.write(out)
    n = episodes.num_episodes * episodes.steps
    print(
        f"wrote {out}: {episodes.num_episodes} episodes x {episodes.steps} frames of "
        f"{args.size}x{args.size} ({n / seconds:.1f} frames/s in {args.jobs} process"
        f"{'es' if args.jobs > 1 else ''}), actions "
        f"{', '.join(episodes.action_names)}"
    )
    return 0

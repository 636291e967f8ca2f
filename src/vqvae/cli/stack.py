"""``vqvae stack train|eval RUN``: a second VQ-VAE over a run's code grids, 3 codes of K=512
per frame with a PixelCNN decoder (paper section 4.2, end; docs/stacked.md), in ``RUN/stack/``."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from vqvae._io import write_json
from vqvae.cli.common import (
    add_step_options,
    load_fitting_images,
    recorded_data,
    step_options,
    writes_into,
)
from vqvae.console import say
from vqvae.data import read_all, split_layout
from vqvae.data.base import SPLITS
from vqvae.errors import RunError
from vqvae.experiments.stacked import evaluate_stacked
from vqvae.runs import (
    STACK_FIGURE,
    STACK_SUMMARY,
    RunDir,
    load_frame_model,
    load_prior,
    load_run_model,
    refuse_overwrite,
)
from vqvae.train.stack import STACK_TRAIN, encode_grids, stacked_config, train_stack

NEEDED_BY = "a stacked VQ-VAE"


def add_parser(sub: Any) -> None:
    stack = sub.add_parser("stack", help="a stacked VQ-VAE: 3 codes per frame over a run's codes")
    stack_sub = stack.add_subparsers(dest="stack_command", metavar="COMMAND", required=True)
    p = stack_sub.add_parser("train", help="fit the second stage to the run's code grids")
    p.add_argument("run", help="a trained image VQ-VAE run (the first stage)")
    _data_options(p)
    p.add_argument("--steps", type=int, help=f"default: {STACK_TRAIN.steps}")
    p.add_argument("--batch-size", type=int, help=f"default: {STACK_TRAIN.batch_size}")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. pixelcnn_layers=10 or train.lr=5e-4 (repeatable)",
    )
    add_step_options(p)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--force", action="store_true", help="replace an existing RUN/stack")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=train)
    writes_into(p, "run")

    e = stack_sub.add_parser("eval", help="27 bits per frame: rates, layout and a figure")
    e.add_argument("run")
    _data_options(e)
    e.add_argument("--split", choices=SPLITS, help="default: test (val where there is no test)")
    e.add_argument("--samples", type=int, default=4, help="27-bit reconstructions per figure row")
    e.add_argument("--frames", type=int, default=8, help="rows of the figure (default: 8)")
    e.add_argument("--limit", type=int, default=256, help="frames decoded for the PSNRs")
    e.add_argument("--temperature", type=float, default=1.0)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", help="folder of the figure and eval.json (default: RUN/stack/eval)")
    e.add_argument("--json", help="the JSON file (default: OUT/eval.json)")
    e.add_argument("--force", action="store_true", help="replace existing output")
    e.set_defaults(func=evaluate)
    # writes into the run unless --out points elsewhere
    e.set_defaults(writes=lambda args: (args.run if args.out is None else None, False))


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="data spec to encode (default: the one the run trained on)")
    p.add_argument("--data-root", help="where named data sets live (default: $VQVAE_DATA)")


def train(args: argparse.Namespace) -> int:
    run = RunDir(args.run)
    stage1 = load_frame_model(run, NEEDED_BY)
    folder = run.stack
    folder.check(resume=args.resume, force=args.force)  # refuse before encoding
    flags = {"steps": args.steps, "batch_size": args.batch_size, **step_options(args)}
    config, train_config = stacked_config(
        stage1, args.set, replace(STACK_TRAIN, **{k: v for k, v in flags.items() if v is not None})
    )
    args.data = recorded_data(args, run)
    held_out = split_layout(args.data).held_out
    grids = []
    for split in ("train", held_out):
        images = load_fitting_images(args, run, stage1, split)
        say(f"vqvae: encoding {len(images)} {split} images of {images.name}")
        grids.append(encode_grids(stage1, images.images))
    folder.prepare(resume=args.resume, force=args.force)
    result = train_stack(
        folder,
        config,
        train_config,
        *grids,
        meta={"data": args.data, "first_stage": str(run.path.resolve()), "threads": args.threads},
        resume=args.resume,
        progress=not args.no_progress,
    )
    print(
        f"{folder.path}: {result.bits_per_frame:g} bits per frame; held-out grids "
        f"{result.test_bits_per_grid:.1f} bits per grid given them"
    )
    return 0


def evaluate(args: argparse.Namespace) -> int:
    run = RunDir(args.run)
    stage1 = load_frame_model(run, NEEDED_BY)
    if not run.stack.weights_file.is_file():
        raise RunError(f"{run.path}: no stacked VQ-VAE; run `vqvae stack train {run.path}` first")
    out = Path(args.out) if args.out else run.stack_eval
    summary = Path(args.json) if args.json else out / STACK_SUMMARY
    for path in (out / STACK_FIGURE, summary):
        refuse_overwrite(path, args.force)
    if args.samples < 1 or args.frames < 1 or args.limit < 2:
        raise RunError("--samples and --frames must be >= 1 and --limit >= 2")
    stacked = load_run_model(run.stack)
    prior = load_prior(run) if run.prior.weights_file.is_file() else None
    args.data = recorded_data(args, run)
    dataset = load_fitting_images(args, run, stage1)
    result = evaluate_stacked(
        stage1,
        stacked,
        read_all(dataset.images),
        prior,
        layout_frames=args.limit,
        figure_frames=args.frames,
        samples=args.samples,
        seed=args.seed,
        temperature=args.temperature,
        figure=out / STACK_FIGURE,
    ).to_dict()
    write_json(summary, result)
    print(f"{dataset.name} [{args.split}], {result['num_frames']} frames")
    for key, value in result.items():
        shown = "-" if value is None else json.dumps(value) if isinstance(value, tuple) else value
        print(f"  {key:28s} {shown:.4g}" if isinstance(shown, float) else f"  {key:28s} {shown}")
    print(f"figure: {out / STACK_FIGURE}")
    return 0

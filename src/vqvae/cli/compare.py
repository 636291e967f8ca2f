"""``vqvae compare``: the paper's Table 1 (bits/dim of VAE, VQ-VAE and VIMCO) on any data."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from vqvae.cli.common import writes_into
from vqvae.experiments.compare import MODEL_NAMES, CompareConfig, run_compare
from vqvae.registry import DATASETS


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare", help="bits/dim of VAE, VQ-VAE and VIMCO with one network (paper Table 1)"
    )
    names = ", ".join(DATASETS.names())
    p.add_argument("--data", required=True, help=f"a registered name ({names}) or a path")
    p.add_argument("--data-root", help="where named data sets live (default: $VQVAE_DATA)")
    p.add_argument("--out", required=True, help="the output folder (one sub-folder per model)")
    p.add_argument("--steps", type=int, help="training steps per model (default 500)")
    p.add_argument("--models", help=f"comma-separated subset of {','.join(MODEL_NAMES)}")
    p.add_argument(
        "--likelihood",
        choices=("softmax256", "logistic_mixture"),
        help="the decoder's discrete likelihood (default softmax256)",
    )
    p.add_argument("--num-samples", type=int, help="VIMCO's k (default 4; the paper: 50)")
    p.add_argument("--prior-steps", type=int, help="PixelCNN prior steps; 0 = none (default 500)")
    p.add_argument("--eval-limit", type=int, help="test images scored (default 500)")
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", help="continue an interrupted comparison")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
    writes_into(p, "out", create=True)


def config_from_args(args: argparse.Namespace) -> CompareConfig:
    config = CompareConfig()
    flags = {
        "likelihood": args.likelihood,
        "eval_limit": args.eval_limit,
        "prior_steps": args.prior_steps,
        "num_samples": args.num_samples,
    }
    config = replace(config, **{k: v for k, v in flags.items() if v is not None})
    train = {"steps": args.steps, "seed": args.seed}
    config = replace(
        config, train=replace(config.train, **{k: v for k, v in train.items() if v is not None})
    )
    if args.models:
        config = replace(config, models=tuple(m.strip() for m in args.models.split(",") if m))
    return config


def run(args: argparse.Namespace) -> int:
    result = run_compare(
        args.data,
        args.out,
        config_from_args(args),
        data_root=args.data_root,
        force=args.force,
        resume=args.resume,
        progress=not args.no_progress,
    )
    print(result.table, end="")
    return 0

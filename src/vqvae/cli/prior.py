"""``vqvae prior train``: encode the run's data (or read ``vqvae encode`` files) and fit a
prior of a registered kind to the codes, in ``RUN/prior/``."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from vqvae._io import write_json
from vqvae.cli.common import resize
from vqvae.codefile import read_code_file
from vqvae.console import say
from vqvae.data import ImageDataset, load_images, split_layout
from vqvae.errors import RunError
from vqvae.inference import encode
from vqvae.priors import build_prior
from vqvae.registry import PRIORS
from vqvae.runs import RunDir, load_run_model, resume_differences, run_config
from vqvae.train.prior import PRIOR_TRAIN, CodeSet, train_prior


def add_parser(sub: Any) -> None:
    prior = sub.add_parser("prior", help="autoregressive priors over a run's codes")
    prior_sub = prior.add_subparsers(dest="prior_command", metavar="COMMAND", required=True)
    p = prior_sub.add_parser("train", help="fit a prior (PixelCNN, Transformer, ...) to the codes")
    p.add_argument("run")
    p.add_argument("--kind", choices=PRIORS.names(), default="pixelcnn")
    p.add_argument("--class-conditional", action="store_true", help="condition on the labels")
    p.add_argument("--data", help="data spec to encode (default: the one the run trained on)")
    p.add_argument("--data-root")
    p.add_argument("--codes", help="train on a `vqvae encode` .npz instead of encoding")
    p.add_argument("--test-codes", help="held-out .npz for the reported NLL")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--force", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def code_sources(args: argparse.Namespace, run: RunDir, model) -> tuple[Any, Any]:
    """Train and test sources: code sets read from .npz, or the run's data to encode.

    Encoding is left to ``as_codes``, after every check has passed, so that a refusal is
    quick and says one line."""
    if args.codes:
        train = _read_codes(Path(args.codes), model)
        test = _read_codes(Path(args.test_codes), model) if args.test_codes else train
        return train, test
    saved = run.read_config()
    spec = args.data or saved.get("data")
    if not spec:
        raise RunError(f"{run.path}: no data spec recorded; pass --data or --codes")
    splits = ("train", split_layout(spec).held_out)
    size = resize(args, saved)  # as the run was trained
    train, test = (load_images(spec, s, args.data_root, resize=size) for s in splits)
    return train, test


def _read_codes(path: Path, model) -> CodeSet:
    f = read_code_file(path, model.code_shape, model.num_codes)
    return CodeSet(
        torch.from_numpy(f.codes), None if f.labels is None else torch.from_numpy(f.labels)
    )


def as_codes(source: CodeSet | ImageDataset, model) -> CodeSet:
    if isinstance(source, CodeSet):
        return source
    say(f"vqvae: encoding {len(source)} images of {source.name}")
    labels = torch.from_numpy(source.labels) if source.labels is not None else None
    return CodeSet(torch.from_numpy(encode(model, source.images)), labels)


def run(args: argparse.Namespace) -> int:
    folder = RunDir(args.run)
    model = load_run_model(folder)
    if model.num_levels > 1:
        raise RunError(f"{folder.path}: a prior over several levels of residual codes is not built")
    out = folder.prior
    out.check(resume=args.resume, force=args.force)
    sources = code_sources(args, folder, model)
    num_classes = 0
    if args.class_conditional:
        labels = sources[0].labels
        if labels is None:
            raise RunError("--class-conditional: the data has no labels")
        num_classes = int(labels.max()) + 1
    train_config = PRIOR_TRAIN.get(args.kind, PRIOR_TRAIN["pixelcnn"])
    flags = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed}
    train_config = replace(train_config, **{k: v for k, v in flags.items() if v is not None})
    torch.manual_seed(train_config.seed)  # the initial weights come from --seed too
    prior = build_prior(
        args.kind, num_codes=model.num_codes, shape=model.latent_shape, num_classes=num_classes
    )
    wanted = run_config(type(prior).__name__, prior.config, train_config, kind=args.kind)
    if args.resume:
        diffs = resume_differences(out.read_config(), wanted, type(prior.config))
        if diffs:
            raise RunError(
                f"{out.path}: --resume with a config that does not match the prior "
                f"(differs in {', '.join(diffs)})"
            )
    train_set, test_set = (as_codes(source, model) for source in sources)
    out.prepare(resume=args.resume, force=args.force)
    write_json(out.config_file, wanted)
    evaluation = train_prior(
        prior,
        out,
        train_set,
        test_set,
        train_config,
        resume=args.resume,
        progress=not args.no_progress,
    )
    print(
        f"{out.path}: test {evaluation.test_bits_per_code:.3f} bits/code "
        f"(uniform {evaluation.uniform_bits_per_code:.3f}, "
        f"unigram {evaluation.unigram_bits_per_code:.3f})"
    )
    return 0

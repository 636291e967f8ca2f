"""``vqvae prior train``: encode the run's data (or read ``vqvae encode`` files) and fit a
prior of a registered kind to the codes, in ``RUN/prior/``."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from vqvae._io import write_json
from vqvae.cli.common import add_step_options, recorded_data, resize, step_options, writes_into
from vqvae.codefile import AudioCodes, read_audio_code_file, read_code_file
from vqvae.console import say
from vqvae.data import AudioDataset, ImageDataset, load_audio, load_images, split_layout
from vqvae.errors import RunError
from vqvae.inference import encode
from vqvae.inference.audio import encode_audio
from vqvae.models import AudioVQVAE
from vqvae.priors import build_prior
from vqvae.registry import PRIORS
from vqvae.runs import RunDir, load_run_model, resume_differences, run_config
from vqvae.train.prior import PRIOR_TRAIN, PRIOR_TRAIN_SPEECH, CodeSet, train_prior

SPLITS_AUDIO = ("train", "test")


def add_parser(sub: Any) -> None:
    prior = sub.add_parser("prior", help="autoregressive priors over a run's codes")
    prior_sub = prior.add_subparsers(dest="prior_command", metavar="COMMAND", required=True)
    p = prior_sub.add_parser("train", help="fit a prior (PixelCNN, Transformer, ...) to the codes")
    p.add_argument("run")
    p.add_argument(
        "--kind",
        choices=PRIORS.names(),
        help="default: pixelcnn for code grids, transformer for sequences (speech)",
    )
    p.add_argument("--class-conditional", action="store_true", help="condition on the labels")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=1.0,
        help="speech: the prior models at most this much of each utterance (default: 1.0)",
    )
    p.add_argument("--data", help="data spec to encode (default: the one the run trained on)")
    p.add_argument("--data-root")
    p.add_argument("--codes", help="train on a `vqvae encode` .npz instead of encoding")
    p.add_argument("--test-codes", help="held-out .npz for the reported NLL")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    add_step_options(p)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--force", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
    writes_into(p, "run")


def code_sources(args: argparse.Namespace, run: RunDir, model) -> tuple[Any, Any]:
    """Train and test sources: code sets read from .npz, or the run's data to encode.

    Encoding is left to ``as_codes``, after every check has passed, so that a refusal is
    quick and says one line."""
    if args.codes:
        train = _read_codes(Path(args.codes), model)
        test = _read_codes(Path(args.test_codes), model) if args.test_codes else train
        return train, test
    spec = recorded_data(args, run, hint="pass --data or --codes")
    if isinstance(model, AudioVQVAE):
        rate = model.config.sample_rate
        return tuple(load_audio(spec, s, args.data_root, sample_rate=rate) for s in SPLITS_AUDIO)
    splits = ("train", split_layout(spec).held_out)
    size = resize(args, run.read_config())  # as the run was trained
    # a folder is indexed and its images decoded batch by batch while they are encoded
    train, test = (load_images(spec, s, args.data_root, resize=size, lazy=True) for s in splits)
    return train, test


def _read_codes(path: Path, model) -> CodeSet:
    if isinstance(model, AudioVQVAE):
        found = read_audio_code_file(path, model.num_codes, model.hop)
        return speech_code_set(found, len(model.speakers))
    f = read_code_file(path, model.code_shape, model.num_codes)
    return CodeSet(
        torch.from_numpy(f.codes), None if f.labels is None else torch.from_numpy(f.labels)
    )


def as_codes(source: CodeSet | ImageDataset | AudioDataset, model, length: int = 0) -> CodeSet:
    if isinstance(source, CodeSet):
        return source
    if isinstance(source, AudioDataset):
        say(f"vqvae: encoding {len(source)} utterances of {source.name}")
        return speech_code_set(encode_audio(model, source, length), len(model.speakers))
    say(f"vqvae: encoding {len(source)} images of {source.name}")
    labels = torch.from_numpy(source.labels) if source.labels is not None else None
    return CodeSet(torch.from_numpy(encode(model, source.images)), labels)


def speech_code_set(found: AudioCodes, num_speakers: int) -> CodeSet:
    """Code sequences with their labels and, as a one-hot vector, their speakers."""
    vectors = None
    if num_speakers and found.speakers is not None:
        vectors = F.one_hot(torch.from_numpy(found.speakers), num_speakers).float()
    labels = None if found.labels is None else torch.from_numpy(found.labels)
    return CodeSet(torch.from_numpy(found.codes), labels, vectors)


def speech_length(args: argparse.Namespace, model, train: AudioDataset | CodeSet) -> int:
    """Codes per sequence for a speech prior: the longest training utterance's, at most
    ``--max-seconds``."""
    if isinstance(train, CodeSet):
        return train.codes.shape[1]
    longest = max(len(x) for x in train.waveforms)
    cap = max(1, int(args.max_seconds * model.config.sample_rate) // model.hop)
    return min(-(-longest // model.hop), cap)


def run(args: argparse.Namespace) -> int:
    folder = RunDir(args.run)
    model = load_run_model(folder)
    speech = isinstance(model, AudioVQVAE)
    args.kind = args.kind or ("transformer" if speech else "pixelcnn")
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
    if speech:
        train_config = PRIOR_TRAIN_SPEECH
    flags = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed}
    train_config = replace(train_config, **{k: v for k, v in flags.items() if v is not None})
    saved = out.read_config().get("train") if args.resume and out.config_file.is_file() else None
    train_config = replace(train_config, **step_options(args, saved))
    torch.manual_seed(train_config.seed)  # the initial weights come from --seed too
    shape, cond_dim, length = model.latent_shape, 0, 0
    if speech:
        length = speech_length(args, model, sources[0])
        shape, cond_dim = (length,), len(model.speakers)
    prior = build_prior(
        args.kind,
        num_codes=model.num_codes,
        shape=shape,
        num_classes=num_classes,
        cond_dim=cond_dim,
    )
    wanted = run_config(
        type(prior).__name__, prior.config, train_config, kind=args.kind, threads=args.threads
    )
    if args.resume:
        diffs = resume_differences(out.read_config(), wanted, type(prior.config))
        if diffs:
            raise RunError(
                f"{out.path}: --resume with a config that does not match the prior "
                f"(differs in {', '.join(diffs)})"
            )
    train_set, test_set = (as_codes(source, model, length) for source in sources)
    if train_set.codes.shape[1:] != test_set.codes.shape[1:]:
        raise RunError(
            f"--test-codes: codes of shape {tuple(test_set.codes.shape[1:])}, the training "
            f"codes are {tuple(train_set.codes.shape[1:])}"
        )
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
    print(f"{out.path}: {evaluation.describe()}")
    return 0

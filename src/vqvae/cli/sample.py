"""``vqvae sample``: draw code grids from the run's prior and decode them (stage 3)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqvae._io import write_npz
from vqvae.cli.common import (
    add_output,
    add_prior_sampling_options,
    add_vocoder_option,
    prior_sampling_options,
    write_samples,
    write_wavs,
)
from vqvae.inference import sample
from vqvae.inference.audio import sample_speech
from vqvae.models import AudioVQVAE
from vqvae.runs import RunDir, load_prior, load_run_model, refuse_overwrite


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sample", help="sample code grids from the prior and decode them")
    p.add_argument("run")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--label", type=int, help="the class, for a class-conditional prior")
    p.add_argument("--speaker", help="speech: the speaker (its name) who says the samples")
    add_prior_sampling_options(p)
    add_vocoder_option(p)
    add_output(p, "a folder for grid.png and samples.npz (speech: WAVs and samples.npz)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder = RunDir(args.run)
    out = Path(args.out)
    refuse_overwrite(out, args.force)
    model = load_run_model(folder, args.vocoder)
    prior = load_prior(folder)
    options = prior_sampling_options(args, prior)
    if isinstance(model, AudioVQVAE):
        return _sample_speech(model, prior, out, args, options)
    labels = None if args.label is None else torch.full((args.n,), args.label, dtype=torch.long)
    images, codes = sample(
        model,
        prior,
        args.n,
        labels,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
        **options,
    )
    write_samples(out, images, codes, None if labels is None else labels.numpy())
    print(f"wrote {args.n} samples to {out}/grid.png and {out}/samples.npz")
    return 0


def _sample_speech(
    model: AudioVQVAE, prior, out: Path, args: argparse.Namespace, options: dict[str, Any]
) -> int:
    found = sample_speech(
        model,
        prior,
        args.n,
        args.label,
        args.speaker,
        seed=args.seed,
        temperature=args.temperature,
        top_k=args.top_k,
        **options,
    )
    names = [f"{i:0{len(str(args.n - 1))}d}.wav" for i in range(args.n)]
    write_wavs(out, found.waveforms, names, model.config.sample_rate)
    label = -1 if args.label is None else args.label
    write_npz(
        out / "samples.npz",
        codes=found.codes,
        lengths=found.lengths,
        labels=np.full(args.n, label),
    )
    print(f"wrote {args.n} WAVs and samples.npz to {out}")
    return 0

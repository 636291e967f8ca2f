"""``vqvae demo``: the whole system on scikit-learn's bundled 8x8 digits, no network needed:
train a VQ-VAE, fit a class-conditional PixelCNN prior to its codes, sample every class."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

import torch

from vqvae import report  # its attributes load matplotlib on first use
from vqvae.cli.common import write_samples, writes_into
from vqvae.cli.train import machine, summarise
from vqvae.config import TrainConfig, get_full_preset
from vqvae.console import say
from vqvae.data import load_images
from vqvae.inference import encode, sample
from vqvae.priors import build_prior
from vqvae.runs import RunDir
from vqvae.train.prior import CodeSet, train_prior
from vqvae.train.vqvae import train_vqvae

# The demo's prior: small, so that the whole demo takes about a minute on a CPU.
DEMO_PRIOR = {"channels": 32, "num_layers": 6, "head_channels": 64}
# 400 steps (18 epochs of the 1,438 training grids): the held-out NLL is lowest there
# (3.73 bits/code against 6 uniform); by 1,500 steps it overfits past the uniform prior.
DEMO_PRIOR_TRAIN = TrainConfig(
    steps=400, batch_size=64, lr=1e-3, checkpoint_every=200, eval_every=200, log_every=20
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="train on the bundled 8x8 digits and write a run folder")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--force", action="store_true", help="replace an existing run folder")
    p.add_argument("--steps", type=int, default=None)
    p.set_defaults(func=run)
    writes_into(p, "out", create=True)


def run(args: argparse.Namespace) -> int:
    folder = RunDir(args.out)
    train_set = load_images("digits", "train")
    test_set = load_images("digits", "test")
    preset = get_full_preset("digits")
    train_config = replace(
        preset.train, steps=args.steps or preset.train.steps, eval_limit=len(test_set)
    )
    folder.prepare(resume=False, force=args.force)
    say(f"vqvae demo: 1/3 training a VQ-VAE on {len(train_set)} 8x8 digits into {folder.path}")
    meta = {"data": "digits", "preset": "digits", "overrides": [], **machine(args)}
    result = train_vqvae(folder, train_set, test_set, preset.model, train_config, meta=meta)
    summarise(folder, result)

    say("vqvae demo: 2/3 fitting a class-conditional PixelCNN prior to the codes")
    model = result.model.eval()
    codes = [
        CodeSet(torch.from_numpy(encode(model, d.images)), torch.from_numpy(d.labels))
        for d in (train_set, test_set)
    ]
    prior = build_prior(
        "pixelcnn",
        num_codes=model.num_codes,
        shape=model.latent_shape,
        num_classes=train_set.num_classes,
        **DEMO_PRIOR,
    )
    prior_train = replace(DEMO_PRIOR_TRAIN, steps=args.steps or DEMO_PRIOR_TRAIN.steps)
    ev = train_prior(prior, folder.prior, codes[0], codes[1], prior_train, write_config=True)
    print(
        f"prior: test {ev.test_bits_per_code:.3f} bits/code (uniform "
        f"{ev.uniform_bits_per_code:.3f}, unigram {ev.unigram_bits_per_code:.3f})"
    )

    say("vqvae demo: 3/3 sampling 10 digits of every class")
    labels = torch.arange(train_set.num_classes).repeat_interleave(10)
    images, sampled = sample(model, prior, len(labels), labels, seed=0)
    write_samples(folder.path / "samples", images, sampled, labels.numpy(), nrow=10)
    print(f"samples: {folder.path / 'samples' / 'grid.png'}")
    report.try_write_report(folder.path, None)
    return 0

"""``vqvae probe``: what a speech run's codes know (``vqvae.experiments.probe``): the digit
and the speaker read from each utterance's code histogram by a linear classifier trained on
the training split, scored on the held-out one, beside the majority baseline."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vqvae.cli.common import recorded_data
from vqvae.data import load_audio
from vqvae.errors import RunError
from vqvae.experiments.probe import probe
from vqvae.inference.audio import encode_audio
from vqvae.models import AudioVQVAE
from vqvae.runs import RunDir, load_run_model


def add_parser(sub: Any) -> None:
    p = sub.add_parser("probe", help="speech: what the codes know (digit, speaker), linearly")
    p.add_argument("run")
    p.add_argument("--data", help="data spec (default: the one the run trained on)")
    p.add_argument("--data-root", help="where named data sets live (default: $VQVAE_DATA)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder = RunDir(args.run)
    model = load_run_model(folder)
    if not isinstance(model, AudioVQVAE):
        raise RunError(f"{args.run}: probe reads speech codes; this is a {type(model).__name__}")
    spec = recorded_data(args, folder)
    rate = model.config.sample_rate
    train, test = (load_audio(spec, s, args.data_root, sample_rate=rate) for s in ("train", "test"))
    result = probe(encode_audio(model, train), encode_audio(model, test), model.num_codes)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(f"{spec}: codes of {result.num_train} training and {result.num_test} test utterances")
    print(result.table())
    return 0

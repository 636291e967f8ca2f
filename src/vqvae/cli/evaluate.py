"""``vqvae eval``: distortion, code statistics and rate of a trained run on a split."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vqvae.cli.common import add_data_options, add_workers_option, model_and_data
from vqvae.data import AudioDataset
from vqvae.inference import evaluate
from vqvae.inference.audio import evaluate_audio

SHOWN = ("mse", "psnr", "perplexity", "code_usage", "bits_per_image", "compression_ratio")
AUDIO_SHOWN = (
    "bits_per_sample", "mel_error", "perplexity", "code_usage", "codes_per_second", "bit_rate",
)  # fmt: skip


def add_parser(sub: Any) -> None:
    p = sub.add_parser("eval", help="MSE, PSNR, perplexity, code usage of a trained run")
    p.add_argument("run")
    add_data_options(p)
    add_workers_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model, dataset = model_and_data(args)
    audio = isinstance(dataset, AudioDataset)
    if audio:
        result = evaluate_audio(model, dataset).to_dict()
    else:
        result = evaluate(model, dataset.images).to_dict()
    if args.json:
        print(json.dumps(result))
        return 0
    count = result["num_utterances"] if audio else result["num_images"]
    print(f"{dataset.name} [{args.split}], {count} {'utterances' if audio else 'images'}")
    for key in AUDIO_SHOWN if audio else SHOWN:
        if key in result:  # a speech run has bits per sample or a log-mel error, not both
            print(f"  {key:18s} {result[key]:.4f}")
    return 0

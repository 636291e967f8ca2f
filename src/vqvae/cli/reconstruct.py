"""``vqvae reconstruct``: data -> codes -> data, as uint8 ``originals`` and
``reconstructions`` in an .npz; for a speech run, one WAV per utterance in a folder, named
after its source file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vqvae._io import write_npz
from vqvae.cli.common import (
    add_data_options,
    add_output,
    add_vocoder_option,
    add_workers_option,
    model_and_data,
    wav_name,
    write_wavs,
)
from vqvae.data import AudioDataset, read_all
from vqvae.inference import reconstruct
from vqvae.inference.audio import convert
from vqvae.runs import refuse_overwrite


def add_parser(sub: Any) -> None:
    p = sub.add_parser("reconstruct", help="data -> codes -> data (.npz; WAVs for audio)")
    p.add_argument("run")
    add_data_options(p)
    add_workers_option(p)
    p.add_argument("--limit", type=int)
    p.add_argument("--seed", type=int, default=0, help="audio: the WaveNet's sampling seed")
    add_vocoder_option(p)
    add_output(p, "the .npz of originals and reconstructions; for audio, a folder of WAVs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    refuse_overwrite(out, args.force)
    model, dataset = model_and_data(args)
    if isinstance(dataset, AudioDataset):
        return _reconstruct_audio(model, dataset, out, args)
    originals = read_all(dataset.images, args.limit or None)  # all go to the output file
    _, recons = reconstruct(model, originals)
    write_npz(out, originals=originals, reconstructions=recons)
    print(f"wrote {out}: {len(originals)} originals and reconstructions")
    return 0


def _reconstruct_audio(model, dataset: AudioDataset, out: Path, args: argparse.Namespace) -> int:
    data = dataset.subset(range(min(args.limit or len(dataset), len(dataset))))
    _, waves = convert(model, data, None, seed=args.seed)
    write_wavs(out, waves, [wav_name(f) for f in data.files], data.sample_rate)
    print(f"wrote {len(waves)} reconstructed WAVs to {out}")
    return 0

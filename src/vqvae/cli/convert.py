"""``vqvae convert``: voice conversion with a speech run (van den Oord et al. 2017, section
4.3): encode an utterance, then let the WaveNet decode its codes with another speaker's id.
One WAV in, one WAV out; or a data set's split in, one WAV per utterance in a folder, named
after its source file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vqvae.cli.common import (
    add_data_options,
    add_output,
    add_vocoder_option,
    load_run_audio,
    wav_name,
    write_wavs,
)
from vqvae.data import AudioDataset, read_audio
from vqvae.errors import RunError
from vqvae.inference.audio import convert
from vqvae.models import AudioVQVAE
from vqvae.runs import RunDir, load_run_model, refuse_overwrite


def add_parser(sub: Any) -> None:
    p = sub.add_parser("convert", help="voice conversion: speech -> codes -> another speaker")
    p.add_argument("run")
    p.add_argument("input", nargs="?", help="an audio file (or use --data)")
    add_data_options(p, required=False)
    p.add_argument("--speaker", required=True, help="the target speaker's name")
    p.add_argument("--limit", type=int, help="only the first N utterances of --data")
    p.add_argument("--seed", type=int, default=0, help="the WaveNet's sampling seed")
    add_vocoder_option(p)
    add_output(p, "OUT.wav for one input file; a folder for --data")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if (args.input is None) == (args.data is None):
        raise RunError("convert: give one audio file, or --data SPEC, not both or neither")
    out = Path(args.out)
    refuse_overwrite(out, args.force)
    model = load_run_model(RunDir(args.run), args.vocoder)
    if not isinstance(model, AudioVQVAE):
        raise RunError(f"{args.run}: convert needs a speech run, this is a {type(model).__name__}")
    model.speaker_ids(args.speaker, 1)  # an unknown name: one line, before any work
    if args.input is not None:
        rate = model.config.sample_rate
        data = AudioDataset((read_audio(args.input, rate),), rate, name=args.input)
    else:
        data = load_run_audio(args, model)
        data = data.subset(range(min(args.limit or len(data), len(data))))
    _, waves = convert(model, data, args.speaker, seed=args.seed)
    if args.input is not None:
        write_wavs(out.parent, waves, [out.name], data.sample_rate)
        print(f"wrote {out}: {Path(args.input).name} in the voice of {args.speaker}")
    else:
        write_wavs(out, waves, [wav_name(f) for f in data.files], data.sample_rate)
        print(f"wrote {len(waves)} WAVs in the voice of {args.speaker} to {out}")
    return 0

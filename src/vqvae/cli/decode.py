"""``vqvae decode``: code grids (.npz) -> one PNG per grid, without the encoder; for a speech
run, code sequences -> one WAV each, with their own speakers or ``--speaker``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vqvae.cli.common import add_output, add_vocoder_option, write_wavs
from vqvae.codefile import read_audio_code_file, read_code_file
from vqvae.data import save_pngs
from vqvae.errors import RunError
from vqvae.inference import decode
from vqvae.inference.audio import generate_audio
from vqvae.models import AudioVQVAE
from vqvae.runs import RunDir, load_run_model, refuse_overwrite


def add_parser(sub: Any) -> None:
    p = sub.add_parser("decode", help="code grids (.npz) -> PNG images")
    p.add_argument("run")
    p.add_argument("codes")
    p.add_argument("--speaker", help="speech: decode every sequence with this speaker")
    p.add_argument("--seed", type=int, default=0, help="speech: the WaveNet's sampling seed")
    add_vocoder_option(p)
    add_output(p, "a folder for the PNGs (WAVs for speech)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    refuse_overwrite(out, args.force)
    model = load_run_model(RunDir(args.run), args.vocoder)
    if isinstance(model, AudioVQVAE):
        return _decode_audio(model, Path(args.codes), out, args)
    codes = read_code_file(Path(args.codes), model.code_shape, model.num_codes)
    images = decode(model, codes.codes)
    save_pngs(images, out)
    print(f"wrote {len(images)} PNGs to {out}")
    return 0


def _decode_audio(model: AudioVQVAE, path: Path, out: Path, args: argparse.Namespace) -> int:
    found = read_audio_code_file(path, model.num_codes, model.hop)
    speakers = found.speakers
    if args.speaker is not None:
        speakers = model.speaker_ids(args.speaker, len(found.codes)).cpu().numpy()
    elif model.speakers and speakers is None:
        raise RunError(
            f"{path}: no speakers in the file; pass --speaker ({', '.join(model.speakers)})"
        )
    waves = generate_audio(model, found.codes, found.lengths, speakers, seed=args.seed)
    names = [f"{i:0{len(str(len(waves) - 1))}d}.wav" for i in range(len(waves))]
    write_wavs(out, waves, names, model.config.sample_rate)
    print(f"wrote {len(waves)} WAVs to {out}")
    return 0

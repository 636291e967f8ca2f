"""``vqvae encode``: data -> code grids in an .npz (``codes``, and ``labels`` if any); for a
speech run, code sequences padded to one length with ``lengths`` and ``speakers``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vqvae.cli.common import add_data_options, add_output, add_workers_option, model_and_data
from vqvae.codefile import write_code_file
from vqvae.data import AudioDataset
from vqvae.inference import encode
from vqvae.inference.audio import encode_audio
from vqvae.runs import refuse_overwrite


def add_parser(sub: Any) -> None:
    p = sub.add_parser("encode", help="data -> code grids (.npz)")
    p.add_argument("run")
    add_data_options(p)
    add_workers_option(p)
    add_output(p, "the codes .npz")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    refuse_overwrite(out, args.force)
    model, dataset = model_and_data(args)
    if isinstance(dataset, AudioDataset):
        found = encode_audio(model, dataset)
        found.write(out)
        print(f"wrote {out}: codes {found.codes.shape} with lengths, labels and speakers")
        return 0
    codes = encode(model, dataset.images)
    write_code_file(out, codes, dataset.labels)
    print(f"wrote {out}: codes {codes.shape}")
    return 0

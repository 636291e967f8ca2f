"""``vqvae reconstruct``: data -> codes -> data, as uint8 ``originals`` and
``reconstructions`` in an .npz."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vqvae._io import write_npz
from vqvae.cli.common import add_data_options, add_output, model_and_data
from vqvae.inference import reconstruct
from vqvae.runs import refuse_overwrite


def add_parser(sub: Any) -> None:
    p = sub.add_parser("reconstruct", help="data -> codes -> data (.npz of uint8)")
    p.add_argument("run")
    add_data_options(p)
    p.add_argument("--limit", type=int)
    add_output(p, "the .npz of originals and reconstructions")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    refuse_overwrite(out, args.force)
    model, dataset = model_and_data(args)
    originals = dataset.images[: args.limit] if args.limit else dataset.images
    _, recons = reconstruct(model, originals)
    write_npz(out, originals=originals, reconstructions=recons)
    print(f"wrote {out}: {len(originals)} originals and reconstructions")
    return 0

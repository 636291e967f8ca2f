"""``vqvae decode``: code grids (.npz) -> one PNG per grid, without the encoder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vqvae.cli.common import add_output
from vqvae.codefile import read_code_file
from vqvae.data import save_pngs
from vqvae.inference import decode
from vqvae.runs import RunDir, load_run_model, refuse_overwrite


def add_parser(sub: Any) -> None:
    p = sub.add_parser("decode", help="code grids (.npz) -> PNG images")
    p.add_argument("run")
    p.add_argument("codes")
    add_output(p, "a folder for the PNGs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    refuse_overwrite(out, args.force)
    model = load_run_model(RunDir(args.run))
    codes = read_code_file(Path(args.codes), model.code_shape, model.num_codes)
    images = decode(model, codes.codes)
    save_pngs(images, out)
    print(f"wrote {len(images)} PNGs to {out}")
    return 0

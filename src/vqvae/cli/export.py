"""``vqvae export RUN --format onnx --out DIR``: the run's encoder (data as stored -> codes)
and decoder (codes -> data) as ONNX files with a ``manifest.json``, to run without PyTorch
(docs/export.md)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    from vqvae.export import FORMATS

    p = sub.add_parser("export", help="a run's encoder and decoder as ONNX files (no torch needed)")
    p.add_argument("run")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="default: %(default)s")
    p.add_argument("--out", required=True, help="the folder to write")
    p.add_argument(
        "--encoder-only",
        action="store_true",
        help="only encoder.onnx (data -> codes): for a run whose decoder cannot be exported",
    )
    p.add_argument("--force", action="store_true", help="replace an existing folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vqvae.export import export_onnx

    done = export_onnx(args.run, args.out, encoder_only=args.encoder_only, force=args.force)
    m = done.manifest
    print(f"wrote {done.folder}: {', '.join(done.files)} (K = {m['num_codes']})")
    return 0

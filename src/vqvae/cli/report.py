"""``vqvae report``: ``RUN/report/index.html`` with its pictures."""

from __future__ import annotations

import argparse
from typing import Any

from vqvae import report  # its attributes load matplotlib on first use
from vqvae.cli.common import writes_into


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="write RUN/report/index.html: curves, codes, samples")
    p.add_argument("run")
    p.add_argument(
        "--data", help="data spec of the held-out images or recordings (default: the run's)"
    )
    p.add_argument("--data-root", help="where named data sets live (default: $VQVAE_DATA)")
    p.set_defaults(func=run)
    writes_into(p, "run")


def run(args: argparse.Namespace) -> int:
    print(f"wrote {report.write_report(args.run, args.data_root, data=args.data)}")
    return 0

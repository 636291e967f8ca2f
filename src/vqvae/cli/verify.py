"""``vqvae verify RUN``: check a run folder's weights and checkpoints against their manifests
(sizes and SHA-256, docs/run-folders.md); one line per problem and exit 1, or one line that
all is well. It reads only, and takes no lock: it may run beside a training."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vqvae.train.checkpoint import verify_run

EXIT_PROBLEMS = 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser("verify", help="check a run's weights and checkpoints against checksums")
    p.add_argument("run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    found = verify_run(Path(args.run))
    for line in found.problems:
        print(line)
    if found.problems:
        return EXIT_PROBLEMS
    print(
        f"{args.run}: all is well ({found.weights} weight file(s) and {found.checkpoints} "
        f"checkpoint(s) checked)"
    )
    return 0

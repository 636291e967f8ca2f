"""``vqvae list [WHAT]``: what is registered, one kind per line, its name first."""

from __future__ import annotations

import argparse
from typing import Any

from vqvae.registry import (
    DATASETS,
    LIKELIHOODS,
    NETS,
    PRESETS,
    PRIORS,
    QUANTIZERS,
    SPEECH_DECODERS,
    VIDEO_PRIORS,
    VOCODERS,
    Registry,
)

LISTS: dict[str, Registry[Any]] = {
    "presets": PRESETS,
    "datasets": DATASETS,
    "quantizers": QUANTIZERS,
    "priors": PRIORS,
    "video-priors": VIDEO_PRIORS,
    "nets": NETS,
    "likelihoods": LIKELIHOODS,
    "decoders": SPEECH_DECODERS,
    "vocoders": VOCODERS,
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("list", help="what is registered: presets, data sets, quantizers, priors")
    p.add_argument("what", nargs="?", choices=tuple(LISTS), help="one list (default: all)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    chosen = [args.what] if args.what else list(LISTS)
    for name in chosen:
        if not args.what:
            print(f"{name}:")
        indent = "" if args.what else "  "
        entries = LISTS[name].entries()
        width = max((len(e.name) for e in entries), default=0)
        for e in entries:
            print(f"{indent}{e.name:<{width}}  {e.about}".rstrip())
    return 0

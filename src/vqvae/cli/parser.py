"""The argument parser: one sub-command per module, each adding its own options."""

from __future__ import annotations

import argparse

from vqvae.cli import (
    compare,
    convert,
    data,
    decode,
    demo,
    encode,
    evaluate,
    export,
    inpaint,
    listing,
    prior,
    probe,
    reconstruct,
    report,
    rollout,
    sample,
    serve,
    stack,
    train,
    verify,
    video,
    vocoder,
)

COMMANDS = (
    demo, train, evaluate, encode, decode, reconstruct, convert, probe, prior, sample, inpaint,
    report, compare, data, stack, video, rollout, vocoder, verify, serve, export,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vqvae", description="VQ-VAE: discrete codes for data, and priors over them."
    )
    parser.add_argument(
        "--version", action="version", version=version_line(), help="the versions and device"
    )
    # not required: a bare `vqvae` prints the commands (cli.main)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (*COMMANDS, listing):
        command.add_parser(sub)
    for leaf in _leaves(parser):
        leaf.add_argument(
            "--threads",
            type=int,
            metavar="N",
            help="CPU threads for torch (default: the cores the load average leaves free)",
        )
    return parser


def version_line() -> str:
    """``vqvae X (torch Y, device Z)``: what a bug report needs first."""
    import torch

    from vqvae import __version__

    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)})"
    elif torch.backends.mps.is_available():
        device = "mps"
    else:
        device = "cpu"
    return f"vqvae {__version__} (torch {torch.__version__}, device {device})"


def _leaves(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers that run a command: those with no sub-commands of their own."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [parser]
    return [leaf for a in subs for p in dict.fromkeys(a.choices.values()) for leaf in _leaves(p)]

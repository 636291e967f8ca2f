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
    listing,
    prior,
    probe,
    reconstruct,
    report,
    rollout,
    sample,
    stack,
    train,
    video,
    vocoder,
)

COMMANDS = (
    demo, train, evaluate, encode, decode, reconstruct, convert, probe, prior, sample, report,
    compare, data, stack, video, rollout, vocoder,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vqvae", description="VQ-VAE: discrete codes for data, and priors over them."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (*COMMANDS, listing):
        command.add_parser(sub)
    return parser

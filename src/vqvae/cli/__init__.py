"""The ``vqvae`` command: thin sub-commands over the library, one module each.

This package is the only code that sees argparse. A user's mistake is one line on stderr
and a non-zero exit, never a traceback, and no command overwrites existing work without
``--force``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence

from vqvae.cli.common import run_lock
from vqvae.cli.parser import build_parser
from vqvae.errors import VQVAEError
from vqvae.threads import choose_threads
from vqvae.train.loop import Interrupted, NonFiniteLoss, StoppedByPeer

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# What a user's mistake raises: our own error, a library's shape/value check, a file problem.
USER_ERRORS = (VQVAEError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError)


def one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # a bare `vqvae`: what it can do
        parser.print_help()
        return 0
    func: Callable[[argparse.Namespace], int] = args.func
    _file_size_limit_is_an_error()
    try:
        # said by the training loop once work begins: a refusal before it stays one line
        args.threads = choose_threads(getattr(args, "threads", None)).apply().threads
        with run_lock(args, sys.argv[1:] if argv is None else argv):
            return func(args)
    except Interrupted as e:
        print(f"vqvae: {e}; continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("vqvae: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (NonFiniteLoss, StoppedByPeer) as e:
        print(f"vqvae: error: {one_line(e)}", file=sys.stderr)
        return 1
    except USER_ERRORS as e:
        print(f"vqvae: error: {one_line(e)}", file=sys.stderr)
        return EXIT_USAGE


def _file_size_limit_is_an_error() -> None:
    """Past ``ulimit -f`` the kernel sends SIGXFSZ, which kills a process outright; ignored,
    the write fails with EFBIG instead and is reported as a full disk is
    (docs/run-folders.md)."""
    if hasattr(signal, "SIGXFSZ"):
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


__all__ = ["build_parser", "main"]

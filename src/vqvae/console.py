"""Messages for the person at the terminal: choices and progress on stderr (stdout carries
results, so that a command's output can be piped)."""

from __future__ import annotations

import sys


def say(message: str) -> None:
    """A progress or choice message for the user, on stderr."""
    print(message, file=sys.stderr)

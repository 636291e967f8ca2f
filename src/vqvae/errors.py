"""The one kind of error a user can fix: the command line prints its message as one line.

Library code raises ``VQVAEError`` (or a subclass naming where the problem lies) for bad
input: a missing file, a corrupt image, a wrong shape, a run from another model. The
message says what was expected and what came; ``vqvae.cli`` prints it on stderr and exits
non-zero, never with a traceback.
"""

from __future__ import annotations


class VQVAEError(ValueError):
    """A problem with the user's input, data, run folder or options (one line)."""


class DataError(VQVAEError):
    """A problem with the user's data or data spec, naming the file or folder."""


class RunError(VQVAEError):
    """A problem with a run folder or a file passed to a command."""

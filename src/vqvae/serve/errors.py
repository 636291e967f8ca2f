"""A request the server refuses: one line and the HTTP status that says why (docs/serve.md)."""

from __future__ import annotations

from vqvae.errors import VQVAEError

BAD_INPUT = 422  # the request is well formed but its content cannot be used
CONFLICT = 409  # the run lacks what the request needs (a prior, a video prior)
TOO_LARGE = 413
NOT_FOUND = 404
UNSUPPORTED = 415  # an upload that is not an image or audio the server reads


class Refused(VQVAEError):
    """A user's request the server cannot do, with its HTTP status (4xx)."""

    def __init__(self, message: str, status: int = BAD_INPUT) -> None:
        super().__init__(message)
        self.status = status

"""``vqvae serve``: a local web page over trained runs (docs/serve.md).

``served.py`` holds one run as the server sees it (its model, priors and test data, and the
work each request asks of them, all through ``vqvae.inference``); ``media.py`` turns uploads
into arrays and arrays into PNG and WAV bytes; ``app.py`` is the ASGI app (FastAPI) with its
JSON API and the page in ``static/``. Nothing below the command line imports this package; it
needs the ``serve`` extra (``pip install 'vqvae[serve]'``).
"""

from vqvae.serve.errors import Refused
from vqvae.serve.served import Limits, ServedRun

__all__ = ["Limits", "Refused", "ServedRun", "create_app"]


def create_app(*args, **kwargs):
    """``vqvae.serve.app.create_app``, imported on first use: FastAPI loads only here."""
    from vqvae.serve.app import create_app as create

    return create(*args, **kwargs)

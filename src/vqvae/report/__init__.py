"""The HTML report of a run: ``RUN/report/index.html`` with PNG figures beside it.

``write_report(run)`` draws training curves, reconstructions, the code grid of a few inputs,
code usage, the codebook, rate against distortion and, when the run has a prior, samples.
A speech run (``AudioVQVAE``) gets its own page (``audio.py``): players for original,
reconstructed and voice-converted recordings, their spectrograms, codes and bit rates.
"""

from typing import Any

__all__ = ["try_write_report", "write_report"]


def __getattr__(name: str) -> Any:
    """``write_report`` and ``try_write_report``, imported on first use: drawing needs
    matplotlib, half a second to import, which a command that draws nothing never pays."""
    if name in __all__:
        from vqvae.report import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The HTML report of a run: ``RUN/report/index.html`` with PNG figures beside it.

``write_report(run)`` draws training curves, reconstructions, the code grid of a few inputs,
code usage, the codebook, rate against distortion and, when the run has a prior, samples.
A speech run (``AudioVQVAE``) gets its own page (``audio.py``): players for original,
reconstructed and voice-converted recordings, their spectrograms, codes and bit rates.
"""

from vqvae.report.build import try_write_report, write_report

__all__ = ["try_write_report", "write_report"]

"""The speech report's pictures: waveforms, log-mel spectrograms, and code sequences drawn
under a spectrogram. Arrays in, one PNG out, as in ``figures.py``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vqvae.report.figures import ACCENT, TRAIN, _save, plt
from vqvae.spectral import log_mel

SPEC_HOP = 80  # log-mel frames every 10 ms at 8 kHz (vqvae.spectral's default)


def _log_mel_panel(ax, wave: np.ndarray, rate: int, title: str) -> None:
    frames = log_mel(wave, rate).T  # (40, F)
    seconds = len(wave) / rate
    ax.imshow(frames, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, 40),
              vmin=-12, vmax=max(float(frames.max()), -11))  # fmt: skip
    ax.set_title(title, fontsize=9)
    ax.set_yticks([0, 20, 40])
    ax.set_ylabel("mel band", fontsize=8)


def waveforms_and_spectrograms(
    waves: Sequence[np.ndarray], titles: Sequence[str], rate: int, path: Path
) -> Path:
    """One column per waveform: the waveform above its log-mel spectrogram, same time axis."""
    n = len(waves)
    fig, axes = plt.subplots(2, n, figsize=(3.6 * n, 4.2), squeeze=False, sharex="col")
    for j, (wave, title) in enumerate(zip(waves, titles, strict=True)):
        t = np.arange(len(wave)) / rate
        axes[0, j].plot(t, wave, lw=0.5, color=TRAIN)
        axes[0, j].set_ylim(-1, 1)
        axes[0, j].set_title(title, fontsize=9)
        _log_mel_panel(axes[1, j], wave, rate, "log-mel")
        axes[1, j].set_xlabel("seconds", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def codes_under_spectrogram(
    wave: np.ndarray, codes: np.ndarray, hop: int, rate: int, title: str, path: Path
) -> Path:
    """A log-mel spectrogram with the utterance's codes below it: one code per ``hop``
    samples, drawn as the code id over time (a step plot) and as a colour strip."""
    fig, (top, mid, low) = plt.subplots(
        3, 1, figsize=(11, 4.6), sharex=True, gridspec_kw={"height_ratios": [3, 1.4, 0.5]}
    )
    _log_mel_panel(top, wave, rate, title)
    edges = np.arange(len(codes) + 1) * hop / rate  # (T' + 1,) seconds
    mid.stairs(codes, edges, color=ACCENT, lw=1.0)
    mid.set_ylabel("code id", fontsize=8)
    mid.grid(alpha=0.3)
    low.pcolormesh(edges, [0, 1], codes[None, :], cmap="tab20", shading="flat")
    low.set_yticks([])
    low.set_xlabel(f"seconds ({len(codes)} codes, one per {hop} samples)")
    fig.tight_layout()
    return _save(fig, path)

"""The speech report's pictures: waveforms, log-mel spectrograms, code sequences drawn under a
spectrogram, and bit rates. Arrays in, one PNG out, as in ``figures.py``.

Time axes are exact: log-mel frame ``f`` is the window of ``WIN`` samples from ``f * HOP``, so
it is drawn ``HOP`` samples wide around its centre ``f * HOP + WIN / 2`` (the first and last
stretched to the ends of the recording); code ``t`` covers
samples ``[t * hop, (t + 1) * hop)`` of the recording padded with silence to whole codes, as
the encoder saw it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vqvae.report.figures import ACCENT, TRAIN, _save, plt
from vqvae.spectral import log_mel

WIN, HOP, N_MELS = 256, 80, 40  # log-mel frames of 32 ms every 10 ms at 8 kHz
FLOOR = -12.0  # log-mel colour scale floor (silence is log(1e-6) = -13.8)
CODE_COLOURS = 20  # the colour strip's palette (tab20): code id modulo 20


def _log_mel_panel(ax, wave: np.ndarray, rate: int, title: str) -> None:
    frames = log_mel(wave, rate, N_MELS, WIN, HOP).T  # (F, 40) -> (40, F)
    centres = np.arange(frames.shape[1]) * HOP + WIN / 2  # (F,) samples
    edges = np.append(centres - HOP / 2, centres[-1] + HOP / 2)  # (F + 1,)
    edges[0], edges[-1] = 0, max(edges[-1], len(wave))  # the first and last reach the ends
    top = max(float(frames.max()), FLOOR + 1)
    bands = np.arange(N_MELS + 1)
    ax.pcolormesh(edges / rate, bands, frames, cmap="magma", vmin=FLOOR, vmax=top)
    ax.set_xlim(0, len(wave) / rate)
    ax.set_title(title, fontsize=9)
    ax.set_yticks([0, N_MELS // 2, N_MELS])
    ax.set_ylabel("mel band", fontsize=8)


def waveforms_and_spectrograms(
    waves: Sequence[np.ndarray], titles: Sequence[str], rate: int, path: Path
) -> Path:
    """One column per waveform: the waveform above its log-mel spectrogram, same time axis."""
    n = len(waves)
    fig, axes = plt.subplots(2, n, figsize=(3.6 * n, 4.2), squeeze=False, sharex="col")
    for j, (wave, title) in enumerate(zip(waves, titles, strict=True)):
        t = np.arange(len(wave)) / rate  # (T,) seconds
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
    """A recording's log-mel spectrogram with its codes (T',) below on the same time axis: the
    code id over time (a step plot) and a colour strip (one cell per code)."""
    padded = np.pad(wave, (0, max(len(codes) * hop - len(wave), 0)))  # as the encoder saw it
    fig, (top, mid, low) = plt.subplots(
        3, 1, figsize=(11, 4.6), sharex=True, gridspec_kw={"height_ratios": [3, 1.4, 0.5]}
    )
    _log_mel_panel(top, padded, rate, f"{title}: log-mel spectrogram")
    edges = np.arange(len(codes) + 1) * hop / rate  # (T' + 1,) seconds
    mid.stairs(codes, edges, color=ACCENT, lw=1.0)
    mid.set_ylabel("code id", fontsize=8)
    mid.grid(alpha=0.3)
    colours = (codes % CODE_COLOURS)[None, :]  # (1, T')
    low.pcolormesh(edges, [0, 1], colours, cmap="tab20", vmin=-0.5, vmax=CODE_COLOURS - 0.5)
    low.set_yticks([])
    low.set_xlim(0, edges[-1])
    low.set_xlabel(f"seconds ({len(codes)} codes, one per {hop} samples)")
    fig.tight_layout()
    return _save(fig, path)


def bit_rates(rows: Sequence[tuple[str, float]], path: Path) -> Path:
    """Horizontal bars of bits per second (log scale), each labelled with its value."""
    names = [name for name, _ in rows]
    bits = np.array([b for _, b in rows], dtype=np.float64)
    fig, ax = plt.subplots(figsize=(10, 0.5 + 0.45 * len(rows)))
    y = np.arange(len(rows))[::-1]  # the first row on top
    colours = [ACCENT if name.startswith("codes") else TRAIN for name in names]
    ax.barh(y, bits, color=colours, height=0.6)
    for yi, b in zip(y, bits, strict=True):
        ax.text(b * 1.08, yi, f"{b:,.0f} bit/s", va="center", fontsize=9)
    ax.set_xscale("log")
    ax.set_xlim(bits.min() / 2, bits.max() * 4)
    ax.set_yticks(y, names, fontsize=9)
    ax.set_xlabel("bits per second (log scale)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def predicted_log_mels(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], titles: Sequence[str], path: Path
) -> Path:
    """A mel decoder's work: for each recording, its true log-mel frames (n_mels, T') beside
    the frames the decoder predicted from the codes and the speaker, one per code, on one
    colour scale."""
    n = len(pairs)
    fig, axes = plt.subplots(n, 2, figsize=(7.2, 1.9 * n), squeeze=False)
    for i, ((true, predicted), title) in enumerate(zip(pairs, titles, strict=True)):
        top = max(float(true.max()), FLOOR + 1)
        for j, (frames, what) in enumerate(((true, "original"), (predicted, "predicted"))):
            axes[i, j].imshow(frames, origin="lower", aspect="auto", cmap="magma", vmin=FLOOR,
                              vmax=top, interpolation="nearest")  # fmt: skip
            axes[i, j].set_title(f"{title}: {what}", fontsize=8)
            axes[i, j].set_yticks([0, frames.shape[0] // 2, frames.shape[0]])
            axes[i, j].tick_params(labelsize=7)
        axes[i, 0].set_ylabel("mel band", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("code (frame)", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)

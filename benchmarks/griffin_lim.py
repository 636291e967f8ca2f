"""Griffin-Lim's speed: ``vqvae.spectral.griffin_lim`` against the textbook iteration.

    OMP_NUM_THREADS=1 python benchmarks/griffin_lim.py [--iterations 32] [--repeats 5]

The textbook iteration (Perraudin et al. 2013, algorithm 2, as written before): spectra
(B, F, T') through ``torch.stft`` and an inverse STFT by ``F.fold``, the phase put back with
an angle and a complex exponential. The library's: the frames-first layout ``torch.fft``
runs in (``vqvae.spectral.Frames``), the window and the overlap-add envelope made once per
call, the overlap-add as shifted sums of hops, the phase by a division. Both start from the
same random phases; the spectral convergence of what each makes is printed beside its time.
Clips of one second at 8 kHz, 64-sample hops, 256-point FFTs (the ``speech8k`` preset's).
"""

from __future__ import annotations

import argparse
import math
import os
import time

import torch
import torch.nn.functional as F

from vqvae.spectral import griffin_lim, spectral_convergence

N_FFT, HOP, RATE = 256, 64, 8000


def textbook_stft(x: torch.Tensor) -> torch.Tensor:
    side = N_FFT // 2 - HOP // 2
    window = torch.hann_window(N_FFT, periodic=True, dtype=x.dtype)
    padded = F.pad(x, (side, side))
    return torch.stft(padded, N_FFT, HOP, window=window, center=False, return_complex=True)


def textbook_istft(spec: torch.Tensor) -> torch.Tensor:
    n_frames, side = spec.shape[-1], N_FFT // 2 - HOP // 2
    window = torch.hann_window(N_FFT, periodic=True, dtype=spec.real.dtype)
    frames = torch.fft.irfft(spec, n=N_FFT, dim=1) * window[:, None]  # (B, n_fft, T')
    size = (n_frames - 1) * HOP + N_FFT
    fold = dict(output_size=(1, size), kernel_size=(1, N_FFT), stride=(1, HOP))
    audio = F.fold(frames, **fold)[:, 0, 0]
    norm = F.fold(window.square()[None, :, None].expand(1, N_FFT, n_frames), **fold)[:, 0, 0]
    return (audio / norm.clamp(min=1e-8))[:, side : side + n_frames * HOP]


def textbook_griffin_lim(magnitude, phase, iterations: int, momentum: float = 0.99):
    c = torch.polar(magnitude, phase)
    previous = torch.zeros_like(c)
    for _ in range(iterations):
        t = magnitude * torch.exp(1j * textbook_stft(textbook_istft(c)).angle())
        c, previous = t + momentum * (t - previous), t
    return textbook_istft(magnitude * torch.exp(1j * c.angle()))


def speech_like(clips: int) -> torch.Tensor:
    """(clips, 1 s): rising tones with harmonics and a little noise."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(RATE) / RATE
    f0 = 100 + 150 * torch.rand(clips, 1, generator=g)
    tone = sum(torch.sin(2 * math.pi * k * f0 * (t + t**2)) / k for k in range(1, 6))
    return 0.2 * tone + 0.01 * torch.randn(clips, RATE, generator=g)


def timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    return (time.perf_counter() - start) / repeats, out


def compare(clips: int, iterations: int, repeats: int) -> str:
    """One table row: both iterations on ``clips`` clips from the same random phases."""
    magnitude = textbook_stft(speech_like(clips)).abs()
    turns = torch.rand(magnitude.shape, generator=torch.Generator().manual_seed(1))
    phase = 2 * math.pi * turns
    slow, a = timed(lambda: textbook_griffin_lim(magnitude, phase, iterations), repeats)
    fast, b = timed(lambda: griffin_lim(magnitude, N_FFT, HOP, iterations, phase=phase), repeats)
    sc = [float(spectral_convergence(magnitude, y, N_FFT, HOP).mean()) for y in (a, b)]
    return (
        f"| {clips} | {slow * 1e3:.1f} | {fast * 1e3:.1f} | {slow / fast:.1f}x | "
        f"{sc[0]:.4f} / {sc[1]:.4f} | {clips / slow:.0f}x / {clips / fast:.0f}x |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    load = os.getloadavg()[0]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average "
        f"{load:.1f}; {args.iterations} iterations, clips of 1 s at 8 kHz"
    )
    print(
        "| clips | textbook (ms) | library (ms) | speed-up | spectral convergence: textbook "
        "/ library | real-time factor: textbook / library |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for clips in (1, 32):
        print(compare(clips, args.iterations, args.repeats))


if __name__ == "__main__":
    main()

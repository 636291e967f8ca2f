"""Spectrograms of waveforms: the short-time Fourier transform, log-mel filterbanks and MFCCs
in numpy (the report draws log-mel spectrograms; the speech judge classifies MFCC
statistics), and in torch the speech VQ-VAE's log-mel frames, their inverse and Griffin-Lim
(what the ``mel`` decoder predicts and the vocoders turn back into audio).

Standard definitions (as in librosa with ``htk=True``): a Hann window of ``win`` samples
every ``hop`` samples; power spectrum; triangular filters equally spaced on the mel scale
``m = 2595 log10(1 + f / 700)`` from 0 Hz to the Nyquist frequency; ``log(mel + 1e-6)``;
MFCCs are the orthonormal DCT-II of the log-mel frames (Davis and Mermelstein 1980).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

LOG_FLOOR = 1e-6  # added before the log: silence gives log(1e-6), not -inf
MAGNITUDE_FLOOR = 1e-3  # the same floor for an STFT magnitude: sqrt(LOG_FLOOR)


def _frames(x: np.ndarray, win: int, hop: int) -> np.ndarray:
    """(T,) -> (F, win) frames, the signal padded with zeros so that every sample is in one."""
    n = max(1, 1 + -(-max(len(x) - win, 0) // hop))
    x = np.pad(np.asarray(x, dtype=np.float32), (0, (n - 1) * hop + win - len(x)))
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]  # (F, win)
    return x[idx]


def power_spectrogram(x: np.ndarray, win: int = 256, hop: int = 80) -> np.ndarray:
    """|STFT|^2 of a waveform (T,): (F, win // 2 + 1), frames first."""
    window = np.hanning(win + 1)[:-1].astype(np.float32)  # periodic Hann
    return np.abs(np.fft.rfft(_frames(x, win, hop) * window, axis=1)) ** 2


@lru_cache(maxsize=16)
def mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular mel filters (n_mels, n_fft // 2 + 1), each peaking at 1."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(0.0, mel(sample_rate / 2), n_mels + 2))  # (n_mels + 2,)
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs - lo) / (mid - lo)
    down = (hi - freqs) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


def log_mel(
    x: np.ndarray, sample_rate: int, n_mels: int = 40, win: int = 256, hop: int = 80
) -> np.ndarray:
    """Log-mel spectrogram of a waveform (T,): (F, n_mels). At 8 kHz the defaults are 32 ms
    windows every 10 ms."""
    power = power_spectrogram(x, win, hop)  # (F, win // 2 + 1)
    return np.log(power @ mel_filters(sample_rate, win, n_mels).T + LOG_FLOOR)


def mfcc(
    x: np.ndarray, sample_rate: int, n_mfcc: int = 20, n_mels: int = 40, win: int = 256,
    hop: int = 80,
) -> np.ndarray:  # fmt: skip
    """Mel-frequency cepstral coefficients of a waveform (T,): (F, n_mfcc)."""
    return mfccs_of(log_mel(x, sample_rate, n_mels, win, hop))[:, :n_mfcc]


def mfccs_of(log_mel_frames: np.ndarray) -> np.ndarray:
    """Log-mel frames (F, n_mels) -> all their cepstral coefficients (F, n_mels)."""
    from scipy.fft import dct  # a third of a second to import: not for every command

    return dct(log_mel_frames, type=2, norm="ortho", axis=1)


# -- distances between two recordings, as the voice-conversion literature reports them -----


def log_spectral_distance(x: np.ndarray, y: np.ndarray, win: int = 256, hop: int = 64) -> float:
    """The log-spectral distance in dB between two waveforms of one length: per frame, the
    root mean square over frequency of ``10 log10`` of the power spectra's ratio; the mean over
    frames (Gray and Markel 1976)."""
    n = min(len(x), len(y))
    px, py = (power_spectrogram(w[:n], win, hop) + 1e-10 for w in (x, y))  # (F, bins)
    return float(np.mean(np.sqrt(np.mean((10 * np.log10(px / py)) ** 2, axis=1))))


def mel_cepstra(x: np.ndarray, sample_rate: int, n: int = 13) -> np.ndarray:
    """Mel-cepstral coefficients 1..n-1 of a waveform (F, n - 1), of the log *amplitude*
    (half the log power) as MCD takes them; c0 (the loudness) is left out."""
    return mfccs_of(log_mel(x, sample_rate) / 2)[:, 1:n]


def dtw_path(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The dynamic-time-warping alignment of frames a (F, d) and b (G, d): index pairs."""
    cost = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))  # (F, G)
    acc = np.full((len(a) + 1, len(b) + 1), np.inf)
    acc[0, 0] = 0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    i, j, pairs = len(a), len(b), []
    while i > 0 and j > 0:
        pairs.append((i - 1, j - 1))
        step = int(np.argmin([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]]))
        i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
    ia, ib = np.array(pairs[::-1]).T
    return ia, ib


def mel_cepstral_distortion(
    x: np.ndarray, y: np.ndarray, sample_rate: int, align: bool = False
) -> float:
    """MCD in dB between two waveforms (Kubichek 1993): per frame
    ``(10 / ln 10) sqrt(2 sum_d (c_d - c'_d)^2)`` over mel-cepstra 1..12, the mean over frames;
    frames paired in time, or by dynamic time warping with ``align`` (two recordings of one
    word, as for a conversion against the target speaker's own)."""
    a, b = mel_cepstra(x, sample_rate), mel_cepstra(y, sample_rate)
    if align:
        ia, ib = dtw_path(a, b)
        a, b = a[ia], b[ib]
    else:
        n = min(len(a), len(b))
        a, b = a[:n], b[:n]
    return float(np.mean(10 / np.log(10) * np.sqrt(2 * ((a - b) ** 2).sum(axis=1))))


# -- in torch: the speech VQ-VAE's log-mel frames, their inverse and Griffin-Lim -----------
#
# One frame per code: a Hann window of ``4 hop`` samples every ``hop`` samples, centred on the
# middle of each code's ``hop`` samples ("same" framing, as Vocos's ISTFT: T samples <-> T / hop
# frames, no extra frame at either end). ``torch.istft`` cannot invert this framing: it demands
# a window envelope above zero on the whole padded signal, and the Hann window is zero at its
# ends; so the inverse is the overlap-add written out (``istft``), which is what torch.istft
# computes inside, restricted to the samples every frame pair covers.


@dataclass(frozen=True)
class MelSettings:
    """What a log-mel frame means: a mel decoder predicts these and a vocoder reads them, so a
    vocoder serves a run only when the two agree (``check_same``)."""

    sample_rate: int = 8000
    hop: int = 64  # samples per frame: the encoder's downsampling
    n_mels: int = 40

    @property
    def n_fft(self) -> int:
        return 4 * self.hop

    def describe(self) -> str:
        return f"{self.sample_rate} Hz, {self.n_mels} mels every {self.hop} samples"

    def check_same(self, other: MelSettings, mine: str, theirs: str) -> None:
        """One line naming both settings when they differ."""
        if self != other:
            raise ValueError(
                f"{mine} uses {self.describe()}, but {theirs} uses {other.describe()}; "
                f"train a vocoder with the run's settings (vqvae vocoder train)"
            )


class Frames:
    """The STFT of ``n_frames`` frames in the frames-first layout (B, T', n_fft // 2 + 1),
    the one ``torch.fft`` works in along its last dimension, with the window and the
    overlap-add envelope made once: Griffin-Lim runs both directions at every iteration.

    Frame t is the Hann window of ``n_fft`` samples centred on samples ``t hop .. (t + 1)
    hop`` of audio of ``n_frames hop`` samples (zeros beyond its ends)."""

    def __init__(self, n_fft: int, hop: int, n_frames: int, like: torch.Tensor) -> None:
        self.n_fft, self.hop, self.n_frames = n_fft, hop, n_frames
        self.side = n_fft // 2 - hop // 2  # padding each side so frame t centres on t hop + hop / 2
        self.chunks = -(-n_fft // hop)  # hops a frame spans, the last one zero-padded
        self.window = torch.hann_window(n_fft, periodic=True, dtype=like.dtype, device=like.device)
        self._inverse_envelope: torch.Tensor | None = None

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        """Audio (B, T' hop) -> complex spectra (B, T', F)."""
        padded = F.pad(x, (self.side, self.side))  # (B, T' hop + 2 side)
        return torch.fft.rfft(padded.unfold(-1, self.n_fft, self.hop) * self.window, dim=-1)

    def overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T', n_fft) summed at their places: (B, (T' + chunks - 1) hop)."""
        b, t, n = frames.shape
        spread = self.chunks * self.hop
        parts = F.pad(frames, (0, spread - n)).reshape(b, t, self.chunks, self.hop)
        out = frames.new_zeros(b, t + self.chunks - 1, self.hop)
        for k in range(self.chunks):  # the k-th hop of every frame lands k hops later
            out[:, k : k + t] += parts[:, :, k]
        return out.reshape(b, -1)

    def synthesise(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex spectra (B, T', F) -> audio (B, T' hop): the weighted overlap-add of the
        inverse FFTs (Griffin and Lim 1984, eq. 6), the least-squares inverse of ``analyse``."""
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=-1) * self.window  # (B, T', n_fft)
        cut = slice(self.side, self.side + self.n_frames * self.hop)
        if self._inverse_envelope is None:
            envelope = self.overlap_add(self.window.square().expand(1, self.n_frames, -1))
            self._inverse_envelope = 1 / envelope[:, cut].clamp(min=1e-8)  # (1, T' hop)
        return self.overlap_add(frames)[:, cut] * self._inverse_envelope


def stft(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Audio (B, T), T a multiple of ``hop`` -> complex STFT (B, n_fft // 2 + 1, T / hop)."""
    return Frames(n_fft, hop, x.shape[-1] // hop, x).analyse(x).transpose(1, 2)


def istft(spec: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Complex STFT (B, n_fft // 2 + 1, T') -> audio (B, T' hop): ``Frames.synthesise``, the
    least-squares inverse of ``stft``."""
    return Frames(n_fft, hop, spec.shape[-1], spec.real).synthesise(spec.transpose(1, 2))


def warp_frequencies(spectra: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Spectra (B, F, T') with clip b's frequency axis stretched by ``factors[b]`` (B,):
    output bin f reads the input at bin f / factor, linearly interpolated (the top bin
    repeats beyond it). A factor above 1 moves the harmonics and formants up, as a shorter
    vocal tract would: vocal tract length perturbation (Jaitly and Hinton 2013)."""
    bins = spectra.shape[1]
    f = torch.arange(bins, device=spectra.device, dtype=spectra.dtype)  # (F,)
    source = (f[None, :] / factors[:, None].to(spectra.dtype)).clamp(max=bins - 1)  # (B, F)
    low = source.floor().long().clamp(max=bins - 2)  # (B, F)
    frac = (source - low).unsqueeze(-1)  # (B, F, 1)
    below = spectra.gather(1, low.unsqueeze(-1).expand_as(spectra))  # (B, F, T')
    above = spectra.gather(1, (low + 1).unsqueeze(-1).expand_as(spectra))
    return below + frac * (above - below)


def mel_matrix(settings: MelSettings, like: torch.Tensor) -> torch.Tensor:
    """The mel filters (n_mels, n_fft // 2 + 1) as a tensor of ``like``'s dtype and device."""
    return torch.from_numpy(mel_filters(settings.sample_rate, settings.n_fft, settings.n_mels)).to(
        like.real
    )


def log_mel_frames(x: torch.Tensor, hop: int, sample_rate: int, n_mels: int) -> torch.Tensor:
    """Audio (B, T) -> log-mel frames (B, n_mels, T / hop), one per code: frame t is a Hann
    window of ``4 hop`` samples centred on the middle of samples ``t hop .. (t + 1) hop``."""
    settings = MelSettings(sample_rate, hop, n_mels)
    power = stft(x, settings.n_fft, hop).abs().square()  # (B, n_fft/2 + 1, T')
    return torch.log(mel_matrix(settings, x) @ power + LOG_FLOOR)  # (B, n_mels, T')


@lru_cache(maxsize=8)
def _mel_pseudo_inverse(settings: MelSettings) -> np.ndarray:
    filters = mel_filters(settings.sample_rate, settings.n_fft, settings.n_mels)
    return np.linalg.pinv(filters.astype(np.float64))  # (n_fft / 2 + 1, n_mels)


def mel_to_magnitude(log_mel: torch.Tensor, settings: MelSettings) -> torch.Tensor:
    """Log-mel frames (B, n_mels, T') -> an STFT magnitude (B, n_fft // 2 + 1, T'): the
    least-squares power under the filters (their pseudo-inverse), clipped at zero."""
    inverse = torch.from_numpy(_mel_pseudo_inverse(settings)).to(log_mel)  # (n_fft/2 + 1, M)
    power = inverse @ (log_mel.exp() - LOG_FLOOR).clamp(min=0)
    return power.clamp(min=0).sqrt()


def spectral_convergence(magnitude: torch.Tensor, audio: torch.Tensor, n_fft: int, hop: int):
    """|| |STFT(audio)| - magnitude ||_F / ||magnitude||_F per clip (B,): 0 when the audio has
    exactly the magnitude asked for (Sturmel and Daudet 2011)."""
    got = stft(audio, n_fft, hop).abs()
    return (got - magnitude).flatten(1).norm(dim=1) / magnitude.flatten(1).norm(dim=1)


def griffin_lim(
    magnitude: torch.Tensor,
    n_fft: int,
    hop: int,
    iterations: int = 32,
    momentum: float = 0.99,
    generator: torch.Generator | None = None,
    phase: torch.Tensor | None = None,
) -> torch.Tensor:
    """A waveform (B, T' hop) whose STFT magnitude approaches ``magnitude`` (B, F, T'): the
    fast Griffin-Lim algorithm (Perraudin, Balazs and Sondergaard 2013, algorithm 2):

        t_n = P_C1(P_C2(c_{n-1})),   c_n = t_n + alpha (t_n - t_{n-1})

    with P_C2 the projection on consistent spectrograms (STFT of the inverse STFT), P_C1 the
    one that puts the given magnitude back, and alpha the momentum (0 is Griffin and Lim
    1984). Phases start at ``phase`` (B, F, T') radians when given (a vocoder's estimate),
    else random, drawn from ``generator``."""
    if phase is None:
        turns = torch.rand(magnitude.shape, generator=generator, device=magnitude.device)
        phase = 2 * math.pi * turns.to(magnitude.dtype)
    frames = Frames(n_fft, hop, magnitude.shape[-1], magnitude)
    target = magnitude.transpose(1, 2).contiguous()  # (B, T', F): the layout FFTs run in
    c = torch.polar(target, phase.to(magnitude.dtype).transpose(1, 2).contiguous())
    previous = None  # t_0 = 0; not a zeros_like(c), which ONNX export has no complex form of
    for _ in range(iterations):
        rebuilt = frames.analyse(frames.synthesise(c))  # P_C2: the nearest consistent one
        t = rebuilt * _over_magnitude(target, rebuilt)  # P_C1: the magnitude put back
        c = t + momentum * (t if previous is None else t - previous)  # t - 0 is exactly t
        previous = t
    return frames.synthesise(c * _over_magnitude(target, c))


def _over_magnitude(target: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
    """target / |spec|: times ``spec``, the magnitude ``target`` with the phase of ``spec``
    (a division: cheaper than its angle and a complex exponential)."""
    return target / spec.abs().clamp(min=1e-12)


def anti_wrapping(x: torch.Tensor) -> torch.Tensor:
    """|x - 2 pi round(x / 2 pi)|: the distance of an angle difference from the nearest whole
    turn, so that phases 2 pi apart are equal (Ai and Ling 2023, APNet, eq. 5)."""
    return (x - 2 * math.pi * torch.round(x / (2 * math.pi))).abs()


def phase_losses(phase: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Predicted against true STFT phases (B, F, T'): the anti-wrapped L1 of the instantaneous
    phase, of the group delay (its difference along frequency) and of the instantaneous
    angular frequency (along time), summed (APNet, section 2.3.2)."""
    error = phase - target
    instantaneous = anti_wrapping(error).mean()
    group_delay = anti_wrapping(error.diff(dim=1)).mean()
    angular_frequency = anti_wrapping(error.diff(dim=2)).mean()
    return instantaneous + group_delay + angular_frequency


# the resolutions of the multi-resolution STFT loss: (n_fft, hop), around the frames' own
RESOLUTIONS = ((128, 32), (256, 64), (512, 128))


def multi_resolution_stft_loss(
    audio: torch.Tensor, target: torch.Tensor, resolutions=RESOLUTIONS
) -> torch.Tensor:
    """Audio (B, T) against target (B, T): the mean over ``resolutions`` of the spectral
    convergence plus the L1 of the log magnitudes (Yamamoto et al. 2020, Parallel WaveGAN,
    section 2.3)."""
    total = audio.new_zeros(())
    for n_fft, hop in resolutions:
        window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
        mags = [
            torch.stft(a, n_fft, hop, window=window, return_complex=True).abs().clamp(min=1e-7)
            for a in (audio, target)
        ]  # (B, n_fft / 2 + 1, frames) each
        convergence = (mags[1] - mags[0]).norm() / mags[1].norm().clamp(min=1e-7)
        total = total + convergence + F.l1_loss(mags[0].log(), mags[1].log())
    return total / len(resolutions)

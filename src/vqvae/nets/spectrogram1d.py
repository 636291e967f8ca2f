"""``spectrogram1d``: a speech encoder that reads the log power spectrum of each code's
samples instead of the raw waveform, as the ZeroSpeech VQ-VAEs do (van Niekerk, Nortje and
Kamper 2020, "Vector-quantized neural networks for acoustic unit discovery", read log-mel
frames); the paper's decoder.

Frame t is the Hann-windowed STFT of the ``4 hop`` samples centred on code t's ``hop``
samples (``vqvae.spectral.stft``, ``hop`` = the net's downsampling, 64 for the paper's
6 halvings), so the codes keep the waveform encoder's rate and alignment. The frequency
bins are the input channels of 3-wide convolutions over frames, then the paper's residual
stack and the projection to D. The bins are linear, not mel: the first convolution learns
its own weighting of them, and the kind does not depend on the sample rate.

Why it exists (docs/speech.md, BENCHMARKS.md section 9a): on FSDD it learns the spectrum far
sooner than the paper's strided convolutions over the waveform (held-out log-mel L1 0.71
against 1.10 at step 1,000 of ``speech8k``), and its codes keep more of the digit. It does
not make a step cheaper there: the mel decoder dominates the step's time.

``spectrogram1d-inorm`` normalises z_e per clip and channel over time (as ``conv1d-inorm``);
measured on FSDD it took the speaker probe from 94% to 72% and cost digits (docs/speech.md).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vqvae.nets.config import NetConfig
from vqvae.nets.conv import register_with_paper_decoder, residual_stack
from vqvae.spectral import LOG_FLOOR, stft, warp_frequencies

# FSDD's log power per bin (8 kHz, 256-sample windows): mean -7.6, standard deviation 4.0,
# measured over 30 recordings; the input is centred and scaled by these so that the first
# convolution sees values of about unit size.
LOG_POWER_MEAN = -7.6
LOG_POWER_STD = 4.0


class SpectrogramEncoder(nn.Module):
    """(B, 1, T) -> (B, D, T / hop): log power spectra, one frame per code, then convolutions.

    ``warp`` (set by the model from ``AudioVQVAEConfig.frequency_warp``; 0: off): in training,
    each clip's spectra are stretched along frequency by a factor drawn log-uniformly from
    [1 / (1 + warp), 1 + warp] (``vqvae.spectral.warp_frequencies``), so that codes which
    must still give back the clip's own log-mel cannot hold its pitch and formants: the voice
    is left to the decoder's speaker embedding. Draws from torch's global generator, so a
    resumed run warps as one never stopped."""

    def __init__(
        self, in_channels: int, out_channels: int, config: NetConfig, norm: bool = False
    ) -> None:
        super().__init__()
        if in_channels != 1:
            raise ValueError(f"spectrogram1d reads mono audio, got {in_channels} channels")
        self.hop = config.downsampling
        self.warp = 0.0
        self.n_fft = 4 * self.hop
        bins = self.n_fft // 2 + 1
        width = config.hidden_channels
        self.net = nn.Sequential(
            nn.Conv1d(bins, width, 3, padding=1),
            *config.act(width),
            nn.Conv1d(width, width, 3, padding=1),
            residual_stack(config, 1),
            nn.Conv1d(width, out_channels, 1),  # pre-quantization projection
        )
        # spectrogram1d-inorm: z_e normalised per clip and channel over time (as conv1d-inorm)
        self.norm = nn.InstanceNorm1d(out_channels) if norm else nn.Identity()

    def log_power(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) -> (B, n_fft / 2 + 1, T / hop), normalised."""
        power = stft(x[:, 0].float(), self.n_fft, self.hop).abs().square()
        return (torch.log(power + LOG_FLOOR) - LOG_POWER_MEAN) / LOG_POWER_STD

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectra = self.log_power(x)  # (B, F, T')
        if self.training and self.warp > 0:
            span = math.log1p(self.warp)
            factors = torch.exp((2 * torch.rand(x.shape[0], device=x.device) - 1) * span)
            spectra = warp_frequencies(spectra, factors)  # (B, F, T')
        return self.norm(self.net(spectra.to(x.dtype)))


def _register(name: str, norm: bool, about: str) -> None:
    """Register a kind with this encoder (``norm``: instance-normalised z_e)."""
    register_with_paper_decoder(
        name, lambda c_in, c_out, config: SpectrogramEncoder(c_in, c_out, config, norm), about
    )


_register(
    "spectrogram1d",
    False,
    "speech: the log power spectrum of each code's samples -> 1-D convolutions at code rate",
)
_register(
    "spectrogram1d-inorm",
    True,
    "spectrogram1d with z_e normalised per clip and channel (instance norm)",
)

"""The ``spectrogram1d`` encoder's front end as one strided convolution, for export.

``SpectrogramEncoder.log_power`` frames the audio (``unfold``) and takes ``torch.fft.rfft``
of each Hann-windowed frame; both export, as ONNX's ``Gather`` and ``DFT``, but ONNX Runtime
spends half of the encoder's time in them (its profile on FSDD clips: ``DFT`` 40%, the
framing's ``Gather`` 12%). The same numbers come from a convolution whose kernels are the
windowed DFT's rows, cos(2 pi k n / N) w[n] and -sin(2 pi k n / N) w[n], with a stride of
one hop over the same padding (``vqvae.spectral.Frames``): frame t of the one is output t
of the other. tests/test_export.py checks it against ``log_power``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.nets.spectrogram1d import LOG_POWER_MEAN, LOG_POWER_STD, SpectrogramEncoder
from vqvae.spectral import LOG_FLOOR, Frames


class ConvLogPower(nn.Module):
    """Audio (B, 1, T) -> ``encoder.log_power(x)`` (B, n_fft / 2 + 1, T / hop)."""

    def __init__(self, encoder: SpectrogramEncoder) -> None:
        super().__init__()
        n_fft, self.hop = encoder.n_fft, encoder.hop
        self.side = Frames(n_fft, self.hop, 1, torch.zeros(())).side  # the same padding
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]  # (F, 1)
        angle = 2 * math.pi * k * torch.arange(n_fft, dtype=torch.float64) / n_fft  # (F, N)
        rows = torch.cat([angle.cos() * window, -angle.sin() * window])  # (2F, N)
        self.register_buffer("kernels", rows.float().unsqueeze(1))  # (2F, 1, N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x.float(), (self.side, self.side))  # (B, 1, T + 2 side)
        real, imag = F.conv1d(padded, self.kernels, stride=self.hop).chunk(2, dim=1)  # (B, F, T')
        power = real.square() + imag.square()
        return (torch.log(power + LOG_FLOOR) - LOG_POWER_MEAN) / LOG_POWER_STD

"""The ``vocos`` vocoder: log-mel frames -> STFT magnitude and phase -> audio by the inverse
STFT, trained on real audio (Siuzdak 2023, "Vocos: Closing the gap between time-domain and
Fourier-based neural vocoders for high-quality audio synthesis", arXiv:2306.00814).

As in the paper (section 3): a 7-wide convolution embeds the frames, ConvNeXt blocks (Liu
et al. 2022: a depthwise 7-wide convolution, LayerNorm, a pointwise MLP with GELU, a learned
layer scale, a residual) keep the frame rate, and a linear head gives for every frame the
log-magnitude and a phase angle of each STFT bin; ``vqvae.spectral.istft`` turns them into
audio. Every frame is one code's ``hop`` samples, so the network never upsamples. Smaller
than the paper's (192 channels, 6 blocks against 512 and 8) to train on a CPU in minutes;
no adversarial term (the paper's multi-period and multi-resolution discriminators). In their
place, three choices measured to take it past Griffin-Lim (``VocosConfig``; BENCHMARKS.md
section 9a): APNet's losses on the predicted spectrum beside Vocos's on the audio (Ai and
Ling 2023), the log-magnitude predicted as a correction to the mel pseudo-inverse's, and a
few Griffin-Lim iterations from the network's phase at inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from vqvae.pretrained import PretrainedMixin
from vqvae.registry import VOCODERS
from vqvae.spectral import MAGNITUDE_FLOOR, MelSettings, griffin_lim, istft, mel_to_magnitude
from vqvae.torch_utils import eval_mode

LOSSES = ("vocos", "apnet")


@dataclass(frozen=True)
class VocosConfig:
    sample_rate: int = 8000
    hop: int = 64  # samples per log-mel frame
    n_mels: int = 40
    channels: int = 192
    mlp_channels: int = 576  # inside each block's MLP (3x, as ConvNeXt)
    num_blocks: int = 6
    # The three below are measured in BENCHMARKS.md section 9a ("The vocoders"); together
    # they take the vocoder past Griffin-Lim on the true log-mel.
    # The training losses: "vocos", Vocos's own without discriminators (the log-mel L1 and a
    # multi-resolution STFT loss, on the audio out); "apnet" adds APNet's direct ones on the
    # spectrum the head predicts (Ai and Ling 2023: the log-magnitude L1 and the anti-wrapped
    # phase losses, against the STFT of the real audio).
    losses: str = "apnet"
    # The head predicts the log-magnitude as a correction to the mel filters' pseudo-inverse
    # (what Griffin-Lim is given), so that it starts from that estimate instead of from noise.
    pinv_residual: bool = True
    # At inference, this many fast Griffin-Lim iterations refine the phase, starting from the
    # network's and keeping its magnitude (as Deep Griffin-Lim Iteration, Masuyama et al.
    # 2019, pairs a network with the projections); 0: the network's phase as it is, fastest.
    griffin_lim_iterations: int = 8
    # vocoders saved before these options rebuild without them
    ABSENT: ClassVar[dict[str, Any]] = {
        "losses": "vocos", "pinv_residual": False, "griffin_lim_iterations": 0,
    }  # fmt: skip

    def __post_init__(self) -> None:
        names = ("sample_rate", "hop", "n_mels", "channels", "mlp_channels", "num_blocks")
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if self.losses not in LOSSES:
            raise ValueError(f"losses: expected one of {', '.join(LOSSES)}, got {self.losses!r}")
        if self.griffin_lim_iterations < 0:
            got = self.griffin_lim_iterations
            raise ValueError(f"griffin_lim_iterations: expected >= 0, got {got}")
        if self.hop % 2:
            raise ValueError(f"hop: expected an even number of samples, got {self.hop}")

    @property
    def settings(self) -> MelSettings:
        return MelSettings(self.sample_rate, self.hop, self.n_mels)


def magnitude_of(log_magnitude: torch.Tensor) -> torch.Tensor:
    """The head's log-magnitude as a magnitude, capped as Vocos caps it (no overflow early
    in training)."""
    return log_magnitude.exp().clamp(max=1e2)


class ConvNeXtBlock(nn.Module):
    """x + gamma * MLP(LayerNorm(depthwise_conv7(x))): (B, C, T') -> (B, C, T')."""

    def __init__(self, channels: int, mlp_channels: int, scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(
            nn.Linear(channels, mlp_channels), nn.GELU(), nn.Linear(mlp_channels, channels)
        )
        self.gamma = nn.Parameter(torch.full((channels,), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).transpose(1, 2)  # (B, C, T') -> (B, T', C)
        y = self.gamma * self.mlp(self.norm(y))
        return x + y.transpose(1, 2)


@VOCODERS.register("vocos")
class Vocos(nn.Module, PretrainedMixin):
    """Trained (vqvae vocoder train): ConvNeXt blocks -> STFT magnitude and phase -> iSTFT."""

    config_class = VocosConfig

    def __init__(self, config: VocosConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or VocosConfig()
        self.embed = nn.Conv1d(c.n_mels, c.channels, 7, padding=3)
        self.norm = nn.LayerNorm(c.channels)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(c.channels, c.mlp_channels, 1 / c.num_blocks) for _ in range(c.num_blocks)
        )
        self.final_norm = nn.LayerNorm(c.channels)
        self.bins = c.settings.n_fft // 2 + 1
        self.head = nn.Linear(c.channels, 2 * self.bins)

    @property
    def settings(self) -> MelSettings:
        return self.config.settings

    def spectrum(self, log_mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel frames (B, n_mels, T') -> the log-magnitude and the phase of every STFT
        bin of each frame, (B, n_fft / 2 + 1, T') each."""
        if log_mel.dim() != 3 or log_mel.shape[1] != self.config.n_mels:
            got = tuple(log_mel.shape)
            raise ValueError(f"expected log-mel frames (B, {self.config.n_mels}, T'), got {got}")
        h = self.norm(self.embed(log_mel).transpose(1, 2)).transpose(1, 2)  # (B, C, T')
        for block in self.blocks:
            h = block(h)
        out = self.head(self.final_norm(h.transpose(1, 2))).transpose(1, 2)  # (B, 2F, T')
        log_magnitude, phase = out.split(self.bins, dim=1)  # (B, F, T') each
        if self.config.pinv_residual:
            pinv = mel_to_magnitude(log_mel, self.settings)  # (B, F, T')
            log_magnitude = log_magnitude + pinv.clamp(min=MAGNITUDE_FLOOR).log()
        return log_magnitude, phase

    def synthesize(self, log_magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """(B, F, T') each -> audio (B, T' hop) by the inverse STFT, not clipped."""
        spec = torch.polar(magnitude_of(log_magnitude), phase)  # (B, F, T') complex
        return istft(spec, self.settings.n_fft, self.settings.hop)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Log-mel frames (B, n_mels, T') -> audio (B, T' hop), not clipped."""
        return self.synthesize(*self.spectrum(log_mel))

    @torch.no_grad()
    def vocode(self, log_mel: torch.Tensor, generator: torch.Generator | None = None):
        """Log-mel frames (B, n_mels, T') -> audio (B, T' hop) in [-1, 1] (nothing is drawn:
        ``generator`` is unused)."""
        with eval_mode(self):
            log_magnitude, phase = self.spectrum(log_mel.to(self.head.weight))  # (B, F, T')
        n = self.config.griffin_lim_iterations
        if not n:
            return self.synthesize(log_magnitude, phase).clamp(-1, 1)
        s = self.settings
        magnitude = magnitude_of(log_magnitude)
        return griffin_lim(magnitude, s.n_fft, s.hop, n, phase=phase).clamp(-1, 1)

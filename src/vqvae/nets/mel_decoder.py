"""The ``mel`` speech decoder: z_q and the speaker -> the log-mel frame of each code's
samples, not autoregressive; audio comes from a vocoder (``vqvae.vocoders``).

The paper's WaveNet (section 4.3) cannot be trained on a CPU in a budget a user accepts
(docs/speech.md); the spectrum at the codes' own rate is enough for a listener (Griffin-Lim
from the true 40-band log-mel keeps what is said and who says it). So this decoder predicts
frame t of ``vqvae.spectral.log_mel_frames`` from the codes around t: a 1x1 projection, then
residual blocks of dilated 3-wide convolutions (dilations 1, 2, 4, 8, repeated: a receptive
field of +-61 codes, half a second) whose features the speaker embedding scales and shifts
(FiLM, Perez et al. 2018), and a 1x1 projection to the mels. Loss: L1 on the log-mel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.nets.speakers import check_speaker_ids
from vqvae.nets.speech_decoder import DecoderTerms
from vqvae.pretrained import PretrainedMixin
from vqvae.registry import SPEECH_DECODERS
from vqvae.spectral import MelSettings, log_mel_frames


@dataclass(frozen=True)
class MelDecoderConfig:
    hidden_channels: int = 256
    num_blocks: int = 8  # dilations 1, 2, 4, 8, 1, 2, 4, 8, ...
    speaker_dim: int = 64  # width of the learned speaker embedding
    # each block's features normalised per clip and channel over time before the speaker's
    # scale and shift (adaptive instance normalisation, as AdaIN-VC: Chou et al. 2019), so
    # that a voice the codes carry is replaced by the embedding's; False: plain FiLM
    adain: bool = False
    # set from the model's config (``AudioVQVAEConfig``): the codes, the mels, the speakers
    code_dim: int = 64
    n_mels: int = 40
    num_speakers: int = 0

    def __post_init__(self) -> None:
        for name in ("hidden_channels", "num_blocks", "speaker_dim", "code_dim", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"mel_decoder.{name}: expected a positive int, got {value!r}")
        if not isinstance(self.adain, bool):
            raise ValueError(f"mel_decoder.adain: expected true or false, got {self.adain!r}")

    @property
    def dilations(self) -> tuple[int, ...]:
        return tuple(2 ** (i % 4) for i in range(self.num_blocks))


class FiLMBlock(nn.Module):
    """h + conv1x1(GELU(FiLM(conv3_dilated(GELU(h))))): (B, C, T') -> (B, C, T'); with
    ``adain`` the FiLM reads the convolution's output instance-normalised."""

    def __init__(self, channels: int, dilation: int, speaker_dim: int, adain: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.norm = nn.InstanceNorm1d(channels) if adain else nn.Identity()
        self.film = nn.Linear(speaker_dim, 2 * channels) if speaker_dim else None
        self.out = nn.Conv1d(channels, channels, 1)

    def forward(self, h: torch.Tensor, speaker: torch.Tensor | None) -> torch.Tensor:
        y = self.norm(self.conv(F.gelu(h)))  # (B, C, T')
        if self.film is not None:
            scale, shift = self.film(speaker).unsqueeze(-1).chunk(2, dim=1)  # (B, C, 1) each
            y = y * (1 + scale) + shift
        return h + self.out(F.gelu(y))


@SPEECH_DECODERS.register("mel")
class MelDecoder(nn.Module, PretrainedMixin):
    """Non-autoregressive: z_q and the speaker -> log-mel frames; audio by a vocoder."""

    config_class = MelDecoderConfig

    def __init__(self, config: MelDecoderConfig, settings: MelSettings) -> None:
        super().__init__()
        self.config = c = config
        self.settings = settings
        self.speakers = nn.Embedding(c.num_speakers, c.speaker_dim) if c.num_speakers else None
        film = c.speaker_dim if c.num_speakers else 0
        self.inp = nn.Conv1d(c.code_dim, c.hidden_channels, 1)
        self.blocks = nn.ModuleList(
            FiLMBlock(c.hidden_channels, d, film, c.adain) for d in c.dilations
        )
        self.out = nn.Conv1d(c.hidden_channels, c.n_mels, 1)

    @classmethod
    def from_audio_config(cls, config) -> MelDecoder:
        return cls(config.mel_decoder, config.mel_settings)

    @property
    def device(self) -> torch.device:
        return self.out.weight.device

    def speaker_embedding(self, speaker: torch.Tensor | None) -> torch.Tensor | None:
        return None if self.speakers is None else self.speakers(speaker)

    def check_speaker(self, speaker, batch: int) -> torch.Tensor | None:
        n = self.config.num_speakers
        return check_speaker_ids(speaker, n, batch, self.device, "mel decoder")

    def forward(self, z_q: torch.Tensor, speaker: torch.Tensor | None) -> torch.Tensor:
        """z_q (B, D, T') and checked speaker ids (B,) -> log-mel frames (B, n_mels, T')."""
        emb = self.speaker_embedding(speaker)  # (B, E) or None
        h = self.inp(z_q)  # (B, D, T') -> (B, C, T')
        for block in self.blocks:
            h = block(h, emb)
        return self.out(F.gelu(h))

    def terms(self, x: torch.Tensor, z_q: torch.Tensor, speaker, noise: float = 0.0):
        """L1 between the predicted and the true log-mel of the audio (B, 1, T); ``x_hat``
        and ``params`` are the predicted log-mel (B, n_mels, T')."""
        s = self.settings
        target = log_mel_frames(x[:, 0], s.hop, s.sample_rate, s.n_mels)  # (B, M, T')
        predicted = self(z_q, speaker)
        return DecoderTerms(F.l1_loss(predicted, target), predicted, predicted)

    @torch.no_grad()
    def synthesize(
        self, z_q, speaker, *, temperature=1.0, generator=None, method="cached", vocoder=None
    ) -> torch.Tensor:
        """Audio (B, 1, T' hop): the predicted log-mel through ``vocoder``."""
        if vocoder is None:
            raise ValueError("a mel decoder needs a vocoder to make audio")
        return vocoder.vocode(self(z_q, speaker), generator=generator).unsqueeze(1)

"""The speech VQ-VAE: a strided 1-D encoder, any quantizer, and a decoder of a registered
kind (``vqvae.registry.SPEECH_DECODERS``): the paper's WaveNet, or a log-mel decoder whose
frames a vocoder turns into audio (docs/speech.md).

van den Oord et al. 2017, "Neural Discrete Representation Learning" (arXiv:1711.00937),
section 4.3: "We train a VQ-VAE where the encoder has 6 strided convolutions with stride 2
and window-size 4. This yields a latent space 64x smaller than the original waveform. The
latents consist of one feature map and the discrete space is 512-dimensional. The decoder
is conditioned on both the latents and a one-hot embedding for the speaker."

Equation 3 with the WaveNet as ``p(x | z_q)`` (``decoder="wavenet"``): the reconstruction
term is the cross-entropy of the teacher-forced softmax over 8-bit mu-law values
(``vqvae.nets.wavenet_decoder``), in nats per sample. With ``decoder="mel"`` it is the L1
distance between the predicted and the true log-mel frames (``vqvae.nets.mel_decoder``).
Differences from the image VQ-VAE:

- Training sees fixed windows (``input_size``: ``(window,)`` samples); ``encode`` and
  generation take any length that is a multiple of the encoder's 64.
- A WaveNet's ``decode_codes(codes, speaker)`` *samples* the waveform, one value at a time
  (the cached Fast WaveNet generator); it cannot equal the teacher-forced forward pass, whose
  ``x_hat`` is each position's expected amplitude given the true past. A mel decoder's
  ``decode_mel`` equals its forward pass; ``decode_codes`` adds the vocoder.
- The speaker is the decoder's global condition (WaveNet section 2.5); decoding one
  speaker's codes with another's id is the paper's voice conversion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.models.config import VQVAEConfig
from vqvae.models.vqvae import VQVAE, VQVAEOutput
from vqvae.nets import NetConfig
from vqvae.nets.conv import he_init
from vqvae.nets.mel_decoder import MelDecoderConfig
from vqvae.nets.speaker_adversary import SpeakerAdversary
from vqvae.nets.wavenet import WaveNetConfig
from vqvae.quantizers import QuantizerConfig
from vqvae.registry import MODELS, SPEECH_DECODERS
from vqvae.spectral import MelSettings, log_mel_frames
from vqvae.torch_utils import eval_mode


@dataclass(frozen=True)
class AudioVQVAEConfig(VQVAEConfig):
    """The encoder and quantizer of a ``VQVAEConfig``, a decoder kind, and the speakers.

    ``decoder`` names a registered speech decoder (``vqvae.registry.SPEECH_DECODERS``):
    ``wavenet`` (the paper's, configured by ``wavenet``) or ``mel`` (log-mel frames and a
    vocoder, configured by ``mel_decoder``). The WaveNet's ``local_channels``,
    ``upsample_factor`` and ``num_speakers``, and the mel decoder's ``code_dim``, ``n_mels``
    and ``num_speakers``, follow from the rest and are set here.
    """

    in_channels: int = 1
    input_size: tuple[int, ...] = (4096,)  # the training window, in samples
    net: NetConfig = field(
        default_factory=lambda: NetConfig(
            kind="conv1d", hidden_channels=128, residual_channels=64, num_downsamples=6
        )
    )
    quantizer: QuantizerConfig = field(
        default_factory=lambda: QuantizerConfig(kind="ema", num_codes=512, code_dim=64)
    )
    decoder: str = "wavenet"  # a registered speech decoder kind; runs before kinds: wavenet
    wavenet: WaveNetConfig = field(default_factory=WaveNetConfig)
    mel_decoder: MelDecoderConfig = field(default_factory=MelDecoderConfig)
    # a mel decoder's own vocoder: `vqvae train` trains a Vocos for this many steps after the
    # VQ-VAE and keeps it in RUN/vocoder; 0: none (Griffin-Lim, or --vocoder VOC)
    vocoder_steps: int = 0
    # a mel decoder's audio without a trained vocoder: this many fast Griffin-Lim iterations
    # (16 keep what 32 kept on FSDD at half the time: BENCHMARKS.md section 9a)
    griffin_lim_iterations: int = 16
    sample_rate: int = 8000
    speakers: tuple[str, ...] = ()  # names of the decoder's speaker ids; () = no speakers
    # weight of an auxiliary loss: the log-mel frame of each code's 64 samples predicted from
    # z_q and the speaker (``MelHead``); 0 is the paper's model. See docs/speech.md.
    spectral_weight: float = 0.0
    n_mels: int = 40
    # standard deviation, in mu-law steps, of Gaussian noise added to the WaveNet's
    # teacher-forced *inputs* in training (the targets stay clean); 0 is the paper's model.
    # LPCNet's noise injection (Valin and Skoglund 2019, section 3.3): generation feeds the
    # network its own imperfect samples, and a network that cannot trust its past exactly
    # leans on the codes. See docs/speech.md.
    input_noise: float = 0.0
    # the chance that each position's z_q is replaced, in training only, by its left or right
    # neighbour's (half each): the time jitter of Chorowski et al. 2019 (section 3.2), which
    # keeps a decoder from reading a voice out of where the codes fall; 0 is the paper's
    # model. See docs/speech.md.
    time_jitter: float = 0.0
    # weight of a speaker classifier on z_e whose gradient the encoder receives reversed
    # (``vqvae.nets.speaker_adversary``): codes about what is said, not who says it; 0 is the
    # paper's model; off for data without speakers. See docs/speech.md.
    speaker_adversary: float = 0.0
    # in training, each clip's spectra stretched along frequency by a factor in
    # [1 / (1 + w), 1 + w] before a ``spectrogram1d`` encoder reads them (vocal tract length
    # perturbation): the voice out of the codes; 0 is the paper's model. See docs/speech.md.
    frequency_warp: float = 0.0

    # runs saved before these fields rebuild as they were
    ABSENT: ClassVar[dict[str, Any]] = {"griffin_lim_iterations": 32}

    def __post_init__(self) -> None:
        object.__setattr__(self, "speakers", tuple(self.speakers))
        super().__post_init__()
        if self.net.net_kind.dims != 1 or self.in_channels != 1:
            raise ValueError(
                f"an audio VQ-VAE takes mono sequences (in_channels=1, a 1-D net), got "
                f"in_channels={self.in_channels}, net.kind={self.net.kind!r}"
            )
        if self.sample_rate < 1:
            raise ValueError(f"sample_rate: expected a positive int, got {self.sample_rate}")
        if not self.input_noise >= 0:
            raise ValueError(f"input_noise: expected >= 0, got {self.input_noise}")
        if not 0 <= self.time_jitter <= 1:
            raise ValueError(f"time_jitter: expected a chance in [0, 1], got {self.time_jitter}")
        if not self.spectral_weight >= 0 or self.n_mels < 1:
            raise ValueError(
                f"expected spectral_weight >= 0 and n_mels >= 1, got {self.spectral_weight}, "
                f"{self.n_mels}"
            )
        if not self.speaker_adversary >= 0:
            raise ValueError(f"speaker_adversary: expected >= 0, got {self.speaker_adversary}")
        if not self.frequency_warp >= 0:
            raise ValueError(f"frequency_warp: expected >= 0, got {self.frequency_warp}")
        if self.frequency_warp > 0 and not self.net.kind.startswith("spectrogram1d"):
            raise ValueError(
                f"frequency_warp stretches spectra: it needs net.kind='spectrogram1d', got "
                f"{self.net.kind!r}"
            )
        if isinstance(self.griffin_lim_iterations, bool) or self.griffin_lim_iterations < 1:
            got = self.griffin_lim_iterations
            raise ValueError(f"griffin_lim_iterations: expected a positive int, got {got!r}")
        if self.vocoder_steps < 0:
            raise ValueError(f"vocoder_steps: expected >= 0, got {self.vocoder_steps}")
        if len(set(self.speakers)) != len(self.speakers):
            raise ValueError(f"speakers: names must be distinct, got {self.speakers}")
        wavenet = replace(
            self.wavenet,
            local_channels=self.quantizer.code_dim,
            upsample_factor=self.net.downsampling,
            num_speakers=len(self.speakers),
        )
        object.__setattr__(self, "wavenet", wavenet)
        SPEECH_DECODERS.get(self.decoder)  # "unknown speech decoder kind ...; expected ..."
        mel = replace(
            self.mel_decoder,
            code_dim=self.quantizer.code_dim,
            n_mels=self.n_mels,
            num_speakers=len(self.speakers),
        )
        object.__setattr__(self, "mel_decoder", mel)

    @property
    def hop(self) -> int:
        """Audio samples per code: the encoder's downsampling (64 for the paper's 6 layers)."""
        return self.net.downsampling

    @property
    def mel_settings(self) -> MelSettings:
        """The log-mel frames a mel decoder predicts (and a vocoder must read): one per code."""
        return MelSettings(self.sample_rate, self.hop, self.n_mels)


@dataclass(frozen=True)
class AudioVQVAEOutput(VQVAEOutput):
    """``VQVAEOutput`` with the decoder kind's terms (``DecoderTerms``): for ``wavenet``,
    ``decoder_params`` the logits (B, 256, T), ``recon_loss`` their cross-entropy against the
    true mu-law samples (nats per sample) and ``x_hat`` (B, 1, T) the expected amplitudes; for
    ``mel``, ``decoder_params`` and ``x_hat`` the predicted log-mel (B, n_mels, T') and
    ``recon_loss`` its L1 error. ``spectral_loss`` is the WaveNet's auxiliary log-mel error
    (0 when ``spectral_weight`` is 0); ``adversary_loss`` the speaker classifier's
    cross-entropy on z_e (0 when ``speaker_adversary`` is 0)."""

    spectral_loss: torch.Tensor
    adversary_loss: torch.Tensor


def time_jitter(z_q: torch.Tensor, p: float) -> torch.Tensor:
    """z_q (B, D, T') with each position's vector replaced, with chance ``p``, by the vector
    of its left or right neighbour (half each; the ends keep their own when the neighbour
    would fall outside): Chorowski et al. 2019, "Unsupervised speech representation learning
    using WaveNet autoencoders", section 3.2. Draws from torch's global generator, so a
    resumed run jitters as one never stopped; the gradient flows to the vectors chosen."""
    b, d, t = z_q.shape
    r = torch.rand(b, t, device=z_q.device)  # (B, T')
    shift = (r < p / 2).long() * -1 + ((r >= p / 2) & (r < p)).long()  # -1, 0 or +1
    index = (torch.arange(t, device=z_q.device) + shift).clamp(0, t - 1)  # (B, T')
    return z_q.gather(2, index.unsqueeze(1).expand(b, d, t))  # (B, D, T')


class MelHead(nn.Module):
    """z_q (B, D, T') and a speaker embedding (B, E) -> log-mel frames (B, n_mels, T'):
    two 3-wide convolutions and a projection. Given the speaker, the codes need carry only
    what is said, not who says it."""

    def __init__(self, code_dim: int, speaker_dim: int, n_mels: int, hidden: int = 128) -> None:
        super().__init__()
        self.speaker_dim = speaker_dim
        self.net = nn.Sequential(
            nn.Conv1d(code_dim + speaker_dim, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(hidden, n_mels, 1),
        )

    def forward(self, z_q: torch.Tensor, speaker: torch.Tensor | None) -> torch.Tensor:
        if self.speaker_dim:
            h = speaker.unsqueeze(-1).expand(-1, -1, z_q.shape[2])  # (B, E) -> (B, E, T')
            z_q = torch.cat([z_q, h], dim=1)
        return self.net(z_q)


class AudioVQVAE(VQVAE):
    """``forward(x (B, 1, T), speaker (B,))``: eq. 3's terms; ``decode_codes`` makes audio
    (drawn by the WaveNet, or the mel decoder's frames through the model's ``vocoder``)."""

    config_class = AudioVQVAEConfig
    config: AudioVQVAEConfig

    def __init__(self, config: AudioVQVAEConfig | None = None) -> None:
        super().__init__(config or AudioVQVAEConfig())
        c = self.config
        # a waveform encoder under PyTorch's default init outputs nearly a constant, and the
        # codebook collapses when that changes (he_init's doc; docs/speech.md)
        he_init(self.encoder)
        if c.frequency_warp > 0:
            self.encoder.warp = c.frequency_warp
        self.mel_head = None
        if c.spectral_weight > 0:
            speaker_dim = c.wavenet.speaker_dim if c.speakers else 0
            self.mel_head = MelHead(c.quantizer.code_dim, speaker_dim, c.n_mels)
        self.speaker_adversary = None
        if c.speaker_adversary > 0 and c.speakers:  # no speakers, nothing to hide
            self.speaker_adversary = SpeakerAdversary(c.quantizer.code_dim, len(c.speakers))
        # not a submodule: a vocoder is trained apart and serves many runs (use_vocoder)
        self.__dict__["_vocoder"] = None

    def build_decoder(self, in_channels: int) -> nn.Module:
        return SPEECH_DECODERS.get(self.config.decoder).from_audio_config(self.config)

    @property
    def vocoder(self):
        """What turns a mel decoder's log-mel into audio: Griffin-Lim unless ``use_vocoder``
        gave another (None for a WaveNet decoder, which makes audio itself)."""
        if self._vocoder is None and self.config.decoder == "mel":
            from vqvae.vocoders import GriffinLim

            c = self.config
            self.__dict__["_vocoder"] = GriffinLim(c.mel_settings, c.griffin_lim_iterations)
        return self._vocoder

    def use_vocoder(self, vocoder) -> None:
        """Make audio with ``vocoder``; refused (naming both) when it reads other log-mels."""
        if self.config.decoder != "mel":
            raise ValueError(
                f"a vocoder serves a mel decoder; this run's decoder is {self.config.decoder!r}"
            )
        self.config.mel_settings.check_same(vocoder.settings, "the run", "the vocoder")
        self.__dict__["_vocoder"] = vocoder

    @property
    def hop(self) -> int:
        return self.config.hop

    @property
    def speakers(self) -> tuple[str, ...]:
        return self.config.speakers

    @property
    def codes_per_second(self) -> float:
        """Codes per second of audio: the sample rate over the hop (125 at 8 kHz)."""
        return self.config.sample_rate / self.hop

    @property
    def bit_rate(self) -> float:
        """Bits per second of the codes written with a fixed length: log2 K bits a code and
        level (1,125 bit/s for K = 512 at 8 kHz)."""
        return self.codes_per_second * math.log2(self.num_codes) * self.num_levels

    def check_input(self, x: torch.Tensor) -> None:
        """(B, 1, T) floats with T a positive multiple of the hop; any length, not only the
        training window."""
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[1] != 1:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected audio of shape (B, 1, T), got {got}")
        if not x.is_floating_point():
            raise ValueError(f"expected float audio in [-1, 1], got dtype {x.dtype}")
        if x.shape[2] == 0 or x.shape[2] % self.hop:
            raise ValueError(
                f"expected a length T that is a positive multiple of {self.hop} (one code per "
                f"{self.hop} samples), got T={x.shape[2]}; pad the audio (vqvae.data.pad_to_hop)"
            )

    def check_codes(self, codes: torch.Tensor, levels: int = 0) -> None:
        """Codes (B, T') of any length (or (B, q, T') for residual levels)."""
        rank = 3 if levels > 1 else 2
        if not isinstance(codes, torch.Tensor) or codes.dim() != rank or codes.shape[-1] == 0:
            got = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            want = "(B, q, T')" if levels > 1 else "(B, T')"
            raise ValueError(f"expected codes of shape {want}, got {got}")
        if levels > 1 and not 1 <= codes.shape[1] <= levels:
            raise ValueError(f"expected 1 <= q <= {levels} levels of codes, got {codes.shape[1]}")

    def speaker_ids(self, speaker, batch: int) -> torch.Tensor | None:
        """A speaker given as a name, an id, or (B,) ids -> (B,) ids (None without speakers)."""
        if isinstance(speaker, str):
            if speaker not in self.speakers:
                raise ValueError(
                    f"unknown speaker {speaker!r}; this model knows {', '.join(self.speakers)}"
                )
            speaker = self.speakers.index(speaker)
        return self.decoder.check_speaker(speaker, batch)

    def forward(self, x: torch.Tensor, speaker=None) -> AudioVQVAEOutput:
        """Audio (B, 1, T) in [-1, 1] and speakers -> eq. 3's terms, teacher-forced."""
        self.check_input(x)
        speaker = self.speaker_ids(speaker, x.shape[0])
        z_e = self.encoder(x)  # (B, 1, T) -> (B, D, T / hop)
        q = self.quantizer(z_e)
        noise = self.config.input_noise if self.training else 0.0
        z_q = q.z_q
        if self.training and self.config.time_jitter > 0:
            z_q = time_jitter(z_q, self.config.time_jitter)
        terms = self.decoder.terms(x, z_q, speaker, noise)
        c = self.config
        spectral_loss = torch.zeros((), device=x.device)
        if self.mel_head is not None:
            target = log_mel_frames(x[:, 0], self.hop, c.sample_rate, c.n_mels)  # (B, M, T')
            predicted = self.mel_head(q.z_q, self.decoder.speaker_embedding(speaker))
            spectral_loss = F.mse_loss(predicted, target)
        adversary_loss = torch.zeros((), device=x.device)
        if self.speaker_adversary is not None:
            adversary_loss = self.speaker_adversary.loss(z_e, speaker)
        extra = c.spectral_weight * spectral_loss + c.speaker_adversary * adversary_loss
        return AudioVQVAEOutput(
            spectral_loss=spectral_loss,
            adversary_loss=adversary_loss,
            x_hat=terms.x_hat,
            codes=q.codes,
            loss=terms.recon_loss + q.loss + extra,
            recon_loss=terms.recon_loss,
            vq_loss=q.loss,
            perplexity=q.perplexity,
            quantizer=q,
            decoder_params=terms.params,
        )

    def latents(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, T') -> the decoder's conditioning z_q (B, D, T')."""
        self.check_codes(codes, self.num_levels)
        return self.quantizer.lookup(codes).contiguous()

    @torch.no_grad()
    def decode_codes(
        self,
        codes: torch.Tensor,
        speaker=None,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        method: str = "cached",
    ) -> torch.Tensor:
        """Codes (B, T') and a speaker (name, id or (B,) ids) -> audio (B, 1, T' * hop) in
        [-1, 1], all clips at once: drawn sample by sample from a WaveNet decoder, or a mel
        decoder's log-mel frames through the vocoder (``temperature`` and ``method`` are the
        WaveNet's; ``generator`` draws for both)."""
        z_q = self.latents(codes)
        speaker = self.speaker_ids(speaker, z_q.shape[0])
        with eval_mode(self):
            return self.decoder.synthesize(
                z_q, speaker, temperature=temperature, generator=generator, method=method,
                vocoder=self.vocoder,
            )  # fmt: skip

    @torch.no_grad()
    def decode_mel(self, codes: torch.Tensor, speaker=None) -> torch.Tensor:
        """A mel decoder's log-mel frames (B, n_mels, T') for codes (B, T') and a speaker."""
        if self.config.decoder != "mel":
            raise ValueError(f"log-mel frames come from a mel decoder, not {self.config.decoder!r}")
        z_q = self.latents(codes)
        with eval_mode(self):
            return self.decoder(z_q, self.speaker_ids(speaker, z_q.shape[0]))

    def decoder_params(self, codes: torch.Tensor) -> torch.Tensor:
        if self.config.decoder == "mel":
            raise TypeError("a mel decoder needs a speaker: use decode_mel(codes, speaker)")
        raise TypeError(
            "an audio VQ-VAE's decoder is autoregressive: its parameters need the audio "
            "(forward) or are drawn one sample at a time (decode_codes)"
        )


MODELS.register("AudioVQVAE", AudioVQVAE)

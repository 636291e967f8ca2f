"""The ``wavenet`` speech decoder: the paper's (section 4.3), a WaveNet conditioned on z_q
and the speaker, trained by teacher forcing on 8-bit mu-law samples and generating sample by
sample (``vqvae.nets.wavenet``). Its weights are the WaveNet's, under the same names, so
runs written before decoder kinds existed load unchanged."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vqvae.mulaw import mulaw_decode, mulaw_encode
from vqvae.nets.speech_decoder import DecoderTerms
from vqvae.nets.wavenet import WaveNet
from vqvae.registry import SPEECH_DECODERS


@SPEECH_DECODERS.register("wavenet")
class WaveNetDecoder(WaveNet):
    """The paper's: a WaveNet on mu-law samples, conditioned on z_q and the speaker."""

    @classmethod
    def from_audio_config(cls, config) -> WaveNetDecoder:
        return cls(config.wavenet)

    def terms(
        self, x: torch.Tensor, z_q: torch.Tensor, speaker, noise: float = 0.0
    ) -> DecoderTerms:
        """Cross-entropy of the teacher-forced softmax (nats per sample); ``x_hat`` (B, 1, T)
        is each position's expected amplitude given the true past. ``noise``: the standard
        deviation, in mu-law steps, of Gaussian noise on the *inputs* (LPCNet's injection)."""
        k = self.config.num_classes
        samples = mulaw_encode(x[:, 0].clamp(-1, 1), k)  # (B, T)
        inputs = samples
        if noise > 0:
            jitter = torch.randn(samples.shape, device=x.device) * noise
            inputs = (samples + jitter.round().long()).clamp(0, k - 1)
        logits = self(inputs, z_q, speaker)  # (B, 256, T): p(samples | inputs < t)
        values = mulaw_decode(torch.arange(k, device=logits.device), k).to(logits.dtype)
        x_hat = torch.einsum("bkt,k->bt", logits.softmax(dim=1), values)  # (B, T)
        return DecoderTerms(F.cross_entropy(logits, samples), x_hat.unsqueeze(1), logits)

    @torch.no_grad()
    def synthesize(
        self, z_q, speaker, *, temperature=1.0, generator=None, method="cached", vocoder=None
    ) -> torch.Tensor:
        """Audio (B, 1, T' hop) drawn sample by sample (the cached Fast WaveNet generator)."""
        samples = self.generate(
            z_q, speaker, temperature=temperature, generator=generator, method=method
        )
        return mulaw_decode(samples, self.config.num_classes).unsqueeze(1)  # (B, T) -> (B, 1, T)

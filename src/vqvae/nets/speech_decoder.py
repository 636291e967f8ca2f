"""What a speech VQ-VAE's decoder kind provides (``vqvae.registry.SPEECH_DECODERS``).

A decoder kind is a module class registered by name (``wavenet``, ``mel``) with:

- ``from_audio_config(config)``: built from the model's ``AudioVQVAEConfig``;
- ``terms(x, z_q, speaker, noise)``: the reconstruction term of eq. 3 on audio (B, 1, T)
  given z_q (B, D, T / hop) and checked speaker ids, as ``DecoderTerms``;
- ``synthesize(z_q, speaker, *, temperature, generator, method, vocoder)``: audio
  (B, 1, T' hop) in [-1, 1] from z_q alone;
- ``speaker_embedding(ids)`` and ``check_speaker(speaker, batch)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DecoderTerms:
    recon_loss: torch.Tensor  # scalar: the WaveNet's nats per sample, the mel decoder's L1
    x_hat: torch.Tensor  # what the decoder predicts in the data's own terms (see each kind)
    params: torch.Tensor  # the decoder's raw output: logits (B, 256, T) or log-mel (B, M, T')

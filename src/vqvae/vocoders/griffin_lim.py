"""The ``griffin-lim`` vocoder: no training; the STFT magnitude under the mel filters' pseudo-
inverse, its phase by the fast Griffin-Lim algorithm (Perraudin et al. 2013), both in
``vqvae.spectral``."""

from __future__ import annotations

import torch

from vqvae.registry import VOCODERS
from vqvae.spectral import MelSettings, griffin_lim, mel_to_magnitude


@VOCODERS.register("griffin-lim")
class GriffinLim:
    """No training: phase by fast Griffin-Lim (Perraudin et al. 2013), ``iterations`` of it
    (a mel run makes its own with ``AudioVQVAEConfig.griffin_lim_iterations``)."""

    def __init__(self, settings: MelSettings, iterations: int = 32, momentum: float = 0.99):
        self.settings = settings
        self.iterations = iterations
        self.momentum = momentum

    @torch.no_grad()
    def vocode(self, log_mel: torch.Tensor, generator: torch.Generator | None = None):
        """Log-mel frames (B, n_mels, T') -> audio (B, T' hop) in [-1, 1]."""
        s = self.settings
        magnitude = mel_to_magnitude(log_mel.float(), s)  # (B, n_fft / 2 + 1, T')
        if generator is not None and generator.device != magnitude.device:
            generator = None
        audio = griffin_lim(magnitude, s.n_fft, s.hop, self.iterations, self.momentum, generator)
        return audio.clamp(-1, 1)

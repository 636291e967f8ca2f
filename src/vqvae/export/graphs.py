"""The modules that are exported: each takes what a user has and gives what they want, with
the run's own scaling inside (docs/export.md).

- ``ImageEncoder``: uint8 data as stored (N, *S, C) -> codes, through
  ``vqvae.data.transforms.to_model_input`` (u / 127.5 - 1, channels first), the encoder and
  the code search (``vqvae.export.search``).
- ``AudioEncoder``: float32 samples in [-1, 1] (N, T) at the run's rate -> codes (N, T / hop),
  through the run's encoder, its front end included (``spectrogram1d``'s STFT and log power,
  as a convolution: ``vqvae.export.spectral``).
- ``ImageDecoder``: codes -> what ``decode_codes`` returns (N, C, *S), on the model's [-1, 1]
  scale, and the same as stored uint8 (N, *S, C) (``to_uint8_tensor``).
- ``MelDecoder``: codes and speaker ids -> a mel run's log-mel frames, as ``decode_mel``.
- ``Vocoder``: a trained vocoder's ``vocode``: log-mel frames -> audio in [-1, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from vqvae.data.transforms import to_model_input, to_uint8_tensor
from vqvae.export.search import CodeLookup, CodeSearch
from vqvae.export.spectral import ConvLogPower
from vqvae.nets.spectrogram1d import SpectrogramEncoder


class ImageEncoder(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.search = CodeSearch(model.quantizer)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        return self.search(self.encoder(to_model_input(data)))  # (N, *S, C) -> (N, *codes)


class AudioEncoder(ImageEncoder):
    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        spectra = isinstance(self.encoder, SpectrogramEncoder)
        self.front = ConvLogPower(self.encoder) if spectra else None

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = audio.unsqueeze(1)  # (N, T) -> (N, 1, T)
        if self.front is None:
            return self.search(self.encoder(x))  # -> (N, T')
        # SpectrogramEncoder.forward in eval mode, its log_power as a convolution
        return self.search(self.encoder.norm(self.encoder.net(self.front(x))))


class ImageDecoder(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.lookup = CodeLookup(model.quantizer)
        self.decoder = model.decoder
        self.likelihood = model.likelihood

    def forward(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.likelihood.mean(self.decoder(self.lookup(codes)))  # (N, C, *S) in [-1, 1]
        return x, to_uint8_tensor(x)


class MelDecoder(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.lookup = CodeLookup(model.quantizer)
        self.decoder = model.decoder
        self.speakers = bool(model.speakers)

    def forward(self, codes: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self.lookup(codes), speaker if self.speakers else None)


class Vocoder(nn.Module):
    def __init__(self, vocoder: nn.Module) -> None:
        super().__init__()
        self.vocoder = vocoder

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        return self.vocoder.vocode(log_mel)  # (N, n_mels, T') -> (N, T' hop)

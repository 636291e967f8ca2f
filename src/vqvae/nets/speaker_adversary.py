"""A speaker classifier that the encoder is trained to defeat: gradient reversal (Ganin and
Lempitsky 2015, "Unsupervised domain adaptation by backpropagation") applied to the speech
VQ-VAE's encoder outputs, so that the codes carry what is said and leave who says it to the
decoder's speaker embedding (the remedy for voice conversion named in docs/speech.md).

The classifier reads z_e as the probe reads codes: a bag of frames (the mean of per-frame
logits over time), so it is beaten only when no frame tells the speaker. It learns by the
ordinary gradient of its cross-entropy; the encoder receives that gradient negated and
scaled by the model's ``speaker_adversary`` weight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Reverse(torch.autograd.Function):
    """Identity forward; the gradient times -1 backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return -grad


def reverse_gradient(x: torch.Tensor) -> torch.Tensor:
    return _Reverse.apply(x)


class SpeakerAdversary(nn.Module):
    """z_e (B, D, T') -> speaker logits (B, S): two 3-wide convolutions per frame, averaged
    over time."""

    def __init__(self, code_dim: int, num_speakers: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(code_dim, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(hidden, num_speakers, 1),
        )

    def forward(self, z_e: torch.Tensor) -> torch.Tensor:
        return self.net(z_e).mean(2)  # (B, S, T') -> (B, S)

    def loss(self, z_e: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """The classifier's cross-entropy on z_e with the gradient to z_e reversed."""
        return F.cross_entropy(self(reverse_gradient(z_e)), speaker)

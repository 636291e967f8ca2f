"""Mixed precision for the training step: ``--precision {32,bf16,16}``.

Under ``bf16`` or ``16`` the step runs in ``torch.autocast``: the networks' convolutions and
matrix products in half precision, and everything else in float32 by the one rule of
docs/design-notes.md ("Precision"), enforced where it lives (``vqvae.torch_utils.float32``
on the quantizers and likelihoods). Weights, optimizer state and codebooks stay float32.

float16's narrow range needs loss scaling (Micikevicius et al., "Mixed Precision
Training", 2018, arXiv:1710.03740): ``torch.amp.GradScaler`` multiplies the loss before
backward, skips any step whose gradients overflowed and lowers the scale. Its state is in
every checkpoint, so a resumed run goes on with the scale it had. bfloat16 has float32's
range and needs none.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch

from vqvae.config import PRECISIONS

_DTYPES = {"bf16": torch.bfloat16, "16": torch.float16}


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"expected precision in {PRECISIONS}, got {precision!r}")
    return precision


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The context a step's forward pass runs in (autocast off for ``32``)."""
    dtype = _DTYPES.get(check_precision(precision), torch.float32)
    return torch.autocast(device.type, dtype=dtype, enabled=precision != "32")


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A loss scaler, enabled for ``16`` only (disabled, its calls pass straight through)."""
    return torch.amp.GradScaler(device.type, enabled=check_precision(precision) == "16")

"""Exported files against the run they came from: an ONNX Runtime session, and how often its
codes equal PyTorch's, counted where the codes are decided (``CodeSearch.decided``) and
everywhere (tests/test_export.py, benchmarks/onnx_export.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqvae.errors import VQVAEError
from vqvae.export.search import TIE_RTOL, CodeSearch


def session(path: str | Path, threads: int = 1) -> Any:
    """An ONNX Runtime session of ``path`` on the CPU with ``threads`` threads."""
    try:
        import onnxruntime as ort
    except ImportError:
        msg = "running ONNX files needs onnxruntime: pip install 'vqvae[export]'"
        raise VQVAEError(msg) from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class Agreement:
    codes: int  # codes compared
    equal: int  # of them, equal in both
    decided: int  # codes whose nearest and second-nearest are further apart than the margin
    decided_equal: int  # of the decided, equal in both: the bar is decided_equal == decided

    @property
    def equal_rate(self) -> float:
        return self.equal / max(self.codes, 1)

    @property
    def decided_rate(self) -> float:
        return self.decided / max(self.codes, 1)

    def __add__(self, other: Agreement) -> Agreement:
        return Agreement(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[int, int, int, int]:
        return (self.codes, self.equal, self.decided, self.decided_equal)


@torch.no_grad()
def agreement(model: Any, x: torch.Tensor, ours: np.ndarray, theirs: np.ndarray) -> Agreement:
    """Codes ``ours`` and ``theirs`` (N, *code_shape) of the model inputs ``x`` (the model's
    scale, channels first), compared where ``model``'s encoder output decides them."""
    decided = CodeSearch(model.quantizer).decided(model.encoder(x), TIE_RTOL).numpy()  # (N, *S)
    if model.num_levels > 1:  # (N, Q, *S): a position is decided when all its levels are
        decided = np.broadcast_to(decided[:, None], ours.shape)
    same = ours == theirs
    return Agreement(same.size, int(same.sum()), int(decided.sum()), int(same[decided].sum()))

"""Code files: the ``.npz`` that ``vqvae encode`` writes and ``decode`` / ``prior train``
read: ``codes`` int64 ``(N, *code_shape)`` and, when the data has them, ``labels`` (N,)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vqvae._io import write_npz
from vqvae.errors import RunError


@dataclass(frozen=True, eq=False)
class CodeFile:
    codes: np.ndarray  # int64 (N, *code_shape)
    labels: np.ndarray | None  # int64 (N,)


def write_code_file(path: Path, codes: np.ndarray, labels: np.ndarray | None) -> None:
    arrays = {"codes": codes.astype(np.int64)}
    if labels is not None:
        arrays["labels"] = labels
    write_npz(path, **arrays)


def read_code_file(path: Path, code_shape: tuple[int, ...], num_codes: int) -> CodeFile:
    """A code file checked against the model's code shape and codebook size."""
    if not path.is_file():
        raise RunError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "codes" not in f:
                raise RunError(f"{path}: no 'codes' array (write one with `vqvae encode`)")
            codes = f["codes"]
            labels = f["labels"] if "labels" in f else None  # noqa: SIM401 (an NpzFile)
    except (ValueError, OSError) as e:
        raise RunError(f"{path}: not a readable .npz file ({e})") from None
    if codes.shape[1:] != tuple(code_shape) or codes.dtype.kind not in "iu":
        want = ", ".join(["N", *map(str, code_shape)])
        raise RunError(
            f"{path}: expected integer codes of shape ({want}), got {codes.dtype} {codes.shape}"
        )
    if codes.size and (codes.min() < 0 or codes.max() >= num_codes):
        raise RunError(
            f"{path}: codes must lie in [0, {num_codes}), got [{codes.min()}, {codes.max()}]"
        )
    if labels is not None and (labels.dtype.kind not in "iu" or labels.shape != (len(codes),)):
        raise RunError(
            f"{path}: expected {len(codes)} integer labels, got {labels.dtype} {labels.shape}"
        )
    return CodeFile(codes.astype(np.int64), None if labels is None else labels.astype(np.int64))

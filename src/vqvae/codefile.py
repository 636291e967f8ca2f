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


def read_code_file(path: Path, code_shape: tuple[int, ...] | None, num_codes: int) -> CodeFile:
    """A code file checked against the model's code shape (None: any) and codebook size."""
    return _check_codes(path, _read_arrays(path), code_shape, num_codes)


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of a code file, read once; it must hold ``codes``."""
    if not path.is_file():
        raise RunError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except (ValueError, OSError) as e:
        raise RunError(f"{path}: not a readable .npz file ({e})") from None
    # checked outside the try: a RunError is a ValueError, which the except would re-word
    if "codes" not in arrays:
        raise RunError(f"{path}: no 'codes' array (write one with `vqvae encode`)")
    return arrays


def _check_codes(
    path: Path, arrays: dict[str, np.ndarray], code_shape: tuple[int, ...] | None, num_codes: int
) -> CodeFile:
    codes, labels = arrays["codes"], arrays.get("labels")
    shape_ok = code_shape is None or codes.shape[1:] == tuple(code_shape)
    if not shape_ok or codes.dtype.kind not in "iu":
        want = ", ".join(["N", *map(str, code_shape or ("...",))])
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


# -- audio: code sequences of several lengths --------------------------------------------------


@dataclass(frozen=True, eq=False)
class AudioCodes:
    """A data set's code sequences, padded to one length, with what each utterance is.

    Written by ``vqvae encode`` on a speech run as an .npz of the same names."""

    codes: np.ndarray  # int64 (N, T') or (N, Q, T') for residual levels
    lengths: np.ndarray  # int64 (N,): codes that cover each utterance, ceil(T_i / hop)
    hop: int  # audio samples per code
    sample_rate: int
    labels: np.ndarray | None = None  # int64 (N,)
    speakers: np.ndarray | None = None  # int64 (N,), the model's speaker ids

    def write(self, path: Path) -> None:
        arrays = {
            "codes": self.codes.astype(np.int64),
            "lengths": self.lengths.astype(np.int64),
            "hop": np.int64(self.hop),
            "sample_rate": np.int64(self.sample_rate),
        }
        for name in ("labels", "speakers"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name).astype(np.int64)
        write_npz(path, **arrays)


def read_audio_code_file(path: Path, num_codes: int, hop: int) -> AudioCodes:
    """An audio code file checked against a model's codebook size and hop."""
    arrays = _read_arrays(path)
    f = _check_codes(path, arrays, None, num_codes)
    codes = f.codes
    if codes.ndim not in (2, 3):
        raise RunError(f"{path}: expected audio codes (N, T'), got shape {codes.shape}")
    n, width = len(codes), codes.shape[-1]
    lengths = arrays.get("lengths", np.full(n, width))
    if lengths.shape != (n,) or lengths.dtype.kind not in "iu" or (lengths > width).any():
        raise RunError(f"{path}: 'lengths' must be {n} integers <= {width}, got {lengths!r:.60}")
    if "hop" in arrays and int(arrays["hop"]) != hop:
        raise RunError(f"{path}: codes of {int(arrays['hop'])} samples each; the model's are {hop}")
    speakers = arrays.get("speakers")
    if speakers is not None and (speakers.shape != (n,) or speakers.dtype.kind not in "iu"):
        raise RunError(f"{path}: 'speakers' must be {n} integer ids, got {speakers!r:.60}")
    return AudioCodes(
        codes=codes,
        lengths=lengths.astype(np.int64),
        hop=hop,
        sample_rate=int(arrays.get("sample_rate", 0)),
        labels=f.labels,
        speakers=None if speakers is None else speakers.astype(np.int64),
    )

"""Audio data sets for the paper's speech experiment (van den Oord et al. 2017, section 4.3):
recordings as float32 mono waveforms in [-1, 1], all at one sample rate.

A folder of ``.wav``/``.flac``/``.ogg`` files is a data set: loose files (no speakers) or one
sub-folder per speaker (ids 0..S-1 in sorted order of the names, as images' class folders
are). File names of the Free Spoken Digit Dataset's form ``{digit}_{speaker}_{index}`` give
the spoken digit as the label, the speaker (for loose files) and the data set's own split
(index 0..4 is the test split, as its README suggests); any other folder is split with the
fixed seed of ``base.split_indices``. Files are read with ``soundfile`` (libsndfile), mixed
to mono and resampled with ``soxr`` (or scipy's polyphase filter when soxr is missing); see
docs/design-notes.md, "Audio data".
"""

from __future__ import annotations

import io
import math
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vqvae._io import atomic_write
from vqvae.errors import DataError

from .base import SPLIT_SEED, TEST_FRACTION, check_split, count_classes, split_indices

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
# FSDD's file names: {digit}_{speaker}_{index}.wav, e.g. 7_jackson_32.wav
FSDD_NAME = re.compile(r"(?P<digit>\d)_(?P<speaker>[^_]+)_(?P<index>\d+)")
FSDD_TEST_INDICES = range(5)  # recordings 0..4 of every digit and speaker: the test split
DIGIT_CLASSES = tuple(str(i) for i in range(10))


# eq=False: the generated __eq__/__hash__ would compare numpy arrays, which has no single answer
@dataclass(frozen=True, eq=False)
class AudioDataset:
    """Utterances of variable length at one sample rate, with optional labels and speakers."""

    waveforms: tuple[np.ndarray, ...]  # N float32 (T_i,) in [-1, 1], mono
    sample_rate: int  # samples per second, the same for every waveform
    labels: np.ndarray | None = None  # int64 (N,), e.g. the spoken digit
    speakers: np.ndarray | None = None  # int64 (N,) speaker ids into speaker_names
    speaker_names: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None
    files: tuple[str, ...] = ()  # the source file of each waveform; () numbers them 0, 1, ...
    name: str = "audio"  # a registered name such as "fsdd", or the path it came from

    def __post_init__(self) -> None:
        w = self.waveforms
        if not isinstance(w, tuple):
            raise ValueError(f"{self.name}: waveforms must be a tuple of arrays, got {type(w)}")
        n = len(w)
        for i, x in enumerate(w):
            if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 1:
                got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
                raise ValueError(f"{self.name}: waveform {i} must be float32 (T,), got {got}")
            if x.size == 0:
                raise ValueError(f"{self.name}: waveform {i} is empty")
            # written as a negation so that NaN fails too
            if not (np.abs(x).max() <= 1.0):
                raise ValueError(f"{self.name}: waveform {i} has values outside [-1, 1] or NaN")
        rate = self.sample_rate
        if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate <= 0:
            raise ValueError(f"{self.name}: sample_rate must be a positive int, got {rate!r}")
        object.__setattr__(self, "sample_rate", int(rate))
        for field, ids in (("labels", self.labels), ("speakers", self.speakers)):
            if ids is None:
                continue
            if not isinstance(ids, np.ndarray) or ids.dtype != np.int64 or ids.shape != (n,):
                got = f"{ids.dtype} {ids.shape}" if isinstance(ids, np.ndarray) else type(ids)
                raise ValueError(f"{self.name}: {field} must be int64 ({n},), got {got}")
            if n and ids.min() < 0:
                raise ValueError(f"{self.name}: {field} must be >= 0, got {int(ids.min())}")
        for field, names, ids in (
            ("class_names", self.class_names, self.labels),
            ("speaker_names", self.speaker_names, self.speakers),
        ):
            if names is None:
                continue
            if not isinstance(names, tuple) or not all(isinstance(s, str) for s in names):
                raise ValueError(f"{self.name}: {field} must be a tuple of str, got {names!r}")
            if ids is not None and n and ids.max() >= len(names):
                raise ValueError(
                    f"{self.name}: id {int(ids.max())} has no entry in {field} ({len(names)})"
                )
        if self.speaker_names is not None and self.speakers is None:
            raise ValueError(f"{self.name}: speaker_names given without speakers")
        files = self.files
        if files == ():
            files = tuple(f"{i:0{len(str(max(n - 1, 0)))}d}" for i in range(n))
            object.__setattr__(self, "files", files)
        if not isinstance(files, tuple) or len(files) != n:
            raise ValueError(f"{self.name}: files must be a tuple of {n} names, got {files!r:.60}")

    def __len__(self) -> int:
        return len(self.waveforms)

    @property
    def num_classes(self) -> int:
        """The number of classes; 0 when the data set has no labels."""
        return count_classes(self.labels, self.class_names)

    @property
    def num_speakers(self) -> int:
        """The number of speakers; 0 when the data set has no speaker ids."""
        if self.speakers is None:
            return 0
        if self.speaker_names is not None:
            return len(self.speaker_names)
        return int(self.speakers.max()) + 1 if len(self.speakers) else 0

    @property
    def durations(self) -> np.ndarray:
        """Seconds per utterance, float64 (N,)."""
        return np.array([len(x) for x in self.waveforms], dtype=np.float64) / self.sample_rate

    def subset(self, idx) -> AudioDataset:
        """The utterances ``idx`` (ints, in that order), with their labels, speakers, files."""
        idx = np.asarray(idx, dtype=np.int64)
        take = lambda a: None if a is None else a[idx]  # noqa: E731
        return replace(
            self,
            waveforms=tuple(self.waveforms[i] for i in idx),
            labels=take(self.labels),
            speakers=take(self.speakers),
            files=tuple(self.files[i] for i in idx),
        )

    def resampled(self, sample_rate: int) -> AudioDataset:
        """The same utterances at ``sample_rate`` (itself when the rate is already that)."""
        if sample_rate == self.sample_rate:
            return self
        waveforms = tuple(resample(x, self.sample_rate, sample_rate) for x in self.waveforms)
        return replace(self, waveforms=waveforms, sample_rate=sample_rate)


# -- one file -------------------------------------------------------------------------------------


def _soundfile():
    """soundfile, imported on first use: image data never needs it."""
    try:
        import soundfile
    except (ImportError, OSError) as e:  # OSError: libsndfile itself failed to load
        raise DataError(f"reading audio needs the soundfile package ({e})") from None
    return soundfile


def _reason(e: BaseException) -> str:
    """libsndfile's own words (its errors also repeat the path, which we already name)."""
    text = getattr(e, "error_string", None) or str(e) or type(e).__name__
    return text.strip().splitlines()[0]


def audio_rate(path: str | Path) -> int:
    """The sample rate a file is stored at, read from its header."""
    try:
        return int(_soundfile().info(str(path)).samplerate)
    except (RuntimeError, OSError, ValueError, TypeError, EOFError) as e:
        raise DataError(f"{path}: corrupt or unreadable audio ({_reason(e)})") from None


def resample(x: np.ndarray, orig_rate: int, sample_rate: int) -> np.ndarray:
    """A float32 (T,) waveform at ``orig_rate`` resampled to ``sample_rate``, with an
    anti-aliasing filter: soxr's high quality mode, or scipy's polyphase filter at the reduced
    ratio when soxr is not installed. The result has round(T * sample_rate / orig_rate)
    samples (half rounded up) and stays within [-1, 1]."""
    if orig_rate == sample_rate:
        return x
    n_out = (len(x) * sample_rate + orig_rate // 2) // orig_rate
    try:
        import soxr
    except ImportError:
        soxr = None
    if soxr is not None:
        y = soxr.resample(x, orig_rate, sample_rate, quality="HQ")
    else:
        from scipy.signal import resample_poly

        g = math.gcd(orig_rate, sample_rate)
        y = resample_poly(x, sample_rate // g, orig_rate // g)  # ceil(T * up / down) samples
    y = np.asarray(y[:n_out], dtype=np.float32)
    if len(y) < n_out:  # pragma: no cover - neither resampler returns fewer
        y = np.pad(y, (0, n_out - len(y)))
    return np.clip(y, -1.0, 1.0)  # the filter's ringing may overshoot a full-scale signal


def read_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """One audio file (WAV, FLAC, OGG, ...) as float32 mono (T,) in [-1, 1] at ``sample_rate``.

    Integer PCM is scaled by its full scale (int16: 1/32768); several channels are averaged;
    float files are clipped to [-1, 1]. A corrupt, empty or unreadable file raises
    ``DataError`` naming it."""
    path = Path(path)
    try:
        data, rate = _soundfile().read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError, TypeError, EOFError) as e:
        # soundfile's LibsndfileError is a RuntimeError
        raise DataError(f"{path}: corrupt or unreadable audio ({_reason(e)})") from None
    if data.shape[0] == 0:
        raise DataError(f"{path}: no audio in the file (0 frames)")
    x = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]  # (T, C) -> (T,)
    if not np.isfinite(x).all():
        raise DataError(f"{path}: the audio holds NaN or infinite values")
    x = np.clip(x, -1.0, 1.0)
    return np.ascontiguousarray(resample(x, int(rate), int(sample_rate)), dtype=np.float32)


# -- a folder -------------------------------------------------------------------------------------


def audio_files(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p for p in found
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
    )  # fmt: skip


def common_rate(files: list[Path]) -> int:
    """The rate most files are stored at (the higher one on a tie)."""
    counts = Counter(audio_rate(p) for p in files)
    return max(counts, key=lambda rate: (counts[rate], rate))


def load_audio_folder(
    folder: str | Path,
    split: str,
    sample_rate: int | None = None,
    *,
    name: str | None = None,
) -> AudioDataset:
    """Split ``train`` or ``test`` of a folder of audio files (see the module doc).

    Every file is resampled to ``sample_rate``; None takes the folder's own rate, the one most
    of its files have (over both splits, so that they agree)."""
    check_split(split)
    folder = Path(folder)
    name = name or str(folder)
    files, speakers, speaker_names = _files_and_speakers(folder)
    matches = [FSDD_NAME.fullmatch(p.stem) for p in files]
    labels: np.ndarray | None = None
    if all(matches):  # FSDD's names: digit labels, speakers, and a split of their own
        labels = np.array([int(m["digit"]) for m in matches], dtype=np.int64)
        if speakers is None:
            speaker_names = tuple(sorted({m["speaker"] for m in matches}))
            ids = {s: i for i, s in enumerate(speaker_names)}
            speakers = np.array([ids[m["speaker"]] for m in matches], dtype=np.int64)
        test = np.array([int(m["index"]) in FSDD_TEST_INDICES for m in matches])
        idx = np.flatnonzero(test if split == "test" else ~test)
    else:
        idx = split_indices(len(files), split, test_fraction=TEST_FRACTION, seed=SPLIT_SEED)

    rate = int(sample_rate) if sample_rate is not None else common_rate(files)
    chosen = [files[i] for i in idx]
    waveforms = tuple(
        read_audio(p, rate)
        for p in tqdm(chosen, desc=f"{name} {split}", unit="file", disable=None, leave=False)
    )
    return AudioDataset(
        waveforms=waveforms,
        sample_rate=rate,
        labels=None if labels is None else labels[idx],
        speakers=None if speakers is None else speakers[idx],
        speaker_names=speaker_names,
        class_names=DIGIT_CLASSES if labels is not None else None,
        files=tuple(p.relative_to(folder).as_posix() for p in chosen),
        name=name,
    )


def _files_and_speakers(
    folder: Path,
) -> tuple[list[Path], np.ndarray | None, tuple[str, ...] | None]:
    """The folder's audio files, and speaker ids and names from its sub-folders (or none)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    loose = audio_files(folder, recursive=False)
    speaker_dirs = sorted(
        d for d in folder.iterdir()
        if d.is_dir() and not d.name.startswith(".") and audio_files(d, recursive=True)
    )  # fmt: skip
    if loose and speaker_dirs:
        raise DataError(
            f"{folder}: holds both loose audio files ({loose[0].name}, ...) and speaker "
            f"sub-folders ({speaker_dirs[0].name}, ...); use one or the other"
        )
    if loose:
        return loose, None, None
    if not speaker_dirs:
        raise DataError(f"{folder}: no audio files found (looked for {', '.join(AUDIO_SUFFIXES)})")
    files, ids = [], []
    for i, d in enumerate(speaker_dirs):
        these = audio_files(d, recursive=True)
        files += these
        ids += [i] * len(these)
    return files, np.asarray(ids, dtype=np.int64), tuple(d.name for d in speaker_dirs)


# -- helpers the models and commands share ----------------------------------------------------


def pad_to_hop(x: np.ndarray, hop: int, length: int | None = None) -> np.ndarray:
    """A waveform (T,) padded with silence at the end to ``length`` samples (default: T),
    rounded up to a multiple of ``hop``, the samples per code of an audio encoder."""
    n = max(len(x), length or 0)
    n = -(-n // hop) * hop
    return np.pad(x, (0, n - len(x)))


def write_wav(path: str | Path, waveform: np.ndarray, sample_rate: int) -> Path:
    """A float waveform (T,) in [-1, 1] as a 16-bit PCM WAV file, written atomically."""
    return atomic_write(path, lambda tmp: _write_pcm16(tmp, waveform, sample_rate))


def wav_bytes(waveform: np.ndarray, sample_rate: int) -> bytes:
    """The bytes ``write_wav`` would write for ``waveform``: a 16-bit PCM WAV in memory."""
    buffer = io.BytesIO()
    _write_pcm16(buffer, waveform, sample_rate)
    return buffer.getvalue()


def _write_pcm16(target, waveform: np.ndarray, sample_rate: int) -> None:
    x = np.clip(np.asarray(waveform, dtype=np.float32), -1.0, 1.0)
    _soundfile().write(target, x, int(sample_rate), subtype="PCM_16", format="WAV")

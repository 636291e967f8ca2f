"""One run as the server sees it: its model, its prior and video prior when trained, its test
data for the page's examples, and the work each API request asks of them (docs/serve.md).

Every piece of work goes through ``vqvae.inference`` (encode, decode, sampling, speech
generation, rollouts) under ``torch.inference_mode``, with a generator of its own seeded by
the request: requests share the loaded networks read-only and nothing else, so any number
run at once. The only state that changes after loading is the lazily read test data and the
codebook's picture, each filled once under a lock.
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqvae.data import load_audio, load_images, png_bytes, tile, wav_bytes
from vqvae.errors import RunError, VQVAEError
from vqvae.inference import decode, encode, sample_codes
from vqvae.inference.audio import encode_audio, generate_audio, sample_speech_codes
from vqvae.inference.video import Sampling, load_episodes, load_video_prior, split
from vqvae.models import VQVAE, AudioVQVAE
from vqvae.priors import Condition
from vqvae.report.analysis import codebook_level0
from vqvae.runs import RunDir, load_prior, load_run_model, prior_kind
from vqvae.serve import media
from vqvae.serve.errors import CONFLICT, NOT_FOUND, Refused
from vqvae.spectral import log_mel_frames

MODALITIES = ("image", "audio", "frames")
CONTEXT_FRAMES = 6  # the real frames a maze page starts from (docs/serve.md)
LOG_MEL_FLOOR = -12.0  # the spectrograms' colour floor, as the report's (silence: -13.8)


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (docs/serve.md, "Safety")."""

    upload_bytes: int = 20 * 1024 * 1024  # a larger request body gets 413
    image_pixels: int = 4096 * 4096  # an upload's decoded size
    seconds: float = 30.0  # of audio, uploaded or decoded
    batch: int = 64  # grids sampled or decoded by one request
    context: int = 64  # frames of rollout context


@dataclass(frozen=True)
class Example:
    """One test item the page can pick: its index, class name and speaker (or None)."""

    index: int
    label: str | None
    speaker: str | None


class ServedRun:
    """A run folder loaded for serving. ``name`` is what ``?run=NAME`` calls it."""

    def __init__(
        self,
        path: str | Path,
        name: str | None = None,
        data_root: str | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.run = RunDir(path)
        self.name = name or self.run.path.resolve().name
        self.data_root = data_root
        self.limits = limits or Limits()
        model = load_run_model(self.run)
        if not isinstance(model, VQVAE) or (
            not isinstance(model, AudioVQVAE) and len(model.latent_shape) != 2
        ):
            raise RunError(
                f"{self.run.path}: serve shows image runs (a 2-D grid of codes per image) and "
                f"speech runs; this run holds a {type(model).__name__}"
            )
        self.model = model
        self.saved = self.run.read_config()
        self.prior = load_prior(self.run) if self.run.prior.weights_file.is_file() else None
        self.prior_kind = prior_kind(self.run.prior.read_config()) if self.prior else None
        has_video = self.run.video.weights_file.is_file()
        self.video_prior = load_video_prior(self.run) if has_video else None
        self.audio = isinstance(model, AudioVQVAE)
        self.modality = "audio" if self.audio else "frames" if has_video else "image"
        self._lock = threading.Lock()
        self._examples: Any = None
        self._codebook_lock = threading.Lock()
        self._codebook: bytes | None = None

    # -- what the run is ------------------------------------------------------------------
    @property
    def num_codes(self) -> int:
        return self.model.num_codes

    @property
    def labels(self) -> list[str] | None:
        """The prior's classes, named as the test data names them (else by number)."""
        n = self.prior.config.num_classes if self.prior is not None else 0
        if not n:
            return None
        names = self._class_names()
        return [names[i] if names and i < len(names) else str(i) for i in range(n)]

    def info(self) -> dict[str, Any]:
        c = self.model.config
        shape: list[int | None] = list(self.model.code_shape)
        if self.audio:
            shape[-1] = None  # any number of codes: one per `hop` samples
        info = {
            "name": self.name,
            "modality": self.modality,
            "shape": shape,
            "num_codes": self.num_codes,
            "labels": self.labels,
            "speakers": list(self.model.speakers) if self.audio and self.model.speakers else None,
            "actions": list(self.video_prior.config.action_names) if self.video_prior else None,
            "prior": self.prior_kind,
            "video_prior": self.video_prior.config.kind if self.video_prior else None,
            "can_inpaint": self.prior is not None and self.prior.can_inpaint,
            "steps": self.prior is not None and "steps" in self.prior.sampling_options,
        }
        if self.audio:
            info.update(sample_rate=c.sample_rate, hop=self.model.hop)
        else:
            info.update(image_size=list(c.input_size), channels=c.in_channels,
                        codebook_columns=self.codebook_columns)  # fmt: skip
        if self.video_prior is not None:
            info["context_frames"] = max(CONTEXT_FRAMES, self.video_prior.context_frames)
        return info

    # -- codes from the client ------------------------------------------------------------
    def codes(self, value: Any, what: str = "codes", batch: bool = False) -> torch.Tensor:
        """Nested lists of ints -> int64 codes of the run's shape (with a batch axis in front
        when ``batch`` allows one: (N, *shape)), each in 0..K-1; else a one-line refusal."""
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):
            raise Refused(f"{what}: expected nested lists of integers of one shape") from None
        if array.dtype.kind not in "iu":
            raise Refused(f"{what}: expected integers, got {_kind(array)}")
        want = self._code_rank()
        if array.ndim == want + 1 and batch and not self.audio:
            if not 1 <= len(array) <= self.limits.batch:
                raise Refused(f"{what}: expected 1 to {self.limits.batch} grids, got {len(array)}")
            single = array.shape[1:]
        else:
            single = array.shape
        self._check_shape(single, what)
        if array.size and (array.min() < 0 or array.max() >= self.num_codes):
            bad = int(array.min() if array.min() < 0 else array.max())
            raise Refused(f"{what}: code {bad} is out of range; this run has K={self.num_codes}")
        return torch.from_numpy(array.astype(np.int64))

    def _code_rank(self) -> int:
        return len(self.model.code_shape)

    def _check_shape(self, shape: tuple[int, ...], what: str) -> None:
        want = tuple(self.model.code_shape)
        if self.audio:
            most = int(self.limits.seconds * self.model.config.sample_rate) // self.model.hop
            ok = len(shape) == len(want) and shape[:-1] == want[:-1] and 1 <= shape[-1] <= most
            expected = f"({', '.join(map(str, want[:-1]))}{', ' if len(want) > 1 else ''}T')"
            if not ok:
                raise Refused(
                    f"{what}: expected shape {expected} with 1 <= T' <= {most}, got {shape}"
                )
        elif tuple(shape) != want:
            raise Refused(f"{what}: expected shape {want} (the run's grid), got {tuple(shape)}")

    def speaker(self, name: str | None, required: bool = True) -> int | None:
        """A speaker's id in the model (None for a model without speakers)."""
        if not self.audio or not self.model.speakers:
            if name is not None:
                raise Refused("speaker: this run has no speakers")
            return None
        if name is None:
            if not required:
                return None
            raise Refused(f"speaker: expected one of {', '.join(self.model.speakers)}")
        if name not in self.model.speakers:
            raise Refused(f"speaker {name!r}: expected one of {', '.join(self.model.speakers)}")
        return self.model.speakers.index(name)

    def label(self, value: int | str | None) -> int | None:
        """A class given by index or by name -> its index, for a class-conditional prior."""
        if value is None:
            return None
        names = self.labels
        if names is None:
            raise Refused("label: this run's prior is not class-conditional")
        if isinstance(value, str) and value in names:
            return names.index(value)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
            return value
        raise Refused(f"label {value!r}: expected 0..{len(names) - 1} or one of {names}")

    # -- the API's work ----------------------------------------------------------------------
    def encode_upload(self, data: bytes, filename: str | None) -> np.ndarray:
        """An uploaded file -> codes: (h, w) for an image, (T') for speech."""
        c = self.model.config
        if self.audio:
            with media.saved_upload(data, filename, media.audio_suffix(filename)) as path:
                wave = media.read_audio_upload(path, c.sample_rate, self.limits.seconds)
            return self.encode_wave(wave)
        with media.saved_upload(data, filename, media.image_suffix(filename)) as path:
            image = media.read_image_upload(
                path, tuple(c.input_size), c.in_channels, self.limits.image_pixels
            )
        return encode(self.model, image[None])[0]  # (1, H, W, C) -> codes (1, h, w) -> (h, w)

    def encode_wave(self, wave: np.ndarray) -> np.ndarray:
        from vqvae.data import AudioDataset

        one = AudioDataset((wave,), self.model.config.sample_rate)
        return encode_audio(self.model, one).codes[0]  # (1, T') -> (T',)

    def decode_png(self, codes: torch.Tensor) -> bytes:
        """Codes of one grid -> its image; (N, *grid) -> the N images in rows of 8."""
        if codes.dim() == self._code_rank():
            return png_bytes(decode(self.model, codes[None])[0])
        images = decode(self.model, codes)  # (N, H, W, C)
        return png_bytes(tile(images, min(len(images), 8), pad=1))

    def decode_wav(self, codes: torch.Tensor, speaker: str | None, seed: int) -> bytes:
        """Codes (T') -> the WAV ``vqvae decode`` writes for them with this speaker."""
        spk = self.speaker(speaker)
        speakers = None if spk is None else np.array([spk])
        wave = generate_audio(
            self.model, codes[None].numpy(), [codes.shape[-1]], speakers, seed=seed, progress=False
        )[0]
        return wav_bytes(wave, self.model.config.sample_rate)

    def sample(
        self,
        n: int,
        label: int | str | None,
        speaker: str | None,
        temperature: float,
        steps: int | None,
        seed: int,
    ) -> list:
        """``n`` code grids from the prior (speech: each cut at its trailing silence)."""
        prior = self._need_prior(f"vqvae prior train {self.run.path}")
        if not 1 <= n <= self.limits.batch:
            raise Refused(f"n: expected 1 to {self.limits.batch} samples, got {n}")
        check_temperature(temperature)
        options = {}
        if steps is not None:
            if "steps" not in prior.sampling_options:
                raise Refused(
                    f"steps: this run's prior ({self.prior_kind}) draws one code at a time and "
                    f"takes no number of steps; leave it out"
                )
            options["steps"] = steps
        index = self.label(label)
        if self.audio:
            codes, lengths = sample_speech_codes(
                self.model, prior, n, index, speaker if self.model.speakers else None,
                seed=seed, temperature=temperature, **options,
            )  # fmt: skip
            return [row[:length].tolist() for row, length in zip(codes, lengths, strict=True)]
        self.speaker(speaker)
        cond = None if index is None else torch.full((n,), index, dtype=torch.long)
        codes = sample_codes(prior, n, cond, temperature=temperature, seed=seed, **options)
        return codes.tolist()

    def inpaint(self, codes: torch.Tensor, mask: Any, label: int | str | None, seed: int) -> list:
        """Redraw the codes where ``mask`` is 1 with a prior that can inpaint (a masked-token
        prior's ``inpaint``); every code where it is 0 comes back unchanged."""
        command = f"vqvae prior train {self.run.path} --kind maskgit"
        prior = self._need_prior(command)
        if not prior.can_inpaint:
            raise Refused(
                f"this run's prior ({self.prior_kind}) draws codes in raster order and cannot "
                f"redraw a region; a masked-token prior can: `{command}`",
                CONFLICT,
            )
        keep = self._mask(mask, codes.shape)
        index = self.label(label)
        options = {}
        if index is None and prior.config.num_classes and "guidance" in prior.sampling_options:
            # no label given to a class-conditional prior: its null condition, learned by
            # dropping the label in training, which guidance 0 reads alone (docs/maskgit.md)
            index, options = 0, {"guidance": 0.0}
        cond = None if index is None else Condition(labels=torch.tensor([index]))
        generator = torch.Generator().manual_seed(seed)
        with torch.inference_mode():
            drawn = prior.inpaint(codes[None], ~keep[None], cond, generator=generator, **options)
        drawn = drawn[0]
        return torch.where(keep, codes, drawn.cpu()).tolist()

    def _mask(self, value: Any, shape: torch.Size) -> torch.Tensor:
        """The client's mask (1: redraw, 0: keep) -> bool ``keep`` of the codes' shape."""
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):
            raise Refused("mask: expected nested lists of 0 and 1 of the codes' shape") from None
        if array.shape != tuple(shape) or not np.isin(array, (0, 1)).all():
            raise Refused(f"mask: expected 0s and 1s of shape {tuple(shape)}, got {array.shape}")
        return torch.from_numpy(array == 0)

    def rollout(self, context: Any, action: str, seed: int) -> list:
        """The next frame's codes (h, w) after ``context`` (F, h, w) under ``action``."""
        prior = self.video_prior
        if prior is None:
            raise Refused(
                f"this run has no video prior; train one with `vqvae video train {self.run.path}`",
                CONFLICT,
            )
        context = self.codes(context, "context", batch=True)
        k = prior.context_frames
        if context.dim() != 3 or not k <= len(context) <= self.limits.context:
            raise Refused(
                f"context: expected ({k}..{self.limits.context}, h, w) frame codes, "
                f"got {tuple(context.shape)}"
            )
        names = prior.config.action_names
        if action not in names:
            raise Refused(f"action {action!r}: expected one of {', '.join(names)}")
        actions = torch.tensor([[names.index(action)]])  # (B=1, F=1)
        generator = torch.Generator().manual_seed(seed)
        with torch.inference_mode():
            codes = prior.rollout(context[None], actions, generator=generator,
                                  method=Sampling().method_for(prior))  # fmt: skip
        return codes[0, 0].tolist()  # (1, 1, h, w) -> (h, w)

    def neighbours(self, code: int, n: int) -> list[int]:
        """``code`` and the ``n - 1`` codes whose codebook vectors lie nearest to its own
        (Euclidean, the quantizer's own distance; the first level of residual codes)."""
        if not 0 <= code < self.num_codes:
            raise Refused(f"code {code} is out of range; this run has K={self.num_codes}")
        if not 1 <= n <= self.num_codes:
            raise Refused(f"n: expected 1 to {self.num_codes} codes, got {n}")
        book = torch.from_numpy(codebook_level0(self.model))  # (K, D)
        distances = torch.cdist(book[code : code + 1], book)[0]  # (K,)
        distances[code] = -1.0  # the code itself first, whatever ties the rest hold
        return torch.argsort(distances, stable=True)[:n].tolist()

    # -- pictures -----------------------------------------------------------------------------
    @property
    def codebook_columns(self) -> int:
        return math.ceil(math.sqrt(self.num_codes))

    @property
    def codebook_png(self) -> bytes:
        """``draw_codebook``'s picture, drawn once (under a lock: the page asks for it twice
        at once, and K = 4,096 codes take a while to decode)."""
        with self._codebook_lock:
            if self._codebook is None:
                self._codebook = self.draw_codebook()
            return self._codebook

    def warm(self) -> None:
        """Draw what the page asks for first and is slow to make (the codebook's picture),
        before it asks; nothing if the run has none."""
        with contextlib.suppress(Refused):
            _ = self.codebook_png

    def draw_codebook(self) -> bytes:
        """Images: every code decoded alone (a grid filled with it), in rows of
        ``codebook_columns``, one pixel apart. Speech: each code's log-mel frame as the mel
        decoder makes it (the mean over 8 frames of the code repeated, the first speaker), a
        column per code, low bands at the bottom."""
        k = torch.arange(self.num_codes)
        if not self.audio:
            grid = self.model.latent_shape
            codes = k[:, None, None].expand(-1, *grid)  # (K,) -> (K, h, w)
            if self.model.num_levels > 1:
                codes = codes[:, None]  # (K, h, w) -> (K, 1, h, w): the first level alone
            return png_bytes(tile(decode(self.model, codes), self.codebook_columns, pad=1))
        if self.model.config.decoder != "mel":
            raise Refused(
                "codebook: a WaveNet decoder makes no log-mel frames to show; a mel run does",
                CONFLICT,
            )
        codes = k[:, None].expand(-1, 8)  # (K,) -> (K, 8)
        if self.model.num_levels > 1:
            codes = codes[:, None]  # (K, 8) -> (K, 1, 8)
        with torch.inference_mode():
            mels = self.model.decode_mel(codes, 0 if self.model.speakers else None)  # (K, M, 8)
        mean = mels.float().mean(-1).T.numpy()  # (K, M, 8) -> (M, K)
        return media.heat_png(mean, LOG_MEL_FLOOR, max(float(mean.max()), LOG_MEL_FLOOR + 1), 4)

    def spectrogram_png(self, data: bytes, filename: str | None) -> bytes:
        """An uploaded clip's log-mel spectrogram at the model's settings (speech runs)."""
        if not self.audio:
            raise Refused("spectrogram: this is not a speech run")
        c = self.model.config
        with media.saved_upload(data, filename, media.audio_suffix(filename)) as path:
            wave = media.read_audio_upload(path, c.sample_rate, self.limits.seconds)
        x = torch.from_numpy(wave)[None]  # (T,) -> (1, T)
        frames = log_mel_frames(x, self.model.hop, c.sample_rate, c.n_mels)[0].numpy()  # (M, T')
        top = max(float(frames.max()), LOG_MEL_FLOOR + 1)
        return media.heat_png(frames, LOG_MEL_FLOOR, top, 2)

    # -- the test data the page picks from ----------------------------------------------------
    def examples(self) -> tuple[list[Example], str | None]:
        """The test split of the data the run trained on, as ``Example``s, and why there
        are none when its data cannot be read here (its note)."""
        data, note = self._test_data()
        if data is None:
            return [], note
        if self.modality == "frames":
            return [Example(i, None, None) for i in range(data.num_episodes)], None
        names = self._class_names()
        speakers = getattr(data, "speaker_names", None)
        out = []
        for i in range(len(data.labels) if data.labels is not None else _count(data)):
            label = None if data.labels is None else int(data.labels[i])
            spk = None if getattr(data, "speakers", None) is None else int(data.speakers[i])
            out.append(Example(
                i, None if label is None else (names[label] if names else str(label)),
                None if spk is None or speakers is None else speakers[spk],
            ))  # fmt: skip
        return out, None

    def example(self, index: int) -> tuple[bytes, str] | dict[str, Any]:
        """Test item ``index``: (PNG bytes, "image/png"), (WAV bytes, "audio/wav"), or for a
        frames run the codes of the first ``context_frames`` frames of test episode ``index``."""
        data, note = self._test_data()
        if data is None:
            raise Refused(f"examples: {note}", NOT_FOUND)
        count = data.num_episodes if self.modality == "frames" else _count(data)
        if not 0 <= index < count:
            raise Refused(f"example {index}: expected 0..{count - 1}", NOT_FOUND)
        if self.modality == "frames":
            n = max(CONTEXT_FRAMES, self.video_prior.context_frames)
            frames = data.frames[index, :n]  # (n, H, W, 3)
            return {"context": encode(self.model, frames).tolist()}
        if self.audio:
            return wav_bytes(data.waveforms[index], data.sample_rate), "audio/wav"
        return png_bytes(data.images[index]), "image/png"

    def _class_names(self) -> tuple[str, ...] | None:
        data, _ = self._test_data()
        return getattr(data, "class_names", None)

    def _test_data(self) -> tuple[Any, str | None]:
        """(data, None), or (None, why): read once, on first use, under the lock."""
        with self._lock:
            if self._examples is None:
                self._examples = self._read_test_data()
            return self._examples

    def _read_test_data(self) -> tuple[Any, str | None]:
        """Never downloads (the server makes no request to the network) and reads an image
        folder in this process (no worker processes for one image at a time)."""
        spec = self.saved.get("data")
        if not spec:
            return None, "the run records no data spec"
        try:
            if self.modality == "frames":
                return split(load_episodes(str(spec), self.model), "test"), None
            if self.audio:
                rate = self.model.config.sample_rate
                found = load_audio(
                    str(spec), "test", self.data_root, download=False, sample_rate=rate
                )
                return found, None
            resize = self.saved.get("resize")
            size = (int(resize[0]), int(resize[1])) if resize else None
            found = load_images(str(spec), "test", self.data_root, download=False,
                                resize=size, lazy=True, workers=0)  # fmt: skip
            return found, None
        except (VQVAEError, OSError, ValueError) as e:
            return None, f"the run's data {spec} cannot be read here ({_first_line(e)})"

    def _need_prior(self, command: str) -> Any:
        if self.prior is None:
            raise Refused(f"this run has no prior; train one with `{command}`", CONFLICT)
        return self.prior


def check_temperature(value: float) -> None:
    if not (0 < value <= 10):  # a negation, so that NaN fails too
        raise Refused(f"temperature: expected a number in (0, 10], got {value}")


def _count(data: Any) -> int:
    return len(data.waveforms) if hasattr(data, "waveforms") else len(data.images)


def _kind(array: np.ndarray) -> str:
    return {"f": "floats", "b": "booleans", "U": "strings", "O": "mixed or ragged lists"}.get(
        array.dtype.kind, str(array.dtype)
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__

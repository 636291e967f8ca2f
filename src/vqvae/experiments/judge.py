"""An independent judge of speech: which digit is said, and who says it.

Two linear classifiers (multinomial logistic regression, scikit-learn) on fixed-length
summaries of an utterance's MFCCs (``vqvae.spectral.mfcc``), trained on real recordings
only. They judge what the speech VQ-VAE produces (reconstructions, voice conversions,
samples of the prior) without sharing anything with it.

The summary of one utterance: the frames where its energy is within 40 dB of its loudest
frame (the speech, not the silence around it), then the mean and standard deviation of 20
MFCCs and of their frame-to-frame differences, and the mean MFCCs of each third of the
speech (the order of a word's sounds: "six" and "seven" share their start). 140 numbers.

Generated audio is drawn one 8-bit mu-law value at a time, so it carries the quantisation
noise of 8-bit mu-law and some sampling noise that real recordings lack; the judge is
trained on each real recording three times, as recorded, through a mu-law round trip and
with white noise 25 dB below it, so that such noise alone does not change its verdict
(its accuracy on real test recordings in each form: ``benchmarks/speech_quality.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vqvae.data import AudioDataset
from vqvae.mulaw import mulaw_decode, mulaw_encode
from vqvae.spectral import log_mel, mfccs_of

N_MFCC = 20
SEGMENTS = 3  # the speech is cut in thirds for the time-pooled means
SPEECH_DB = 40.0  # frames within this many dB of the loudest are speech
NOISE_DB = 25.0  # the white noise of the augmented copies, below the recording's power


def features(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """One utterance (T,) -> its summary (140,) (see the module doc)."""
    frames = log_mel(wave, sample_rate)  # (F, 40), natural log of the mel powers
    energy = np.logaddexp.reduce(frames, axis=1)  # (F,) log of each frame's total power
    c = mfccs_of(frames)[:, :N_MFCC]  # (F, 20)
    speech = c[energy >= energy.max() - SPEECH_DB / 10 * np.log(10)]
    if len(speech) < SEGMENTS:
        speech = c
    delta = np.diff(speech, axis=0) if len(speech) > 1 else np.zeros_like(speech)
    thirds = [part.mean(axis=0) for part in np.array_split(speech, SEGMENTS)]
    parts = [speech.mean(0), speech.std(0), delta.mean(0), delta.std(0), *thirds]
    return np.concatenate(parts).astype(np.float32)


def feature_matrix(waves: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
    return np.stack([features(w, sample_rate) for w in waves])  # (N, 140)


def mulaw_roundtrip(wave: np.ndarray) -> np.ndarray:
    """A waveform through 8-bit mu-law and back, as the WaveNet's output is quantised."""
    x = torch.from_numpy(np.clip(wave, -1, 1).astype(np.float32))
    return mulaw_decode(mulaw_encode(x)).numpy()


def with_noise(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White noise ``NOISE_DB`` below the recording's mean power."""
    power = float(np.mean(wave.astype(np.float64) ** 2)) + 1e-12
    noise = rng.standard_normal(len(wave)) * np.sqrt(power / 10 ** (NOISE_DB / 10))
    return np.clip(wave + noise, -1, 1).astype(np.float32)


def _classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=3000))


@dataclass
class SpeechJudge:
    """``fit`` on real recordings, then ``digits`` / ``speakers`` of any waveforms."""

    sample_rate: int
    speaker_names: tuple[str, ...]
    digit_model: object
    speaker_model: object

    @classmethod
    def fit(cls, train: AudioDataset, augment: bool = True, seed: int = 0) -> SpeechJudge:
        if train.labels is None or train.speakers is None or train.speaker_names is None:
            raise ValueError(f"{train.name}: the judge needs labelled recordings with speakers")
        rng = np.random.default_rng(seed)
        waves = list(train.waveforms)
        if augment:
            waves += [mulaw_roundtrip(w) for w in train.waveforms]
            waves += [with_noise(w, rng) for w in train.waveforms]
        copies = len(waves) // len(train)
        x = feature_matrix(waves, train.sample_rate)
        digits = _classifier().fit(x, np.tile(train.labels, copies))
        speakers = _classifier().fit(x, np.tile(train.speakers, copies))
        return cls(train.sample_rate, tuple(train.speaker_names), digits, speakers)

    def _x(self, waves: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        if sample_rate != self.sample_rate:
            raise ValueError(f"the judge hears {self.sample_rate} Hz audio, got {sample_rate} Hz")
        return feature_matrix(waves, sample_rate)

    def digits(self, waves: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        """The digit each waveform says: int64 (N,)."""
        return self.digit_model.predict(self._x(waves, sample_rate)).astype(np.int64)

    def speakers(self, waves: Sequence[np.ndarray], sample_rate: int) -> list[str]:
        """The name of who says each waveform."""
        ids = self.speaker_model.predict(self._x(waves, sample_rate))
        return [self.speaker_names[int(i)] for i in ids]


@dataclass(frozen=True)
class JudgeScore:
    digit_accuracy: float  # fraction of waveforms judged as the digit they should say
    speaker_accuracy: float  # fraction judged as the speaker they should sound like
    count: int


def score(
    judge: SpeechJudge,
    waves: Sequence[np.ndarray],
    sample_rate: int,
    digits: np.ndarray,
    speakers: Sequence[str],
) -> JudgeScore:
    """How many of ``waves`` the judge hears as ``digits`` said by ``speakers``."""
    x = judge._x(waves, sample_rate)
    said = judge.digit_model.predict(x)
    who = [judge.speaker_names[int(i)] for i in judge.speaker_model.predict(x)]
    return JudgeScore(
        digit_accuracy=float(np.mean(said == np.asarray(digits))),
        speaker_accuracy=float(np.mean([a == b for a, b in zip(who, speakers, strict=True)])),
        count=len(waves),
    )

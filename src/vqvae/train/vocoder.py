"""Training a vocoder (``vqvae.vocoders.Vocos``) on real audio: the log-mel frames of random
windows in, the windows themselves as the target.

Windows are cut as for the speech VQ-VAE (``vqvae.train.audio.random_windows``: offsets from
torch's global generator, saved in every checkpoint), so ``--resume`` is exact. The loss is
Vocos's without its discriminators (Siuzdak 2023, section 3.3): the L1 between the log-mel
of the output and of the input, plus a multi-resolution STFT loss. The held-out score is the
same log-mel L1 on whole test utterances.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vqvae.config import TrainConfig
from vqvae.data import AudioDataset, pad_to_hop
from vqvae.runs import RunDir
from vqvae.spectral import (
    MAGNITUDE_FLOOR,
    log_mel_frames,
    multi_resolution_stft_loss,
    phase_losses,
    stft,
)
from vqvae.torch_utils import eval_mode
from vqvae.train.audio import held_out_subset, random_windows, require_rate
from vqvae.train.loop import StepOutput, fit
from vqvae.train.vqvae import TrainResult, end_session, start_session
from vqvae.vocoders import Vocos, VocosConfig

WINDOW = 4096  # samples of each training window: half a second at 8 kHz
# `vqvae vocoder train`'s defaults, and a speech run's own vocoder's (``vocoder_steps``):
# 4,000 steps, about 10 minutes on one CPU thread beside another job (BENCHMARKS.md, 9a)
VOCODER_TRAIN = TrainConfig(
    steps=4000, batch_size=16, lr=1e-3, lr_schedule="cosine", warmup_steps=50, lr_final=0.05,
    checkpoint_every=250, eval_every=500, eval_limit=30,
)  # fmt: skip


def vocoder_train_config(steps: int, seed: int, **changes: Any) -> TrainConfig:
    """``VOCODER_TRAIN`` for ``steps`` steps (no warm-up longer than the run)."""
    train = replace(VOCODER_TRAIN, steps=steps, seed=seed, **changes)
    return replace(train, warmup_steps=0) if train.warmup_steps >= steps else train


@dataclass(frozen=True)
class VocoderLosses:
    loss: torch.Tensor  # mel_error + stft (+ magnitude + phase with losses="apnet")
    mel_error: torch.Tensor  # L1 of the log-mels (nats), Vocos's reconstruction loss
    stft: torch.Tensor  # multi-resolution spectral convergence + log-magnitude L1
    magnitude: torch.Tensor  # L1 of the head's log-magnitudes against the real STFT's
    phase: torch.Tensor  # the anti-wrapped phase losses of the head's phases

    def terms(self) -> dict[str, float]:
        """Every term but the total, as numbers: what each step logs to metrics.jsonl."""
        return {f.name: getattr(self, f.name).item() for f in fields(self) if f.name != "loss"}


def vocoder_losses(vocoder: Vocos, audio: torch.Tensor) -> VocoderLosses:
    """Audio (B, T), T a multiple of the hop -> the vocoder's losses on its own log-mel."""
    s = vocoder.settings
    mel = log_mel_frames(audio, s.hop, s.sample_rate, s.n_mels)  # (B, M, T')
    log_magnitude, phase = vocoder.spectrum(mel)  # (B, F, T') each
    out = vocoder.synthesize(log_magnitude, phase)  # (B, T)
    mel_error = F.l1_loss(log_mel_frames(out, s.hop, s.sample_rate, s.n_mels), mel)
    stft_loss = multi_resolution_stft_loss(out, audio)
    real = stft(audio, s.n_fft, s.hop)  # (B, F, T') complex
    magnitude = F.l1_loss(log_magnitude, real.abs().clamp(min=MAGNITUDE_FLOOR).log())
    phase_loss = phase_losses(phase, real.angle())
    loss = mel_error + stft_loss
    if vocoder.config.losses == "apnet":
        loss = loss + magnitude + phase_loss
    return VocoderLosses(loss, mel_error, stft_loss, magnitude, phase_loss)


@dataclass(frozen=True)
class VocoderEvaluation:
    mel_error: float  # mean absolute log-mel error over the held-out utterances (nats)
    num_utterances: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@torch.inference_mode()
def evaluate_vocoder(vocoder: Vocos, data: AudioDataset) -> VocoderEvaluation:
    s = vocoder.settings
    errors = []
    with eval_mode(vocoder):
        for wave in data.waveforms:  # one at a time: no padding to mask
            x = torch.from_numpy(pad_to_hop(wave, s.hop))[None]  # (1, T)
            errors.append(float(vocoder_losses(vocoder, x).mel_error))
    return VocoderEvaluation(float(np.mean(errors)) if errors else 0.0, len(errors))


def train_vocoder(
    run: RunDir,
    train_set: AudioDataset,
    test_set: AudioDataset,
    config: VocosConfig,
    train_config: TrainConfig,
    *,
    meta: dict[str, Any],
    resume: bool = False,
    progress: bool = True,
    device: str | None = None,
) -> TrainResult:
    """Train a Vocos vocoder on ``train_set``'s audio (at the config's sample rate)."""
    require_rate(train_set, config.sample_rate, "the vocoder")
    s = start_session(run, Vocos, config, train_config, meta, resume, device)
    vocoder = s.model
    held_out = held_out_subset(test_set, train_config.eval_limit)
    window = WINDOW // config.hop * config.hop
    latest: list[VocoderEvaluation] = []

    def step_fn(idx: torch.Tensor) -> StepOutput:
        vocoder.train()
        x = random_windows(train_set.waveforms, idx, window)[:, 0].to(s.device)  # (B, T)
        out = vocoder_losses(vocoder, x)
        return StepOutput(out.loss, out.terms())

    def evaluate(step: int) -> dict[str, Any]:
        latest[:] = [evaluate_vocoder(vocoder, held_out)]
        return latest[0].to_dict()

    result = fit(
        vocoder,
        s.optimizer,
        train_config,
        num_examples=len(train_set),
        step_fn=step_fn,
        run=run,
        evaluate=evaluate if len(held_out) else None,
        resume=resume,
        progress=progress,
        desc=f"vocoder {run.path.name}",
    )
    score_at_end = evaluate if len(held_out) else None
    return end_session(s, run, result.start_step, latest, score_at_end, train_config.steps)

"""Training the speech VQ-VAE (``AudioVQVAE``) on random windows of utterances.

Each step takes the utterances that ``batch_indices`` picks and cuts one window of
``input_size[0]`` samples from each at a random offset (an utterance shorter than the window
sits at a random place in silence). The offsets come from torch's global generator, whose
state every checkpoint saves, so ``--resume`` draws the very same windows as a run never
stopped (``tests/test_audio_model.py``). The WaveNet decoder learns by teacher forcing
(van den Oord et al. 2016, section 2.1); the held-out evaluation scores whole utterances.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vqvae.config import TrainConfig
from vqvae.data import AudioDataset
from vqvae.errors import RunError
from vqvae.inference.audio import AudioEvaluation, evaluate_audio, speaker_ids
from vqvae.models import AudioVQVAE, AudioVQVAEConfig
from vqvae.runs import RunDir
from vqvae.train.loop import StepOutput, fit
from vqvae.train.vqvae import TrainResult, end_session, start_session


def random_windows(
    waveforms: tuple[np.ndarray, ...], idx: torch.Tensor, window: int
) -> torch.Tensor:
    """One window of ``window`` samples from each utterance ``idx``: (B, 1, window).

    Offsets are drawn from torch's global generator (one number per utterance)."""
    out = torch.zeros(len(idx), 1, window)
    for row, i in enumerate(idx.tolist()):
        x = waveforms[i]
        slack = abs(len(x) - window)
        offset = int(torch.randint(slack + 1, ()))
        if len(x) >= window:
            out[row, 0] = torch.from_numpy(x[offset : offset + window])
        else:  # the whole utterance, somewhere in a window of silence
            out[row, 0, offset : offset + len(x)] = torch.from_numpy(x)
    return out


def audio_step(
    model: AudioVQVAE, trained: torch.nn.Module, data: AudioDataset, speakers, device
) -> Callable[[torch.Tensor], StepOutput]:
    window = model.config.input_size[0]
    mel = model.config.decoder == "mel"

    def step_fn(idx: torch.Tensor) -> StepOutput:
        model.train()
        x = random_windows(data.waveforms, idx, window).to(device)
        spk = None if speakers is None else speakers[idx].to(device)
        out = trained(x, spk)
        recon = (
            {"mel_error": out.recon_loss.item()}
            if mel
            else {"bits_per_sample": out.recon_loss.item() / np.log(2)}
        )
        return StepOutput(
            out.loss,
            {
                **recon,
                "vq_loss": out.vq_loss.item(),
                "spectral_loss": out.spectral_loss.item(),
                "speaker_adversary": out.adversary_loss.item(),
                "perplexity": out.perplexity.item(),
                "code_usage": torch.unique(out.codes).numel() / model.num_codes,
                "restarted": out.quantizer.num_restarted,
            },
        )

    return step_fn


def require_rate(data: AudioDataset, rate: int, who: str) -> None:
    """One line if ``data`` is not at the ``rate`` (Hz) that ``who`` was built for."""
    if data.sample_rate != rate:
        raise RunError(f"{data.name}: audio at {data.sample_rate} Hz, {who} expects {rate} Hz")


def train_audio_vqvae(
    run: RunDir,
    train_set: AudioDataset,
    test_set: AudioDataset,
    model_config: AudioVQVAEConfig,
    train_config: TrainConfig,
    *,
    meta: dict[str, Any],
    resume: bool = False,
    progress: bool = True,
    device: str | None = None,
) -> TrainResult:
    """Train on ``train_set`` (at the model's sample rate, speakers named as in the config),
    scoring the first ``eval_limit`` test utterances at every evaluation."""
    require_rate(train_set, model_config.sample_rate, "the model")
    s = start_session(run, AudioVQVAE, model_config, train_config, meta, resume, device)
    model = s.model
    ids = speaker_ids(model, train_set)
    speakers = None if ids is None else torch.from_numpy(ids)
    held_out = held_out_subset(test_set, train_config.eval_limit)
    latest: list[AudioEvaluation] = []

    def evaluate(step: int) -> dict[str, Any]:
        latest[:] = [evaluate_audio(model, held_out)]
        return latest[0].to_dict()

    result = fit(
        model,
        s.optimizer,
        train_config,
        num_examples=len(train_set),
        step_fn=audio_step(model, s.trained, train_set, speakers, s.device),
        run=run,
        evaluate=evaluate if len(held_out) else None,
        resume=resume,
        progress=progress,
        trained=s.trained,
        desc=f"train {run.path.name}",
    )
    score_at_end = evaluate if len(held_out) else None
    return end_session(s, run, result.start_step, latest, score_at_end, train_config.steps)


def held_out_subset(data: AudioDataset, n: int) -> AudioDataset:
    """At most ``n`` utterances spread over the data set (every k-th), for evaluation."""
    if len(data) <= n:
        return data
    return data.subset(np.linspace(0, len(data) - 1, n).round().astype(np.int64))

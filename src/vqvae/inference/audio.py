"""Batched inference with a speech VQ-VAE (``vqvae.models.AudioVQVAE``): encode utterances
of any length into code sequences, generate waveforms from codes with any speaker (a
reconstruction with the utterance's own speaker, a voice conversion with another), and
score held-out audio.

Utterances differ in length. Encoding pads each with silence to the longest one of the set,
rounded up to the encoder's hop (64 samples), so a data set's codes are one array
``(N, T')`` with ``lengths`` (codes per utterance); the padding's codes are those of
silence, which is what a prior over these arrays learns to end an utterance with.
Generation runs the WaveNet over a batch of clips at once (sorted by length, so that a
batch wastes little on padding) and cuts each result to its own length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from vqvae import metrics
from vqvae.codefile import AudioCodes
from vqvae.data.audio import AudioDataset, pad_to_hop
from vqvae.mulaw import mulaw_encode
from vqvae.priors import Condition
from vqvae.spectral import log_mel_frames
from vqvae.torch_utils import eval_mode, module_device

ENCODE_BATCH = 32  # utterances per encoder pass
GENERATE_BATCH = 64  # clips generated side by side (the cached WaveNet's rows)
SCORE_BATCH = 8  # utterances per teacher-forced pass


@dataclass(frozen=True)
class AudioEvaluation:
    # a WaveNet decoder's teacher-forced -log2 p(x_t | x_<t, z_q) over the real samples, or a
    # mel decoder's mean absolute log-mel error (nats) over the real frames; the other None
    bits_per_sample: float | None
    perplexity: float  # of the code histogram over the utterances' codes
    code_usage: float  # fraction of the K codes used
    codes_per_second: float  # sample_rate / hop
    bit_rate: float  # codes_per_second * log2(K) * levels, bits per second
    num_utterances: int
    mel_error: float | None = None

    def to_dict(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def speaker_ids(model, dataset: AudioDataset, required: bool = True) -> np.ndarray | None:
    """The data set's speakers as the model's ids (matched by name); None for a model without
    speakers, or for data without speakers unless ``required``. A speaker the model never
    heard is a ``ValueError`` naming it."""
    if not model.speakers:
        return None
    if dataset.speakers is None or dataset.speaker_names is None:
        if not required:
            return None
        raise ValueError(
            f"{dataset.name}: has no speakers, but the model needs one per utterance "
            f"({', '.join(model.speakers)}); pick one with --speaker"
        )
    unknown = sorted(set(dataset.speaker_names) - set(model.speakers))
    used = {dataset.speaker_names[i] for i in np.unique(dataset.speakers)}
    if used & set(unknown):
        raise ValueError(
            f"{dataset.name}: speaker(s) {', '.join(sorted(used & set(unknown)))} unknown to "
            f"the model, which knows {', '.join(model.speakers)}; pick one with --speaker"
        )
    table = np.array([model.speakers.index(s) if s in model.speakers else -1
                      for s in dataset.speaker_names], dtype=np.int64)  # fmt: skip
    return table[dataset.speakers]


def _bar(items, desc: str, total: int):
    return tqdm(items, desc=desc, total=total, unit="batch", leave=False, disable=None)


@torch.inference_mode()
def encode_audio(
    model, dataset: AudioDataset, length: int | None = None, batch_size: int = ENCODE_BATCH
) -> AudioCodes:
    """Every utterance -> its codes (N, T'), each padded with silence's codes to ``length``
    codes (default: the longest utterance's); longer utterances are cut to ``length``."""
    hop, device = model.hop, module_device(model)
    lengths = np.array([-(-len(x) // hop) for x in dataset.waveforms], dtype=np.int64)
    if length is None:
        length = int(lengths.max())
    width = length * hop
    parts = []
    with eval_mode(model):
        starts = range(0, len(dataset), batch_size)
        for start in _bar(starts, "encoding", len(starts)):
            chunk = dataset.waveforms[start : start + batch_size]
            x = np.stack([pad_to_hop(w[:width], hop, width) for w in chunk])  # (B, T)
            codes = model.encode(torch.from_numpy(x).unsqueeze(1).to(device))  # (B, 1, T)
            parts.append(codes.cpu().numpy())
    return AudioCodes(
        codes=np.concatenate(parts).astype(np.int64),
        lengths=np.minimum(lengths, length),
        hop=hop,
        sample_rate=model.config.sample_rate,
        labels=dataset.labels,
        speakers=speaker_ids(model, dataset, required=False),
    )


@torch.inference_mode()
def generate_audio(
    model,
    codes: np.ndarray,
    lengths: Sequence[int] | np.ndarray,
    speakers: np.ndarray | None,
    *,
    seed: int = 0,
    temperature: float = 1.0,
    batch_size: int = GENERATE_BATCH,
    progress: bool = True,
) -> list[np.ndarray]:
    """Codes (N, T') -> N float32 waveforms of ``lengths[i] * hop`` samples each, drawn by
    the WaveNet with speaker ``speakers[i]`` (the model's ids; None without speakers).

    The clips go through in batches of similar length; one generator seeded by ``seed`` draws
    for each batch in turn, so the same call gives the same audio."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")  # longest first: the bar's estimate is honest
    device = module_device(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    out: list[np.ndarray | None] = [None] * len(lengths)
    starts = range(0, len(order), batch_size)
    bar = _bar(starts, "generating", len(starts)) if progress else starts
    with eval_mode(model):
        for start in bar:
            rows = order[start : start + batch_size]
            n = int(lengths[rows].max())
            c = torch.as_tensor(codes[rows][..., :n], device=device)  # (b, T'), the batch's
            spk = None if speakers is None else torch.as_tensor(speakers[rows], device=device)
            audio = model.decode_codes(c, spk, temperature=temperature, generator=generator)
            audio = audio[:, 0].float().cpu().numpy()  # (b, 1, n * hop) -> (b, n * hop)
            for row, wave in zip(rows, audio, strict=True):
                out[row] = np.ascontiguousarray(wave[: lengths[row] * model.hop])
    return out  # type: ignore[return-value]


def convert(
    model, dataset: AudioDataset, speaker: str | None, *, seed: int = 0, **kw
) -> tuple[AudioCodes, list[np.ndarray]]:
    """Encode every utterance and decode it with ``speaker`` (a name the model knows), or
    with its own speaker when ``speaker`` is None: a reconstruction. Waveforms are cut to
    each utterance's own length."""
    # whose voice each utterance gets, checked before any work: its own (every utterance
    # needs a speaker the model knows), or the one asked for
    if speaker is None:
        speakers = speaker_ids(model, dataset)
    else:
        speakers = model.speaker_ids(speaker, len(dataset)).cpu().numpy()  # (N,) one id
    codes = encode_audio(model, dataset)
    waves = generate_audio(model, codes.codes, codes.lengths, speakers, seed=seed, **kw)
    return codes, [w[: len(x)] for w, x in zip(waves, dataset.waveforms, strict=True)]


@torch.inference_mode()
def evaluate_audio(model, dataset: AudioDataset, batch_size: int = SCORE_BATCH) -> AudioEvaluation:
    """Teacher-forced bits per sample (a WaveNet decoder) or the log-mel error (a mel decoder)
    over the utterances' real samples or frames, and code statistics."""
    hop, device = model.hop, module_device(model)
    k = model.config.wavenet.num_classes
    mel = model.config.decoder == "mel"
    nats, count, code_parts = 0.0, 0, []
    order = np.argsort([len(x) for x in dataset.waveforms], kind="stable")
    speakers = speaker_ids(model, dataset)
    with eval_mode(model):
        starts = range(0, len(order), batch_size)
        for start in _bar(starts, "scoring", len(starts)):
            rows = order[start : start + batch_size]
            waves = [dataset.waveforms[i] for i in rows]
            width = -(-max(len(w) for w in waves) // hop) * hop
            x = torch.from_numpy(np.stack([pad_to_hop(w, hop, width) for w in waves]))
            x = x.unsqueeze(1).to(device)  # (b, 1, T)
            spk = None if speakers is None else torch.as_tensor(speakers[rows], device=device)
            out = model(x, spk)
            lengths = torch.tensor([len(w) for w in waves], device=device)
            if mel:  # (b, M, T'): per frame, the mean over the mels
                c = model.config
                target = log_mel_frames(x[:, 0], hop, c.sample_rate, c.n_mels)
                err = (out.decoder_params - target).abs().mean(dim=1)  # (b, T')
                real = torch.arange(err.shape[1], device=device) < -(-lengths // hop)[:, None]
            else:
                err = F.cross_entropy(
                    out.decoder_params, mulaw_encode(x[:, 0], k), reduction="none"
                )
                # (b, T): True on the utterance, False on its padding
                real = torch.arange(width, device=device) < lengths.unsqueeze(1)
            nats += float(err[real].sum())
            count += int(real.sum())
            for codes, w in zip(out.codes.cpu().numpy(), waves, strict=True):
                code_parts.append(codes[..., : -(-len(w) // hop)].reshape(-1))
    counts = metrics.code_histogram(np.concatenate(code_parts), model.num_codes)
    return AudioEvaluation(
        bits_per_sample=None if mel else nats / max(count, 1) / math.log(2),
        mel_error=nats / max(count, 1) if mel else None,
        perplexity=float(metrics.perplexity(counts)),
        code_usage=metrics.code_usage(counts),
        codes_per_second=model.codes_per_second,
        bit_rate=model.bit_rate,
        num_utterances=len(dataset),
    )


@torch.inference_mode()
def silence_codes(model) -> np.ndarray:
    """The codes the encoder gives silence: those of the middle of a zero waveform (its ends
    see the encoder's own zero padding)."""
    x = torch.zeros(1, 1, 32 * model.hop, device=module_device(model))
    with eval_mode(model):
        codes = model.encode(x)[0, ..., 8:-8]  # (T') or (Q, T') -> away from the edges
    return np.unique(codes.cpu().numpy())


def speech_lengths(codes: np.ndarray, silence: np.ndarray) -> np.ndarray:
    """Codes (N, T') -> the length of each sequence without its trailing silence: the last
    position whose code is not a silence code, plus one (at least 1)."""
    speech = ~np.isin(codes, silence)  # (N, T')
    last = np.where(speech.any(axis=1), codes.shape[1] - np.argmax(speech[:, ::-1], axis=1), 1)
    return last.astype(np.int64)


@dataclass(frozen=True, eq=False)
class SpeechSamples:
    codes: np.ndarray  # int64 (N, T'): what the prior drew
    lengths: np.ndarray  # int64 (N,): codes up to the end of speech (trailing silence cut)
    waveforms: list[np.ndarray]  # N float32 (lengths[i] * hop,)


@torch.inference_mode()
def sample_speech(
    model,
    prior,
    n: int,
    label: int | None = None,
    speaker: str | None = None,
    *,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    **options,
) -> SpeechSamples:
    """Stage 3 for speech: ``n`` code sequences from the prior (given the label and, for a
    prior conditioned on speakers, the speaker), cut at their trailing silence and spoken by
    the WaveNet with ``speaker``."""
    c = prior.config
    if model.speakers and speaker is None:
        raise ValueError(f"a speaker is needed: one of {', '.join(model.speakers)}")
    spk = None if speaker is None else int(model.speaker_ids(speaker, 1)[0])
    labels = None if label is None else torch.full((n,), label, dtype=torch.long)
    vector = None
    if c.cond_dim:
        vector = F.one_hot(torch.full((n,), spk, dtype=torch.long), c.cond_dim).float()
    generator = torch.Generator().manual_seed(seed)
    cond = Condition(labels=labels, vector=vector)
    codes = prior.sample(
        n, cond, temperature=temperature, top_k=top_k, generator=generator, **options
    )
    codes = codes.cpu().numpy()
    lengths = speech_lengths(codes, silence_codes(model))
    speakers = None if spk is None else np.full(n, spk, dtype=np.int64)
    waves = generate_audio(model, codes, lengths, speakers, seed=seed)
    return SpeechSamples(codes, lengths, waves)

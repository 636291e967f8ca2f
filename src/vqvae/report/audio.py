"""The report of a speech run (``AudioVQVAE``): what the codes keep and what the WaveNet makes
of them, to look at and to listen to.

A few test recordings (the first of each speaker, up to six) are encoded and decoded with
their own speaker (reconstructions) and with the next speaker's id (conversions); the page
shows their waveforms and log-mel spectrograms side by side, plays every WAV (written to
``RUN/report/audio/``), draws the code sequence under a spectrogram, and counts code usage
over the held-out recordings. With a trained prior, one sampled utterance per digit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vqvae import metrics
from vqvae.audio_inference import convert, encode_audio, sample_speech
from vqvae.data import AudioDataset, load_audio, write_wav
from vqvae.report import audio_figures, figures
from vqvae.report.html import Section, audio, esc, figure, note, stats
from vqvae.runs import RunDir, load_prior, load_run_model

MAX_EXAMPLES = 6
USAGE_LIMIT = 300  # held-out recordings encoded for the code-usage histogram
MULAW_BITS_PER_SECOND = 8  # x the sample rate: the 8-bit mu-law the WaveNet models


@dataclass
class AudioRun:
    """What the sections share; ``missing`` says why a part cannot be drawn."""

    run: RunDir
    saved: dict[str, Any]
    records: list[dict[str, Any]]
    model: Any = None
    test: AudioDataset | None = None
    missing: str = ""
    prior: Any = None
    prior_missing: str = ""
    clips: dict[str, list[np.ndarray]] = field(default_factory=dict)
    examples: AudioDataset | None = None
    targets: list[str] = field(default_factory=list)


def load(state: AudioRun, spec: str | None, data_root: str | None, one_line) -> None:
    run = state.run
    if not run.weights_file.is_file():
        state.missing = "no trained weights (model.safetensors): is training finished?"
        return
    state.model = load_run_model(run)
    if not spec:
        state.missing = "config.json records no data spec; pass --data"
        return
    try:
        rate = state.model.config.sample_rate
        state.test = load_audio(spec, "test", data_root, download=False, sample_rate=rate)
    except Exception as e:  # noqa: BLE001
        state.missing = (
            f"the held-out recordings of {spec!r} could not be loaded ({one_line(e)}); "
            f"pass --data-root (or set VQVAE_DATA) to draw them"
        )
        return
    if run.prior.weights_file.is_file():
        try:
            state.prior = load_prior(run)
        except Exception as e:  # noqa: BLE001
            state.prior_missing = f"the prior could not be loaded: {one_line(e)}"
    else:
        state.prior_missing = f"no trained prior; train one with `vqvae prior train {run.path}`"
    _make_clips(state)


def _make_clips(state: AudioRun) -> None:
    """The examples, their reconstructions and conversions, in two batched generations."""
    test, model = state.test, state.model
    if test.speakers is not None and model.speakers:
        firsts = [int(np.flatnonzero(test.speakers == s)[0]) for s in np.unique(test.speakers)]
    else:
        firsts = list(range(len(test)))
    state.examples = ex = test.subset(firsts[:MAX_EXAMPLES])
    _, recons = convert(model, ex, None, seed=0, progress=False)
    state.clips = {"original": list(ex.waveforms), "reconstruction": recons}
    if len(model.speakers) > 1 and ex.speakers is not None:
        own = [ex.speaker_names[i] for i in ex.speakers]
        state.targets = [model.speakers[(model.speakers.index(s) + 1) % len(model.speakers)]
                         for s in own]  # fmt: skip
        converted = []
        for i, target in enumerate(state.targets):  # one speaker per call; a handful of clips
            _, waves = convert(model, ex.subset([i]), target, seed=i, progress=False)
            converted += waves
        state.clips["conversion"] = converted


def _speaker(state: AudioRun, i: int) -> str:
    ex = state.examples
    return ex.speaker_names[ex.speakers[i]] if ex.speakers is not None else "?"


def _wav(state: AudioRun, out: Path, kind: str, i: int, wave: np.ndarray) -> str:
    name = f"audio/{kind}-{i}.wav"
    write_wav(out / name, wave, state.model.config.sample_rate)
    return name


def header(state: AudioRun) -> str:
    tests = [r for r in state.records if r.get("split") == "test"]
    cards = []
    if tests:
        t = tests[-1]
        cards += [("bits / sample (teacher-forced)", f"{t['bits_per_sample']:.3f}"),
                  ("perplexity", f"{t['perplexity']:.1f}"),
                  ("codes used", f"{t['code_usage']:.0%}")]  # fmt: skip
    if state.model is not None:
        c, m = state.model.config, state.model
        bits = c.sample_rate / m.hop * np.log2(m.num_codes) * m.num_levels
        raw = c.sample_rate * MULAW_BITS_PER_SECOND
        cards += [("codes / second", f"{c.sample_rate / m.hop:g}"), ("bit/s", f"{bits:,.0f}"),
                  ("smaller than 8-bit mu-law", f"{raw / bits:.0f}×")]  # fmt: skip
    return stats(cards)


def section_curves(state: AudioRun, out: Path) -> tuple[str, str]:
    if not state.records:
        return "", note("no metrics.jsonl yet")
    k = state.saved.get("config", {}).get("quantizer", {}).get("num_codes")
    figures.training_curves(state.records, k, out / "curves.png")
    lead = ("Teacher-forced: the WaveNet predicts each 8-bit mu-law sample from the true past "
            "and the codes; 8 bits per sample is a uniform guess.")  # fmt: skip
    return lead, figure("curves.png", "training curves")


def section_listen(state: AudioRun, out: Path) -> tuple[str, str]:
    if state.missing:
        return "", note(state.missing)
    kinds = [k for k in ("original", "reconstruction", "conversion") if k in state.clips]
    head = "".join(f"<th>{esc(k)}</th>" for k in ["recording", *kinds])
    rows = []
    for i, name in enumerate(state.examples.files):
        cells = [f"<td>{esc(name)}</td>"]
        for kind in kinds:
            src = _wav(state, out, kind, i, state.clips[kind][i])
            who = state.targets[i] if kind == "conversion" else _speaker(state, i)
            cells.append(f"<td>{audio(src, f'spoken by {who}')}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    lead = ("Each recording is encoded into 125 codes per second and decoded by the WaveNet, "
            "sample by sample: with its own speaker's id (reconstruction), and with the next "
            "speaker's id (voice conversion: the same codes, another voice).")  # fmt: skip
    return lead, f'<table class="players"><tr>{head}</tr>{"".join(rows)}</table>'


def section_spectrograms(state: AudioRun, out: Path) -> tuple[str, str]:
    if state.missing:
        return "", note(state.missing)
    rate, parts = state.model.config.sample_rate, []
    for i, name in enumerate(state.examples.files):
        waves, titles = [], []
        for kind, clips in state.clips.items():
            waves.append(clips[i])
            who = state.targets[i] if kind == "conversion" else _speaker(state, i)
            titles.append(f"{kind} ({who})")
        png = f"spectrogram-{i}.png"
        audio_figures.waveforms_and_spectrograms(waves, titles, rate, out / png)
        parts.append(figure(png, f"waveforms and log-mel spectrograms of {name}", name))
    lead = "Waveforms (top) and log-mel spectrograms (below) on the same time axis."
    return lead, "".join(parts)


def section_codes(state: AudioRun, out: Path) -> tuple[str, str]:
    if state.missing:
        return "", note(state.missing)
    found = encode_audio(state.model, state.examples)
    parts = []
    for i in range(min(2, len(found.codes))):
        codes = found.codes[i, ..., : found.lengths[i]]
        codes = codes[0] if codes.ndim == 2 else codes  # residual levels: the first
        png = f"codes-{i}.png"
        title = f"{state.examples.files[i]}: log-mel spectrogram"
        wave = state.examples.waveforms[i]
        rate = state.model.config.sample_rate
        audio_figures.codes_under_spectrogram(wave, codes, found.hop, rate, title, out / png)
        parts.append(figure(png, f"the codes of {state.examples.files[i]}"))
    return "Speech as a sequence of integers: one code per 64 samples (8 ms).", "".join(parts)


def section_usage(state: AudioRun, out: Path) -> tuple[str, str]:
    if state.missing:
        return "", note(state.missing)
    test = state.test.subset(range(min(USAGE_LIMIT, len(state.test))))
    found = encode_audio(state.model, test)
    level0 = found.codes if found.codes.ndim == 2 else found.codes[:, 0]
    own = np.concatenate([c[:n] for c, n in zip(level0, found.lengths, strict=True)])
    counts = metrics.code_histogram(own, state.model.num_codes)
    figures.code_usage_histogram(counts, len(test), out / "usage.png", unit="recordings")
    return "", figure("usage.png", "code usage over the held-out recordings")


def section_samples(state: AudioRun, out: Path) -> tuple[str, str]:
    if state.missing or state.prior is None:
        return "", note(state.missing or state.prior_missing)
    model, prior, cells = state.model, state.prior, []
    classes = prior.config.num_classes
    for digit in range(classes or 1):
        speaker = model.speakers[digit % len(model.speakers)] if model.speakers else None
        got = sample_speech(model, prior, 1, digit if classes else None, speaker, seed=digit)
        src = _wav(state, out, "sample", digit, got.waveforms[0])
        label = f"digit {digit}, " if classes else ""
        cells.append(audio(src, f"{label}spoken by {speaker or 'the model'}"))
    lead = ("Code sequences drawn from the prior (given the digit and the speaker) and spoken "
            "by the WaveNet: new utterances, no recording involved.")  # fmt: skip
    return lead, f'<div class="clips">{"".join(cells)}</div>'


SECTIONS = (
    ("curves", "Training curves", section_curves),
    ("listen", "Listen: originals, reconstructions, conversions", section_listen),
    ("spectrograms", "Waveforms and spectrograms", section_spectrograms),
    ("codes", "Speech as codes", section_codes),
    ("usage", "Code usage", section_usage),
    ("samples", "Samples from the prior", section_samples),
)


def sections(state: AudioRun, out: Path, guarded) -> list[Section]:
    (out / "audio").mkdir(parents=True, exist_ok=True)
    for old in (out / "audio").glob("*.wav"):  # a clip that cannot be made now: no stale one
        old.unlink()
    return [guarded(anchor, title, fn, state, out) for anchor, title, fn in SECTIONS]

"""The report of a speech run (``AudioVQVAE``, the paper's section 4.3): what the codes keep
and what the decoder (a WaveNet, or a mel decoder and its vocoder) makes of them, to look at
and to listen to. A mel run also shows its predicted log-mel frames beside the true ones.

A few test recordings (the first of each speaker the model knows, up to six) are encoded once
and decoded in one batched WaveNet generation, each with its own speaker's id (the
reconstructions) and with the next speaker's (the voice conversions). The page plays every
WAV (written to ``RUN/report/audio/``), draws the waveforms and log-mel spectrograms side by
side and the code sequence under a spectrogram, counts code usage over the held-out
recordings, sets the codes' bit rate against 8-bit mu-law, and, with a trained prior, speaks
one sampled utterance per class.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqvae import metrics
from vqvae.codefile import AudioCodes
from vqvae.data import AudioDataset, load_audio, pad_to_hop, write_wav
from vqvae.inference.audio import encode_audio, generate_audio, sample_speech
from vqvae.registry import QUANTIZERS
from vqvae.report import audio_figures, figures, runinfo
from vqvae.report.html import Section, audio, esc, figure, guarded, note, one_line, run_header
from vqvae.report.html import table as html_table
from vqvae.runs import RunDir, load_prior, load_run_model
from vqvae.spectral import log_mel_frames

MAX_EXAMPLES = 6
NUM_CODE_FIGURES = 2
USAGE_LIMIT = 300  # held-out recordings encoded for the code-usage histogram
MULAW_BITS = 8  # bits per sample of the 8-bit mu-law the WaveNet models
MULAW = f"{MULAW_BITS}-bit mu-law (what the WaveNet models)"
PCM_BITS = 16


@dataclass
class AudioRun:
    """What the sections share; each ``*_missing`` says why a part cannot be drawn."""

    run: RunDir
    saved: dict[str, Any]
    records: list[dict[str, Any]]
    model: Any = None  # AudioVQVAE
    test: AudioDataset | None = None
    missing: str = ""  # no model or no held-out recordings: most sections
    examples: AudioDataset | None = None
    codes: AudioCodes | None = None  # the examples' codes
    clips: dict[str, list[np.ndarray]] = field(default_factory=dict)  # kind -> one per example
    voices: dict[str, list[str]] = field(default_factory=dict)  # kind -> who speaks each clip
    clips_missing: str = ""
    prior: Any = None
    prior_meta: dict[str, Any] | None = None
    prior_metrics: dict[str, Any] | None = None
    prior_missing: str = ""

    @property
    def rate(self) -> int:
        return self.model.config.sample_rate


def build(
    run: RunDir, saved: dict[str, Any], spec: str | None, data_root: str | None, out: Path
) -> tuple[list[Section], str]:
    """The sections and the header of a speech run's page, its WAVs written to ``out/audio``."""
    state = AudioRun(run, saved, run.read_metrics())
    try:
        _load(state, spec, data_root)
    except Exception as e:  # noqa: BLE001
        state.missing = f"the model could not be loaded: {one_line(e)}"
    (out / "audio").mkdir(parents=True, exist_ok=True)
    for old in (out / "audio").glob("*.wav"):  # a clip that cannot be made now: no stale one
        old.unlink()
    sections = [guarded(anchor, title, fn, state, out) for anchor, title, fn in SECTIONS
                if anchor not in MEL_ONLY or _is_mel(state)]  # fmt: skip
    return sections, header(state)


# -- loading ----------------------------------------------------------------------------------
def _load(state: AudioRun, spec: str | None, data_root: str | None) -> None:
    run = state.run
    _load_prior(state)
    if not run.weights_file.is_file():
        state.missing = "no trained weights (model.safetensors): is training finished?"
        return
    state.model = load_run_model(run)
    if not spec:
        state.missing = "config.json records no data spec; pass --data"
        return
    try:
        rate = state.rate
        state.test = load_audio(spec, "test", data_root, download=False, sample_rate=rate)
    except Exception as e:  # noqa: BLE001
        state.missing = (
            f"the held-out recordings of {spec!r} could not be loaded ({one_line(e)}); "
            f"pass --data-root (or set VQVAE_DATA) to draw them"
        )
        return
    try:
        _make_clips(state)
    except Exception as e:  # noqa: BLE001
        state.clips_missing = f"the examples could not be generated: {one_line(e)}"


def _load_prior(state: AudioRun) -> None:
    folder = state.run.prior
    if not folder.weights_file.is_file():
        state.prior_missing = (
            f"no trained prior; train one with `vqvae prior train {state.run.path}`"
        )
        return
    try:
        state.prior_meta = folder.read_config()
        if (folder.path / "metrics.json").is_file():
            state.prior_metrics = json.loads((folder.path / "metrics.json").read_text())
        state.prior = load_prior(state.run)
    except Exception as e:  # noqa: BLE001
        state.prior_missing = f"the prior could not be loaded: {one_line(e)}"


def _pick_examples(test: AudioDataset, speakers: tuple[str, ...]) -> list[int]:
    """The first recording of each speaker the model knows (any recordings for a model
    without speakers), at most ``MAX_EXAMPLES``."""
    if not speakers:
        return list(range(min(MAX_EXAMPLES, len(test))))
    if test.speakers is None or test.speaker_names is None:
        raise ValueError(f"{test.name}: the recordings name no speakers, the model needs one")
    known = [s for s in np.unique(test.speakers) if test.speaker_names[s] in speakers]
    if not known:
        raise ValueError(
            f"{test.name}: no held-out speaker is one the model knows ({', '.join(speakers)})"
        )
    return [int(np.flatnonzero(test.speakers == s)[0]) for s in known][:MAX_EXAMPLES]


def _make_clips(state: AudioRun) -> None:
    """Encode the examples once; generate every reconstruction and conversion in one call."""
    model = state.model
    ex = state.examples = state.test.subset(_pick_examples(state.test, model.speakers))
    found = state.codes = encode_audio(model, ex)  # codes (n, T'), speakers: the model's ids
    n, names = len(ex), model.speakers
    codes, lengths, ids = found.codes, found.lengths, found.speakers
    kinds = ["reconstruction"]
    own = [names[i] for i in ids] if ids is not None else ["the model"] * n
    state.voices = {"original": own, "reconstruction": own}
    if ids is not None and len(names) > 1:
        targets = (ids + 1) % len(names)  # the next speaker: same codes, another voice
        codes = np.concatenate([codes, codes])  # (2n, T') or (2n, Q, T')
        lengths, ids = np.concatenate([lengths, lengths]), np.concatenate([ids, targets])
        kinds.append("conversion")
        state.voices["conversion"] = [names[i] for i in targets]
    waves = generate_audio(model, codes, lengths, ids, seed=0, progress=False)
    state.clips = {"original": list(ex.waveforms)}
    for j, kind in enumerate(kinds):  # each cut to its recording's own length
        part = waves[j * n : (j + 1) * n]
        state.clips[kind] = [w[: len(x)] for w, x in zip(part, ex.waveforms, strict=True)]


# -- numbers ----------------------------------------------------------------------------------
def _code_rate(state: AudioRun) -> tuple[float, float] | None:
    """(codes per second, bits per second of fixed-length codes: log2 K bits a code)."""
    if state.model is not None:
        return state.model.codes_per_second, state.model.bit_rate
    test = runinfo.last_test(state.records) or {}
    if "codes_per_second" in test and "bit_rate" in test:
        return float(test["codes_per_second"]), float(test["bit_rate"])
    return None


def _sample_rate(state: AudioRun) -> int | None:
    rate = state.saved.get("config", {}).get("sample_rate")
    return int(rate) if rate else None


def bit_rates(state: AudioRun) -> list[tuple[str, float]]:
    """Bits per second of the same speech written in several ways: as samples (16-bit PCM,
    8-bit mu-law), then as codes (fixed-length, histogram entropy, prior entropy)."""
    rate, code_rate = _sample_rate(state), _code_rate(state)
    rows: list[tuple[str, float]] = []
    if rate:
        rows.append((f"{PCM_BITS}-bit PCM", rate * PCM_BITS))
        rows.append((MULAW, rate * MULAW_BITS))
    if code_rate is None:
        return rows
    per_second, bits = code_rate
    levels = state.model.num_levels if state.model is not None else 1
    rows.append(("codes, fixed length (log2 K bits each)", bits))
    test = runinfo.last_test(state.records) or {}
    if test.get("perplexity", 0) > 1:  # one code in use: 0 bits
        entropy = math.log2(test["perplexity"]) * per_second * levels
        rows.append(("codes, entropy of their held-out histogram", entropy))
    prior_bits = (state.prior_metrics or {}).get("test_bits_per_code")
    if prior_bits and levels == 1:  # the prior models one level of codes
        rows.append(("codes, entropy-coded by the prior", prior_bits * per_second))
    return rows


# -- the header -------------------------------------------------------------------------------
def header(state: AudioRun) -> str:
    test = runinfo.last_test(state.records)
    cards: list[tuple[str, str]] = []
    if test:
        fmt = {
            "bits_per_sample": ("bits / sample (teacher-forced)", "{:.3f}"),
            "mel_error": ("log-mel error (nats)", "{:.3f}"),
            "perplexity": ("perplexity", "{:.1f}"),
            "code_usage": ("codes used", "{:.0%}"),
        }
        cards = [(label, f.format(test[key])) for key, (label, f) in fmt.items() if key in test]
    code_rate, rate = _code_rate(state), _sample_rate(state)
    if code_rate is not None:
        per_second, bits = code_rate
        cards += [("codes / second", f"{per_second:g}"), ("bit / s of codes", f"{bits:,.0f}")]
        if rate:
            cards.append(("fewer bits than 8-bit mu-law", f"{rate * MULAW_BITS / bits:.0f}×"))
    step = test.get("step", "?") if test else None
    prior_meta = state.prior_meta if state.prior is not None else None
    train_rows = runinfo.training_rows(state.saved, state.records, prior_meta)
    return run_header(_model_rows(state), train_rows, cards, step)


def _model_rows(state: AudioRun) -> runinfo.Rows:
    c = state.saved.get("config", {})
    q, net, wn = c.get("quantizer", {}), c.get("net", {}), c.get("wavenet", {})
    rate = c.get("sample_rate", "?")
    hop = 2 ** net.get("num_downsamples", 0)
    window = (c.get("input_size") or ["?"])[0]
    name = q.get("kind", "?")
    kind = f"{name}: {QUANTIZERS.entry(name).about}" if name in QUANTIZERS else name
    levels = q.get("num_quantizers", 1)
    speakers = c.get("speakers") or []
    per_second = f", {rate / hop:g} per second" if isinstance(rate, int) else ""
    wavenet = (
        f"{wn.get('layers', '?')} layers x {wn.get('stacks', '?')} stacks, "
        f"{wn.get('residual_channels', '?')} residual channels"
    )
    if state.model is not None:
        wavenet += f", receptive field {state.model.config.wavenet.receptive_field} samples"
    md = c.get("mel_decoder", {})
    decoder = ("WaveNet decoder", wavenet)
    if c.get("decoder", "wavenet") == "mel":
        vocoder = type(state.model.vocoder).__name__ if state.model is not None else "?"
        decoder = (
            "mel decoder",
            f"{md.get('num_blocks', '?')} FiLM residual blocks of {md.get('hidden_channels', '?')} "
            f"channels -> {c.get('n_mels', '?')} log-mel bands per code; vocoder: {vocoder}",
        )
    rows: runinfo.Rows = [
        ("audio", f"{rate} Hz mono, trained on windows of {window} samples"),
        ("codes", f"one per {hop} samples{per_second}"),
        ("codebook size K", state.model.num_codes if state.model else q.get("num_codes", "?")),
        ("code dimension D", q.get("code_dim", "?")),
        ("quantizer", kind + (f", residual with {levels} levels" if levels > 1 else "")),
        (
            "encoder",
            f"{net.get('hidden_channels', '?')} channels, "
            f"{net.get('num_residual_blocks', '?')} residual blocks, x{hop} downsampling",
        ),
        decoder,
        ("speakers", f"{len(speakers)}: {', '.join(speakers)}" if speakers else "none"),
    ]
    if c.get("spectral_weight"):
        rows.append(("auxiliary log-mel loss", f"weight {c['spectral_weight']}"))
    return rows


# -- the sections: each returns (lead, body html) ---------------------------------------------
def section_curves(state: AudioRun, out: Path) -> tuple[str, str]:
    if not state.records:
        return "", note("metrics.jsonl is empty or missing: no curves to draw.")
    k = state.saved.get("config", {}).get("quantizer", {}).get("num_codes")
    figures.training_curves(state.records, k, out / "curves.png")
    lead = (
        "From metrics.jsonl. Bits per sample are teacher-forced: the WaveNet predicts each "
        "8-bit mu-law sample from the true past and the codes; 8 bits is a uniform guess. "
        "Perplexity is exp(entropy) of the code histogram: the codes in effective use."
    )
    return lead, figure("curves.png", "training curves")


def _need_clips(state: AudioRun) -> str | None:
    if state.missing or state.clips_missing:
        return note(state.missing or state.clips_missing)
    return None


def _wav(state: AudioRun, out: Path, kind: str, i: int, wave: np.ndarray) -> str:
    name = f"audio/{kind}-{i}.wav"
    write_wav(out / name, wave, state.rate)
    return name


def section_listen(state: AudioRun, out: Path) -> tuple[str, str]:
    if (missing := _need_clips(state)) is not None:
        return "", missing
    head = "".join(f"<th>{esc(k)}</th>" for k in ["recording", *state.clips])
    rows = []
    for i, name in enumerate(state.examples.files):
        cells = [f"<td>{esc(name)}</td>"]
        for kind, clips in state.clips.items():
            src = _wav(state, out, kind, i, clips[i])
            cells.append(f"<td>{audio(src, f'spoken by {state.voices[kind][i]}')}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    per_second, _ = _code_rate(state)
    speaks = (
        "the mel decoder predicts their log-mel frames, which the vocoder turns into audio"
        if _is_mel(state)
        else "the WaveNet speaks them sample by sample"
    )
    lead = (
        f"Each recording becomes {per_second:g} codes per second, and {speaks}: with the "
        "recording's own speaker (reconstruction)"
        + (
            " and with the next speaker (voice conversion: the same codes, another voice)"
            if "conversion" in state.clips
            else ""
        )
        + "."
    )
    return lead, f'<table class="players"><tr>{head}</tr>{"".join(rows)}</table>'


def section_spectrograms(state: AudioRun, out: Path) -> tuple[str, str]:
    if (missing := _need_clips(state)) is not None:
        return "", missing
    parts = []
    for i, name in enumerate(state.examples.files):
        waves = [clips[i] for clips in state.clips.values()]
        titles = [f"{kind} ({state.voices[kind][i]})" for kind in state.clips]
        png = f"spectrogram-{i}.png"
        audio_figures.waveforms_and_spectrograms(waves, titles, state.rate, out / png)
        parts.append(figure(png, f"waveforms and log-mel spectrograms of {name}", name))
    lead = (
        "Waveforms (top) and log-mel spectrograms (below, 40 mel bands, a frame every "
        "10 ms) on the same time axis."
    )
    return lead, "".join(parts)


def _is_mel(state: AudioRun) -> bool:
    return state.saved.get("config", {}).get("decoder", "wavenet") == "mel"


def section_predicted(state: AudioRun, out: Path) -> tuple[str, str]:
    if (missing := _need_clips(state)) is not None:
        return "", missing
    model, found, ex = state.model, state.codes, state.examples
    c = model.config
    pairs = []
    for i, wave in enumerate(ex.waveforms):
        n = int(found.lengths[i])
        x = torch.from_numpy(pad_to_hop(wave, model.hop, n * model.hop))[None]  # (1, T)
        true = log_mel_frames(x, model.hop, c.sample_rate, c.n_mels)[0]  # (M, T')
        codes = torch.from_numpy(found.codes[i : i + 1, ..., :n])
        speaker = None if found.speakers is None else int(found.speakers[i])
        predicted = model.decode_mel(codes, speaker)[0]  # (M, T')
        pairs.append((true.numpy(), predicted.float().numpy()))
    audio_figures.predicted_log_mels(pairs, list(ex.files), out / "predicted.png")
    lead = (
        f"What the mel decoder makes of the codes and the speaker: one log-mel frame per code "
        f"({c.n_mels} bands, a Hann window of {4 * model.hop} samples centred on each code's "
        f"{model.hop}), beside the true frames of the recording. The vocoder "
        f"({type(model.vocoder).__name__}) turns the predicted frames into the audio above."
    )
    return lead, figure("predicted.png", "original and predicted log-mel frames")


def section_codes(state: AudioRun, out: Path) -> tuple[str, str]:
    if (missing := _need_clips(state)) is not None:
        return "", missing
    found, parts = state.codes, []
    for i in range(min(NUM_CODE_FIGURES, len(found.codes))):
        codes = found.codes[i, ..., : found.lengths[i]]  # (T',) or (Q, T')
        codes = codes[0] if codes.ndim == 2 else codes  # residual levels: the first
        name = state.examples.files[i]
        wave = state.examples.waveforms[i]
        png = f"codes-{i}.png"
        audio_figures.codes_under_spectrogram(wave, codes, found.hop, state.rate, name, out / png)
        parts.append(figure(png, f"the codes of {name} under its log-mel spectrogram"))
    k = state.model.num_codes
    lead = (
        f"Speech as a sequence of integers: one code (of K = {k}) per {found.hop} samples "
        f"({1000 * found.hop / state.rate:g} ms), drawn as the code id over time and as a "
        "colour strip (neighbouring ids differ in colour), under the spectrogram of the "
        "same recording. The decoder hears only these integers and the speaker."
    )
    return lead, "".join(parts)


def section_usage(state: AudioRun, out: Path) -> tuple[str, str]:
    if state.missing:
        return "", note(state.missing)
    test = state.test.subset(range(min(USAGE_LIMIT, len(state.test))))
    found = encode_audio(state.model, test)
    level0 = found.codes if found.codes.ndim == 2 else found.codes[:, 0]  # (N, T')
    own = np.concatenate([c[:n] for c, n in zip(level0, found.lengths, strict=True)])
    counts = metrics.code_histogram(own, state.model.num_codes)
    level = ", level 1" if state.model.num_levels > 1 else ""
    figures.code_usage_histogram(counts, len(test), out / "usage.png", level, unit="recordings")
    lead = (
        "How often each code appears in the held-out recordings (their padding excluded), "
        "most used first (log scale). A codebook that collapses onto few codes shows a "
        "short tail and many unused codes."
    )
    return lead, figure("usage.png", "code usage over the held-out recordings")


def _fewer(bits: float, mulaw: float | None) -> str:
    return f", {mulaw / bits:,.1f}× fewer than mu-law" if mulaw and bits < mulaw else ""


def section_rate(state: AudioRun, out: Path) -> tuple[str, str]:
    rows = bit_rates(state)
    if not any(name.startswith("codes") for name, _ in rows):
        return "", note(state.missing or "no model and no held-out evaluation: no bit rate")
    audio_figures.bit_rates(rows, out / "rate.png")
    mulaw = dict(rows).get(MULAW)
    cells = [(name, f"{bits:,.0f} bit/s" + _fewer(bits, mulaw)) for name, bits in rows]
    lead = (
        "The same speech in bits per second. The codes cost log2 K bits each when written "
        "with fixed-length codes; an entropy code over their histogram, or over the "
        "prior's predictions, costs less. The WaveNet turns them back into 8-bit mu-law "
        "samples: speech, though not the same waveform."
    )
    extra = ""
    if state.prior_metrics is None:
        extra = note(f"No prior rate: {state.prior_missing or 'the prior has no metrics.json'}")
    return lead, html_table(cells) + extra + figure("rate.png", "bits per second")


def section_samples(state: AudioRun, out: Path) -> tuple[str, str]:
    if state.missing or state.prior is None:
        return "", note(state.missing or state.prior_missing)
    model, prior, cells = state.model, state.prior, []
    classes = prior.config.num_classes
    class_names = state.test.class_names if state.test is not None else None
    for digit in range(classes or 1):
        speaker = model.speakers[digit % len(model.speakers)] if model.speakers else None
        got = sample_speech(model, prior, 1, digit if classes else None, speaker, seed=digit)
        src = _wav(state, out, "sample", digit, got.waveforms[0])
        label = ""
        if classes:
            named = class_names is not None and digit < len(class_names)
            label = f"“{class_names[digit]}”, " if named else f"class {digit}, "
        cells.append(audio(src, f"{label}spoken by {speaker or 'the model'}"))
    given = [w for w, on in (("class", classes), ("speaker", prior.config.cond_dim)) if on]
    lead = (
        "Code sequences drawn from the prior"
        + (f" (given the {' and the '.join(given)})" if given else "")
        + f" and spoken by the {'mel decoder and vocoder' if _is_mel(state) else 'WaveNet'}: "
        "new utterances, no recording involved" + (", one per class." if classes else ".")
    )
    return lead, f'<div class="clips">{"".join(cells)}</div>'


MEL_ONLY = ("predicted",)  # a WaveNet predicts samples, not log-mel frames
SECTIONS = (
    ("curves", "Training curves", section_curves),
    ("listen", "Listen: originals, reconstructions, conversions", section_listen),
    ("spectrograms", "Waveforms and spectrograms", section_spectrograms),
    ("predicted", "Log-mel frames: original and predicted", section_predicted),
    ("codes", "Speech as codes", section_codes),
    ("usage", "Code usage", section_usage),
    ("rate", "Bits per second", section_rate),
    ("samples", "Samples from the prior", section_samples),
)

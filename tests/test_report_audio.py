"""The report of a speech run: its figures, WAVs and bit rates, one batched generation for the
reconstructions and conversions, pages that lack a part, and every clip playing in a real
browser (the ``browser`` fixture of conftest.py)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vqvae.cli import main
from vqvae.data import AudioDataset, load_audio
from vqvae.report import audio as audio_report
from vqvae.report import write_report

pytestmark = pytest.mark.usefixtures("one_thread")

SECTIONS = ("curves", "listen", "spectrograms", "codes", "usage", "rate", "samples")
KINDS = ("original", "reconstruction", "conversion")


@dataclass
class Reported:
    index: Path  # RUN/report/index.html
    run: Path
    generations: list[list[int] | None]  # the speakers of each generate_audio call


@pytest.fixture(scope="module")
def reported(speech_run, speech_folder, tmp_path_factory) -> Reported:
    """A copy of the tiny speech run with a 5-step prior (3 digits, 2 speakers), reported once,
    recording the speakers of every WaveNet generation the report asks for."""
    run = tmp_path_factory.mktemp("reported") / "speech"
    shutil.copytree(speech_run, run)
    argv = ["prior", "train", str(run), "--data", str(speech_folder), "--class-conditional"]
    assert main([*argv, "--steps", "5", "--batch-size", "4", "--no-progress"]) == 0
    generations: list[list[int] | None] = []
    real = audio_report.generate_audio

    def recording(model, codes, lengths, speakers, **kw):
        generations.append(None if speakers is None else speakers.tolist())
        return real(model, codes, lengths, speakers, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(audio_report, "generate_audio", recording)
        index = write_report(run, data=str(speech_folder))
    return Reported(index, run, generations)


def _players(html: str) -> list[list[str]]:
    """Per row of the players' table: the file name, then each clip's caption."""
    table = re.search(r'<table class="players">(.*?)</table>', html, re.S)
    assert table, "no players table"
    rows = re.findall(r"<tr><td>([^<]*)</td>(.*?)</tr>", table.group(1), re.S)
    return [[name, *re.findall(r"<figcaption>([^<]*)</figcaption>", cells)] for name, cells in rows]


def test_report_writes_figures_and_every_clip(reported, speech_folder):
    out = reported.index.parent
    for name in ("curves", "spectrogram-0", "spectrogram-1", "codes-0", "usage", "rate"):
        assert (out / f"{name}.png").stat().st_size > 5_000, name
    wavs = sorted(w.name for w in (out / "audio").glob("*.wav"))
    # one recording per speaker, each as itself, reconstructed and converted; one sample per digit
    expected = [f"{kind}-{i}.wav" for kind in KINDS for i in (0, 1)]
    assert wavs == sorted(expected + [f"sample-{d}.wav" for d in range(3)])
    for i in (0, 1):
        lengths = {sf.info(out / "audio" / f"{kind}-{i}.wav").frames for kind in KINDS}
        assert len(lengths) == 1 and lengths.pop() > 0  # each cut to its recording's length
    test = load_audio(str(speech_folder), "test")
    first = sf.read(out / "audio" / "original-0.wav", dtype="float32")[0]
    assert np.allclose(first, test.waveforms[0], atol=1e-4)  # the first test recording
    html = reported.index.read_text()
    assert html.count("<audio controls") == len(wavs)
    assert all(f'<section id="{s}">' in html for s in SECTIONS)
    assert "could not be drawn" not in html
    # the one note a WaveNet run's report has: it predicts no log-mel to show
    notes = re.findall(r'<p class="note">(.*?)</p>', html)
    assert notes in ([], ["The WaveNet decoder predicts samples, not log-mel frames."])


def test_reconstructions_and_conversions_are_one_batched_generation(reported):
    # amy (id 0) and bob (id 1): themselves, then each other
    assert reported.generations == [[0, 1, 1, 0]]
    rows = _players(reported.index.read_text())
    assert [r[0] for r in rows] == ["0_amy_0.wav", "0_bob_0.wav"]
    assert [r[1:] for r in rows] == [
        ["spoken by amy", "spoken by amy", "spoken by bob"],
        ["spoken by bob", "spoken by bob", "spoken by amy"],
    ]


def test_header_and_bit_rates_set_codes_against_mulaw(reported):
    html = reported.index.read_text()
    # 8 kHz / 64 = 125 codes per second of log2 16 = 4 bits: 500 bit/s, 128x under 64 kbit/s
    assert "one per 64 samples, 125 per second" in html and "2: amy, bob" in html
    assert '<div class="v">500</div><div class="k">bit / s of codes</div>' in html
    assert '<div class="v">128×</div>' in html
    assert "<td>64,000 bit/s</td>" in html
    assert "<td>500 bit/s, 128.0× fewer than mu-law</td>" in html
    prior = json.loads((reported.run / "prior" / "metrics.json").read_text())
    by_prior = prior["test_bits_per_code"] * 125
    assert f"<th>codes, entropy-coded by the prior</th><td>{by_prior:,.0f} bit/s" in html
    assert "TransformerPrior, conditioned on 3 classes" in html


def test_browser_plays_every_clip(reported, browser):
    dom = browser.dom(reported.index.resolve().as_uri(), budget_ms=8000)
    loaded, total = browser.loaded(dom, "audio")  # players whose clip has a duration > 0
    assert total == 9 and loaded == total
    loaded, total = browser.loaded(dom, "images")
    assert total == 7 and loaded == total  # curves, 2 spectrograms, 2 code figures, usage, rate


def test_browser_counts_a_missing_clip(reported, tmp_path, browser):
    report = tmp_path / "report"
    shutil.copytree(reported.index.parent, report)
    (report / "audio" / "conversion-1.wav").unlink()  # copied without one of its clips
    loaded, total = browser.loaded(browser.dom((report / "index.html").as_uri(), 8000), "audio")
    assert (loaded, total) == (8, 9)


def _bare_copy(run: Path, dest: Path, weights: bool = True) -> Path:
    dest.mkdir(parents=True)
    names = ["config.json", "metrics.jsonl"] + (["model.safetensors"] if weights else [])
    for name in names:
        shutil.copy(run / name, dest / name)
    return dest


def test_without_data_the_page_renders_what_it_can(reported, tmp_path):
    run = _bare_copy(reported.run, tmp_path / "run")
    stale = run / "report" / "audio" / "conversion-7.wav"
    stale.parent.mkdir(parents=True)
    shutil.copy(reported.index.parent / "audio" / "original-0.wav", stale)
    html = write_report(run, data=str(tmp_path / "nowhere")).read_text()
    assert (run / "report" / "curves.png").is_file() and (run / "report" / "rate.png").is_file()
    assert not stale.exists()  # a clip that cannot be made now is not left from before
    assert "held-out recordings of" in html and "could not be loaded" in html
    assert "no trained prior" in html and "<audio" not in html
    assert "<td>500 bit/s, 128.0× fewer than mu-law</td>" in html  # the model alone says this
    assert "could not be drawn" not in html


def test_run_without_weights_still_gets_curves_and_rates(reported, tmp_path):
    run = _bare_copy(reported.run, tmp_path / "run", weights=False)
    html = write_report(run).read_text()
    assert (run / "report" / "curves.png").is_file()
    assert "no trained weights" in html
    assert '<div class="v">500</div>' in html  # from the held-out records of metrics.jsonl
    assert "could not be drawn" not in html


def test_examples_are_one_per_speaker_the_model_knows():
    waves = tuple(np.full(64, 0.1 * i, dtype=np.float32) for i in range(6))
    data = AudioDataset(
        waves,
        8000,
        speakers=np.array([2, 0, 2, 1, 0, 1], dtype=np.int64),
        speaker_names=("amy", "bob", "eve"),
    )
    assert audio_report._pick_examples(data, ("amy", "eve")) == [1, 0]  # bob is unknown
    assert audio_report._pick_examples(data, ()) == list(range(6))  # no speakers: any
    with pytest.raises(ValueError, match="no held-out speaker"):
        audio_report._pick_examples(data, ("zoe",))

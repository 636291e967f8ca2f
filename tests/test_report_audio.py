"""The report of a speech run: files, players, and every clip loading in a real browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import soundfile as sf

from test_report import _browse
from vqvae.report import write_report

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def speech_report(speech_run, speech_folder) -> Path:
    return write_report(speech_run, data=str(speech_folder))


def test_speech_report_writes_figures_and_wavs(speech_report):
    out = speech_report.parent
    for name in (
        "curves.png",
        "spectrogram-0.png",
        "spectrogram-1.png",
        "codes-0.png",
        "usage.png",
    ):
        assert (out / name).stat().st_size > 5_000, name
    wavs = sorted((out / "audio").glob("*.wav"))
    # one recording per speaker: original, reconstruction, conversion to the other speaker
    assert [w.name for w in wavs] == sorted(
        f"{kind}-{i}.wav" for kind in ("original", "reconstruction", "conversion") for i in (0, 1)
    )
    assert all(sf.info(w).frames > 0 and sf.info(w).samplerate == 8000 for w in wavs)
    html = speech_report.read_text()
    assert html.count("<audio controls") == 6
    assert "could not be drawn" not in html
    assert "no trained prior" in html  # the samples section says what is missing


def test_browser_loads_every_audio_clip(speech_report, tmp_path):
    url = speech_report.resolve().as_uri()
    dom = _browse(url, tmp_path / "p", "--virtual-time-budget=8000", "--dump-dom").stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    loaded = re.search(r'data-audio-loaded="(\d+)"', body)
    total = re.search(r'data-audio-total="(\d+)"', body)
    assert loaded and total, body
    assert int(total.group(1)) == 6 and int(loaded.group(1)) == 6
    images = re.search(r'data-images-loaded="(\d+)"', body)
    assert images and int(images.group(1)) >= 5

"""The speech probe (what codes know) and the speech judge (which digit, which speaker)."""

from __future__ import annotations

import numpy as np
import pytest

from vqvae.codefile import AudioCodes
from vqvae.data import load_audio
from vqvae.experiments.judge import SpeechJudge, mulaw_roundtrip, score
from vqvae.experiments.probe import histograms, probe


def _codes(rng, labels, speakers, informative: bool) -> AudioCodes:
    """Sequences of 20 codes out of 32: with ``informative``, each digit draws from its own
    three codes; otherwise every code is uniform noise."""
    n = len(labels)
    codes = rng.integers(0, 32, (n, 24))
    if informative:
        codes = 3 * labels[:, None] + rng.integers(0, 3, (n, 24))
    lengths = rng.integers(10, 21, n)
    codes[np.arange(24)[None, :] >= lengths[:, None]] = 31  # the padding: "silence"
    return AudioCodes(codes, lengths, 64, 8000, labels=labels, speakers=speakers)


def test_histograms_count_only_each_utterances_own_codes():
    found = AudioCodes(np.array([[1, 1, 2, 0, 0]]), np.array([3]), 64, 8000)
    assert np.allclose(histograms(found, 4), [[0.0, 2 / 3, 1 / 3, 0.0]])
    levels = AudioCodes(np.array([[[1, 0], [2, 2]]]), np.array([2]), 64, 8000)
    assert np.allclose(histograms(levels, 3), [[0.5, 0.5, 0.0, 0.0, 0.0, 1.0]])


@pytest.mark.parametrize("informative", [True, False])
def test_probe_reads_the_digit_only_when_the_codes_carry_it(informative):
    rng = np.random.default_rng(0)
    labels = np.tile(np.arange(10), 30)
    speakers = rng.integers(0, 3, 300)
    train = _codes(rng, labels, speakers, informative)
    test = _codes(rng, labels[:100], speakers[:100], informative)
    result = probe(train, test, 32)
    if informative:
        assert result.digit.accuracy == 1.0
    else:
        assert result.digit.accuracy < 0.3
    assert result.digit.baseline == pytest.approx(0.1) and result.digit.classes == 10
    assert result.speaker.accuracy < 0.6  # speakers were never in these codes
    assert "| digit |" in result.table()


@pytest.mark.realdata
def test_judge_hears_real_test_recordings(real_data_root):
    train = load_audio("fsdd", "train", real_data_root)
    test = load_audio("fsdd", "test", real_data_root)
    judge = SpeechJudge.fit(train)
    names = [test.speaker_names[i] for i in test.speakers]
    real = score(judge, test.waveforms, 8000, test.labels, names)
    assert real.digit_accuracy >= 0.95 and real.speaker_accuracy >= 0.95
    quantised = [mulaw_roundtrip(w) for w in test.waveforms]
    assert score(judge, quantised, 8000, test.labels, names).digit_accuracy >= 0.95
    with pytest.raises(ValueError, match="8000 Hz"):
        judge.digits(test.waveforms[:2], 16000)

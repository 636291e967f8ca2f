"""A speech run written by the release before speech decoders became registered kinds
(tests/fixtures/speech-wavenet, made by its make_fixture.py with that release's code) loads,
scores and decodes today exactly as it did."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vqvae.runs import RunDir, load_run_model

FIXTURE = Path(__file__).parent / "fixtures" / "speech-wavenet"


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "expected.npz") as f:
        return dict(f)


def test_old_wavenet_run_loads_as_the_wavenet_kind():
    saved = RunDir(FIXTURE / "run").read_config()["config"]
    assert "decoder" not in saved and "mel_decoder" not in saved  # written before the kinds
    model = load_run_model(RunDir(FIXTURE / "run"))
    assert model.config.decoder == "wavenet" and model.vocoder is None


def test_old_wavenet_run_encodes_scores_and_decodes_as_it_did(expected, one_thread):
    model = load_run_model(RunDir(FIXTURE / "run"))
    x = torch.from_numpy(expected["x"])
    codes = model.encode(x)
    np.testing.assert_array_equal(codes.numpy(), expected["codes"])
    with torch.no_grad():
        out = model(x, torch.tensor([0, 1]))
    np.testing.assert_allclose(out.loss.numpy(), expected["loss"], rtol=1e-6)
    np.testing.assert_allclose(out.decoder_params.numpy()[:, :, :64], expected["logits"], atol=1e-5)
    g = torch.Generator().manual_seed(0)
    audio = model.decode_codes(codes, torch.tensor([1, 0]), generator=g)
    np.testing.assert_array_equal(audio.numpy(), expected["audio"])

"""``vqvae export RUN --format onnx``: the files pass ``onnx.checker``, run in ONNX Runtime
with any batch (and any length for speech), and compute what PyTorch computes: codes equal
``vqvae encode``'s wherever the nearest and second-nearest codes are further apart than
``TIE_RTOL`` of the numbers the search computes (``CodeSearch.decided``, for every quantizer
kind), decoder outputs within ``ATOL`` of ``decode_codes``/``decode_mel`` (docs/export.md)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from conftest import TINY, TINY_MEL, one_error_line, train_speech
from vqvae.cli import main
from vqvae.data import load_audio, load_dataset, pad_to_hop, to_model_input, to_uint8_images
from vqvae.export import CodeSearch
from vqvae.export.verify import Agreement, agreement, session
from vqvae.inference import encode
from vqvae.inference.audio import encode_audio, speaker_ids
from vqvae.runs import RunDir, load_run_model
from vqvae.vocoders import Vocos, VocosConfig

pytestmark = pytest.mark.usefixtures("one_thread")

# float32 through differently ordered kernels: measured below 1e-5 on these runs; the bar's 1e-4
ATOL = 1e-4
# the share of codes decided, so that the comparison is not vacuous: runs trained for a few
# steps have codes closer together than trained runs (which decide over 99%: BENCHMARKS.md)
DECIDED = 0.75

KINDS = {
    "vq": ["--set", "quantizer.kind=vq"],
    "ema": ["--set", "quantizer.kind=ema"],
    "cosine": ["--set", "quantizer.kind=cosine", "--set", "quantizer.lookup_dim=4"],
    "fsq": ["--set", "quantizer.kind=fsq", "--set", "quantizer.levels=[4,4]"],
    "lfq": ["--set", "quantizer.kind=lfq"],
    "residual": ["--set", "quantizer.kind=ema", "--set", "quantizer.num_quantizers=2"],
}


def _train_image_run(out: Path, *extra: str) -> Path:
    argv = ["train", "--data", "digits", "--out", str(out), *TINY, "--steps", "4",
            "--batch-size", "16", "--no-progress", "--no-report", *extra]  # fmt: skip
    assert main(argv) == 0
    return out


def _export(run: Path, out: Path, *extra: str) -> dict:
    assert main(["export", str(run), "--format", "onnx", "--out", str(out), *extra]) == 0
    for name in out.glob("*.onnx"):
        onnx.checker.check_model(onnx.load(str(name)), full_check=True)
    return json.loads((out / "manifest.json").read_text())


@pytest.mark.parametrize("kind", KINDS)
def test_every_quantizer_kind_exports_and_onnxruntime_agrees(kind, tmp_path, capsys):
    run = _train_image_run(tmp_path / "run", *KINDS[kind])
    manifest = _export(run, tmp_path / "onnx")
    model = load_run_model(RunDir(run))
    assert manifest["num_codes"] == model.num_codes and manifest["levels"] == model.num_levels
    enc, dec = manifest["files"]["encoder"], manifest["files"]["decoder"]
    assert [t["name"] for t in enc["inputs"]] == ["data"]
    assert enc["inputs"][0]["shape"] == ["batch", 8, 8, 1] and enc["inputs"][0]["dtype"] == "uint8"
    assert enc["outputs"][0]["name"] == "codes"
    assert enc["outputs"][0]["shape"] == ["batch", *model.code_shape]
    assert enc["outputs"][0]["range"] == [0, model.num_codes - 1]
    assert [t["name"] for t in dec["inputs"]] == ["codes"]
    assert [t["name"] for t in dec["outputs"]] == ["x", "data"]

    images = load_dataset("digits", "test").images  # uint8 (N, 8, 8, 1)
    encoder = session(tmp_path / "onnx" / "encoder.onnx")
    decoder = session(tmp_path / "onnx" / "decoder.onnx")
    theirs = encode(model, images)  # vqvae encode's codes
    for part in (slice(0, 1), slice(1, 38), slice(38, None)):  # three batch sizes, one graph
        ours = encoder.run(None, {"data": images[part]})[0]
        assert ours.dtype == np.int64 and ours.shape == theirs[part].shape
        found = agreement(model, to_model_input(images[part]), ours, theirs[part])
        assert found.decided_equal == found.decided, found
        assert found.decided_rate > DECIDED, found  # the comparison is not vacuous
        x, data = decoder.run(None, {"codes": theirs[part]})
        with torch.no_grad():
            want = model.decode_codes(torch.from_numpy(theirs[part])).numpy()
        np.testing.assert_allclose(x, want, rtol=0, atol=ATOL)
        stored = to_uint8_images(torch.from_numpy(want))
        assert data.dtype == np.uint8 and data.shape == stored.shape
        assert np.abs(data.astype(int) - stored).max() <= 1  # a pixel on x.5 rounds either way


def test_decided_is_where_a_small_move_of_z_e_cannot_change_the_code():
    """``CodeSearch.decided`` against its definition: moving z_e by far less than the margin
    keeps every decided code, for a distance search and for the FSQ and LFQ grids."""
    from vqvae.quantizers import QuantizerConfig

    torch.manual_seed(0)
    for config in (QuantizerConfig(kind="vq", num_codes=16, code_dim=4),
                   QuantizerConfig(kind="fsq", levels=(4, 4), code_dim=2),
                   QuantizerConfig(kind="lfq", num_codes=16, code_dim=4)):  # fmt: skip
        q = config.build().eval()
        search = CodeSearch(q)
        z_e = torch.randn(64, config.code_dim, 5)
        codes = search(z_e)
        assert torch.equal(codes, q(z_e).codes)  # the search is the quantizer's own choice
        decided = search.decided(z_e, tie_rtol=1e-2)
        assert 0 < decided.float().mean() < 1  # some near ties at this coarse margin, not all
        moved = search(z_e + 1e-5 * torch.randn_like(z_e))
        assert torch.equal(moved[decided], codes[decided])


@pytest.fixture(scope="module")
def mel_run(speech_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "mel"
    assert train_speech(speech_folder, out, 4, *TINY_MEL) == 0
    return out


def test_a_mel_speech_run_exports_with_any_batch_and_length(mel_run, speech_folder, tmp_path):
    manifest = _export(mel_run, tmp_path / "onnx")
    model = load_run_model(RunDir(mel_run))
    assert manifest["sample_rate"] == 8000 and manifest["hop"] == 64
    assert "vocoder" in manifest and "Griffin-Lim" in manifest["vocoder"]
    enc, dec = manifest["files"]["encoder"], manifest["files"]["decoder"]
    assert enc["inputs"][0] | {"about": ""} == {
        "name": "audio", "dtype": "float32", "shape": ["batch", "64*frames"], "range": [-1, 1],
        "about": ""}  # fmt: skip
    assert enc["outputs"][0]["shape"] == ["batch", "frames"]
    assert [t["name"] for t in dec["inputs"]] == ["codes", "speaker"]
    assert dec["outputs"][0]["shape"] == ["batch", 40, "frames"]

    test = load_audio(str(speech_folder), "test", sample_rate=8000)
    theirs = encode_audio(model, test)  # vqvae encode's codes, padded to the longest
    width = theirs.codes.shape[1] * model.hop
    audio = np.stack([pad_to_hop(w, model.hop, width) for w in test.waveforms])  # (N, T)
    encoder = session(tmp_path / "onnx" / "encoder.onnx")
    decoder = session(tmp_path / "onnx" / "decoder.onnx")
    speakers = speaker_ids(model, test)
    total = Agreement(0, 0, 0, 0)
    for n, frames in ((len(audio), theirs.codes.shape[1]), (7, 5)):  # two batches and lengths
        x, want = audio[:n, : frames * model.hop], theirs.codes[:n, :frames]
        if frames < theirs.codes.shape[1]:  # a shorter clip: PyTorch's codes of the same
            want = model.encode(torch.from_numpy(x).unsqueeze(1)).numpy()
        ours = encoder.run(None, {"audio": x})[0]
        found = agreement(model, torch.from_numpy(x).unsqueeze(1), ours, want)
        assert found.decided_equal == found.decided, found
        total += found
        log_mel = decoder.run(None, {"codes": want, "speaker": speakers[:n]})[0]
        expected = model.decode_mel(torch.from_numpy(want), torch.from_numpy(speakers[:n]))
        np.testing.assert_allclose(log_mel, expected.numpy(), rtol=0, atol=ATOL)
    assert total.decided_rate > DECIDED, total


def test_a_mel_run_with_its_own_vocoder_exports_it(mel_run, tmp_path):
    run = Path(shutil.copytree(mel_run, tmp_path / "run"))
    torch.manual_seed(0)
    # one Griffin-Lim iteration after the network: the loop's graph, unrolled, at an eighth of
    # the default's export time
    config = VocosConfig(channels=16, mlp_channels=32, num_blocks=2, griffin_lim_iterations=1)
    Vocos(config).save_pretrained(run / "vocoder")
    manifest = _export(run, tmp_path / "onnx")
    voc = manifest["files"]["vocoder"]
    assert [t["name"] for t in voc["inputs"]] == ["log_mel"]
    assert voc["outputs"][0]["shape"] == ["batch", "64*frames"] and "vocoder" not in manifest
    model = load_run_model(RunDir(run))
    log_mel = torch.randn(2, 40, 12) - 4  # (N, n_mels, T'): near speech's log power
    audio = session(tmp_path / "onnx" / "vocoder.onnx").run(None, {"log_mel": log_mel.numpy()})[0]
    want = model.vocoder.vocode(log_mel).numpy()  # the network, its iSTFT and Griffin-Lim
    assert audio.shape == (2, 12 * 64)
    np.testing.assert_allclose(audio, want, rtol=0, atol=ATOL)


def test_a_wavenet_run_is_refused_in_one_line_and_its_encoder_exports(
    speech_run, speech_folder, tmp_path, capsys
):
    out = tmp_path / "onnx"
    assert main(["export", str(speech_run), "--out", str(out)]) != 0
    line = one_error_line(capsys)
    assert "one sample at a time" in line and "--encoder-only" in line
    assert not out.exists() and not list(tmp_path.iterdir())  # no half-written folder left
    manifest = _export(speech_run, out, "--encoder-only")
    assert list(manifest["files"]) == ["encoder"]
    model = load_run_model(RunDir(speech_run))
    clips = load_audio(str(speech_folder), "test").waveforms
    x = np.stack([pad_to_hop(w[:640], 64, 640) for w in clips])  # (N, 640)
    ours = session(out / "encoder.onnx").run(None, {"audio": x})[0]
    want = model.encode(torch.from_numpy(x).unsqueeze(1)).numpy()
    found = agreement(model, torch.from_numpy(x).unsqueeze(1), ours, want)
    assert found.decided_equal == found.decided and found.decided_rate > DECIDED, found


def test_bad_input_is_one_line_and_nothing_is_overwritten(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) != 0
    assert "no such run folder" in one_error_line(capsys)
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", str(tmp_path / "nowhere"), "--out", str(out)]) != 0
    assert "already exists" in one_error_line(capsys)
    assert (out / "keep.txt").read_text() == "mine"
    (out / "run").mkdir()
    assert main(["export", str(out / "run"), "--out", str(out), "--force"]) != 0
    assert "is the run or holds it" in one_error_line(capsys)
    assert (out / "keep.txt").read_text() == "mine"


def test_without_the_export_extra_the_command_says_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed: ImportError
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "o")]) != 0
    assert "pip install 'vqvae[export]'" in one_error_line(capsys)


def test_a_model_without_codes_is_refused_in_one_line(tmp_path, capsys):
    from vqvae.models import VAE
    from vqvae.models.config import VAEConfig

    VAE(VAEConfig()).save_pretrained(tmp_path / "vae")
    assert main(["export", str(tmp_path / "vae"), "--out", str(tmp_path / "o")]) != 0
    assert "a VAE run cannot be exported" in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_the_spectrogram_front_end_as_a_convolution_equals_log_power(mel_run, speech_folder):
    """``ConvLogPower`` (the windowed DFT's rows as strided kernels) against the encoder's
    ``log_power`` (unfold and rfft) and against float64: the two float32 computations differ
    from float64 by about 1e-4 in the normalised log power of near-silent bins (measured on
    FSDD: 1.1e-4 and 0.9e-4), and agree to 1e-6 on average."""
    from vqvae.export.spectral import ConvLogPower
    from vqvae.nets.spectrogram1d import LOG_POWER_MEAN, LOG_POWER_STD
    from vqvae.spectral import LOG_FLOOR, stft

    encoder = load_run_model(RunDir(mel_run)).encoder
    clips = load_audio(str(speech_folder), "test").waveforms
    x = torch.from_numpy(np.stack([pad_to_hop(w[:640], 64, 640) for w in clips])).unsqueeze(1)
    with torch.no_grad():
        ours, theirs = ConvLogPower(encoder)(x), encoder.log_power(x)  # (N, 129, 10)
    power = stft(x[:, 0].double(), encoder.n_fft, encoder.hop).abs().square()
    exact = (torch.log(power + LOG_FLOOR) - LOG_POWER_MEAN) / LOG_POWER_STD
    assert ours.shape == theirs.shape == exact.shape
    assert (ours.double() - exact).abs().max() < 2e-4
    assert (ours - theirs).abs().max() < 3e-4 and (ours - theirs).abs().mean() < 1e-5

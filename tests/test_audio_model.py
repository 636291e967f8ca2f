"""The speech VQ-VAE (van den Oord et al. 2017, section 4.3): the model's mathematics, its
training on random windows with exact resume, and every command on a speech run."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import RATE, SPEAKERS, train_speech  # noqa: E402
from vqvae.cli import main
from vqvae.data import load_audio, read_audio
from vqvae.inference.audio import (
    convert,
    encode_audio,
    evaluate_audio,
    silence_codes,
    speech_lengths,
)
from vqvae.models import AudioVQVAE, AudioVQVAEConfig
from vqvae.models.audio import time_jitter
from vqvae.nets import NetConfig
from vqvae.nets.conv import he_init
from vqvae.nets.wavenet import WaveNetConfig
from vqvae.quantizers import QuantizerConfig
from vqvae.runs import RunDir, load_run_model
from vqvae.train.audio import random_windows

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(kind: str = "ema", **quantizer) -> AudioVQVAEConfig:
    return AudioVQVAEConfig(
        input_size=(256,),
        net=NetConfig(kind="conv1d", hidden_channels=16, residual_channels=8, num_downsamples=6),
        quantizer=QuantizerConfig(kind=kind, num_codes=16, code_dim=8, **quantizer),
        wavenet=WaveNetConfig(
            residual_channels=8, gate_channels=8, skip_channels=16, layers=4, stacks=1
        ),
        speakers=SPEAKERS,
    )


# -- the model ------------------------------------------------------------------------------


def test_forward_is_eq3_with_a_wavenet_likelihood():
    torch.manual_seed(0)
    model = AudioVQVAE(tiny_config())
    x = torch.rand(2, 1, 256) * 1.6 - 0.8
    out = model(x, torch.tensor([0, 1]))
    assert out.codes.shape == (2, 4)  # 256 / 64
    assert out.decoder_params.shape == (2, 256, 256)  # logits over mu-law values per sample
    assert out.x_hat.shape == (2, 1, 256) and out.x_hat.abs().max() <= 1
    assert torch.allclose(out.loss, out.recon_loss + out.vq_loss)
    # a fresh WaveNet's softmax is near uniform: about 8 bits per sample
    assert 7.0 < out.recon_loss.item() / np.log(2) < 9.0
    out.loss.backward()  # the straight-through estimator carries the gradient to the encoder
    assert model.encoder.net[0].weight.grad.abs().sum() > 0


def test_he_init_gives_every_convolution_fan_in_weights_and_zero_biases():
    torch.manual_seed(0)
    encoder = he_init(AudioVQVAE(AudioVQVAEConfig()).encoder)
    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv1d)]
    for i, conv in enumerate(convs):
        fan_in = conv.weight[0].numel()
        gain = 1.0 if i == len(convs) - 1 else 2**0.5  # linear projection last, ReLU before
        assert float(conv.weight.detach().std()) == pytest.approx(gain / fan_in**0.5, rel=0.15)
        assert torch.equal(conv.bias, torch.zeros_like(conv.bias))


def test_the_speech_encoder_outputs_vary_with_the_input_from_the_first_step():
    # Under PyTorch's default init the paper's waveform encoder maps speech-level audio (RMS
    # 0.05) to one constant vector plus a variation ~200 times smaller, and the codebook fitted
    # to it collapses once the variation grows (docs/speech.md). With he_init the outputs'
    # spread about their mean is of the order of the mean itself.
    torch.manual_seed(0)
    model = AudioVQVAE(AudioVQVAEConfig())
    x = 0.05 * torch.randn(4, 1, 4096)
    with torch.no_grad():
        z = model.encoder(x).movedim(1, -1).reshape(-1, 64)  # (B, D, T') -> (B T', D)
        spread = float((z - z.mean(0)).norm(dim=1).mean())
        assert spread > 0.2 * float(z.mean(0).norm())
        default = AudioVQVAE(AudioVQVAEConfig()).encoder
        for m in default.modules():  # PyTorch's own initialization, for comparison
            if isinstance(m, torch.nn.Conv1d):
                m.reset_parameters()
        z0 = default(x).movedim(1, -1).reshape(-1, 64)
        assert float((z0 - z0.mean(0)).norm(dim=1).mean()) < 0.05 * float(z0.mean(0).norm())


def test_decode_codes_draws_audio_with_any_speaker_cached_equals_naive():
    torch.manual_seed(0)
    model = AudioVQVAE(tiny_config()).eval()
    codes = torch.randint(0, 16, (3, 2))

    def draw(method: str, speaker) -> torch.Tensor:
        g = torch.Generator().manual_seed(7)
        return model.decode_codes(codes, speaker, generator=g, method=method)

    audio = draw("cached", "bob")
    assert audio.shape == (3, 1, 128) and audio.abs().max() <= 1
    assert torch.equal(audio, draw("naive", "bob"))
    assert torch.equal(audio, draw("cached", 1))  # a name or an id
    assert not torch.equal(audio, draw("cached", "amy"))  # the speaker changes the audio


@pytest.mark.parametrize("kind", ["vq", "ema", "cosine", "fsq", "lfq"])
def test_every_quantizer_kind_trains_the_speech_model(kind):
    extra = {"levels": (4, 4)} if kind == "fsq" else {"num_bits": 4} if kind == "lfq" else {}
    torch.manual_seed(0)
    model = AudioVQVAE(tiny_config(kind, **extra))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(2, 1, 256) * 0.5
    before = [p.detach().clone() for p in model.encoder.parameters()]
    out = model(x, torch.tensor([0, 1]))
    out.loss.backward()
    opt.step()
    after = model.encoder.parameters()
    assert any(not torch.equal(b, p) for b, p in zip(before, after, strict=True))
    assert model.decode_codes(out.codes, 0).shape == (2, 1, 256)


def test_residual_levels_decode_too():
    torch.manual_seed(0)
    model = AudioVQVAE(tiny_config(num_quantizers=2)).eval()
    codes = model.encode(torch.rand(1, 1, 128))
    assert codes.shape == (1, 2, 2)
    assert model.decode_codes(codes, "amy").shape == (1, 1, 128)


def test_encode_takes_any_multiple_of_the_hop_and_refuses_the_rest():
    model = AudioVQVAE(tiny_config()).eval()
    assert model.encode(torch.zeros(1, 1, 64 * 7)).shape == (1, 7)
    with pytest.raises(ValueError, match="multiple of 64"):
        model.encode(torch.zeros(1, 1, 100))
    with pytest.raises(ValueError, match=r"shape \(B, 1, T\)"):
        model.encode(torch.zeros(1, 2, 128))
    with pytest.raises(ValueError, match="unknown speaker 'carl'; this model knows amy, bob"):
        model.decode_codes(torch.zeros(1, 2, dtype=torch.long), "carl")


def test_config_derives_the_wavenet_from_the_rest():
    c = tiny_config()
    assert c.wavenet.local_channels == 8 and c.wavenet.upsample_factor == 64
    assert c.wavenet.num_speakers == 2 and c.hop == 64
    with pytest.raises(ValueError, match="mono sequences"):
        AudioVQVAEConfig(net=NetConfig(kind="conv2d"), input_size=(64, 64))


def test_random_windows_crop_long_and_place_short_utterances_whole():
    long, short = np.linspace(-1, 1, 1000, dtype=np.float32), np.full(50, 0.5, np.float32)
    torch.manual_seed(3)
    w = random_windows((long, short), torch.tensor([0, 1]), 256)
    assert w.shape == (2, 1, 256)
    start = int(np.argmin(np.abs(long - w[0, 0, 0].item())))
    assert torch.allclose(w[0, 0], torch.from_numpy(long[start : start + 256]))
    assert w[1].sum().item() == pytest.approx(25.0)  # all 50 samples of 0.5, the rest silence
    torch.manual_seed(3)
    assert torch.equal(w, random_windows((long, short), torch.tensor([0, 1]), 256))


def test_silence_codes_and_speech_lengths():
    model = AudioVQVAE(tiny_config()).eval()
    silence = silence_codes(model)
    assert 1 <= len(silence) <= 2
    s = int(silence[0])
    other = (s + 1) % 16 if (s + 1) % 16 not in silence else (s + 2) % 16
    codes = np.array([[other, other, s, s], [s, s, s, s], [other, s, other, other]])
    assert speech_lengths(codes, silence).tolist() == [2, 1, 4]


# -- training and commands on a speech run ------------------------------------------------


def test_train_resumes_exactly(speech_folder, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert train_speech(speech_folder, full, 6, "--set", "train.checkpoint_every=3") == 0
    assert train_speech(speech_folder, cut, 3, "--set", "train.checkpoint_every=3") == 0
    assert train_speech(speech_folder, cut, 6, "--resume") == 0
    a, b = load_run_model(RunDir(full)).state_dict(), load_run_model(RunDir(cut)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_trained_run_records_its_speakers_and_rate(speech_run):
    model = load_run_model(RunDir(speech_run))
    assert isinstance(model, AudioVQVAE)
    assert model.speakers == SPEAKERS and model.config.sample_rate == RATE
    records = (speech_run / "metrics.jsonl").read_text()
    assert '"bits_per_sample"' in records and '"split": "test"' in records


def test_reconstruct_writes_one_wav_per_input_named_after_it(speech_run, speech_folder, tmp_path):
    out = tmp_path / "recon"
    argv = ["reconstruct", str(speech_run), "--data", str(speech_folder), "--out", str(out)]
    assert main([*argv, "--limit", "4"]) == 0
    test = load_audio(str(speech_folder), "test")
    for name, original in zip(test.files[:4], test.waveforms[:4], strict=True):
        wave, rate = sf.read(out / name, dtype="float32")
        assert rate == RATE and sf.info(out / name).subtype == "PCM_16"
        assert len(wave) == len(original)
    assert len(list(out.iterdir())) == 4


def test_convert_one_file_and_a_folder(speech_run, speech_folder, tmp_path):
    src = speech_folder / "1_amy_0.wav"
    out = tmp_path / "as_bob.wav"
    assert main(["convert", str(speech_run), str(src), "--speaker", "bob", "--out", str(out)]) == 0
    assert len(read_audio(out, RATE)) == len(read_audio(src, RATE))
    folder = tmp_path / "converted"
    argv = ["convert", str(speech_run), "--data", str(speech_folder), "--speaker", "amy"]
    assert main([*argv, "--limit", "3", "--out", str(folder)]) == 0
    assert len(list(folder.glob("*.wav"))) == 3


def test_convert_refuses_an_unknown_speaker_in_one_line(speech_run, speech_folder, tmp_path):
    err = io.StringIO()
    out = tmp_path / "x.wav"
    argv = ["convert", str(speech_run), str(speech_folder / "0_amy_0.wav"), "--speaker", "zed"]
    with contextlib.redirect_stderr(err):
        assert main([*argv, "--out", str(out)]) != 0
    assert err.getvalue().strip() == (
        "vqvae: error: unknown speaker 'zed'; this model knows amy, bob"
    )
    assert not out.exists()


def test_encode_then_decode_with_another_speaker(speech_run, speech_folder, tmp_path):
    codes = tmp_path / "codes.npz"
    run = str(speech_run)
    assert main(["encode", run, "--data", str(speech_folder), "--out", str(codes)]) == 0
    with np.load(codes) as f:
        assert f["codes"].shape[0] == 30 and f["codes"].shape[1] == f["lengths"].max()
        assert set(f["speakers"].tolist()) == {0, 1} and f["labels"].max() == 2
        lengths = f["lengths"]
    out = tmp_path / "decoded"
    assert main(["decode", run, str(codes), "--speaker", "bob", "--out", str(out)]) == 0
    waves = sorted(out.glob("*.wav"))
    assert len(waves) == 30
    assert len(read_audio(waves[0], RATE)) == lengths[0] * 64


def test_eval_reports_bits_per_sample(speech_run, speech_folder, capsys):
    assert main(["eval", str(speech_run), "--data", str(speech_folder), "--json"]) == 0
    out = capsys.readouterr().out
    assert '"bits_per_sample"' in out and '"bit_rate": 500.0' in out  # 125 codes/s x 4 bits


def test_prior_over_code_sequences_and_sampling_speech(speech_run, speech_folder, tmp_path):
    run = str(speech_run)
    argv = ["prior", "train", run, "--data", str(speech_folder), "--class-conditional"]
    assert main([*argv, "--steps", "5", "--batch-size", "4", "--no-progress"]) == 0
    saved = RunDir(speech_run).prior.read_config()
    assert saved["kind"] == "transformer"
    assert saved["config"]["num_classes"] == 3 and saved["config"]["cond_dim"] == 2
    out = tmp_path / "samples"
    argv = ["sample", run, "--label", "2", "--speaker", "bob", "--n", "3", "--out", str(out)]
    assert main(argv) == 0
    assert len(list(out.glob("*.wav"))) == 3
    with np.load(out / "samples.npz") as f:
        assert f["codes"].shape == (3, saved["config"]["shape"][0])
        assert (f["labels"] == 2).all()


def test_inference_functions_agree(speech_run, speech_folder):
    model = load_run_model(RunDir(speech_run))
    test = load_audio(str(speech_folder), "test").subset(range(5))
    found = encode_audio(model, test)
    assert found.lengths.tolist() == [-(-len(x) // 64) for x in test.waveforms]
    codes, waves = convert(model, test, None, seed=1)
    assert np.array_equal(codes.codes, found.codes)
    assert [len(w) for w in waves] == [len(x) for x in test.waveforms]
    _, again = convert(model, test, None, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(waves, again, strict=True))
    e = evaluate_audio(model, test)
    assert 0 < e.bits_per_sample < 9 and e.codes_per_second == 125.0


def test_probe_command_reads_digits_and_speakers_from_codes(speech_run, speech_folder, capsys):
    assert main(["probe", str(speech_run), "--data", str(speech_folder), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_train"] == 18 and result["num_test"] == 30
    assert result["digit"]["classes"] == 3 and result["speaker"]["classes"] == 2
    assert 0.0 <= result["digit"]["accuracy"] <= 1.0


def _training_only_twins(option: AudioVQVAEConfig, plain: AudioVQVAEConfig, samples: int):
    """Two models with the same weights, one with a training-only option: asserts they are
    equal in eval mode, and returns their training forwards under one seed (option, plain)."""
    with_option, without = AudioVQVAE(option), AudioVQVAE(plain)
    without.load_state_dict(with_option.state_dict())
    x, spk = torch.rand(2, 1, samples) * 0.5, torch.tensor([0, 1])
    with_option.eval(), without.eval()
    assert torch.equal(with_option(x, spk).decoder_params, without(x, spk).decoder_params)
    with_option.train(), without.train()
    torch.manual_seed(1)
    a = with_option(x, spk)
    torch.manual_seed(1)
    return a, without(x, spk)


def test_input_noise_touches_only_the_training_inputs():
    torch.manual_seed(0)
    a, b = _training_only_twins(replace(tiny_config(), input_noise=3.0), tiny_config(), 128)
    assert not torch.equal(a.decoder_params, b.decoder_params)  # the inputs were perturbed
    # ... but both are scored against the same clean samples
    assert a.recon_loss.item() != b.recon_loss.item()


def test_time_jitter_copies_a_neighbour_and_acts_only_in_training():
    torch.manual_seed(0)
    z = torch.randn(3, 5, 40)
    assert torch.equal(time_jitter(z, 0.0), z)
    moved = time_jitter(z, 1.0)  # every position takes its left or right neighbour's vector
    for b in range(3):
        for t in range(40):
            # at an end, the neighbour outside is replaced by the position itself
            options = [z[b, :, min(max(u, 0), 39)] for u in (t - 1, t + 1)]
            assert any(torch.equal(moved[b, :, t], o) for o in options)
    half = time_jitter(torch.arange(20000.0).reshape(1, 1, -1), 0.3)[0, 0]
    changed = (half != torch.arange(20000.0)).float().mean()
    assert 0.27 < float(changed) < 0.33  # about p of the positions, ends aside
    with pytest.raises(ValueError, match="time_jitter"):
        replace(tiny_config(), time_jitter=1.5)
    mel = replace(tiny_config(), decoder="mel")
    a, b = _training_only_twins(replace(mel, time_jitter=0.5), mel, 256)
    assert torch.equal(a.codes, b.codes)  # the codes are the same; the decoder's input is not
    assert not torch.equal(a.decoder_params, b.decoder_params)


def test_a_code_file_without_codes_says_so(speech_run, tmp_path, capsys):
    bad = tmp_path / "labels.npz"
    np.savez(bad, labels=np.zeros(3, dtype=np.int64))
    assert main(["decode", str(speech_run), str(bad), "--out", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err.strip()
    assert err == f"vqvae: error: {bad}: no 'codes' array (write one with `vqvae encode`)"

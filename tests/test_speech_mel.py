"""The speech VQ-VAE's spectral route: the STFT, log-mel and Griffin-Lim mathematics
(``vqvae.spectral``), the ``mel`` decoder kind, the vocoders, learning-rate schedules in the
shared loop, and every speech command on a mel run."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import RATE, SPEAKERS, TINY_MEL, error_line, train_speech  # noqa: E402
from vqvae.cli import main
from vqvae.data import load_audio, read_audio
from vqvae.inference.audio import convert, encode_audio, evaluate_audio
from vqvae.models import AudioVQVAE, AudioVQVAEConfig
from vqvae.nets import NetConfig
from vqvae.nets.mel_decoder import MelDecoderConfig
from vqvae.quantizers import QuantizerConfig
from vqvae.registry import NETS, SPEECH_DECODERS, VOCODERS
from vqvae.runs import RunDir, load_run_model
from vqvae.spectral import (
    MelSettings,
    anti_wrapping,
    griffin_lim,
    istft,
    log_mel_frames,
    mel_filters,
    mel_to_magnitude,
    phase_losses,
    spectral_convergence,
    stft,
    warp_frequencies,
)
from vqvae.train.schedule import lr_factor
from vqvae.train.vocoder import vocoder_losses
from vqvae.vocoders import GriffinLim, Vocos, VocosConfig

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = MelSettings(RATE, 64, 40)


def chirp(n: int = 1024, seed: int = 0) -> torch.Tensor:
    """(1, n): a rising tone with a little noise, something with structure to rebuild."""
    t = torch.arange(n) / RATE
    noise = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    return (0.5 * torch.sin(2 * math.pi * (300 * t + 1500 * t**2)) + 0.01 * noise)[None]


# -- the mathematics ------------------------------------------------------------------------


def test_istft_inverts_stft_exactly():
    x = chirp(1024)
    spec = stft(x, 256, 64)
    assert spec.shape == (1, 129, 16)  # one frame per 64 samples, no extra frame
    torch.testing.assert_close(istft(spec, 256, 64), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("n_fft", [256, 200])  # 200: frames that end inside a hop
def test_stft_and_istft_are_the_textbook_transforms(n_fft):
    """``stft`` against ``torch.stft`` on the padded audio; ``istft`` of an inconsistent
    spectrum against the overlap-add written out frame by frame (Griffin and Lim, eq. 6)."""
    hop, frames = 64, 12
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, frames * hop, generator=g, dtype=torch.float64)
    side = n_fft // 2 - hop // 2
    window = torch.hann_window(n_fft, periodic=True, dtype=x.dtype)
    want = torch.stft(
        torch.nn.functional.pad(x, (side, side)), n_fft, hop, window=window, center=False,
        return_complex=True,
    )  # fmt: skip
    torch.testing.assert_close(stft(x, n_fft, hop), want)
    spec = torch.polar(want.abs(), 6.3 * torch.rand(want.shape, generator=g, dtype=x.dtype))
    pieces = torch.fft.irfft(spec, n=n_fft, dim=1) * window[:, None]  # (2, n_fft, frames)
    audio = torch.zeros(2, (frames - 1) * hop + n_fft, dtype=x.dtype)
    envelope = torch.zeros(audio.shape[1], dtype=x.dtype)
    for t in range(frames):
        audio[:, t * hop : t * hop + n_fft] += pieces[:, :, t]
        envelope[t * hop : t * hop + n_fft] += window.square()
    want = (audio / envelope.clamp(min=1e-8))[:, side : side + frames * hop]
    torch.testing.assert_close(istft(spec, n_fft, hop), want)


def test_griffin_lim_is_the_textbook_iteration():
    """The projections written with angles and complex exponentials, as in Perraudin et al.
    2013, algorithm 2, give the same audio as the division ``griffin_lim`` uses."""
    x = chirp(1024).double()
    magnitude = stft(x, 256, 64).abs()
    phase = 6.3 * torch.rand(magnitude.shape, generator=torch.Generator().manual_seed(1))
    c = torch.polar(magnitude, phase.double())
    previous = torch.zeros_like(c)
    for _ in range(6):
        t = magnitude * torch.exp(1j * stft(istft(c, 256, 64), 256, 64).angle())
        c, previous = t + 0.99 * (t - previous), t
    want = istft(magnitude * torch.exp(1j * c.angle()), 256, 64)
    got = griffin_lim(magnitude, 256, 64, 6, 0.99, phase=phase.double())
    torch.testing.assert_close(got, want)


def test_log_mel_frames_are_the_hann_frames_centred_on_each_code():
    """The same numbers as a direct computation: frame t is the 256 samples centred on the
    middle of samples 64t .. 64t + 63, Hann-windowed, its power through the mel filters."""
    x = chirp(512)[0].double()
    padded = torch.nn.functional.pad(x, (96, 96))
    t = 3
    frame = padded[64 * t : 64 * t + 256] * torch.hann_window(256, periodic=True, dtype=x.dtype)
    power = torch.fft.rfft(frame).abs().square()
    want = torch.log(torch.from_numpy(mel_filters(RATE, 256, 40)).double() @ power + 1e-6)
    got = log_mel_frames(x[None], 64, RATE, 40)  # (1, 40, 8)
    assert got.shape == (1, 40, 8)
    torch.testing.assert_close(got[0, :, t], want)


def test_griffin_lim_reduces_spectral_convergence_and_momentum_speeds_it():
    x = chirp(2048)
    magnitude = stft(x, 256, 64).abs()

    def error(iterations: int, momentum: float) -> float:
        g = torch.Generator().manual_seed(0)
        audio = griffin_lim(magnitude, 256, 64, iterations, momentum, generator=g)
        return float(spectral_convergence(magnitude, audio, 256, 64)[0])

    start, plain, fast = error(0, 0.0), error(24, 0.0), error(24, 0.99)
    assert plain < 0.7 * start  # Griffin and Lim 1984: each iteration moves towards consistency
    assert fast < plain  # Perraudin et al. 2013: the momentum gets further in as many


def test_mel_to_magnitude_keeps_the_mel_spectrum():
    x = chirp(1024).double()
    log_mel = log_mel_frames(x, 64, RATE, 40)
    magnitude = mel_to_magnitude(log_mel, SETTINGS)  # (1, 129, 16)
    filters = torch.from_numpy(mel_filters(RATE, 256, 40)).double()
    again = torch.log(filters @ magnitude.square() + 1e-6)
    speech = log_mel > -6  # bands with energy (the pseudo-inverse clips negative powers)
    assert (again - log_mel)[speech].abs().median() < 0.1


def test_schedule_warms_up_then_decays():
    assert lr_factor(0, 100, "cosine", 10, 0.0) == pytest.approx(0.1)
    assert lr_factor(9, 100, "cosine", 10, 0.0) == pytest.approx(1.0)
    assert lr_factor(10, 100, "cosine", 10, 0.1) == pytest.approx(1.0)
    assert lr_factor(55, 100, "cosine", 10, 0.1) == pytest.approx(0.55)  # half way: the mean
    assert lr_factor(99, 100, "cosine", 10, 0.1) == pytest.approx(0.1, abs=1e-3)
    assert [lr_factor(s, 100, "step", 0, 0) for s in (0, 49, 50, 74, 75)] == [1, 1, 0.5, 0.5, 0.25]
    assert lr_factor(50, 100, "constant", 0, 0) == 1.0


# -- the mel decoder ------------------------------------------------------------------------


def tiny_mel_config() -> AudioVQVAEConfig:
    return AudioVQVAEConfig(
        input_size=(256,),
        net=NetConfig(kind="conv1d", hidden_channels=16, residual_channels=8, num_downsamples=6),
        quantizer=QuantizerConfig(kind="ema", num_codes=16, code_dim=8),
        decoder="mel",
        mel_decoder=MelDecoderConfig(hidden_channels=16, num_blocks=2, speaker_dim=4),
        speakers=SPEAKERS,
    )


def test_decoder_and_vocoder_kinds_are_registered(capsys):
    assert {"wavenet", "mel"} <= set(SPEECH_DECODERS.names())
    assert {"griffin-lim", "vocos"} <= set(VOCODERS.names())
    assert main(["list", "decoders"]) == 0 and main(["list", "vocoders"]) == 0
    listed = capsys.readouterr().out.split()
    assert {"wavenet", "mel", "griffin-lim", "vocos"} <= set(listed)
    with pytest.raises(ValueError, match="unknown speech decoder kind 'lpc'"):
        AudioVQVAEConfig(decoder="lpc")


def test_mel_model_predicts_one_log_mel_frame_per_code_and_decodes_codes_alone():
    torch.manual_seed(0)
    model = AudioVQVAE(tiny_mel_config()).eval()
    assert model.config.mel_decoder.code_dim == 8 and model.config.mel_decoder.num_speakers == 2
    x = chirp(512)[None] * 0.5  # (1, 1, 512)
    with torch.no_grad():
        out = model(x, torch.tensor([1]))
    assert out.codes.shape == (1, 8) and out.decoder_params.shape == (1, 40, 8)
    target = log_mel_frames(x[:, 0], 64, RATE, 40)
    assert torch.allclose(out.recon_loss, (out.decoder_params - target).abs().mean())
    # decoding from the codes alone equals the forward pass (no teacher forcing here)
    torch.testing.assert_close(model.decode_mel(out.codes, "bob"), out.decoder_params)
    audio = model.decode_codes(out.codes, "bob", generator=torch.Generator().manual_seed(0))
    assert audio.shape == (1, 1, 512) and audio.abs().max() <= 1
    assert isinstance(model.vocoder, GriffinLim)
    e = evaluate_audio(model, load_audio_like([x[0, 0].numpy()]))
    assert e.bits_per_sample is None and e.mel_error == pytest.approx(float(out.recon_loss), 1e-4)


def load_audio_like(waves):
    from vqvae.data import AudioDataset

    return AudioDataset(tuple(waves), RATE, speakers=np.array([1]), speaker_names=SPEAKERS)


def test_a_vocoder_of_another_setting_is_refused_naming_both():
    model = AudioVQVAE(tiny_mel_config())
    vocoder = Vocos(VocosConfig(sample_rate=16000, hop=64, n_mels=40))
    with pytest.raises(ValueError) as e:
        model.use_vocoder(vocoder)
    assert "8000 Hz, 40 mels every 64 samples" in str(e.value)
    assert "16000 Hz, 40 mels every 64 samples" in str(e.value)


# -- the vocoders ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options", [{}, {"losses": "vocos", "pinv_residual": False}], ids=["default", "plain"]
)
def test_vocos_trains_its_loss_down_on_a_tiny_clip(options):
    torch.manual_seed(0)
    vocoder = Vocos(VocosConfig(channels=16, mlp_channels=32, num_blocks=2, **options))
    optimizer = torch.optim.Adam(vocoder.parameters(), lr=3e-3)
    x = chirp(1024)
    losses = []
    for _ in range(40):
        out = vocoder_losses(vocoder, x)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append((out.mel_error + out.stft).item())  # the audio's, in both
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert vocoder.vocode(log_mel_frames(x, 64, RATE, 40)).shape == (1, 1024)


def test_the_apnet_losses_add_the_spectrums_magnitude_and_phase_terms():
    torch.manual_seed(0)
    config = VocosConfig(channels=16, mlp_channels=32, num_blocks=2, losses="vocos")
    plain = Vocos(config)
    apnet = Vocos(replace(config, losses="apnet"))
    apnet.load_state_dict(plain.state_dict())
    x = chirp(1024)
    a, b = vocoder_losses(plain, x), vocoder_losses(apnet, x)
    torch.testing.assert_close(a.loss, a.mel_error + a.stft)
    torch.testing.assert_close(b.loss, a.loss + a.magnitude + a.phase)
    assert a.magnitude > 0 and a.phase > 0


def test_phase_losses_ignore_whole_turns_and_see_a_shift():
    torch.manual_seed(0)
    phase = (torch.rand(2, 129, 16) - 0.5) * 2 * math.pi
    turns = torch.randint(-3, 4, phase.shape) * 2 * math.pi
    assert phase_losses(phase + turns, phase) < 1e-4
    assert anti_wrapping(torch.tensor([math.pi / 2, 3 * math.pi / 2])).tolist() == pytest.approx(
        [math.pi / 2, math.pi / 2]
    )
    assert phase_losses(phase + 0.5, phase) == pytest.approx(0.5, abs=1e-4)  # only the phase


def test_the_pinv_residual_starts_from_the_pseudo_inverse_and_griffin_lim_refines_its_phase():
    config = VocosConfig(channels=16, mlp_channels=32, num_blocks=2, pinv_residual=True)
    vocoder = Vocos(config)
    torch.nn.init.zeros_(vocoder.head.weight)
    torch.nn.init.zeros_(vocoder.head.bias)
    mel = log_mel_frames(chirp(1024), 64, RATE, 40)
    with torch.no_grad():
        log_magnitude, phase = vocoder.spectrum(mel)
    want = mel_to_magnitude(mel, config.settings).clamp(min=1e-3).log()
    torch.testing.assert_close(log_magnitude, want)
    assert torch.all(phase == 0)
    # with Griffin-Lim iterations the audio's magnitude comes closer to the one predicted
    magnitude = log_magnitude.exp()
    errors = []
    for n in (0, 16):
        vocoder.config = replace(config, griffin_lim_iterations=n)
        audio = vocoder.vocode(mel)
        errors.append(float(spectral_convergence(magnitude, audio, 256, 64).mean()))
    assert errors[1] < 0.8 * errors[0]


def test_a_vocos_saved_before_the_new_options_loads_without_them(tmp_path):
    Vocos(VocosConfig(channels=16, mlp_channels=32, num_blocks=2)).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    for name in ("losses", "pinv_residual", "griffin_lim_iterations"):
        del saved["config"][name]  # as an older release wrote it
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = Vocos.from_pretrained(tmp_path).config
    assert (loaded.losses, loaded.pinv_residual, loaded.griffin_lim_iterations) == (
        "vocos",
        False,
        0,
    )
    with pytest.raises(ValueError, match="losses: expected one of vocos, apnet"):
        VocosConfig(losses="gan")
    with pytest.raises(ValueError, match="griffin_lim_iterations"):
        VocosConfig(griffin_lim_iterations=-1)


def test_a_mel_run_makes_audio_with_its_own_griffin_lim_iterations(tmp_path):
    """16 by default; a run saved before the field keeps the 32 it decoded with."""
    small = MelDecoderConfig(hidden_channels=8, num_blocks=1, speaker_dim=4)
    config = AudioVQVAEConfig(decoder="mel", mel_decoder=small, speakers=SPEAKERS)
    assert config.griffin_lim_iterations == 16
    model = AudioVQVAE(replace(config, griffin_lim_iterations=3))
    assert model.vocoder.iterations == 3
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["config"]["griffin_lim_iterations"]  # as an older release wrote it
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert AudioVQVAE.from_pretrained(tmp_path).vocoder.iterations == 32
    with pytest.raises(ValueError, match="griffin_lim_iterations: expected a positive int"):
        replace(config, griffin_lim_iterations=0)


def test_vocoder_train_command_and_its_use_by_a_mel_run(speech_folder, mel_run, tmp_path):
    voc = tmp_path / "voc"
    argv = ["vocoder", "train", "--data", str(speech_folder), "--out", str(voc)]
    assert main([*argv, "--steps", "3", "--batch-size", "2", "--no-progress"]) == 0
    assert json.loads((voc / "config.json").read_text())["class"] == "Vocos"
    out = tmp_path / "recon"
    argv = ["reconstruct", str(mel_run), "--data", str(speech_folder), "--limit", "2"]
    assert main([*argv, "--vocoder", str(voc), "--out", str(out)]) == 0
    assert len(list(out.glob("*.wav"))) == 2
    assert isinstance(load_run_model(RunDir(mel_run), voc).vocoder, Vocos)


def test_a_run_refuses_a_vocoder_of_another_setting_in_one_line(
    speech_folder, mel_run, tmp_path, capsys
):
    voc = tmp_path / "voc32"
    Vocos(VocosConfig(hop=32)).save_pretrained(voc)
    capsys.readouterr()
    argv = ["reconstruct", str(mel_run), "--data", str(speech_folder), "--vocoder", str(voc)]
    assert main([*argv, "--out", str(tmp_path / "r")]) != 0
    line = error_line(capsys.readouterr().err)
    assert "8000 Hz, 40 mels every 64 samples" in line
    assert "8000 Hz, 40 mels every 32 samples" in line
    assert not (tmp_path / "r").exists()


# -- a mel run and every speech command -------------------------------------------------------


@pytest.fixture(scope="module")
def mel_run(speech_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "mel"
    assert train_speech(speech_folder, out, 6, *TINY_MEL, "--set", "train.checkpoint_every=3") == 0
    return out


def test_mel_run_records_its_decoder_schedule_and_log_mel_error(mel_run):
    saved = RunDir(mel_run).read_config()
    assert saved["config"]["decoder"] == "mel" and saved["train"]["lr_schedule"] == "cosine"
    assert saved["train"]["warmup_steps"] == 2
    records = [json.loads(x) for x in (mel_run / "metrics.jsonl").read_text().splitlines()]
    assert any("mel_error" in r and r["split"] == "test" for r in records)


def test_resume_with_a_schedule_is_exact(speech_folder, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    extra = (*TINY_MEL, "--set", "train.checkpoint_every=3")
    assert train_speech(speech_folder, full, 6, *extra) == 0
    assert train_speech(speech_folder, cut, 6, *extra) == 0
    # as if killed after step 3: the last checkpoint and the weights gone
    shutil.rmtree(cut / "checkpoints" / "step-0000006")
    (cut / "model.safetensors").unlink()
    assert train_speech(speech_folder, cut, 6, *TINY_MEL, "--resume") == 0
    a, b = load_run_model(RunDir(full)).state_dict(), load_run_model(RunDir(cut)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_steps_for_a_decaying_schedule(mel_run, speech_folder, capsys):
    capsys.readouterr()
    assert train_speech(speech_folder, mel_run, 9, *TINY_MEL, "--resume") != 0
    assert "train.steps (the schedule's horizon)" in error_line(capsys.readouterr().err)


def test_every_speech_command_works_with_a_mel_run(mel_run, speech_folder, tmp_path, capsys):
    run, data = str(mel_run), str(speech_folder)
    recon = tmp_path / "recon"
    assert main(["reconstruct", run, "--data", data, "--limit", "3", "--out", str(recon)]) == 0
    test = load_audio(data, "test")
    for name, original in zip(test.files[:3], test.waveforms[:3], strict=True):
        assert len(read_audio(recon / name, RATE)) == len(original)
    one = tmp_path / "as_bob.wav"
    src = speech_folder / "1_amy_0.wav"
    assert main(["convert", run, str(src), "--speaker", "bob", "--out", str(one)]) == 0
    assert len(read_audio(one, RATE)) == len(read_audio(src, RATE))
    codes = tmp_path / "codes.npz"
    assert main(["encode", run, "--data", data, "--out", str(codes)]) == 0
    decoded = tmp_path / "decoded"
    assert main(["decode", run, str(codes), "--speaker", "amy", "--out", str(decoded)]) == 0
    assert len(list(decoded.glob("*.wav"))) == 30
    capsys.readouterr()
    assert main(["probe", run, "--data", data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["digit"]["classes"] == 3
    argv = ["prior", "train", run, "--data", data, "--class-conditional"]
    assert main([*argv, "--steps", "3", "--batch-size", "4", "--no-progress"]) == 0
    out = tmp_path / "samples"
    argv = ["sample", run, "--label", "2", "--speaker", "bob", "--n", "2", "--out", str(out)]
    assert main(argv) == 0
    assert len(list(out.glob("*.wav"))) == 2
    assert main(["eval", run, "--data", data, "--json"]) == 0
    assert '"mel_error"' in capsys.readouterr().out
    assert main(["eval", run, "--data", data]) == 0
    assert "mel_error" in capsys.readouterr().out


def test_mel_reconstructions_are_deterministic_for_a_seed(mel_run, speech_folder):
    model = load_run_model(RunDir(mel_run))
    test = load_audio(str(speech_folder), "test").subset(range(3))
    codes, waves = convert(model, test, None, seed=1)
    assert np.array_equal(codes.codes, encode_audio(model, test).codes)
    _, again = convert(model, test, None, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(waves, again, strict=True))


def test_report_of_a_mel_run_shows_predicted_beside_true_log_mels(mel_run, speech_folder):
    from vqvae import report

    page = report.write_report(str(mel_run), None, data=str(speech_folder))
    html = Path(page).read_text()
    assert (mel_run / "report" / "predicted.png").is_file()
    assert "Log-mel frames: original and predicted" in html and "GriffinLim" in html
    assert len(list((mel_run / "report" / "audio").glob("*.wav"))) >= 6  # 2 speakers x 3 kinds


def test_train_with_vocoder_steps_keeps_its_own_vocoder(speech_folder, tmp_path):
    out = tmp_path / "own"
    extra = ("--set", "vocoder_steps=2", "--set", "train.checkpoint_every=2")
    assert train_speech(speech_folder, out, 2, *TINY_MEL, *extra) == 0
    assert json.loads((out / "vocoder" / "config.json").read_text())["class"] == "Vocos"
    assert isinstance(load_run_model(RunDir(out)).vocoder, Vocos)  # found without --vocoder


def test_a_run_of_the_removed_conv1d_norm_fails_in_one_line(tmp_path, capsys):
    """``conv1d-norm`` left the registry (it measured no gain, docs/speech.md): a run that
    names it is refused in one line that says so, and is left as it was."""
    run = tmp_path / "run"
    shutil.copytree(Path(__file__).parent / "fixtures" / "speech-wavenet" / "run", run)
    config = json.loads((run / "config.json").read_text())
    config["config"]["net"]["kind"] = "conv1d-norm"
    (run / "config.json").write_text(json.dumps(config))
    before = sorted((p.name, p.read_bytes()) for p in run.iterdir())
    assert main(["eval", str(run), "--data", str(tmp_path / "none")]) == 2
    err = error_line(capsys.readouterr().err)
    assert "network kind 'conv1d-norm' was removed" in err and "87ef430" in err
    assert sorted((p.name, p.read_bytes()) for p in run.iterdir()) == before
    assert "conv1d-norm" not in NETS.names()


def test_instance_normalised_encoder_takes_each_utterances_mean_scale_and_level_out():
    """conv1d-inorm: each utterance's z_e is the plain encoder's output with its own mean
    and standard deviation per channel over time taken out (eps 1e-5 under the root); at
    initialization (He, zero biases: a positively homogeneous network) a recording 3x louder
    gives 3x the plain output, so only the eps tells their codes apart."""
    torch.manual_seed(0)
    config = tiny_mel_config()
    model = AudioVQVAE(replace(config, net=replace(config.net, kind="conv1d-inorm")))
    x = torch.cat([chirp(512)[None] * 0.5, chirp(512, seed=1)[None] * 0.1])  # (2, 1, 512)
    with torch.no_grad():
        z = model.encoder(x)  # (2, D, T')
        raw = model.encoder.encoder(x)  # (2, D, T'), before the normalisation
        mean, var = raw.mean(2, keepdim=True), raw.var(2, unbiased=False, keepdim=True)
        assert torch.allclose(z, (raw - mean) / torch.sqrt(var + 1e-5), atol=1e-5)
        assert torch.allclose(z.mean(2), torch.zeros(2, 8), atol=1e-5)
        assert torch.allclose(model.encoder.encoder(3 * x), 3 * raw, atol=1e-6)


def test_spectrogram_encoder_reads_each_codes_own_frames():
    """spectrogram1d: one z_e per 64 samples, computed from the log power spectrum of the
    samples around that code: changing the first code's samples leaves z_e unchanged beyond
    the convolutions' reach (2 frames of the STFT window's overlap, 4 of the 3-wide layers)."""
    torch.manual_seed(0)
    config = tiny_mel_config()
    model = AudioVQVAE(replace(config, net=replace(config.net, kind="spectrogram1d")))
    x = chirp(2048)[None]  # (1, 1, 2048): 32 codes
    changed = x.clone()
    changed[..., :64] = torch.randn(64)
    with torch.no_grad():
        z, z_changed = model.encoder(x), model.encoder(changed)
    assert z.shape == (1, 8, 32)
    moved = (z - z_changed).abs().amax(1)[0]  # (32,)
    assert moved[0] > 1e-3 and torch.equal(z[..., 7:], z_changed[..., 7:])


def test_spectrogram_encoder_trains_and_converts(speech_folder, tmp_path):
    out = tmp_path / "spec"
    assert train_speech(speech_folder, out, 4, *TINY_MEL, "--set", "net.kind=spectrogram1d") == 0
    assert RunDir(out).read_config()["config"]["net"]["kind"] == "spectrogram1d"
    src, one = speech_folder / "1_amy_0.wav", tmp_path / "as_bob.wav"
    assert main(["convert", str(out), str(src), "--speaker", "bob", "--out", str(one)]) == 0
    assert len(read_audio(one, RATE)) == len(read_audio(src, RATE))


def test_warp_frequencies_moves_a_peak_and_keeps_a_factor_of_one_exact():
    spectra = torch.zeros(2, 65, 3)  # (B, F, T')
    spectra[:, 10] = 1.0  # a harmonic at bin 10 in both clips
    warped = warp_frequencies(spectra, torch.tensor([1.0, 2.0]))
    assert torch.equal(warped[0], spectra[0])
    assert warped[1, :, 0].argmax() == 20 and warped[1, 20, 0] == 1.0  # moved up an octave
    ramp = torch.arange(65.0).reshape(1, 65, 1)
    down = warp_frequencies(ramp, torch.tensor([0.5]))[0, :, 0]
    assert torch.equal(down[:33], 2 * torch.arange(33.0)) and (down[33:] == 64).all()


def test_frequency_warp_acts_on_the_spectrogram_encoders_input_in_training_only():
    """frequency_warp: eval mode is the plain model; in training the spectra are stretched
    (so z_e changes), by draws from torch's generator (so a resumed run repeats them)."""
    config = tiny_mel_config()
    spec = replace(config, net=replace(config.net, kind="spectrogram1d"))
    torch.manual_seed(0)
    warped, plain = AudioVQVAE(replace(spec, frequency_warp=0.5)), AudioVQVAE(spec)
    plain.load_state_dict(warped.state_dict())
    x = torch.cat([chirp(512)[None], chirp(512, seed=1)[None]])  # (2, 1, 512)
    warped.eval(), plain.eval()
    assert torch.equal(warped.encoder(x), plain.encoder(x))
    warped.train(), plain.train()
    assert not torch.equal(warped.encoder(x), plain.encoder(x))
    torch.manual_seed(3)
    a = warped.encoder(x)
    torch.manual_seed(3)
    assert torch.equal(warped.encoder(x), a)  # draws from torch's generator: resumable
    with pytest.raises(ValueError, match="frequency_warp stretches spectra: it needs"):
        replace(config, frequency_warp=0.2)  # a waveform encoder has no spectra to stretch
    with pytest.raises(ValueError, match="frequency_warp: expected >= 0"):
        replace(spec, frequency_warp=-0.1)


def test_spectrogram_inorm_normalises_each_clips_codes_over_time():
    config = tiny_mel_config()
    model = AudioVQVAE(replace(config, net=replace(config.net, kind="spectrogram1d-inorm")))
    x = torch.cat([chirp(2048)[None] * 0.5, chirp(2048, seed=1)[None] * 0.1])  # (2, 1, 2048)
    with torch.no_grad():
        z = model.encoder(x)  # (2, D, 32)
    assert torch.allclose(z.mean(2), torch.zeros(2, 8), atol=1e-5)
    assert torch.allclose(z.var(2, unbiased=False), torch.ones(2, 8), atol=1e-3)


def test_adain_normalises_each_blocks_features_before_the_speakers_scale_and_shift():
    """mel_decoder.adain: each block's convolution output has zero mean and unit spread per
    clip and channel before FiLM, so the voice comes from the speaker embedding alone."""
    torch.manual_seed(0)
    config = replace(tiny_mel_config(), mel_decoder=MelDecoderConfig(16, 2, 4, adain=True))
    decoder = AudioVQVAE(config).decoder
    seen = []
    decoder.blocks[0].norm.register_forward_hook(lambda m, i, out: seen.append(out))
    z_q = torch.randn(2, 8, 30)  # (B, D, T')
    mels = decoder(z_q, torch.tensor([0, 1]))
    assert mels.shape == (2, 40, 30)
    torch.testing.assert_close(seen[0].mean(2), torch.zeros(2, 16), atol=1e-5, rtol=0)
    torch.testing.assert_close(seen[0].var(2, unbiased=False), torch.ones(2, 16), atol=1e-3, rtol=0)
    other = decoder(z_q, torch.tensor([1, 0]))  # the voice changes with the speaker
    assert not torch.allclose(mels, other)
    plain = AudioVQVAE(tiny_mel_config()).decoder  # the default keeps plain FiLM
    assert isinstance(plain.blocks[0].norm, torch.nn.Identity)
    with pytest.raises(ValueError, match="mel_decoder.adain: expected true or false"):
        MelDecoderConfig(adain="yes")


def test_speaker_adversary_learns_the_speaker_and_pushes_the_encoder_the_other_way():
    """speaker_adversary: the classifier gets its cross-entropy's own gradient, the encoder
    that gradient negated (gradient reversal); the model's loss adds it at its weight."""
    torch.manual_seed(0)
    model = AudioVQVAE(replace(tiny_mel_config(), speaker_adversary=0.5))
    x = torch.cat([chirp(512)[None], chirp(512, seed=1)[None]])  # (2, 1, 512)
    speaker = torch.tensor([0, 1])
    model(x, speaker)  # a training step's codebook fit
    model.eval()
    out = model(x, speaker)
    assert out.adversary_loss > 0
    torch.testing.assert_close(out.loss, out.recon_loss + out.vq_loss + 0.5 * out.adversary_loss)

    def grads(loss):
        model.zero_grad()
        loss.backward()
        encoder = [p.grad.clone() for p in model.encoder.parameters()]
        adversary = [p.grad.clone() for p in model.speaker_adversary.parameters()]
        return encoder, adversary

    enc_reversed, adv_reversed = grads(model(x, speaker).adversary_loss)
    logits = model.speaker_adversary(model.encoder(x))
    enc_plain, adv_plain = grads(torch.nn.functional.cross_entropy(logits, speaker))
    assert any(g.abs().max() > 0 for g in enc_plain)
    for a, b in zip(enc_reversed, enc_plain, strict=True):
        torch.testing.assert_close(a, -b)
    for a, b in zip(adv_reversed, adv_plain, strict=True):
        torch.testing.assert_close(a, b)


def test_speaker_adversary_is_off_without_speakers():
    """The speech8k preset has the adversary; data with no speakers trains without it."""
    model = AudioVQVAE(replace(tiny_mel_config(), speakers=(), speaker_adversary=0.1))
    assert model.speaker_adversary is None
    out = model(chirp(512)[None])
    assert out.adversary_loss == 0 and torch.equal(out.loss, out.recon_loss + out.vq_loss)


def test_speaker_adversary_trains_from_the_command_line(speech_folder, tmp_path):
    """--set speaker_adversary=W before the CLI names the data's speakers; the term is logged."""
    out = tmp_path / "adv"
    assert train_speech(speech_folder, out, 2, *TINY_MEL, "--set", "speaker_adversary=0.1") == 0
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(r["speaker_adversary"] > 0 for r in records if r["split"] == "train")

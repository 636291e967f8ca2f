"""WaveNet decoder, fast generation, the paper's audio encoder and mu-law companding.

The checks are mathematical: causality and the receptive field by perturbation, the
cached step-by-step logits against the teacher-forcing pass, and the cached and naive
samplers against each other (same seed, same samples).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vqvae.mulaw import max_roundtrip_error, mulaw_decode, mulaw_encode
from vqvae.nets import NetConfig, WaveNet, WaveNetConfig
from vqvae.registry import NETS

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny convolutions crawl on shared cores

TINY = {
    "residual_channels": 8,
    "gate_channels": 6,
    "skip_channels": 10,
    "layers": 3,
    "stacks": 2,
    "local_channels": 4,
    "upsample_factor": 4,
}


def tiny(seed: int = 0, **overrides) -> WaveNet:
    torch.manual_seed(seed)
    return WaveNet(WaveNetConfig(**{**TINY, **overrides})).eval()


def inputs(net: WaveNet, batch: int, latents: int, seed: int = 1):
    """Random samples (B, T), latents (B, C_l, T') and speakers (B,) or None."""
    c = net.config
    g = torch.Generator().manual_seed(seed)
    dtype = net.embed.weight.dtype
    samples = torch.randint(0, c.num_classes, (batch, latents * c.upsample_factor), generator=g)
    local = torch.randn(batch, c.local_channels, latents, generator=g, dtype=dtype)
    speaker = torch.randint(0, c.num_speakers, (batch,), generator=g) if c.num_speakers else None
    return samples, local, speaker


# -- mu-law ------------------------------------------------------------------------------


def test_mulaw_round_trip_error_is_half_the_top_step():
    x = torch.linspace(-1, 1, 400_001, dtype=torch.float64)
    err = (mulaw_decode(mulaw_encode(x)).double() - x).abs()
    bound = max_roundtrip_error(256)
    assert err.max() <= bound + 1e-6
    assert err.max() >= 0.99 * bound  # the bound is attained: it is the error, not a guess
    assert math.isclose(bound, 0.0216, abs_tol=1e-4)
    small = x.abs() < 0.01  # companding: fine steps near silence
    assert err[small].max() < 0.001


def test_mulaw_integers_survive_decode_then_encode():
    for channels in (256, 16, 2):
        q = torch.arange(channels)
        assert torch.equal(mulaw_encode(mulaw_decode(q, channels), channels), q)
    assert mulaw_encode(torch.zeros(3)).tolist() == [128] * 3 == [WaveNetConfig().silence] * 3
    assert mulaw_encode(torch.tensor([-1.0, 1.0])).tolist() == [0, 255]


def test_mulaw_refuses_bad_input():
    for bad in (torch.tensor([1.5]), torch.tensor([float("nan")]), torch.tensor([1, 0])):
        with pytest.raises(ValueError, match="^x: expected") as e:
            mulaw_encode(bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"q: expected values in \[0, 256\)"):
        mulaw_decode(torch.tensor([256]))


# -- the network --------------------------------------------------------------------------


def test_output_shape_and_upsampled_length_for_any_factor():
    for f in (1, 3, 4):
        net = tiny(upsample_factor=f)
        samples, local, _ = inputs(net, 2, 5)
        assert net.upsample_local(local).shape == (2, 4, 5 * f)
        assert net(samples, local).shape == (2, 256, 5 * f)


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_causality_and_receptive_field_by_perturbation(kernel_size):
    net = tiny(kernel_size=kernel_size).double()
    rf = net.config.receptive_field
    assert rf == (kernel_size - 1) * 2 * (1 + 2 + 4) + 1  # 15 or 29
    samples, local, _ = inputs(net, 1, 20)  # T = 80 > s + rf + 1
    s = 7
    changed = samples.clone()
    changed[0, s] = (samples[0, s] + 100) % 256
    with torch.no_grad():
        diff = (net(changed, local) - net(samples, local)).abs().amax(dim=1)[0]  # (T,)
    moved = (diff > 0).nonzero().flatten().tolist()
    # sample s is seen by outputs s+1 .. s+rf: not by itself or earlier, nor after the field
    assert moved == list(range(s + 1, s + rf + 1))


def test_local_and_speaker_conditioning_change_the_logits():
    net = tiny(num_speakers=3, speaker_dim=5)
    samples, local, _ = inputs(net, 2, 6)
    speaker = torch.tensor([0, 1])
    with torch.no_grad():
        base = net(samples, local, speaker)
        other_local = net(samples, local + torch.randn_like(local), speaker)
        other_speaker = net(samples, local, torch.tensor([2, 2]))
    assert (other_local - base).abs().amax(dim=(1, 2)).min() > 1e-3  # every clip, every...
    assert (other_local - base).abs().amax(dim=1).min() > 0  # ... position
    assert (other_speaker - base).abs().amax(dim=(1, 2)).min() > 1e-3


def test_teacher_forcing_loss_trains():
    net = tiny().train()
    samples, local, _ = inputs(net, 2, 4)
    samples = samples // 64 + 126  # a narrow alphabet: easy to learn
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(net(samples, local), samples)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > math.log(256) - 0.5 and losses[-1] < 0.5 * losses[0]


# -- generation ---------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [{}, {"kernel_size": 3, "num_speakers": 3}])
def test_cached_step_logits_equal_teacher_forcing(overrides):
    net = tiny(**overrides)
    samples, local, speaker = inputs(net, 3, 10)  # T = 40 > receptive field: queues wrap
    with torch.no_grad():
        expected = net(samples, local, speaker)  # (B, K, T)
    fast = net.fast_generator(local, speaker)
    x_prev = F.pad(samples[:, :-1], (1, 0), value=net.config.silence)
    steps = [fast.step(x_prev[:, t]).clone() for t in range(samples.shape[1])]
    torch.testing.assert_close(torch.stack(steps, dim=2), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="all 40 samples"):
        fast.step(x_prev[:, 0])


def test_small_conditioning_blocks_give_the_same_logits(monkeypatch):
    import vqvae.nets.wavenet as wavenet

    net = tiny(num_speakers=2)
    samples, local, speaker = inputs(net, 2, 5)
    x_prev = F.pad(samples[:, :-1], (1, 0), value=net.config.silence)
    runs = []
    for floats in (2**24, 2 * 12 * 6 * 7):  # one block; blocks of 7 steps (not a divisor)
        monkeypatch.setattr(wavenet, "_COND_BLOCK_FLOATS", floats)
        fast = net.fast_generator(local, speaker)
        runs.append(torch.stack([fast.step(x_prev[:, t]).clone() for t in range(20)]))
    assert fast.block == 7
    torch.testing.assert_close(runs[0], runs[1])


def test_cached_and_naive_generation_draw_the_same_samples():
    net = tiny(num_speakers=3, speaker_dim=5)
    _, local, _ = inputs(net, 4, 10)
    speaker = torch.tensor([0, 2, 1, 2])
    draws = {
        method: net.generate(
            local,
            speaker,
            temperature=0.9,
            generator=torch.Generator().manual_seed(5),
            method=method,
        )
        for method in ("cached", "naive")
    }
    cached = draws["cached"]
    assert cached.shape == (4, 40) and cached.dtype == torch.long
    assert torch.equal(cached, draws["naive"])
    assert len(cached.unique()) > 10  # a real draw, not a constant
    again = net.generate(local, speaker, 0.9, torch.Generator().manual_seed(5))
    assert torch.equal(again, cached)
    other = net.generate(local, speaker, 0.9, torch.Generator().manual_seed(6))
    assert not torch.equal(other, cached)


def test_generate_keeps_training_mode_and_speaker_int():
    net = tiny(num_speakers=2).train()
    _, local, _ = inputs(net, 2, 2)
    out = net.generate(local, 1, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 8) and net.training


# -- input checks -------------------------------------------------------------------------


def one_line_error(fn, match: str) -> None:
    with pytest.raises(ValueError, match=match) as e:
        fn()
    assert "\n" not in str(e.value)


def test_bad_inputs_raise_one_line_value_errors():
    net = tiny(num_speakers=2)
    samples, local, speaker = inputs(net, 2, 3)
    one_line_error(lambda: net(samples.float(), local, speaker), "samples: expected mu-law")
    one_line_error(lambda: net(samples[0], local, speaker), r"samples: expected shape \(B, T\)")
    one_line_error(lambda: net(samples + 256, local, speaker), r"values in \[0, 256\)")
    one_line_error(lambda: net(samples, local[:, :3], speaker), r"local: expected shape \(2, 4")
    one_line_error(lambda: net(samples, local[:1], speaker), "local: expected batch size 2")
    one_line_error(lambda: net(samples[:, :10], local, speaker), r"T / 4 = 2.5 positions")
    one_line_error(lambda: net(samples, local.long(), speaker), "local: expected a floating")
    one_line_error(lambda: net(samples, local), "speaker: expected")
    one_line_error(lambda: net(samples, local, torch.tensor([0, 2])), r"ids in \[0, 2\)")
    one_line_error(lambda: net(samples, local, torch.tensor([0])), r"shape \(2,\)")
    one_line_error(lambda: tiny()(samples, local, speaker), "has no speakers")
    one_line_error(lambda: net.generate(local, speaker, method="fast"), "method: expected")
    one_line_error(lambda: net.generate(local, speaker, temperature=0), "temperature")
    one_line_error(lambda: net.generate(local[:, :, :0], speaker), "local: expected shape")
    one_line_error(lambda: WaveNetConfig(layers=0), "layers: expected a positive int")
    one_line_error(lambda: WaveNetConfig(kernel_size=1), "kernel_size")


def test_save_and_load_pretrained(tmp_path):
    net = tiny(num_speakers=2)
    samples, local, speaker = inputs(net, 1, 2)
    loaded = WaveNet.from_pretrained(net.save_pretrained(tmp_path / "wavenet")).eval()
    assert loaded.config == net.config
    with torch.no_grad():
        assert torch.equal(loaded(samples, local, speaker), net(samples, local, speaker))


# -- the encoder --------------------------------------------------------------------------


def _paper_audio_encoder(code_dim: int = 4) -> torch.nn.Module:
    """Section 4.3's encoder: 6 strided 1-D convolutions (stride 2, window 4), residual blocks,
    a projection to D: the registered ``conv1d`` kind with 6 downsamplings."""
    config = NetConfig(kind="conv1d", hidden_channels=8, residual_channels=4, num_downsamples=6)
    return NETS.get("conv1d").encoder(1, code_dim, config)


def test_the_papers_audio_encoder_downsamples_64x():
    encoder = _paper_audio_encoder(code_dim=5)
    assert encoder(torch.randn(3, 1, 256)).shape == (3, 5, 4)
    strided = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv1d) and m.stride == (2,)]
    assert len(strided) == 6 and all(m.kernel_size == (4,) for m in strided)


def test_audio_encoder_feeds_the_wavenet():
    encoder = _paper_audio_encoder()
    net = WaveNet(WaveNetConfig(**{**TINY, "upsample_factor": 64}))
    audio = torch.rand(2, 1, 128) * 2 - 1
    samples = mulaw_encode(audio[:, 0])  # (B, T)
    logits = net(samples, encoder(audio))
    assert logits.shape == (2, 256, 128)

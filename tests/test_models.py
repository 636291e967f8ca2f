"""VQ-VAE and VAE (issue 2): decode_codes(encode(x)) is the forward pass, encode never moves
the codebook, save/load is bit-exact, the VAE's KL is the closed form, bad input is a
ValueError that says what was expected and what came."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vqvae.models import VAE, VQVAE, QuantizerConfig, VAEConfig, VQVAEConfig
from vqvae.nets import Decoder, Encoder, NetConfig

TINY_NET = NetConfig(
    hidden_channels=16, residual_channels=8, num_residual_blocks=1, num_downsamples=1
)


def tiny(kind: str = "vq", num_quantizers: int = 1, **quantizer) -> VQVAEConfig:
    return VQVAEConfig(
        in_channels=1,
        input_size=(8, 8),
        net=TINY_NET,
        quantizer=QuantizerConfig(
            kind=kind, num_codes=16, code_dim=4, num_quantizers=num_quantizers, **quantizer
        ),
    )


CONFIGS = {
    "vq": tiny("vq"),
    "ema": tiny("ema"),
    "residual": tiny("ema", num_quantizers=3),
    "residual-vq": tiny("vq", num_quantizers=2),
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def images(n: int = 4, c: int = 1, size: int = 8) -> torch.Tensor:
    return torch.rand(n, c, size, size) * 2 - 1


def trained(config: VQVAEConfig) -> VQVAE:
    """A model after one training forward: the quantizer's data init has run."""
    model = VQVAE(config).train()
    model(images(8))
    return model


# -- VQ-VAE -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_forward_shapes_and_losses(name):
    model = trained(CONFIGS[name])
    x = images()
    out = model.eval()(x)
    q = model.config.quantizer.num_quantizers
    assert out.x_hat.shape == x.shape
    assert out.codes.shape == ((4, 4, 4) if q == 1 else (4, q, 4, 4))
    assert out.codes.dtype == torch.int64
    torch.testing.assert_close(out.recon_loss, torch.mean((out.x_hat - x) ** 2))
    torch.testing.assert_close(out.loss, out.recon_loss + out.vq_loss)
    assert torch.equal(out.vq_loss, out.quantizer.loss)
    assert 1 <= out.perplexity.item() <= 16


@pytest.mark.parametrize("name", CONFIGS)
def test_decode_codes_of_encode_equals_forward(name):
    model = trained(CONFIGS[name]).eval()
    x = images()
    codes = model.encode(x)
    assert torch.equal(codes, model(x).codes)
    assert torch.equal(model.decode_codes(codes), model(x).x_hat)  # exact, not close


@pytest.mark.parametrize("name", CONFIGS)
def test_encode_does_not_change_the_model(name):
    model = VQVAE(CONFIGS[name]).train()  # untrained: a training forward would init
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.encode(images())
    assert model.training  # the mode is restored
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_gradients_reach_encoder_decoder_and_codebook():
    model = trained(CONFIGS["vq"])
    model(images()).loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name


def test_ema_model_codebook_is_not_trained_by_gradients():
    model = trained(CONFIGS["ema"])
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.startswith("quantizer.") for n in names)


@pytest.mark.parametrize("name", CONFIGS)
def test_save_load_round_trip_is_bit_exact(name, tmp_path):
    model = trained(CONFIGS[name])
    model(images())  # a second step: EMA statistics and step counters differ from init
    model.save_pretrained(tmp_path / "m")
    loaded = VQVAE.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    x = images()
    model.eval(), loaded.eval()
    assert torch.equal(model(x).x_hat, loaded(x).x_hat)
    assert torch.equal(model.encode(x), loaded.encode(x))
    # the loaded quantizer is initialized: training on a new batch does not re-init it
    assert all(bool(v) for k, v in b.items() if k.endswith("initialized"))


def test_vae_folder_is_not_a_vqvae(tmp_path):
    VAE(VAEConfig(in_channels=1, input_size=(8, 8), net=TINY_NET, latent_dim=4)).save_pretrained(
        tmp_path / "vae"
    )
    with pytest.raises(ValueError, match="'VAE', not a VQVAE"):
        VQVAE.from_pretrained(tmp_path / "vae")


def test_weights_of_another_shape_are_refused(tmp_path):
    folder = VQVAE(CONFIGS["vq"]).save_pretrained(tmp_path / "m")
    meta = json.loads((folder / "config.json").read_text())
    meta["config"]["quantizer"]["num_codes"] = 32
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"another model config.*has shape \(16.*expects \(32"):
        VQVAE.from_pretrained(folder)


def test_weights_of_another_model_are_refused(tmp_path):
    folder = VQVAE(CONFIGS["vq"]).save_pretrained(tmp_path / "m")
    meta = json.loads((folder / "config.json").read_text())
    meta["config"]["quantizer"]["kind"] = "ema"
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="another model"):
        VQVAE.from_pretrained(folder)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupted_safetensors_is_a_value_error(damage, tmp_path):
    folder = VQVAE(CONFIGS["vq"]).save_pretrained(tmp_path / "m")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": b"\x00not a file" * 9, "empty": b""}[damage]
    )
    with pytest.raises(ValueError, match="safetensors"):
        VQVAE.from_pretrained(folder)


def test_bad_config_json_is_a_value_error(tmp_path):
    folder = VQVAE(CONFIGS["vq"]).save_pretrained(tmp_path / "m")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        VQVAE.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"class": "VQVAE", "config": {"bogus": 1}}))
    with pytest.raises(ValueError, match="unknown config keys"):
        VQVAE.from_pretrained(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        VQVAE.from_pretrained(tmp_path / "nope")


def test_bad_images_are_value_errors():
    model = VQVAE(CONFIGS["vq"])
    with pytest.raises(
        ValueError, match=r"expected inputs of shape \(B, 1, 8, 8\), got \(2, 3, 8, 8\)"
    ):
        model(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"got \(1, 8, 8\)"):
        model(torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match=r"got \(2, 1, 16, 16\)"):
        model.encode(torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="float inputs"):
        model(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))


def test_bad_codes_are_value_errors():
    model = VQVAE(CONFIGS["vq"])
    with pytest.raises(ValueError, match=r"expected codes in \[0, 16\)"):
        model.decode_codes(torch.full((1, 4, 4), 16))
    with pytest.raises(ValueError, match=r"expected codes of shape \(B, 4, 4\), got \(1, 5, 5\)"):
        model.decode_codes(torch.zeros(1, 5, 5, dtype=torch.long))
    residual = VQVAE(CONFIGS["residual"])
    assert residual.decode_codes(torch.zeros(1, 2, 4, 4, dtype=torch.long)).shape == (1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"1 <= q <= 3"):
        residual.decode_codes(torch.zeros(1, 4, 4, 4, dtype=torch.long))


def test_undivisible_image_size_is_a_value_error():
    with pytest.raises(ValueError, match=r"9x8 is not divisible.*x2"):
        dataclasses.replace(CONFIGS["vq"], input_size=(9, 8))
    with pytest.raises(ValueError, match="quantizer kind"):
        QuantizerConfig(kind="gumbel")


# -- nets ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3])
def test_encoder_decoder_scale_by_two_per_downsample(n):
    net = NetConfig(hidden_channels=8, residual_channels=4, num_downsamples=n)
    z = Encoder(3, 5, net)(torch.zeros(2, 3, 16, 16))
    assert z.shape == (2, 5, 16 >> n, 16 >> n)
    assert Decoder(5, 3, net)(z).shape == (2, 3, 16, 16)


def test_paper_net_keeps_its_layers_and_weight_names():
    """norm="none" and ReLU are the paper's layers: the same weight names as every earlier
    release wrote (runs saved before these options load unchanged)."""
    net = NetConfig(hidden_channels=8, residual_channels=4, num_downsamples=2)
    names = list(Encoder(1, 5, net).state_dict())
    assert names[:6] == ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias",
                         "net.4.weight", "net.4.bias"]  # fmt: skip
    assert "net.5.0.block.1.weight" in names and "net.5.0.block.3.weight" in names
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in Encoder(1, 5, net).modules())


@pytest.mark.parametrize("activation", ["silu", "gelu"])
def test_norm_and_activation_options(activation):
    net = NetConfig(hidden_channels=8, residual_channels=4, norm="group", activation=activation)
    encoder, decoder = Encoder(1, 5, net), Decoder(5, 1, net)
    act = {"silu": torch.nn.SiLU, "gelu": torch.nn.GELU}[activation]
    for half in (encoder, decoder):
        assert not any(isinstance(m, torch.nn.ReLU) for m in half.modules())
        assert any(isinstance(m, act) for m in half.modules())
    # a GroupNorm before every activation: 2 per residual block, 1 after each stage
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in encoder.modules()) == 2 * 2 + 1 + 2
    x = torch.randn(2, 1, 16, 16)
    assert decoder(encoder(x)).shape == x.shape


def test_unknown_norm_or_activation_is_one_line():
    with pytest.raises(ValueError, match=r"unknown activation 'tanh'.*gelu.*relu.*silu"):
        NetConfig(activation="tanh")
    with pytest.raises(ValueError, match=r"unknown norm 'batch'.*'none', 'group'"):
        NetConfig(norm="batch")


# -- VAE ----------------------------------------------------------------------------------
def tiny_vae() -> VAE:
    return VAE(VAEConfig(in_channels=1, input_size=(8, 8), net=TINY_NET, latent_dim=4))


def test_vae_kl_is_the_closed_form():
    model = tiny_vae()
    x = images()
    q = model.posterior(x)
    reference = (
        kl_divergence(
            Normal(q.mean, torch.exp(0.5 * q.logvar)), Normal(torch.zeros(()), torch.ones(()))
        )
        .flatten(1)
        .sum(1)
    )  # (B,)
    torch.testing.assert_close(q.kl(), reference)
    out = model(x)
    torch.testing.assert_close(out.kl, reference.mean())
    torch.testing.assert_close(out.loss, out.recon_loss + out.kl / (1 * 8 * 8))
    torch.testing.assert_close(out.recon_loss, torch.mean((out.x_hat - x) ** 2))


def test_vae_reparameterization():
    model = tiny_vae()
    q = model.posterior(images())
    g = torch.Generator().manual_seed(1)
    z = q.rsample(g)
    eps = torch.randn(q.mean.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(z, q.mean + torch.exp(0.5 * q.logvar) * eps)
    # gradients reach both the mean and the log-variance through the sample
    mean = q.mean.detach().requires_grad_(True)
    logvar = q.logvar.detach().requires_grad_(True)
    type(q)(mean, logvar).rsample().sum().backward()
    assert torch.equal(mean.grad, torch.ones_like(mean))
    assert torch.count_nonzero(logvar.grad) == logvar.numel()


def test_vae_sample_and_round_trip(tmp_path):
    model = tiny_vae()
    assert model.sample(3).shape == (3, 1, 8, 8)
    model.save_pretrained(tmp_path / "vae")
    loaded = VAE.from_pretrained(tmp_path / "vae")
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(model.sample(2, g1), loaded.sample(2, g2))
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)"):
        model(torch.zeros(2, 2, 8, 8))

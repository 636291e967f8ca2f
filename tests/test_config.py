"""Configs: presets build working models, dotted overrides and TOML files change exactly
what they name and refuse what does not exist, configs survive JSON."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vqvae.config import (
    PRESETS,
    TrainConfig,
    apply_overrides,
    choose_preset,
    get_preset,
    load_toml,
    parse_value,
)
from vqvae.models import VQVAE, QuantizerConfig, VQVAEConfig
from vqvae.nets import NetConfig
from vqvae.pretrained import config_from_dict, config_to_dict


@pytest.mark.parametrize("name", ["digits", "mnist", "mnist-paper", "cifar10"])
def test_presets_build_and_run(name):
    config = get_preset(name)
    assert set(PRESETS) >= {"digits", "mnist", "cifar10"}
    model = VQVAE(config).eval()
    h, w = config.input_size
    x = torch.zeros(1, config.in_channels, h, w)
    out = model(x)
    assert out.x_hat.shape == x.shape
    assert out.codes.shape == (1, *config.latent_shape)


def test_paper_sizes_in_cifar10_preset():
    c = get_preset("cifar10")
    assert (c.quantizer.num_codes, c.quantizer.code_dim, c.quantizer.beta) == (512, 64, 0.25)
    assert c.net.hidden_channels == 256 and c.latent_shape == (8, 8)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'imagenet'.*cifar10"):
        get_preset("imagenet")


def test_choose_preset_fits_the_data():
    assert choose_preset(1, (8, 8))[0] == "digits"
    name, preset = choose_preset(1, (28, 28))
    assert name == "mnist" and preset.model.input_size == (28, 28)
    name, preset = choose_preset(3, (64, 64))
    assert name == "frames64" and preset.model.latent_shape == (16, 16)
    assert preset.model.in_channels == 3 and preset.model.quantizer.num_codes == 512
    name, preset = choose_preset(3, (48, 48))
    assert name == "cifar10" and preset.model.input_size == (48, 48)


@pytest.mark.parametrize("size", [(30, 32), (28, 29)])
def test_image_size_not_divisible(size):
    with pytest.raises(ValueError, match=rf"{size[0]}x{size[1]} is not divisible.*x4"):
        VQVAEConfig(input_size=size, net=NetConfig(num_downsamples=2))
    with pytest.raises(ValueError, match="not divisible"):
        apply_overrides(
            get_preset("cifar10"), TrainConfig(), [f"input_size=[{size[0]}, {size[1]}]"]
        )


def test_config_checks():
    with pytest.raises(ValueError, match="num_downsamples"):
        NetConfig(num_downsamples=0)
    with pytest.raises(ValueError, match="num_quantizers"):
        QuantizerConfig(num_quantizers=0)
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=0.0)


def test_apply_overrides_changes_what_it_names():
    model, train = apply_overrides(
        get_preset("mnist"),
        TrainConfig(),
        [
            "quantizer.num_codes=256",
            "model.net.hidden_channels=32",
            "quantizer.kind=vq",
            "train.lr=1e-3",
            "steps=7",  # not a model field: the train config's
            "quantizer.restart_dead_codes=false",
            "input_size=[32, 32]",
        ],
    )
    base = get_preset("mnist")
    assert model.quantizer == dataclasses.replace(
        base.quantizer, num_codes=256, kind="vq", restart_dead_codes=False
    )
    assert model.net == dataclasses.replace(base.net, hidden_channels=32)
    assert model.input_size == (32, 32) and isinstance(model.input_size, tuple)
    assert train == TrainConfig(lr=1e-3, steps=7)
    assert isinstance(train.lr, float)
    # the model builds from the result
    assert VQVAE(model).quantizer.num_codes == 256


@pytest.mark.parametrize(
    "pair, message",
    [
        ("quantizer.num_kodes=3", "no field 'num_kodes'"),
        ("model.bogus=1", "no field 'bogus'"),
        ("train.nope=1", "no field 'nope'"),
        ("nope=1", "no such config key"),
        ("in_channels.x=1", "not a section"),
        ("quantizer.kind=gumbel", "quantizer kind"),
        ("steps=0", "steps >= 1"),
        ("no_equals_sign", "key=value"),
        ("quantizer.num_codes=abc", "expected int"),
        ("quantizer=3", "section"),
        ("train.steps=true", "expected int"),
    ],
)
def test_apply_overrides_rejects_bad_pairs(pair, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(get_preset("digits"), TrainConfig(), [pair])


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("2e-4") == 2e-4
    assert parse_value("True") is True and parse_value("false") is False
    assert parse_value("[1, 2]") == [1, 2] and parse_value("ema") == "ema"


def test_load_toml(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        '[model]\ninput_size = [16, 16]\n\n[model.quantizer]\nnum_codes = 128\nkind = "vq"\n\n'
        "[train]\nsteps = 11\nlr = 0.001\n"
    )
    pairs = load_toml(path)
    model, train = apply_overrides(get_preset("digits"), TrainConfig(), pairs)
    assert model.input_size == (16, 16)
    assert model.quantizer.num_codes == 128 and model.quantizer.kind == "vq"
    assert train.steps == 11 and train.lr == 0.001


def test_load_toml_rejects_unknown_keys_and_bad_files(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[model.quantizer]\nnum_codez = 3\n")
    with pytest.raises(ValueError, match="num_codez"):
        apply_overrides(get_preset("digits"), TrainConfig(), load_toml(path))
    path.write_text("[model\nx = ")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_toml(path)
    with pytest.raises(FileNotFoundError):
        load_toml(tmp_path / "missing.toml")


@pytest.mark.parametrize("name", ["digits", "mnist", "cifar10"])
def test_config_json_round_trip(name):
    import json

    config = get_preset(name)
    data = json.loads(json.dumps(config_to_dict(config)))
    assert config_from_dict(VQVAEConfig, data) == config
    with pytest.raises(ValueError, match=r"unknown config keys \['extra'\]"):
        config_from_dict(VQVAEConfig, {**data, "extra": 1})

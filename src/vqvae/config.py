"""Configs of a run: named presets, TOML files and dotted ``--set key=value`` overrides.

A run's config is two frozen dataclasses: the model's (``VQVAEConfig``, saved as
``config.json`` with the weights) and the training loop's (``TrainConfig``). Presets are
registered by name (``vqvae.registry.PRESETS``), in the manner of timm's
``create_model("name")``; each carries the training settings that suit it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vqvae.models import AudioVQVAEConfig, QuantizerConfig, VQVAEConfig
from vqvae.nets import NetConfig
from vqvae.nets.mel_decoder import MelDecoderConfig
from vqvae.nets.wavenet import WaveNetConfig
from vqvae.pretrained import config_from_dict, config_to_dict
from vqvae.registry import PRESETS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


PRECISIONS = ("32", "bf16", "16")  # the networks' autocast (vqvae.train.precision)
SCHEDULES = ("constant", "cosine", "step")  # the learning rate over the steps (train.schedule)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 128
    lr: float = 2e-4  # the paper's Adam learning rate
    seed: int = 0
    checkpoint_every: int = 500
    eval_every: int = 250  # held-out evaluation and a reconstruction grid
    log_every: int = 10
    eval_limit: int = 2000  # held-out images used by the periodic evaluation
    # the learning rate over the steps (vqvae.train.schedule): constant, cosine or step decay
    # after a linear warm-up of warmup_steps; cosine ends at lr_final * lr
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    lr_final: float = 0.0
    precision: str = "32"  # "32", "bf16" or "16": autocast for the networks (train/precision.py)
    compile: bool = False  # torch.compile the networks of the step (train/compiled.py)
    accumulate: int = 1  # micro-batches per optimizer step (train/accumulate.py)
    channels_last: bool = False  # 2-D convolutions on NHWC memory (BENCHMARKS.md section 12)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "eval_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"expected {name} >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"expected lr > 0, got {self.lr}")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule: expected one of {SCHEDULES}, got {self.lr_schedule!r}")
        if self.warmup_steps < 0 or not 0 <= self.lr_final <= 1:
            raise ValueError(
                f"expected warmup_steps >= 0 and 0 <= lr_final <= 1, got {self.warmup_steps}, "
                f"{self.lr_final}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"expected precision in {PRECISIONS}, got {self.precision!r}")
        if self.accumulate < 1:
            raise ValueError(f"expected accumulate >= 1, got {self.accumulate}")
        if self.accumulate > self.batch_size:
            raise ValueError(
                f"accumulate {self.accumulate} asks for more micro-batches than the batch has "
                f"examples ({self.batch_size}); use --accumulate <= --batch-size"
            )

    @property
    def scheduled(self) -> bool:
        """Whether the rate changes over the steps (the loop then sets it at every step)."""
        return self.lr_schedule != "constant" or self.warmup_steps > 0


# -- presets ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preset:
    """A named model config with the training settings that suit it."""

    model: VQVAEConfig
    train: TrainConfig


@PRESETS.register("digits", about="8x8 grey digits (scikit-learn): 4x4 codes, K=64; the demo's")
def _digits() -> Preset:
    return Preset(
        VQVAEConfig(
            in_channels=1,
            input_size=(8, 8),
            net=NetConfig(hidden_channels=64, residual_channels=32, num_downsamples=1),
            quantizer=QuantizerConfig(kind="ema", num_codes=64, code_dim=16),
        ),
        TrainConfig(steps=1500, batch_size=64, lr=1e-3, checkpoint_every=500, eval_every=500),
    )


def _grey28(
    hidden_channels: int, residual_channels: int, num_codes: int, levels: tuple[int, ...] = ()
) -> Preset:
    """28x28 grey images -> a 7x7 grid of K EMA codes (D=64, k-means init, restarts),
    1,000 steps of 128 at Adam 1e-3 held constant (a decay lost 0.4-0.6 dB here); ``levels``
    are FSQ's, for ``--set quantizer.kind=fsq`` (() = the FSQ paper's for about K)."""
    net = NetConfig(
        hidden_channels=hidden_channels, residual_channels=residual_channels, num_downsamples=2
    )
    return Preset(
        VQVAEConfig(
            in_channels=1,
            input_size=(28, 28),
            net=net,
            quantizer=QuantizerConfig(kind="ema", num_codes=num_codes, code_dim=64, levels=levels),
        ),
        TrainConfig(steps=1000, batch_size=128, lr=1e-3),
    )


@PRESETS.register("mnist", about="28x28 grey (MNIST, Fashion-MNIST): a 7x7 grid of K=4096 codes")
def _mnist() -> Preset:
    # The paper's layers at half its 256 hidden units (64 in the residual blocks) and 12 bits
    # a code: of the changes measured at this budget only width and K paid (BENCHMARKS.md
    # section 8, "Toward 26 dB"): 128/64 channels gave +0.8 dB, then K = 4,096 +1.4 dB with
    # every code used. 256/128 gains 0.3 dB more at 2.5x the step time, and LFQ at 300 steps
    # drops below 20 dB there. FSQ, if asked for, takes its 4,096 codes as 16x16x16: MNIST
    # fills 65% of that grid at 300 steps and 49% of the FSQ paper's 7x5x5x5x5 (24.2 dB
    # against 23.8).
    return _grey28(128, 64, 4096, levels=(16, 16, 16))


@PRESETS.register(
    "mnist-paper",
    about="28x28 grey: the paper's layers at 64/32 channels, cheaper than mnist (7x7, K=512)",
)
def _mnist_paper() -> Preset:
    # The mnist preset of releases up to 0.2: the paper's layers at a quarter of its width
    # and K=512, so that 1,000 steps take 2 minutes on one thread.
    return _grey28(64, 32, 512)


@PRESETS.register("cifar10", about="32x32 colour, the paper's sizes: K=512, D=64, an 8x8 grid")
def _cifar10() -> Preset:
    return Preset(
        VQVAEConfig(
            in_channels=3,
            input_size=(32, 32),
            net=NetConfig(hidden_channels=256, residual_channels=256, num_downsamples=2),
            quantizer=QuantizerConfig(num_codes=512, code_dim=64),
        ),
        TrainConfig(steps=50_000, batch_size=128, lr=2e-4),
    )


@PRESETS.register(
    "imagenet128", about="128x128 colour, the paper's ImageNet net: a 32x32 grid of K=512, D=64"
)
def _imagenet128() -> Preset:
    # Section 4.2: 128x128x3 images -> 32x32x1 latents with K=512, the CIFAR10 nets (two
    # strided 4x4 convolutions, two residual blocks, 256 hidden units): 128*128*3*8 bits
    # become 32*32*9 bits, 42.6x fewer. D=64 as in our cifar10 preset. Batch 32 (not 128)
    # so that a step fits a laptop's memory and takes seconds, not a minute, on a CPU; the
    # paper's learning rate. The held-out evaluation uses 500 images: 128x128 images at
    # 256 channels cost about 2,000x what an 8x8 digit does.
    return Preset(
        VQVAEConfig(
            in_channels=3,
            input_size=(128, 128),
            net=NetConfig(hidden_channels=256, residual_channels=256, num_downsamples=2),
            quantizer=QuantizerConfig(num_codes=512, code_dim=64),
        ),
        TrainConfig(
            steps=20_000,
            batch_size=32,
            lr=2e-4,
            checkpoint_every=1000,
            eval_every=1000,
            eval_limit=500,
        ),
    )


@PRESETS.register(
    "frames64", about="64x64 colour frames (the 3-D maze): a 16x16 grid of K=512, D=64"
)
def _frames64() -> Preset:
    # Sections 4.2 and 4.4's first stage for first-person frames (the paper: 84x84 DeepMind
    # Lab frames -> 21x21 codes, K=512): two strided convolutions (x4 fewer positions per
    # side), K=512, D=64, with the EMA codebook that keeps all codes in use (as mnist). Half
    # the paper's hidden units and a quarter of its residual ones so that a step of 32 frames
    # takes about half a second on 2 CPU cores (docs/maze.md has the measurements).
    return Preset(
        VQVAEConfig(
            in_channels=3,
            input_size=(64, 64),
            net=NetConfig(hidden_channels=128, residual_channels=64, num_downsamples=2),
            quantizer=QuantizerConfig(kind="ema", num_codes=512, code_dim=64),
        ),
        TrainConfig(
            steps=1800,
            batch_size=32,
            lr=1e-3,
            checkpoint_every=500,
            eval_every=500,
            eval_limit=500,
        ),
    )


@PRESETS.register(
    "speech8k",
    about="8 kHz speech (FSDD): spectra -> 125 codes/s, K=64; mel decoder + vocoder",
)
def _speech8k() -> Preset:
    # The paper's code rate (section 4.3: one code per 64 samples) with K=64 rather than its
    # 512, read from each code's log power spectrum (``spectrogram1d``) rather than by the
    # paper's 6 strided convolutions over the waveform, with a speaker classifier the encoder
    # is trained to defeat (``speaker_adversary``), and the decoder that trains on a CPU: z_q
    # and a speaker embedding -> the 40-band log-mel of each code's samples (``mel``, 128
    # channels), audio by Griffin-Lim (on the predicted log-mel it keeps more speakers than
    # the trained vocoder). Windows of 4,096 samples (64 codes), 32 per batch, Adam at 1e-3
    # with 150 warm-up steps and a cosine decay to 5% over 7,000 steps: 25 minutes on one CPU
    # thread beside another job, inside the 40 a user is asked to wait. The spectrogram
    # encoder took reconstructions from 85.7% to 94.7% of digits kept and the probe from 70%
    # to 94%; the adversary took conversions judged as their target from 61% to 74%; 64 codes
    # rather than 512 leave the voice less room in them (the speaker probe 71% against
    # 91-94%) for 750 bit/s; a decoder of 128 channels rather than 256 costs a quarter, so
    # the same time buys 7,000 steps rather than 3,000: reconstructions 92.7% / 92.0% against
    # 92.7% / 91.0%, conversions judged as the target 83.7% against 76.5%, and decoding up
    # to 2x faster (BENCHMARKS.md section 9a; docs/speech.md).
    net = NetConfig(
        kind="spectrogram1d", hidden_channels=128, residual_channels=64, num_downsamples=6
    )
    codes = QuantizerConfig(kind="ema", num_codes=64, code_dim=64)
    return Preset(
        AudioVQVAEConfig(
            input_size=(4096,),
            decoder="mel",
            net=net,
            quantizer=codes,
            speaker_adversary=0.1,
            mel_decoder=MelDecoderConfig(hidden_channels=128),
        ),
        TrainConfig(
            steps=7000,
            batch_size=32,
            lr=1e-3,
            lr_schedule="cosine",
            warmup_steps=150,
            lr_final=0.05,
            checkpoint_every=250,
            eval_every=500,
            eval_limit=60,
        ),
    )


@PRESETS.register(
    "speech8k-wavenet",
    about="8 kHz speech (FSDD): the paper's section 4.3, a WaveNet decoder (days on GPUs)",
)
def _speech8k_wavenet() -> Preset:
    # Section 4.3's model at a CPU's scale: the paper's encoder (6 strided convolutions,
    # stride 2, window 4: one code per 64 samples), K=512, and a WaveNet decoder of 2 stacks
    # of 10 dilated layers (receptive field 2,047 samples, a quarter second) with 32
    # residual channels, conditioned on the codes and a speaker embedding. Windows of 2,048
    # samples (32 codes), 16 per batch; Adam at 1e-3 (docs/speech.md has the measurements).
    return Preset(
        AudioVQVAEConfig(
            input_size=(2048,),
            wavenet=WaveNetConfig(residual_channels=32, gate_channels=32, skip_channels=64),
            spectral_weight=0.1,
        ),
        TrainConfig(
            steps=1500,
            batch_size=16,
            lr=1e-3,
            checkpoint_every=250,
            eval_every=500,
            eval_limit=60,
        ),
    )


def get_full_preset(name: str) -> Preset:
    """A registered preset: its model config and training settings."""
    return PRESETS.get(name)()


def get_preset(name: str) -> VQVAEConfig:
    """The model config of a named preset."""
    return get_full_preset(name).model


def choose_preset(in_channels: int, input_size: tuple[int, ...]) -> tuple[str, Preset]:
    """The preset that fits data of this shape, with the data's channels and size."""
    if len(input_size) != 2:
        raise ValueError(
            f"no preset is chosen by itself for data of rank {len(input_size)} "
            f"(size {input_size}); name one with --preset (see `vqvae list presets`)"
        )
    h, w = input_size
    if max(h, w) <= 16:
        name = "digits"
    elif in_channels == 1:
        name = "mnist"
    elif (h, w) == (64, 64):
        name = "frames64"  # first-person frames (sections 4.2, 4.4)
    elif (h, w) == (128, 128):
        name = "imagenet128"  # the paper's ImageNet setting (section 4.2)
    else:
        name = "cifar10"
    preset = get_full_preset(name)
    model = replace(preset.model, in_channels=in_channels, input_size=(h, w))
    return name, replace(preset, model=model)


def choose_audio_preset(sample_rate: int) -> tuple[str, Preset]:
    """The preset for speech at ``sample_rate``: ``speech8k``, at the data's rate."""
    preset = get_full_preset("speech8k")
    return "speech8k", replace(preset, model=replace(preset.model, sample_rate=sample_rate))


# -- overrides ----------------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """``--set`` values: JSON where it parses (numbers, true/false, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return text


def _set_path(config: Any, path: list[str], value: Any, full: str) -> Any:
    names = {f.name for f in dataclasses.fields(config)}
    head = path[0]
    if head not in names:
        raise ValueError(
            f"--set {full}: {type(config).__name__} has no field {head!r}; it has {sorted(names)}"
        )
    if len(path) == 1:
        data = config_to_dict(config)
        data[head] = value
        return config_from_dict(type(config), data)
    child = getattr(config, head)
    if not dataclasses.is_dataclass(child):
        raise ValueError(f"--set {full}: {head!r} is not a section")
    return replace(config, **{head: _set_path(child, path[1:], value, full)})


def apply_overrides(
    model: VQVAEConfig, train: TrainConfig, pairs: Iterable[str]
) -> tuple[VQVAEConfig, TrainConfig]:
    """Apply ``key=value`` pairs; keys are dotted paths, optionally under ``model.``/``train.``.

    Without a prefix a key is looked up in the model config first, then the train config.
    """
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set {pair!r}: expected key=value")
        key, text = pair.split("=", 1)
        model, train = _apply_one(model, train, key.strip(), parse_value(text.strip()))
    return model, train


def _apply_one(model: VQVAEConfig, train: TrainConfig, key: str, value: Any):
    path = key.split(".")
    try:
        if path[0] == "model":
            return _set_path(model, path[1:], value, key), train
        if path[0] == "train":
            return model, _set_path(train, path[1:], value, key)
        model_fields = {f.name for f in dataclasses.fields(model)}
        train_fields = {f.name for f in dataclasses.fields(train)}
        if path[0] in model_fields:
            return _set_path(model, path, value, key), train
        if path[0] in train_fields:
            return model, _set_path(train, path, value, key)
        raise ValueError(
            f"--set {key}: no such config key; model keys are {sorted(model_fields)}, "
            f"training keys {sorted(train_fields)}"
        )
    except TypeError as e:
        raise ValueError(f"--set {key}: {e}") from None


def load_toml(path: str | Path) -> list[str]:
    """A TOML file as override pairs: ``[model.quantizer] num_codes = 256`` etc."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid TOML ({e})") from None

    def flat(prefix: str, obj: Any) -> Iterable[str]:
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield from flat(f"{prefix}.{k}" if prefix else k, v)
        else:
            yield f"{prefix}={json.dumps(obj)}"

    return list(flat("", data))

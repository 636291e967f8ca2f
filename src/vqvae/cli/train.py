"""``vqvae train``: resolve the config (preset, TOML, --set, flags), guard the run folder,
train, summarise, and write the report."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from vqvae import report  # its attributes load matplotlib on first use
from vqvae.cli.common import (
    add_data_options,
    add_step_options,
    add_workers_option,
    layout_note,
    resize,
    step_options,
    writes_into,
)
from vqvae.config import (
    TrainConfig,
    apply_overrides,
    choose_audio_preset,
    choose_preset,
    get_full_preset,
    load_toml,
)
from vqvae.console import say
from vqvae.data import AudioDataset, ImageDataset, data_kind, load_audio, load_images, split_layout
from vqvae.data.datasets import AUDIO, IMAGES
from vqvae.errors import DataError, RunError
from vqvae.models import AudioVQVAEConfig, VQVAEConfig
from vqvae.pretrained import config_from_dict
from vqvae.registry import MODELS, PRESETS
from vqvae.runs import RunDir, checked_vocoder
from vqvae.train import distributed
from vqvae.train.audio import train_audio_vqvae
from vqvae.train.vocoder import train_vocoder, vocoder_train_config
from vqvae.train.vqvae import TrainResult, train_vqvae
from vqvae.vocoders import VocosConfig


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a VQ-VAE; the run folder keeps everything")
    add_data_options(p, split="train")
    add_workers_option(p)
    p.add_argument("--out", required=True, help="the run folder")
    p.add_argument(
        "--preset",
        help=f"a named config: {', '.join(PRESETS.names())} (see `vqvae list presets`)",
    )
    p.add_argument("--config", help="a TOML file of config values")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. quantizer.num_codes=256 (repeatable)",
    )
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--device", help="cpu or cuda (default: cuda when there is one)")
    add_step_options(p)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--force", action="store_true", help="replace an existing run folder")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-report", action="store_true", help="skip RUN/report/ at the end")
    p.add_argument(
        "--vocoder",
        metavar="VOC",
        help="speech with a mel decoder: keep this trained vocoder in the run (RUN/vocoder)",
    )
    p.set_defaults(func=run)
    writes_into(p, "out", create=True)


def _base_configs(
    args: argparse.Namespace, data: ImageDataset | AudioDataset, saved: dict[str, Any] | None, notes
) -> tuple[VQVAEConfig, TrainConfig, str | None]:
    """The resumed run's configs, a named preset's, or the preset that fits the data."""
    if saved is not None and not args.preset:
        config_class = MODELS.get(saved.get("class", "VQVAE")).config_class
        model = config_from_dict(config_class, saved["config"])
        return model, config_from_dict(TrainConfig, saved.get("train", {})), saved.get("preset")
    if args.preset:
        preset = get_full_preset(args.preset)
        return preset.model, preset.train, args.preset
    if isinstance(data, AudioDataset):
        name, chosen = choose_audio_preset(data.sample_rate)
        notes(
            f"vqvae: chose preset {name!r} for {data.sample_rate} Hz audio (override with --preset)"
        )
        return chosen.model, chosen.train, name
    name, chosen = choose_preset(data.num_channels, data.image_size)
    h, w = data.image_size
    notes(
        f"vqvae: chose preset {name!r} for {h}x{w} images with {data.num_channels} "
        f"channel(s) (override with --preset)"
    )
    return chosen.model, chosen.train, name


def resolve_configs(
    args: argparse.Namespace, data: ImageDataset, run: RunDir, notes: Callable[[str], None] = say
) -> tuple[VQVAEConfig, TrainConfig, dict[str, Any]]:
    """The model and train configs this invocation asks for, and how they were chosen."""
    saved = run.read_config() if args.resume and run.config_file.is_file() else None
    pairs = (load_toml(args.config) if args.config else []) + list(args.set)
    model, train, preset = _base_configs(args, data, saved, notes)
    model, train = apply_overrides(model, train, pairs)
    flags = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "checkpoint_every": args.checkpoint_every,
        **step_options(args),  # resuming, the run's (in ``train``) unless given
    }
    train = replace(train, **{k: v for k, v in flags.items() if v is not None})
    meta = {"data": args.data, "preset": preset, "overrides": pairs, **machine(args)}
    if isinstance(data, AudioDataset):
        return _fit_audio_config(model, data), train, meta
    got = (data.num_channels, *data.image_size)
    want = (model.in_channels, *model.input_size)
    if got != want:
        size = "x".join(map(str, want[1:]))
        raise RunError(
            f"{data.name}: images are {got[1]}x{got[2]} with {got[0]} channel(s), but the "
            f"config expects {size} with {want[0]} "
            f"(use --set input_size=[{got[1]},{got[2]}] --set in_channels={got[0]})"
        )
    return model, train, meta


def machine(args: argparse.Namespace) -> dict[str, Any]:
    """What a run records of where it ran (not compared on --resume: a run may move)."""
    device = getattr(args, "device", None) or _default_device()
    return {"threads": getattr(args, "threads", None), "device": device}


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _fit_audio_config(model: Any, data: AudioDataset) -> AudioVQVAEConfig:
    """An audio model config with the data's speakers (names in sorted order)."""
    if not isinstance(model, AudioVQVAEConfig):
        raise RunError(
            f"{data.name}: audio needs an audio preset ({', '.join(_audio_presets())}), "
            f"not an image model's"
        )
    if model.sample_rate != data.sample_rate:
        raise RunError(
            f"{data.name}: audio at {data.sample_rate} Hz, the config expects "
            f"{model.sample_rate} Hz (use --set sample_rate={data.sample_rate})"
        )
    return replace(model, speakers=tuple(data.speaker_names or ()))


def _audio_presets() -> list[str]:
    return [n for n in PRESETS.names() if isinstance(get_full_preset(n).model, AudioVQVAEConfig)]


def run(args: argparse.Namespace) -> int:
    folder = RunDir(args.out)
    if distributed.restarted():  # torchrun --max-restarts: continue from the last checkpoint
        args.resume, args.force = folder.config_file.is_file(), True
        if distributed.launch_rank() == 0:
            say(f"vqvae: restarted by torchrun; {args.out} resumes from its last checkpoint")
    folder.check(resume=args.resume, force=args.force)  # refuse before loading the data
    return TRAINERS[data_kind(args.data)](args, folder)


def run_images(args: argparse.Namespace, folder: RunDir) -> int:
    """``vqvae train`` on images (and anything the image loaders read: arrays of any rank)."""
    if args.vocoder:
        raise RunError("--vocoder applies to speech; this data set is images")
    size = _resize(args, folder)
    layout = split_layout(args.data)
    # a folder is indexed, and its images read batch by batch by --workers processes
    reading = {"resize": size, "lazy": True, "workers": args.workers}
    train_set = load_images(args.data, "train", args.data_root, **reading)
    test_set = load_images(args.data, layout.held_out, args.data_root, **reading)
    _check_splits_agree(args.data, train_set, test_set, layout.held_out)
    note = layout_note(args.data, layout)
    notes: list[str] = [note] if note else []
    model_config, train_config, meta = resolve_configs(args, train_set, folder, notes.append)
    # The run remembers its data (docs/design-notes.md, "Data layouts"): eval, encode,
    # reconstruct, report and prior train resize as it did, and --resume keeps both.
    meta |= {"resize": list(size) if size else None, "split_layout": layout.to_dict()}
    result = _train(args, folder, notes, train_vqvae, train_set, test_set, model_config,
                    train_config, meta=meta)  # fmt: skip
    if distributed.current().is_main:
        summarise(folder, result)
        if not args.no_report:
            report.try_write_report(folder.path, args.data_root)
    return 0


def _train(args, folder: RunDir, notes: list[str], trainer, *data_and_configs, meta):
    """Prepare the folder and train; everything was checked before the folder is touched, so
    a bad option destroys nothing. Under torchrun only rank 0 touches the folder (two ranks
    clearing it at once race); the others wait for it in the process group's set-up."""
    if distributed.launch_rank() == 0:
        folder.prepare(resume=args.resume, force=args.force)
        for note in notes:  # only once the run goes ahead: a refusal stays one line
            say(note)
    return trainer(folder, *data_and_configs, meta=meta, resume=args.resume,
                   progress=not args.no_progress, device=args.device)  # fmt: skip


def run_audio(args: argparse.Namespace, folder: RunDir) -> int:
    """``vqvae train`` on audio: the speech VQ-VAE (and a mel run's own vocoder)."""
    if args.resize:
        raise RunError("--resize applies to images; this data set is audio")
    rate = None
    if args.resume:  # the run's rate, whatever the files are stored at
        rate = folder.read_config()["config"].get("sample_rate")
    train_set = load_audio(args.data, "train", args.data_root, sample_rate=rate)
    test_set = load_audio(args.data, "test", args.data_root, sample_rate=train_set.sample_rate)
    notes: list[str] = []
    model_config, train_config, meta = resolve_configs(args, train_set, folder, notes.append)
    vocoder = checked_vocoder(model_config, args.vocoder, "the run") if args.vocoder else None
    result = _train(args, folder, notes, train_audio_vqvae, train_set, test_set, model_config,
                    train_config, meta=meta)  # fmt: skip
    if vocoder is not None and distributed.current().is_main:
        vocoder.save_pretrained(folder.vocoder)
    elif model_config.decoder == "mel" and model_config.vocoder_steps:
        _train_own_vocoder(args, folder, train_set, test_set, model_config, train_config.seed)
    if distributed.current().is_main:
        e = result.evaluation
        if e is not None:
            recon = (
                f"log-mel error {e.mel_error:.3f}"
                if e.bits_per_sample is None
                else f"{e.bits_per_sample:.3f} bits/sample (teacher-forced)"
            )
            print(
                f"{folder.path}: test {recon}, code usage {e.code_usage:.3f}, perplexity "
                f"{e.perplexity:.1f}, {e.bit_rate:.0f} bit/s"
            )
        print(f"weights: {folder.weights_file}")
        if not args.no_report:
            report.try_write_report(folder.path, args.data_root)
    return 0


# what `vqvae train` does with each kind of data set (``data_kind``): a new modality is a
# loader declaring its kind and one entry here
TRAINERS = {IMAGES: run_images, AUDIO: run_audio}


def _train_own_vocoder(args, folder: RunDir, train_set, test_set, model, seed: int) -> None:
    """The run's own vocoder (``vocoder_steps``), trained after the VQ-VAE on the same audio
    into ``RUN/vocoder``; ``--resume`` continues it too."""
    run = RunDir(folder.vocoder, kind="vocoder")
    resume = args.resume and run.config_file.is_file()
    if distributed.launch_rank() == 0:
        run.prepare(resume=resume, force=True)
        say(f"vqvae: training the run's vocoder ({model.vocoder_steps} steps) into {run.path}")
    s = model.mel_settings
    config = VocosConfig(sample_rate=s.sample_rate, hop=s.hop, n_mels=s.n_mels)
    train = vocoder_train_config(model.vocoder_steps, seed)
    train_vocoder(run, train_set, test_set, config, train, meta={"data": args.data},
                  resume=resume, progress=not args.no_progress, device=args.device)  # fmt: skip


def _resize(args: argparse.Namespace, folder: RunDir) -> tuple[int, int] | None:
    """``--resize``; under ``--resume`` the run's (where recorded), and no other."""
    if not args.resume:
        return resize(args)
    saved = folder.read_config()
    size = resize(args, saved)
    if "resize" in saved and size != resize(argparse.Namespace(), saved):
        was = "x".join(map(str, saved["resize"])) if saved["resize"] else "no --resize"
        raise RunError(
            f"{folder.path}: --resume with a config that does not match the run (differs in "
            f"resize: {'x'.join(map(str, size or ()))} asked, the run used {was}); drop "
            f"--resize, or start a new run"
        )
    return size


def _check_splits_agree(spec: str, train: ImageDataset, test: ImageDataset, held: str) -> None:
    """Split folders are read one by one: their images must come out the same shape."""
    a, b = (train.num_channels, *train.image_size), (test.num_channels, *test.image_size)
    if a != b:
        raise DataError(
            f"{spec}: the {held} images are {b[1]}x{b[2]} with {b[0]} channel(s), the train "
            f"images {a[1]}x{a[2]} with {a[0]}; pass --resize H W (or make the channels agree)"
        )


def summarise(folder: RunDir, result: TrainResult) -> None:
    e = result.evaluation
    if e is not None:
        print(
            f"{folder.path}: test PSNR {e.psnr:.2f} dB, MSE {e.mse:.5f}, code usage "
            f"{e.code_usage:.3f}, perplexity {e.perplexity:.1f}, {e.bits_per_image:.0f} bits/image"
        )
    print(f"weights: {folder.weights_file}  reconstructions: {folder.path / 'reconstructions.png'}")

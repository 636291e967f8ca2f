"""What ``vqvae train`` and ``vqvae demo`` do, between parsed arguments and the trainer:
pick the data, resolve the config (preset, TOML, --set, flags), and guard the run folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from vqvae.config import TrainConfig, apply_overrides, choose_preset, get_full_preset, load_toml
from vqvae.data import ImageDataset, load_dataset
from vqvae.models import VQVAEConfig
from vqvae.pretrained import config_from_dict
from vqvae.train import distributed
from vqvae.train.evaluate import encode
from vqvae.train.prior_trainer import (
    CodeSet,
    build_prior,
    sample_images,
    train_prior,
    write_samples,
)
from vqvae.train.run import RunDir, RunError, say
from vqvae.train.trainer import TrainResult, train_vqvae

# The demo's prior: small, so that the whole demo takes about two minutes on a CPU.
DEMO_PRIOR = {"channels": 32, "num_layers": 6, "head_channels": 64}
# 400 steps (18 epochs of the 1,438 training grids): the held-out NLL is lowest there
# (3.73 bits/code against 6 uniform); by 1,500 steps it overfits past the uniform prior.
DEMO_PRIOR_TRAIN = TrainConfig(
    steps=400, batch_size=64, lr=1e-3, checkpoint_every=200, eval_every=200, log_every=20
)


def resolve_configs(
    args: Any, data: ImageDataset, run: RunDir, say: Callable[[str], None] = say
) -> tuple[VQVAEConfig, TrainConfig, dict[str, Any]]:
    """The model and train configs this invocation asks for, and how they were chosen."""
    saved = run.read_config() if args.resume and run.config_file.is_file() else None
    pairs = (load_toml(args.config) if args.config else []) + list(args.set)
    if saved is not None and not args.preset:
        model = config_from_dict(VQVAEConfig, saved["config"])
        train = config_from_dict(TrainConfig, saved.get("train", {}))
        preset = saved.get("preset")
    elif args.preset:
        preset = args.preset
        model, train = get_full_preset(preset).model, get_full_preset(preset).train
    else:
        preset, chosen = choose_preset(data.num_channels, data.image_size)
        model, train = chosen.model, chosen.train
        h, w = data.image_size
        say(
            f"vqvae: chose preset {preset!r} for {h}x{w} images with {data.num_channels} "
            f"channel(s) (override with --preset)"
        )
    model, train = apply_overrides(model, train, pairs)
    flags = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "checkpoint_every": args.checkpoint_every,
    }
    train = replace(train, **{k: v for k, v in flags.items() if v is not None})
    got = (data.num_channels, *data.image_size)
    want = (model.in_channels, *model.image_size)
    if got != want:
        raise RunError(
            f"{data.name}: images are {got[1]}x{got[2]} with {got[0]} channel(s), but the "
            f"config expects {want[1]}x{want[2]} with {want[0]} "
            f"(use --set image_size=[{got[1]},{got[2]}] --set in_channels={got[0]})"
        )
    meta = {"data": args.data, "preset": preset, "overrides": pairs}
    return model, train, meta


def train_command(args: Any) -> int:
    run = RunDir(args.out)
    run.check(resume=args.resume, force=args.force)  # refuse before loading the data
    train_set = load_dataset(args.data, "train", args.data_root, resize=_resize(args))
    test_set = load_dataset(args.data, "test", args.data_root, resize=_resize(args))
    notes: list[str] = []
    model_config, train_config, meta = resolve_configs(args, train_set, run, notes.append)
    # Everything is checked before the folder is touched: a bad option destroys nothing.
    # Under torchrun only rank 0 touches the folder (two ranks clearing it at once race);
    # the others wait for it in the process group's set-up.
    if distributed.launch_rank() == 0:
        run.prepare(resume=args.resume, force=args.force)
        for note in notes:  # only once the run goes ahead: a refusal stays one line
            say(note)
    result = train_vqvae(
        run,
        train_set,
        test_set,
        model_config,
        train_config,
        meta=meta,
        resume=args.resume,
        progress=not args.no_progress,
        device=args.device,
    )
    if distributed.current().is_main:
        _summarise(run, result)
        if not args.no_report:
            _write_report(run, args.data_root)
    return 0


def _resize(args: Any) -> tuple[int, int] | None:
    return tuple(args.resize) if getattr(args, "resize", None) else None  # type: ignore[return-value]


def _summarise(run: RunDir, result: TrainResult) -> None:
    e = result.evaluation
    if e is not None:
        print(
            f"{run.path}: test PSNR {e.psnr:.2f} dB, MSE {e.mse:.5f}, code usage "
            f"{e.code_usage:.3f}, perplexity {e.perplexity:.1f}, {e.bits_per_image:.0f} bits/image"
        )
    print(f"weights: {run.weights_file}  reconstructions: {run.path / 'reconstructions.png'}")


def demo_command(args: Any) -> int:
    """The whole system on scikit-learn's bundled 8x8 digits, no network needed: train a
    VQ-VAE, fit a class-conditional PixelCNN prior to its codes, sample every class."""
    run = RunDir(args.out)
    train_set = load_dataset("digits", "train")
    test_set = load_dataset("digits", "test")
    preset = get_full_preset("digits")
    train_config = replace(
        preset.train, steps=args.steps or preset.train.steps, eval_limit=len(test_set)
    )
    run.prepare(resume=False, force=args.force)
    say(f"vqvae demo: 1/3 training a VQ-VAE on {len(train_set)} 8x8 digits into {run.path}")
    result = train_vqvae(
        run,
        train_set,
        test_set,
        preset.model,
        train_config,
        meta={"data": "digits", "preset": "digits", "overrides": []},
    )
    _summarise(run, result)

    say("vqvae demo: 2/3 fitting a class-conditional PixelCNN prior to the codes")
    model = result.model.eval()
    codes = [
        CodeSet(torch.from_numpy(encode(model, d.images)), torch.from_numpy(d.labels))
        for d in (train_set, test_set)
    ]
    prior = build_prior("pixelcnn", model, train_set.num_classes, DEMO_PRIOR)
    prior_steps = args.steps or DEMO_PRIOR_TRAIN.steps
    ev = train_prior(
        prior,
        RunDir(run.path / "prior"),
        codes[0],
        codes[1],
        replace(DEMO_PRIOR_TRAIN, steps=prior_steps),
        write_config=True,
    )
    print(
        f"prior: test {ev.test_bits_per_code:.3f} bits/code (uniform "
        f"{ev.uniform_bits_per_code:.3f}, unigram {ev.unigram_bits_per_code:.3f})"
    )

    say("vqvae demo: 3/3 sampling 10 digits of every class")
    labels = torch.arange(train_set.num_classes).repeat_interleave(10)
    images, sampled = sample_images(model, prior, labels, seed=0)
    write_samples(run.path / "samples", images, sampled, labels, nrow=10)
    print(f"samples: {run.path / 'samples' / 'grid.png'}")
    _write_report(run, None)
    return 0


def _write_report(run: RunDir, data_root: str | None) -> None:
    """The HTML report comes last; a failure to draw it is one line, never a lost run."""
    from vqvae.report import try_write_report  # lazily: matplotlib only when it is needed

    try_write_report(run.path, data_root)

"""What ``vqvae train`` and ``vqvae demo`` do, between parsed arguments and the trainer:
pick the data, resolve the config (preset, TOML, --set, flags), and guard the run folder."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

from vqvae.config import TrainConfig, apply_overrides, choose_preset, get_preset, load_toml
from vqvae.data import ImageDataset, load_dataset
from vqvae.models import VQVAEConfig
from vqvae.pretrained import config_from_dict
from vqvae.train.run import RunDir, RunError
from vqvae.train.trainer import TrainResult, train_vqvae

DEMO_STEPS = 1500


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def resolve_configs(
    args: Any, data: ImageDataset, run: RunDir
) -> tuple[VQVAEConfig, TrainConfig, dict[str, Any]]:
    """The model and train configs this invocation asks for, and how they were chosen."""
    saved = run.read_config() if args.resume and run.config_file.is_file() else None
    pairs = (load_toml(args.config) if args.config else []) + list(args.set)
    if saved is not None and not args.preset:
        model = config_from_dict(VQVAEConfig, saved["config"])
        train = config_from_dict(TrainConfig, saved.get("train", {}))
        preset = saved.get("preset")
    elif args.preset:
        preset, model = args.preset, get_preset(args.preset)
        train = TrainConfig()
    else:
        preset, model = choose_preset(data.num_channels, data.image_size)
        train = TrainConfig()
        h, w = data.image_size
        _say(
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
    if args.resume and not run.config_file.is_file():
        raise RunError(f"{run.path}: nothing to resume (no config.json)")
    train_set = load_dataset(args.data, "train", args.data_root, resize=_resize(args))
    test_set = load_dataset(args.data, "test", args.data_root, resize=_resize(args))
    model_config, train_config, meta = resolve_configs(args, train_set, run)
    # Everything is checked before the folder is touched: a bad option destroys nothing.
    run.prepare(resume=args.resume, force=args.force)
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
    _summarise(run, result)
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
    """Train the digits preset on scikit-learn's bundled 8x8 digits: no network needed."""
    run = RunDir(args.out)
    train_set = load_dataset("digits", "train")
    test_set = load_dataset("digits", "test")
    model_config = get_preset("digits")
    train_config = TrainConfig(
        steps=args.steps or DEMO_STEPS,
        batch_size=64,
        lr=1e-3,
        checkpoint_every=500,
        eval_every=500,
        eval_limit=len(test_set),
    )
    run.prepare(resume=False, force=args.force)
    _say(f"vqvae demo: training a VQ-VAE on {len(train_set)} 8x8 digits into {run.path}")
    result = train_vqvae(
        run,
        train_set,
        test_set,
        model_config,
        train_config,
        meta={"data": "digits", "preset": "digits", "overrides": []},
    )
    _summarise(run, result)
    return 0

"""The ``vqvae`` command: thin sub-commands over the library.

A user's mistake is one line on stderr and a non-zero exit, never a traceback, and no
command overwrites existing work without ``--force`` (DESIGN.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from vqvae.train.run import RunDir, refuse_overwrite

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A user-facing failure: printed as one line."""


# -- shared loading ------------------------------------------------------------------------
def _load_data(args, split: str | None = None):
    from vqvae.data import load_dataset

    resize = tuple(args.resize) if getattr(args, "resize", None) else None
    return load_dataset(
        args.data,
        split or args.split,
        args.data_root,
        resize=resize,  # type: ignore[arg-type]
    )


def _load_model(run: str):
    from vqvae.train.trainer import load_run_model

    return load_run_model(RunDir(run))


def _model_and_data(args):
    """The run's model and the data it is asked to work on, checked to fit each other."""
    model = _load_model(args.run)
    dataset = _load_data(args)
    _check_fits(model, dataset)
    return model, dataset


def _check_fits(model, dataset) -> None:
    c, (h, w) = model.config.in_channels, model.config.image_size
    got = (dataset.num_channels, *dataset.image_size)
    if got != (c, h, w):
        raise CommandError(
            f"{dataset.name}: images are {got[1]}x{got[2]} with {got[0]} channel(s); "
            f"the model expects {h}x{w} with {c}"
        )


# -- commands ------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from vqvae.train.commands import train_command

    return train_command(args)


def cmd_demo(args) -> int:
    from vqvae.train.commands import demo_command

    return demo_command(args)


def cmd_eval(args) -> int:
    from vqvae.train.evaluate import evaluate

    model, dataset = _model_and_data(args)
    result = evaluate(model, dataset.images).to_dict()
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{dataset.name} [{args.split}], {result['num_images']} images")
        for key in (
            "mse",
            "psnr",
            "perplexity",
            "code_usage",
            "bits_per_image",
            "compression_ratio",
        ):
            print(f"  {key:18s} {result[key]:.4f}")
    return 0


def cmd_encode(args) -> int:
    from vqvae._io import write_npz
    from vqvae.train.evaluate import encode

    out = Path(args.out)
    refuse_overwrite(out, args.force)
    model, dataset = _model_and_data(args)
    codes = encode(model, dataset.images)
    arrays = {"codes": codes.astype(np.int64)}
    if dataset.labels is not None:
        arrays["labels"] = dataset.labels
    write_npz(out, **arrays)
    print(f"wrote {out}: codes {codes.shape}")
    return 0


def cmd_decode(args) -> int:
    import torch

    from vqvae.data import save_pngs, to_uint8_images
    from vqvae.train.evaluate import read_code_file

    out = Path(args.out)
    refuse_overwrite(out, args.force)
    model = _load_model(args.run)
    codes, _ = read_code_file(Path(args.codes), model)
    with torch.no_grad():
        images = (
            np.concatenate(
                [
                    to_uint8_images(model.decode_codes(torch.from_numpy(codes[i : i + 256]).long()))
                    for i in range(0, len(codes), 256)
                ]
            )
            if len(codes)
            else np.zeros((0, *model.config.image_size, model.config.in_channels), np.uint8)
        )
    save_pngs(images, out)
    print(f"wrote {len(images)} PNGs to {out}")
    return 0


def cmd_reconstruct(args) -> int:
    from vqvae._io import write_npz
    from vqvae.train.evaluate import reconstruct

    out = Path(args.out)
    refuse_overwrite(out, args.force)
    model, dataset = _model_and_data(args)
    originals = dataset.images[: args.limit] if args.limit else dataset.images
    _, recons = reconstruct(model, originals)
    write_npz(out, originals=originals, reconstructions=recons)
    print(f"wrote {out}: {len(originals)} originals and reconstructions")
    return 0


def cmd_prior_train(args) -> int:
    from vqvae.train.prior_trainer import prior_train_command

    return prior_train_command(args)


def cmd_sample(args) -> int:
    from vqvae.train.prior_trainer import sample_command

    return sample_command(args)


def cmd_report(args) -> int:
    from vqvae.report import write_report

    print(f"wrote {write_report(args.run, args.data_root, data=args.data)}")
    return 0


def cmd_compare(args) -> int:
    from vqvae.train.compare import compare_command

    return compare_command(args)


# -- the parser ----------------------------------------------------------------------------
def _add_data(p: argparse.ArgumentParser, split: str = "test") -> None:
    p.add_argument("--data", required=True, help="a registered name (digits, mnist, ...) or a path")
    p.add_argument("--data-root", help="where named data sets live (default: $VQVAE_DATA)")
    p.add_argument("--split", default=split, choices=("train", "test"))
    p.add_argument(
        "--resize", type=int, nargs=2, metavar=("H", "W"), help="resize images of a folder to H x W"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vqvae", description="VQ-VAE: discrete codes for images, and priors over them."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("demo", help="train on the bundled 8x8 digits and write a run folder")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--force", action="store_true", help="replace an existing run folder")
    p.add_argument("--steps", type=int, default=None)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train a VQ-VAE; the run folder keeps everything")
    _add_data(p, split="train")
    p.add_argument("--out", required=True, help="the run folder")
    p.add_argument("--preset", help="a named model config (see `vqvae train --list-presets`)")
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
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--force", action="store_true", help="replace an existing run folder")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-report", action="store_true", help="skip RUN/report/ at the end")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="MSE, PSNR, perplexity, code usage of a trained run")
    p.add_argument("run")
    _add_data(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("encode", help="images -> code grids (.npz)")
    p.add_argument("run")
    _add_data(p)
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="code grids (.npz) -> PNG images")
    p.add_argument("run")
    p.add_argument("codes")
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("reconstruct", help="images -> codes -> images (.npz of uint8)")
    p.add_argument("run")
    _add_data(p)
    p.add_argument("--limit", type=int)
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_reconstruct)

    prior = sub.add_parser("prior", help="autoregressive priors over a run's codes")
    prior_sub = prior.add_subparsers(dest="prior_command", metavar="COMMAND", required=True)
    p = prior_sub.add_parser("train", help="fit a PixelCNN or Transformer prior to the codes")
    p.add_argument("run")
    p.add_argument("--kind", choices=("pixelcnn", "transformer"), default="pixelcnn")
    p.add_argument("--class-conditional", action="store_true", help="condition on the labels")
    p.add_argument("--data", help="data spec to encode (default: the one the run trained on)")
    p.add_argument("--data-root")
    p.add_argument("--codes", help="train on a `vqvae encode` .npz instead of encoding")
    p.add_argument("--test-codes", help="held-out .npz for the reported NLL")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--force", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_prior_train)

    p = sub.add_parser("sample", help="sample code grids from the prior and decode them")
    p.add_argument("run")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--label", type=int, help="the class, for a class-conditional prior")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("report", help="write RUN/report/index.html: curves, codes, samples")
    p.add_argument("run")
    p.add_argument("--data", help="data spec of the held-out images (default: the run's)")
    p.add_argument("--data-root", help="where named data sets live (default: $VQVAE_DATA)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "compare", help="bits/dim of VAE, VQ-VAE and VIMCO with one network (paper Table 1)"
    )
    p.add_argument("--data", required=True, help="a registered name (digits, mnist, ...) or a path")
    p.add_argument("--data-root", help="where named data sets live (default: $VQVAE_DATA)")
    p.add_argument("--out", required=True, help="the output folder (one sub-folder per model)")
    p.add_argument("--steps", type=int, help="training steps per model (default 500)")
    p.add_argument("--models", help="comma-separated subset of vae,vqvae,vimco (default: all)")
    p.add_argument(
        "--likelihood",
        choices=("softmax256", "logistic_mixture"),
        help="the decoder's discrete likelihood (default softmax256)",
    )
    p.add_argument("--num-samples", type=int, help="VIMCO's k (default 4; the paper: 50)")
    p.add_argument("--prior-steps", type=int, help="PixelCNN prior steps; 0 = none (default 500)")
    p.add_argument("--eval-limit", type=int, help="test images scored (default 500)")
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", help="continue an interrupted comparison")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_compare)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from vqvae.train.loop import NonFiniteLoss

    return (
        CommandError,
        ValueError,
        FileNotFoundError,
        NotADirectoryError,
        PermissionError,
        NonFiniteLoss,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    from vqvae.train.loop import Interrupted

    try:
        return func(args)
    except Interrupted as e:
        print(f"vqvae: {e}; continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("vqvae: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _user_errors() as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"vqvae: error: {message}", file=sys.stderr)
        return EXIT_USAGE if not isinstance(e, RuntimeError) else 1


if __name__ == "__main__":
    sys.exit(main())

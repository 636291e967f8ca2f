"""What several commands share: the data options, loading a run's model with its data, and
writing sampled data."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from vqvae._io import write_npz
from vqvae.data import ImageDataset, load_images, save_png_grid
from vqvae.errors import RunError
from vqvae.registry import DATASETS
from vqvae.runs import RunDir, load_run_model

SPLITS = ("train", "test")


def add_data_options(p: argparse.ArgumentParser, split: str = "test", required: bool = True):
    names = ", ".join(DATASETS.names())
    p.add_argument("--data", required=required, help=f"a registered name ({names}) or a path")
    p.add_argument("--data-root", help="where named data sets live (default: $VQVAE_DATA)")
    p.add_argument("--split", default=split, choices=SPLITS)
    p.add_argument(
        "--resize", type=int, nargs=2, metavar=("H", "W"), help="resize images of a folder to H x W"
    )


def add_output(p: argparse.ArgumentParser, what: str = "the output file") -> None:
    """``--out`` (required) and ``--force`` (replace it if it exists)."""
    p.add_argument("--out", required=True, help=what)
    p.add_argument("--force", action="store_true", help="replace existing output")


def resize(args: argparse.Namespace) -> tuple[int, int] | None:
    return tuple(args.resize) if getattr(args, "resize", None) else None  # type: ignore[return-value]


def load_data(args: argparse.Namespace, split: str | None = None) -> ImageDataset:
    return load_images(args.data, split or args.split, args.data_root, resize=resize(args))


def model_and_data(args: argparse.Namespace) -> tuple[Any, ImageDataset]:
    """The run's model and the data it is asked to work on, checked to fit each other."""
    model = load_run_model(RunDir(args.run))
    dataset = load_data(args)
    got = (dataset.num_channels, *dataset.image_size)
    want = (model.config.in_channels, *model.config.input_size)
    if got != want:
        raise RunError(
            f"{dataset.name}: images are {got[1]}x{got[2]} with {got[0]} channel(s); "
            f"the model expects {'x'.join(map(str, want[1:]))} with {want[0]}"
        )
    return model, dataset


def write_samples(
    out: Path,
    images: np.ndarray,
    codes: np.ndarray,
    labels: np.ndarray | None,
    nrow: int | None = None,
) -> None:
    """``grid.png`` and ``samples.npz`` (images, codes, labels; -1 where unconditional)."""
    out.mkdir(parents=True, exist_ok=True)
    save_png_grid(images, out / "grid.png", nrow=nrow, scale=max(1, 64 // images.shape[1]))
    write_npz(
        out / "samples.npz",
        images=images,
        codes=codes,
        labels=labels if labels is not None else np.full(len(images), -1),
    )

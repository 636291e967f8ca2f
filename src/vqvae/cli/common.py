"""What several commands share: the data options, loading a run's model with its data, and
writing sampled data."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from vqvae._io import WriteError, write_npz
from vqvae.config import PRECISIONS
from vqvae.console import say
from vqvae.data import (
    AudioDataset,
    ImageDataset,
    SplitLayout,
    default_workers,
    load_audio,
    load_images,
    save_png_grid,
    split_layout,
    write_wav,
)
from vqvae.data.base import SPLITS
from vqvae.errors import RunError
from vqvae.models import AudioVQVAE
from vqvae.registry import DATASETS
from vqvae.runs import RunDir, load_run_model, prior_kind
from vqvae.train import distributed
from vqvae.train.checkpoint import last_good_note


def writes_into(p: argparse.ArgumentParser, option: str, create: bool = False) -> None:
    """Declare that a command writes into the run folder its ``option`` names: ``main``
    holds that run's lock for the command's whole life (``create``: a new run's folder)."""
    p.set_defaults(writes=lambda args: (getattr(args, option), create))


@contextmanager
def run_lock(args: argparse.Namespace, argv: Sequence[str]) -> Iterator[None]:
    """The lock of the run a writing command names (``writes_into``), held around it; under
    torchrun by rank 0 alone (the others write nothing). A write the disk refuses says where
    the run would continue from."""
    folder, create = getattr(args, "writes", lambda _: (None, False))(args)
    if folder is None or distributed.launch_rank() != 0:
        yield
        return
    run = RunDir(folder)
    with run.lock(" ".join(["vqvae", *argv]), create=create):
        try:
            yield
        except WriteError as e:
            raise RunError(f"{e}; {_last_good(e.path, run.path)}") from None


def _last_good(path: Path, top: Path) -> str:
    """``last_good_note`` of the nearest folder above ``path`` (up to ``top``) that keeps
    checkpoints: the run, or its prior, stack, video or vocoder."""
    for folder in path.parents:
        if (folder / "checkpoints").is_dir():
            return last_good_note(folder / "checkpoints")
        if folder == top or folder == folder.parent:
            break
    return "the run's checkpoints are untouched"


def add_data_options(
    p: argparse.ArgumentParser, split: str | None = None, required: bool = True
) -> None:
    names = ", ".join(DATASETS.names())
    p.add_argument("--data", required=required, help=f"a registered name ({names}) or a path")
    p.add_argument("--data-root", help="where named data sets live (default: $VQVAE_DATA)")
    p.add_argument(
        "--split",
        default=split,
        choices=SPLITS,
        help=f"default: {split}" if split else "default: test, or val where there is no test",
    )
    p.add_argument(
        "--resize",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="resize every image to H x W (a run records it; later commands on the run reuse it)",
    )


def add_workers_option(p: argparse.ArgumentParser) -> None:
    """``--workers N``: processes decoding a folder's images while the model works."""
    p.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="processes decoding a folder of images ahead of the model (0: none; default: "
        f"the CPUs training leaves free, now {default_workers()}); arrays are read in "
        "memory or memory-mapped",
    )


STEP_OPTIONS = ("precision", "compile", "accumulate", "channels_last")


def add_step_options(p: argparse.ArgumentParser) -> None:
    """How a training step runs: ``--precision``, ``--compile``, ``--accumulate`` (a run
    records them, and ``--resume`` keeps them)."""
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="32 (default), or bf16/16: the networks under autocast, quantizers and losses "
        "in float32 (16 with loss scaling, for GPUs without bf16: on a CPU it is far slower)",
    )
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        help="torch.compile the networks (compiles for a minute, then faster steps)",
    )
    p.add_argument(
        "--accumulate",
        type=int,
        metavar="N",
        help="N micro-batches per step: --batch-size examples in N pieces, one update",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        help="image convolutions on NHWC memory (faster on this project's measurements, "
        "BENCHMARKS.md section 12; rounds differently, so off by default)",
    )


def step_options(args: argparse.Namespace, saved_train: dict[str, Any] | None = None) -> dict:
    """The step options given, else (resuming) the run's: training config fields."""
    saved_train = saved_train or {}
    given = {k: getattr(args, k, None) for k in STEP_OPTIONS}
    return {k: saved_train[k] if v is None else v for k, v in given.items()
            if v is not None or k in saved_train}  # fmt: skip


def _workers(text: str) -> int:
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {n}")
    return n


def add_vocoder_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--vocoder",
        metavar="VOC",
        help="speech with a mel decoder: make audio with this trained vocoder (vqvae vocoder "
        "train) instead of the run's own (RUN/vocoder, else Griffin-Lim)",
    )


def add_output(p: argparse.ArgumentParser, what: str = "the output file") -> None:
    """``--out`` (required) and ``--force`` (replace it if it exists)."""
    p.add_argument("--out", required=True, help=what)
    p.add_argument("--force", action="store_true", help="replace existing output")


def add_prior_sampling_options(p: argparse.ArgumentParser) -> None:
    """How a prior draws codes (``sample`` and ``inpaint``): temperature, top-k, seed, and
    the options of a masked-token prior's sampler (docs/maskgit.md)."""
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--steps", type=int, help="maskgit prior: decoding passes (default: the prior's own)"
    )
    p.add_argument(
        "--guidance",
        type=float,
        help="maskgit prior: classifier-free guidance scale, 1 = none (default: the prior's own)",
    )


def prior_sampling_options(args: argparse.Namespace, prior: Any) -> dict[str, Any]:
    """``--steps`` / ``--guidance`` as keywords for ``prior.sample``; a prior that draws one
    code per step has no such option, and giving it one is refused in one line."""
    given = {k: getattr(args, k, None) for k in ("steps", "guidance")}
    given = {k: v for k, v in given.items() if v is not None}
    for name in given:
        if name not in prior.sampling_options:
            kind = prior_kind(RunDir(args.run).prior.read_config())
            raise RunError(
                f"--{name}: a {kind} prior draws its codes one per step and takes no "
                f"--{name}; it applies to a maskgit prior"
            )
    return given


def resize(args: argparse.Namespace, saved: dict[str, Any] | None = None) -> tuple[int, int] | None:
    """``--resize H W``, else the ``resize`` a run's ``config.json`` records, else None."""
    if getattr(args, "resize", None):
        return tuple(args.resize)  # type: ignore[return-value]
    recorded = (saved or {}).get("resize")
    return (int(recorded[0]), int(recorded[1])) if recorded else None


def layout_note(spec: str, layout: SplitLayout, split: str | None = None) -> str | None:
    """The line said when split folders decide the splits: which folder is used (``split``),
    or for training (``split=None``) which one trains and which one evaluates."""
    if not layout.folders:
        return None
    folders = layout.folders
    found = ", ".join(f"{f}/" for f in folders.values())
    if layout.kind == "seeded":  # train/ alone
        note = f"a seeded {layout.test_fraction:.0%} of {folders['train']}/ is the test split"
        return f"vqvae: {spec} has the split folder {found} only: {note}" + (
            ", the rest trains" if split is None else f"; using the {split} split"
        )
    if split is None:
        use = f"{folders['train']}/ for training and {folders[layout.held_out]}/ for evaluation"
    else:
        use = f"{folders[split]}/"
    return f"vqvae: {spec} has split folders {found}: using {use}"


def load_data(
    args: argparse.Namespace,
    split: str | None = None,
    saved: dict[str, Any] | None = None,
    notes: Callable[[str], None] = say,
) -> ImageDataset:
    """The data of ``--data``: ``split``, else ``--split``, else its held-out split (test, or
    val where there is no test), resized by ``--resize`` or else as the run recorded
    (``saved``: its ``config.json``). The split chosen is written back to ``args.split``;
    what was chosen goes to ``notes``."""
    layout = split_layout(args.data)
    args.split = split or getattr(args, "split", None) or layout.held_out
    note = layout_note(args.data, layout, args.split)
    dataset = load_images(
        args.data,
        args.split,
        args.data_root,
        resize=resize(args, saved),
        lazy=True,  # a folder is indexed and read batch by batch as the command goes
        workers=getattr(args, "workers", None),
    )
    if note:
        notes(note)
    recorded = (saved or {}).get("split_layout")
    if recorded and args.data == saved.get("data") and recorded != layout.to_dict():
        notes(
            f"vqvae: note: {args.data} is now split as {layout.to_dict()}; the run was "
            f"trained when it was split as {recorded}"
        )
    return dataset


def recorded_data(args: argparse.Namespace, run: RunDir, hint: str = "pass --data") -> str:
    """``--data``, else the data spec the run was trained on (its ``config.json``)."""
    spec = args.data or run.read_config().get("data")
    if not spec:
        raise RunError(f"{run.path}: no data spec recorded; {hint}")
    return str(spec)


def model_and_data(args: argparse.Namespace) -> tuple[Any, ImageDataset | AudioDataset]:
    """The run's model and the data it is asked to work on, checked to fit each other: an
    ``AudioDataset`` at the model's sample rate for a speech run."""
    run = RunDir(args.run)
    model = load_run_model(run, getattr(args, "vocoder", None))
    if isinstance(model, AudioVQVAE):
        return model, load_run_audio(args, model)
    return model, load_fitting_images(args, run, model)


def load_fitting_images(
    args: argparse.Namespace, run: RunDir, model: Any, split: str | None = None
) -> ImageDataset:
    """``load_data`` of ``split``, checked to be images of the shape ``model`` (the run's)
    takes; its notes are said only once the data fits, so that a refusal stays one line."""
    notes: list[str] = []
    dataset = load_data(args, split, saved=run.read_config(), notes=notes.append)
    got = (dataset.num_channels, *dataset.image_size)
    want = (model.config.in_channels, *model.config.input_size)
    if got != want:
        raise RunError(
            f"{dataset.name}: images are {got[1]}x{got[2]} with {got[0]} channel(s); "
            f"the model expects {'x'.join(map(str, want[1:]))} with {want[0]}"
        )
    for note in notes:
        say(note)
    return dataset


def load_run_audio(args: argparse.Namespace, model: AudioVQVAE) -> AudioDataset:
    """``--data`` for a speech model: split ``--split`` (default: test) at its sample rate."""
    if getattr(args, "resize", None):
        raise RunError("--resize applies to images; this run is a speech model")
    args.split = getattr(args, "split", None) or "test"
    rate = model.config.sample_rate
    return load_audio(args.data, args.split, args.data_root, sample_rate=rate)


def wav_name(source: str) -> str:
    """The output name of a WAV made from ``source`` (a data set's file): same path, .wav."""
    return str(Path(source).with_suffix(".wav"))


def write_wavs(out: Path, waves: list[np.ndarray], names: list[str], sample_rate: int) -> None:
    """One 16-bit WAV per waveform, ``out/<name>`` (sub-folders of the names kept)."""
    for wave, name in zip(waves, names, strict=True):
        write_wav(out / name, wave, sample_rate)


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

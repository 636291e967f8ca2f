"""``vqvae inpaint``: redraw the codes of a region of one example (a box of an image, a time
span of an utterance) with the run's masked-token prior, given all the codes around it
(docs/maskgit.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vqvae._io import write_npz
from vqvae.cli.common import (
    add_output,
    add_prior_sampling_options,
    add_vocoder_option,
    load_fitting_images,
    load_run_audio,
    prior_sampling_options,
    write_wavs,
)
from vqvae.data import save_png_grid
from vqvae.errors import RunError
from vqvae.inference import box_mask, decode, encode, inpaint
from vqvae.inference.audio import encode_audio, generate_audio, speaker_ids
from vqvae.models import AudioVQVAE
from vqvae.priors import Condition
from vqvae.runs import RunDir, load_prior, load_run_model, prior_kind, refuse_overwrite

BOX_COLOUR = (255, 0, 0)  # the box drawn on the original, in RGB


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "inpaint", help="redraw a region of one example's codes with a maskgit prior"
    )
    p.add_argument("run")
    p.add_argument("--data", required=True, help="data spec holding the example")
    p.add_argument("--data-root")
    p.add_argument("--split", help="default: the held-out split")
    p.add_argument("--index", type=int, required=True, help="the example's index in the split")
    region = p.add_mutually_exclusive_group(required=True)
    region.add_argument(
        "--box",
        type=int,
        nargs=4,
        metavar=("Y0", "X0", "Y1", "X1"),
        help="images: the pixels to redraw, ends exclusive (the codes covering them are)",
    )
    region.add_argument(
        "--span",
        type=float,
        nargs=2,
        metavar=("T0", "T1"),
        help="speech: the seconds to redraw (the codes covering them are)",
    )
    p.add_argument("--label", type=int, help="class-conditional prior: default the example's")
    p.add_argument("--n", type=int, default=8, help="completions to draw (default: 8)")
    add_prior_sampling_options(p)
    add_vocoder_option(p)
    add_output(p, "a folder for inpaint.png (speech: WAVs) and samples.npz")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder = RunDir(args.run)
    out = Path(args.out)
    refuse_overwrite(out, args.force)
    if args.n < 1:
        raise RunError(f"--n: expected a positive number of completions, got {args.n}")
    model = load_run_model(folder, args.vocoder)
    prior = load_prior(folder)
    if not prior.can_inpaint:
        kind = prior_kind(folder.prior.read_config())
        raise RunError(
            f"{folder.path}: its {kind} prior draws codes in raster order and cannot fill in a "
            f"region; train a maskgit prior (vqvae prior train {folder.path} --kind maskgit)"
        )
    options = prior_sampling_options(args, prior)
    speech = isinstance(model, AudioVQVAE)
    if speech != (args.span is not None):
        want = "--span T0 T1 (seconds)" if speech else "--box Y0 X0 Y1 X1 (pixels)"
        raise RunError(f"this is a{' speech' if speech else 'n image'} run: give {want}")
    if speech:
        return _inpaint_speech(model, prior, out, args, options)
    data = load_fitting_images(args, folder, model)
    _check_index(args.index, len(data))
    mask = box_mask(model, tuple(args.box))
    original = np.asarray(data.images[args.index : args.index + 1])  # (1, H, W, C)
    codes = encode(model, original)  # (1, *shape)
    given = None if data.labels is None else int(data.labels[args.index])
    labels = _labels(prior, args.label, given)
    cond = None if labels is None else torch.full((args.n,), labels, dtype=torch.long)
    images, drawn = inpaint(
        model,
        prior,
        np.repeat(codes, args.n, axis=0),
        mask,
        cond,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
        **options,
    )
    # the reconstruction is what the codes alone give: the completions differ from it only
    # where the prior redrew codes
    boxed = _boxed(_rgb(decode(model, codes)), args.box)
    row = np.concatenate([_rgb(original), boxed, _rgb(images)])
    out.mkdir(parents=True, exist_ok=True)
    save_png_grid(row, out / "inpaint.png", nrow=len(row), scale=max(1, 64 // row.shape[1]))
    write_npz(
        out / "samples.npz",
        images=images,
        codes=drawn,
        original=original,
        original_codes=codes,
        mask=mask,
        labels=np.full(args.n, -1 if labels is None else labels),
    )
    print(
        f"wrote the original, its reconstruction with the box and {args.n} completions to "
        f"{out}/inpaint.png"
    )
    return 0


def _check_index(index: int, size: int) -> None:
    if not 0 <= index < size:
        raise RunError(f"--index: expected 0 <= I < {size} (the split's size), got {index}")


def _labels(prior: Any, asked: int | None, given: int | None) -> int | None:
    """The class a class-conditional prior is given: ``--label``, else the example's."""
    if not prior.config.num_classes:
        if asked is not None:
            raise RunError("--label: the run's prior is not class-conditional")
        return None
    label = asked if asked is not None else given
    if label is None:
        raise RunError("--label: the prior is class-conditional and the data has no labels")
    return label


def _rgb(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 1 or 3) -> (N, H, W, 3)."""
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def _boxed(images: np.ndarray, box: list[int]) -> np.ndarray:
    """The images with the box's outline drawn one pixel wide inside its edges."""
    y0, x0, y1, x1 = box
    out = images.copy()
    out[:, y0:y1, [x0, x1 - 1]] = BOX_COLOUR
    out[:, [y0, y1 - 1], x0:x1] = BOX_COLOUR
    return out


def _inpaint_speech(
    model: AudioVQVAE, prior: Any, out: Path, args: argparse.Namespace, options: dict[str, Any]
) -> int:
    """The codes of ``--span`` seconds of one utterance redrawn; WAVs of the original and of
    each completion, spoken by the run's decoder with the utterance's speaker."""
    data = load_run_audio(args, model)
    _check_index(args.index, len(data))
    one = data.subset(np.array([args.index]))
    length = prior.config.shape[0]
    found = encode_audio(model, one, length)  # (1, L), padded with silence's codes
    rate, hop = model.config.sample_rate, model.hop
    t0, t1 = args.span
    seconds = length * hop / rate
    if not 0 <= t0 < t1:
        raise RunError(f"--span: expected 0 <= T0 < T1 seconds, got {t0} {t1}")
    if t0 >= seconds:
        raise RunError(f"--span: the prior models the first {seconds:.2f} s; T0 {t0} is past it")
    mask = np.zeros(length, dtype=bool)
    mask[int(t0 * rate) // hop : -(-int(t1 * rate) // hop)] = True
    labels = _labels(prior, args.label, None if one.labels is None else int(one.labels[0]))
    speakers = speaker_ids(model, one, required=False)
    vector = None
    if prior.config.cond_dim:
        if speakers is None:
            raise RunError(f"{data.name}: the prior is conditioned on a speaker; the data has none")
        vector = F.one_hot(torch.full((args.n,), int(speakers[0])), prior.config.cond_dim).float()
    cond = Condition(
        labels=None if labels is None else torch.full((args.n,), labels, dtype=torch.long),
        vector=vector,
    )
    generator = torch.Generator().manual_seed(args.seed)
    codes = torch.from_numpy(np.repeat(found.codes, args.n, axis=0))
    drawn = prior.inpaint(
        codes, torch.from_numpy(mask), cond, temperature=args.temperature, top_k=args.top_k,
        generator=generator, **options,
    ).numpy()  # fmt: skip
    lengths = np.full(args.n, int(found.lengths[0]))
    spk = None if speakers is None else np.repeat(speakers, args.n)
    waves = generate_audio(model, drawn, lengths, spk, seed=args.seed)
    width = len(str(args.n - 1))
    names = ["original.wav", *(f"completion_{i:0{width}d}.wav" for i in range(args.n))]
    original = one.waveforms[0][: length * hop]
    write_wavs(out, [original, *waves], names, rate)
    write_npz(
        out / "samples.npz",
        codes=drawn,
        original_codes=found.codes,
        mask=mask,
        lengths=lengths,
        labels=np.full(args.n, -1 if labels is None else labels),
    )
    print(f"wrote original.wav and {args.n} completions of {t0}-{t1} s to {out}")
    return 0

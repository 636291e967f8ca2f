"""``write_report(run)``: the HTML report of a run, ``RUN/report/index.html`` with PNGs beside it.

Each part of the page is drawn on its own and a part that cannot be drawn (no held-out data,
no prior, an unexpected error) becomes a note saying what is missing, so the page always
renders what it can: the curves need only ``metrics.jsonl``, the codebook only the weights.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from vqvae import metrics
from vqvae._io import atomic_write
from vqvae.errors import RunError
from vqvae.models import VQVAE
from vqvae.registry import QUANTIZERS
from vqvae.report import analysis, audio, figures, runinfo, video
from vqvae.report.html import (
    Section,
    figure,
    guarded,
    note,
    one_line,
    page,
    run_header,
    stats,
    table,
)
from vqvae.runs import STACK_FIGURE, STACK_SUMMARY, RunDir, load_prior, load_run_model

NUM_RECONSTRUCTIONS = 32
NUM_CODE_GRIDS = 4


@dataclass
class _Run:
    """Everything loaded once and shared by the sections; ``None`` with a reason if absent."""

    run: RunDir
    saved: dict[str, Any]
    records: list[dict[str, Any]]
    model: VQVAE | None = None
    model_missing: str = ""
    held: analysis.HeldOut | None = None
    held_missing: str = ""
    prior: Any = None
    prior_meta: dict[str, Any] | None = None
    prior_metrics: dict[str, Any] | None = None
    prior_missing: str = ""

    @property
    def k(self) -> int | None:
        return self.saved.get("config", {}).get("quantizer", {}).get("num_codes")


def write_report(
    run_path: str | Path, data_root: str | None = None, *, data: str | None = None
) -> Path:
    """Write ``RUN/report/index.html`` and its PNGs; return the path of ``index.html``.

    ``data`` overrides the data spec recorded in ``config.json`` (e.g. a relative path
    written from another directory); ``data_root`` is where named data sets live."""
    run = RunDir(run_path)
    if not run.path.is_dir():
        raise RunError(f"{run.path}: no such run folder")
    if not run.config_file.is_file():
        raise RunError(f"{run.path}: not a run folder (no config.json)")
    saved = run.read_config()
    out = run.report
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):  # a figure that cannot be drawn now must not show a stale one
        old.unlink()
    spec = data or saved.get("data")
    if saved.get("class") == "AudioVQVAE":  # the speech model of section 4.3: report/audio.py
        sections, header = audio.build(run, saved, spec, data_root, out)
    else:
        sections, header = _image_page(run, saved, spec, data_root, out)
    text = page(
        title=f"VQ-VAE run: {run.path.resolve().name}",
        subtitle=runinfo.subtitle(saved),
        header_html=header,
        sections=sections,
        footer=f"written by `vqvae report` on {datetime.now():%Y-%m-%d %H:%M} from "
        f"{run.path.resolve()}",
    )
    index = out / "index.html"
    atomic_write(index, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return index


def _image_page(
    run: RunDir, saved: dict[str, Any], spec: str | None, data_root: str | None, out: Path
) -> tuple[list[Section], str]:
    state = _Run(run, saved, run.read_metrics())
    _load(state, spec, data_root)
    parts = [
        ("curves", "Training curves", _curves),
        ("reconstructions", "Reconstructions", _reconstructions),
        ("codes", "Images as grids of integers", _code_grids),
        ("usage", "Code usage", _usage),
        ("codebook", "The codebook", _codebook),
        ("rate", "Rate and distortion", _rate),
        ("samples", "Samples from the prior", _samples),
    ]
    if run.stack.path.is_dir():  # a stacked VQ-VAE was trained on the run's codes
        parts.append(("stacked", "27 bits per frame", _stacked))
    if run.video.config_file.is_file():  # section 4.4: a video prior beside the run
        parts.append(("video", "Video in latent space", video.section))
    sections = [guarded(anchor, title, fn, state, out) for anchor, title, fn in parts]
    return sections, _header(state)


def try_write_report(run_path: str | Path, data_root: str | None = None) -> Path | None:
    """``write_report`` at the end of training: a failure here must not lose the trained run,
    so it is one line on stderr and ``None``, never an exception."""
    try:
        path = write_report(run_path, data_root)
    except Exception as e:  # noqa: BLE001 (any failure to draw is reported, not raised)
        print(
            f"vqvae: the report was not written ({type(e).__name__}: {one_line(e)}); "
            f"the run is saved, retry with `vqvae report {run_path}`",
            file=sys.stderr,
        )
        return None
    print(f"report: {path}")
    return path


# -- loading, each part on its own ------------------------------------------------------------
def _load(state: _Run, spec: str | None, data_root: str | None) -> None:
    run = state.run
    if not run.weights_file.is_file():
        state.model_missing = "no trained weights (model.safetensors): is training finished?"
    else:
        try:
            state.model = load_run_model(run)
        except Exception as e:  # noqa: BLE001
            state.model_missing = f"the weights could not be loaded: {one_line(e)}"
    if state.model is None:
        state.held_missing = state.prior_missing = state.model_missing
        return
    if not spec:
        state.held_missing = "config.json records no data spec; pass --data"
    else:
        limit = state.saved.get("train", {}).get("eval_limit") or analysis.DEFAULT_LIMIT
        try:
            size = state.saved.get("resize")  # None in runs of older releases
            size = (int(size[0]), int(size[1])) if size else None
            state.held = analysis.load_held_out(state.model, spec, data_root, limit, size)
        except Exception as e:  # noqa: BLE001
            state.held_missing = (
                f"the held-out images of {spec!r} could not be loaded ({one_line(e)}); "
                f"pass --data-root (or set VQVAE_DATA) to draw them"
            )
    _load_prior(state)


def _load_prior(state: _Run) -> None:
    folder = state.run.prior.path
    if not (folder / "model.safetensors").is_file():
        state.prior_missing = (
            f"no trained prior in {folder}; train one with `vqvae prior train {state.run.path}`"
        )
        return
    try:
        state.prior = load_prior(state.run)
        state.prior_meta = RunDir(folder).read_config()
        metrics_file = folder / "metrics.json"
        if metrics_file.is_file():
            state.prior_metrics = json.loads(metrics_file.read_text())
    except Exception as e:  # noqa: BLE001
        state.prior_missing = f"the prior could not be loaded: {one_line(e)}"


def _prior_name(prior: Any) -> str:
    return type(prior).__name__.removesuffix("Prior")  # PixelCNNPrior -> PixelCNN


# -- the header -------------------------------------------------------------------------------
def _header(state: _Run) -> str:
    test = runinfo.last_test(state.records)
    cards: list[tuple[str, str]] = []
    if test:
        fmt = {
            "psnr": ("PSNR (dB)", "{:.2f}"),
            "mse": ("MSE", "{:.5f}"),
            "bits_per_image": ("bits / image", "{:.0f}"),
            "compression_ratio": ("compression ×", "{:.1f}"),
            "perplexity": ("perplexity", "{:.1f}"),
            "code_usage": ("codes used", "{:.0%}"),
        }
        cards = [(label, f.format(test[key])) for key, (label, f) in fmt.items() if key in test]
    if state.prior_metrics and "test_bits_per_code" in state.prior_metrics:
        # a masked-token prior's figure is the order-agnostic upper bound (docs/maskgit.md)
        bound = " (upper bound)" if state.prior_metrics.get("upper_bound") else ""
        bits = state.prior_metrics["test_bits_per_code"]
        cards.append((f"prior bits / code{bound}", f"{bits:.2f}"))
    model_rows, train_rows = _config_rows(state)
    return run_header(model_rows, train_rows, cards, test.get("step", "?") if test else None)


def _config_rows(state: _Run) -> tuple[runinfo.Rows, runinfo.Rows]:
    s = state.saved
    c = s.get("config", {})
    q = c.get("quantizer", {})
    net = c.get("net", {})
    size = c.get("input_size", c.get("image_size", ["?", "?"]))
    factor = 2 ** net.get("num_downsamples", 0)
    grid = "?" if "?" in size else f"{size[0] // factor}x{size[1] // factor}"
    levels = q.get("num_quantizers", 1)
    name = q.get("kind", "?")
    kind = f"{name}: {QUANTIZERS.entry(name).about}" if name in QUANTIZERS else name
    model_rows: runinfo.Rows = [
        ("images", f"{size[0]}x{size[1]}, {c.get('in_channels', '?')} channel(s)"),
        ("code grid (h x w)", grid),
        ("codebook size K", state.model.num_codes if state.model else q.get("num_codes", "?")),
        ("code dimension D", q.get("code_dim", "?")),
        (
            "quantizer",
            kind + (f", residual with {levels} levels" if levels > 1 else ""),
        ),
        ("commitment beta", q.get("beta", "?")),
        (
            "encoder / decoder",
            f"{net.get('hidden_channels', '?')} channels, "
            f"{net.get('num_residual_blocks', '?')} residual blocks, x{factor} downsampling",
        ),
        ("likelihood", c.get("likelihood", "?")),
    ]
    return model_rows, runinfo.training_rows(s, state.records, state.prior_meta)


# -- the sections: each returns (lead, body html) ---------------------------------------------
def _curves(state: _Run, out: Path) -> tuple[str, str]:
    if not state.records:
        return "", note("metrics.jsonl is empty or missing: no curves to draw.")
    figures.training_curves(state.records, state.k, out / "curves.png")
    lead = (
        "From metrics.jsonl: training-batch values every few steps (lines) and the periodic "
        "held-out evaluation (dots). Perplexity is exp(entropy) of the code histogram: the "
        "number of codes in effective use, at most K."
    )
    return lead, figure("curves.png", "training curves")


def _need_held(state: _Run) -> str | None:
    if state.held is None:
        return note(f"Needs the held-out images: {state.held_missing}")
    return None


def _reconstructions(state: _Run, out: Path) -> tuple[str, str]:
    if (missing := _need_held(state)) is not None:
        return "", missing
    held = state.held
    n = min(NUM_RECONSTRUCTIONS, len(held.originals))
    figures.reconstructions(held.originals[:n], held.recons[:n], out / "reconstructions.png")
    psnr = metrics.psnr(held.originals, held.recons)
    lead = (
        f"The first {n} held-out images of {held.name} (left) and the decoder's output from "
        f"their codes (right), at the same positions. PSNR over {len(held.originals)} images: "
        f"{psnr:.2f} dB."
    )
    body = figure("reconstructions.png", "held-out images and their reconstructions")
    return lead, (note(held.note) if held.note else "") + body


def _pick_examples(held: analysis.HeldOut, n: int) -> list[int]:
    """Indices of n held-out images, of different classes where there are labels."""
    if held.labels is None:
        return list(range(min(n, len(held.originals))))
    picked: list[int] = []
    seen: set[int] = set()
    for i, label in enumerate(held.labels):
        if int(label) not in seen:
            seen.add(int(label))
            picked.append(i)
        if len(picked) == n:
            return picked
    rest = [i for i in range(len(held.labels)) if i not in picked]
    return picked + rest[: n - len(picked)]


def _code_grids(state: _Run, out: Path) -> tuple[str, str]:
    if (missing := _need_held(state)) is not None:
        return "", missing
    held, model = state.held, state.model
    idx = _pick_examples(held, NUM_CODE_GRIDS)
    if len(model.latent_shape) != 2:
        return "", note("Code grids are drawn over images; this run's codes are not 2-D.")
    h, w = model.latent_shape
    height, width = model.config.input_size
    residual = held.levels > 1
    figures.code_grids(held.originals[idx], held.level0[idx], out / "codes.png")
    lead = (
        f"The encoder sees each {height}x{width} image as a {h}x{w} grid of patches of "
        f"{height // h}x{width // w} pixels, and each patch becomes one integer: the index of "
        f"its nearest codebook vector among K = {model.num_codes}. The decoder sees only these "
        f"{h * w} numbers."
        + (
            " Residual VQ: the first level's codes are shown; later levels refine them."
            if residual
            else ""
        )
    )
    return lead, figure("codes.png", "held-out images with their code grids drawn over them")


def _usage(state: _Run, out: Path) -> tuple[str, str]:
    if (missing := _need_held(state)) is not None:
        return "", missing
    k = state.model.num_codes
    counts = analysis.usage_counts(state.held, k)
    level = ", level 1" if state.held.levels > 1 else ""
    figures.code_usage_histogram(counts, len(state.held.originals), out / "usage.png", level)
    lead = (
        "How often each code appears in the held-out grids, most used first (log scale). A "
        "codebook that collapses onto few codes shows a short tail and many unused codes."
    )
    return lead, figure("usage.png", "histogram of code usage")


def _codebook(state: _Run, out: Path) -> tuple[str, str]:
    if state.model is None:
        return "", note(f"Needs the trained model: {state.model_missing}")
    book = analysis.codebook_level0(state.model)
    counts = analysis.usage_counts(state.held, len(book)) if state.held is not None else None
    residual = state.model.num_levels > 1
    figures.codebook_projection(
        book, counts, out / "codebook.png", " (level 1)" if residual else ""
    )
    lead = (
        f"The K = {len(book)} codebook vectors of dimension D = {book.shape[1]}, projected on "
        f"their two principal axes (PCA), coloured by how often the held-out images use them."
    )
    body = figure("codebook.png", "PCA projection of the codebook")
    if counts is None:
        body = note(f"Usage colours need the held-out images: {state.held_missing}") + body
    return lead, body


def _rate(state: _Run, out: Path) -> tuple[str, str]:
    if (missing := _need_held(state)) is not None:
        return "", missing
    model, held = state.model, state.held
    bits = None
    name = "prior"
    if state.prior_metrics and state.prior is not None:
        bits = state.prior_metrics.get("test_bits_per_code")
        name = f"{_prior_name(state.prior)} prior (entropy-coded)"
    rd = analysis.rate_distortion(model, held, bits, name)
    figures.rate_distortion(rd.points, rd.curve, out / "rate.png")
    positions = "*".join(map(str, model.latent_shape))
    raw = math.prod(held.originals.shape[1:]) * 8
    lead = (
        f"A code grid stored with fixed-length codes costs positions*log2 K = {positions}*log2 "
        f"{model.num_codes} bits per level (against {raw} bits of 8-bit pixels). A prior "
        f"predicts each code from the ones before it; its held-out cross-entropy is the length "
        f"of an ideal entropy code for the same grids, so the same PSNR at fewer bits."
    )
    extra = ""
    if bits is None:
        extra = note(f"No prior rate: {state.prior_missing or 'the prior has no metrics.json'}")
    elif held.levels > 1:
        extra = note("The prior's rate is not shown: it models single-level grids.")
    return lead, extra + figure("rate.png", "rate against distortion")


def _samples(state: _Run, out: Path) -> tuple[str, str]:
    if state.prior is None:
        return "", note(f"No samples: {state.prior_missing}")
    if state.prior.config.cond_dim or state.prior.config.context_shape:
        return "", note("No samples: this prior is conditioned on vectors or a code context.")
    class_names = state.held.class_names if state.held is not None else None
    s = analysis.prior_samples(state.model, state.prior, class_names, seed=0)
    figures.samples(s.images, out / "samples.png", s.row_labels)
    kind = _prior_name(state.prior)
    lead = (
        f"Code grids drawn from the {kind} prior (seed 0, temperature 1) and decoded: new "
        f"images the model has never seen." + (" One row per class." if s.row_labels else "")
    )
    return lead, figure("samples.png", "decoded samples from the prior")


def _stacked(state: _Run, out: Path) -> tuple[str, str]:
    """``vqvae stack eval``'s figure and numbers (docs/stacked.md)."""
    run = state.run
    lead = (
        "A second VQ-VAE over this run's code grids (paper section 4.2): each frame's grid "
        "becomes 3 codes of K=512, 27 bits, and a PixelCNN draws a grid back from them. Rows: "
        "a held-out frame, its first-stage reconstruction, then frames decoded from grids "
        "sampled given the frame's 27 bits."
    )
    summary = run.stack_eval / STACK_SUMMARY
    if not summary.is_file():
        return lead, note(f"Not evaluated yet: run `vqvae stack eval {run.path}`.")
    r = json.loads(summary.read_text())

    def db(key: str) -> str:
        return f"{r[key]:.2f} dB"

    cards = [
        ("bits / frame", f"{r['bits_per_frame']:g}"),
        ("PSNR, 27 bits", db("psnr_27bit")),
        ("PSNR, a random frame", db("psnr_random")),
    ]
    prior = r.get("prior_bits_per_grid")
    rows = [
        ("grid with fixed-length codes", f"{r['uniform_bits_per_grid']:.0f} bits"),
        ("-log2 p(grid | 27 bits), 2nd stage", f"{r['stage2_bits_per_grid']:.1f} bits"),
        ("27 bits + that (a two-part code)", f"{r['stage2_total_bits_per_grid']:.1f} bits"),
        ("-log2 p(grid), the run's prior", "no prior" if prior is None else f"{prior:.1f} bits"),
        ("PSNR of the first stage's reconstructions", db("psnr_stage1")),
        ("stage-1 codes kept by a 27-bit resample", f"{r['same_codes_27bit']:.1%}"),
        ("stage-1 codes shared with a random frame", f"{r['same_codes_random']:.1%}"),
        ("held-out frames (decoded through 27 bits)", f"{r['num_frames']} "
         f"({r['num_layout_frames']})"),
    ]  # fmt: skip
    body = stats(cards) + table(rows)
    picture = run.stack_eval / STACK_FIGURE
    if picture.is_file():
        shutil.copyfile(picture, out / STACK_FIGURE)
        body += figure(STACK_FIGURE, "frames through 27 bits")
    return lead, body

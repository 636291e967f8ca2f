"""The report's pictures: numpy arrays in, one PNG file out, drawn with matplotlib (Agg).

Nothing here knows about models or run folders (``analysis.py`` computes, this draws), so each
figure can be tested and re-used on its own. Every function takes the output path last and
returns it. Images are uint8 ``(N, H, W, C)`` as the data loaders give them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: the report is written by a CLI, on servers too

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from vqvae import metrics  # noqa: E402
from vqvae._io import atomic_write  # noqa: E402
from vqvae.data.transforms import tile  # noqa: E402

DPI = 100
MAX_WIDTH_INCHES = 12.0  # the page is about 1100 px wide: wider figures are shrunk
# One palette for the whole page: the same quantity has the same colour in every figure.
TRAIN, TEST, ACCENT, MUTED = "#1f77b4", "#d62728", "#2ca02c", "#9a9a9a"


def _save(fig: plt.Figure, path: Path) -> Path:
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight"))
    finally:
        plt.close(fig)  # figures are kept alive by pyplot until closed; a report draws several
    return path


def _show(ax: plt.Axes, image: np.ndarray, **kwargs: Any) -> None:
    """One (H, W, C) uint8 image, pixels as crisp squares (the images are tiny)."""
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest", **kwargs)
    else:
        ax.imshow(image, interpolation="nearest", **kwargs)


def _image_panel_inches(image_px: int, cells: int) -> float:
    """Display size of a tiled image: small images are drawn large enough to see."""
    return float(np.clip(cells * max(image_px, 24) / 40, 3.0, 7.0))


# -- training curves -------------------------------------------------------------------------
def training_curves(records: Sequence[dict[str, Any]], num_codes: int | None, path: Path) -> Path:
    """2x2 panels from metrics.jsonl: losses, held-out PSNR, perplexity, code usage."""
    train = [r for r in records if r.get("split") == "train"]
    test = [r for r in records if r.get("split") == "test"]

    def series(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
        pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        return [p[0] for p in pts], [p[1] for p in pts]

    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5))
    ax = axes[0, 0]
    styles = {"loss": ("-", 2.0), "recon_loss": ("--", 1.5), "vq_loss": (":", 1.5),
              "spectral_loss": ("-.", 1.5)}  # fmt: skip
    positive = True
    for key, (ls, lw) in styles.items():
        x, y = series(train, key)
        if x:
            ax.plot(x, y, ls, lw=lw, label=key, marker="." if len(x) < 20 else None)
            positive = positive and min(y) > 0
    if positive and ax.lines:
        ax.set_yscale("log")  # losses fall over orders of magnitude
    ax.set_title("training losses")
    ax.legend(frameon=False)

    ax = axes[0, 1]
    # images: held-out PSNR; speech: held-out (and training) bits per sample
    audio = any("bits_per_sample" in r for r in records)
    key, label = ("bits_per_sample", "bits per sample") if audio else ("psnr", "PSNR")
    if audio:
        x, y = series(train, key)
        ax.plot(x, y, color=TRAIN, label="train batch", marker="." if len(x) < 20 else None)
    x, y = series(test, key)
    if x:
        ax.plot(x, y, "o-", color=TEST, label=f"held-out {label}")
        ax.legend(frameon=False)
    else:
        ax.text(
            0.5,
            0.5,
            "no held-out evaluation yet",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color=MUTED,
        )
    ax.set_title(
        "teacher-forced bits per sample (lower is better)" if audio
        else "held-out PSNR (dB, higher is better)"
    )  # fmt: skip

    for ax, key, title in (
        (axes[1, 0], "perplexity", "codebook perplexity (codes in effective use)"),
        (axes[1, 1], "code_usage", "fraction of the K codes used"),
    ):
        x, y = series(train, key)
        if x:
            ax.plot(x, y, color=TRAIN, label="train batch", marker="." if len(x) < 20 else None)
        x, y = series(test, key)
        if x:
            ax.plot(x, y, "o", color=TEST, label="held-out set")
        if key == "perplexity" and num_codes:
            ax.axhline(num_codes, color=MUTED, ls="--", lw=1, label=f"K = {num_codes}")
        if key == "code_usage":
            ax.set_ylim(0, 1.05)
        ax.set_title(title)
        ax.legend(frameon=False, loc="lower right")
    for ax in axes.flat:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


# -- images ------------------------------------------------------------------------------------
def reconstructions(originals: np.ndarray, recons: np.ndarray, path: Path, ncol: int = 8) -> Path:
    """Held-out originals (left) and their reconstructions (right), at the same positions."""
    n = len(originals)
    ncol = min(ncol, n)
    rows = math.ceil(n / ncol)
    side = _image_panel_inches(originals.shape[1], ncol)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 0.5, side * rows / ncol + 0.6))
    panels = ((axes[0], originals, "originals"), (axes[1], recons, "reconstructions"))
    for ax, images, title in panels:
        _show(ax, tile(images, ncol))
        ax.set_title(title)
        ax.set_axis_off()
    fig.tight_layout()
    return _save(fig, path)


def samples(
    images: np.ndarray, path: Path, row_labels: Sequence[str] | None = None, ncol: int = 8
) -> Path:
    """Decoded prior samples; with ``row_labels``, row i holds the samples of class i."""
    n, h = len(images), images.shape[1]
    ncol = min(ncol, n)
    rows = math.ceil(n / ncol)
    side = _image_panel_inches(h, ncol)
    fig, ax = plt.subplots(figsize=(side + (1.2 if row_labels else 0.2), side * rows / ncol + 0.3))
    _show(ax, tile(images, ncol))
    ax.set_xticks([])
    if row_labels:
        pad = 1
        ax.set_yticks([pad + r * (h + pad) + h / 2 - 0.5 for r in range(len(row_labels))])
        ax.set_yticklabels(row_labels)
        ax.tick_params(left=False)
        for spine in ax.spines.values():
            spine.set_visible(False)
    else:
        ax.set_axis_off()
    fig.tight_layout()
    return _save(fig, path)


def code_grids(images: np.ndarray, codes: np.ndarray, path: Path, title: str = "") -> Path:
    """Each image with its (h, w) grid of integer codes drawn over it.

    The picture that explains VQ: the encoder sees the image in patches of f x f pixels
    (f = H / h), and each patch becomes one number, the index of its nearest codebook vector.
    """
    n, height, width = images.shape[:3]
    h, w = codes.shape[1:]
    digits = len(str(int(codes.max()))) if codes.size else 1
    panel = float(np.clip(0.5 * max(h, w), 2.6, 7.0))  # about half an inch per cell
    # Wide enough for 3-4 digit codes at a readable size; larger grids wrap to more rows so
    # that the page does not shrink the figure (and its numbers) to fit.
    nrow = math.ceil(n * (panel + 0.3) / MAX_WIDTH_INCHES)
    ncol = math.ceil(n / nrow)  # balanced rows: 2 x 2 rather than 3 + 1
    nrow = math.ceil(n / ncol)
    cell_pt = panel / max(h, w) * 72
    fontsize = float(np.clip(0.72 * cell_pt / (0.62 * max(digits, 2)), 5, 14))
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(ncol * (panel + 0.3), nrow * (panel + 0.3)), squeeze=False
    )
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    outline = [patheffects.withStroke(linewidth=2.2, foreground="black")]
    for ax, image, grid in zip(axes.flat[:n], images, codes, strict=True):
        _show(ax, image, extent=(0, width, height, 0))
        fy, fx = height / h, width / w
        for i in range(1, h):
            ax.axhline(i * fy, color="#ffd400", lw=1.2)
        for j in range(1, w):
            ax.axvline(j * fx, color="#ffd400", lw=1.2)
        for i in range(h):
            for j in range(w):
                ax.text(
                    (j + 0.5) * fx,
                    (i + 0.5) * fy,
                    str(int(grid[i, j])),
                    ha="center",
                    va="center",
                    color="white",
                    fontsize=fontsize,
                    path_effects=outline,
                )
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


# -- the codebook ----------------------------------------------------------------------------
def code_usage_histogram(
    counts: np.ndarray, num_images: int, path: Path, level: str = "", unit: str = "images"
) -> Path:
    """Counts of each code over the held-out grids, sorted from most to least used."""
    k = len(counts)
    perplexity = float(metrics.perplexity(counts)) if counts.sum() else 0.0
    used = int((counts > 0).sum())
    order = np.sort(counts)[::-1]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.bar(np.arange(k), np.maximum(order, 0), width=1.0, color=TRAIN, edgecolor="none")
    if used:
        ax.set_yscale("log")  # a few codes are used thousands of times, most a handful
    if used < k:
        ax.axvspan(used - 0.5, k - 0.5, color=MUTED, alpha=0.25, label=f"{k - used} unused")
        ax.legend(frameon=False)
    ax.set_xlim(-0.5, k - 0.5)
    ax.set_xlabel("codes, sorted by use")
    ax.set_ylabel("count")
    ax.set_title(
        f"code usage over {num_images} held-out {unit}{level}: perplexity {perplexity:.1f} "
        f"of K = {k}, {used}/{k} codes used ({used / k:.0%})"
    )
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, D) -> (K, 2) projection on the top two principal axes, and the fraction of the
    variance each explains. Plain SVD of the centred matrix (no scikit-learn needed)."""
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)  # centred = U S Vt
    proj = centred @ vt[:2].T  # (K, D) @ (D, <=2) -> (K, <=2)
    if proj.shape[1] < 2:  # D = 1: nothing to project onto a second axis
        proj = np.concatenate([proj, np.zeros((len(proj), 2 - proj.shape[1]))], axis=1)
    var = s**2
    explained = var[:2] / max(var.sum(), 1e-12)
    return proj, np.pad(explained, (0, 2 - len(explained)))


def codebook_projection(
    codebook: np.ndarray, counts: np.ndarray | None, path: Path, level: str = ""
) -> Path:
    """The K codebook vectors projected to 2-D by PCA, coloured by how often each is used."""
    proj, explained = pca_2d(codebook.astype(np.float64))
    fig, ax = plt.subplots(figsize=(6.5, 5.2))
    if counts is None:
        ax.scatter(proj[:, 0], proj[:, 1], s=22, color=TRAIN)
        ax.set_title(f"codebook{level}, K = {len(codebook)} (usage unknown: no held-out data)")
    else:
        used = counts > 0
        if (~used).any():
            ax.scatter(
                proj[~used, 0],
                proj[~used, 1],
                s=26,
                marker="x",
                color=MUTED,
                label=f"unused ({int((~used).sum())})",
            )
        if used.any():
            pts = ax.scatter(
                proj[used, 0],
                proj[used, 1],
                s=26,
                c=counts[used],
                cmap="viridis",
                norm=LogNorm(vmin=1, vmax=max(int(counts.max()), 2)),
            )
            fig.colorbar(pts, ax=ax, label="uses in the held-out grids")
        if (~used).any():
            ax.legend(frameon=False, loc="best")
        ax.set_title(f"codebook{level}, K = {len(codebook)}, coloured by use")
    ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({explained[1]:.0%} of variance)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


# -- rate and distortion -----------------------------------------------------------------------
def rate_distortion(
    points: Sequence[tuple[str, float, float]],
    curve: Sequence[tuple[str, float, float]],
    path: Path,
) -> Path:
    """Bits per image against PSNR. ``points``: single operating points (label, bits, psnr);
    ``curve``: a connected series, e.g. residual VQ with q = 1..Q levels."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    if curve:
        ax.plot(
            [c[1] for c in curve],
            [c[2] for c in curve],
            "o-",
            color=TRAIN,
            label="residual VQ, first q levels",
        )
        for label, bits, psnr in curve:
            ax.annotate(label, (bits, psnr), textcoords="offset points", xytext=(6, -12))
    markers = ["s", "D", "^", "v"]
    colours = [TEST, ACCENT, "#9467bd", "#8c564b"]
    for i, (label, bits, psnr) in enumerate(points):
        ax.plot(
            [bits],
            [psnr],
            markers[i % 4],
            color=colours[i % 4],
            ms=9,
            label=f"{label}: {bits:.0f} bits",
        )
    xs = [p[1] for p in points] + [c[1] for c in curve]
    if xs:
        ax.set_xlim(0, max(xs) * 1.15)
    ax.set_xlabel("rate: bits per image")
    ax.set_ylabel("distortion: PSNR (dB)")
    ax.set_title("rate against distortion on the held-out images")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, loc="best")
    fig.tight_layout()
    return _save(fig, path)


# -- video in latent space ---------------------------------------------------------------------
HORIZON_STYLES = {  # condition -> (colour, line style, label)
    "recorded": (TEST, "-", "recorded actions"),
    "shuffled": (TRAIN, "--", "shuffled actions"),
    "held": (MUTED, ":", "last real frame held"),
    "copy": (ACCENT, "-.", "last frame's codes copied"),
}


def horizon_curves(
    horizons: Sequence[int], by_horizon: dict[str, dict[str, list[float]]], path: Path
) -> Path:
    """A panel per measure of ``vqvae video eval``'s numbers by horizon: PSNR, SSIM (when
    the evaluation has it) and the fraction of codes equal to the real future's, one line per
    condition."""
    panels = [(m, t) for m, t in (("psnr", "PSNR against the real future (dB)"),
                                  ("ssim", "SSIM with the real future"),
                                  ("code_agreement", "codes equal to the real future's"))
              if m in by_horizon]  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8))
    for ax, (measure, title) in zip(axes, panels, strict=True):
        for name, values in by_horizon[measure].items():
            colour, ls, label = HORIZON_STYLES.get(name, (MUTED, "-", name))
            ax.plot(horizons, values, ls, color=colour, marker=".", label=label)
        ax.set_xlabel("horizon (frames after the context)")
        ax.set_title(title)
        ax.set_xticks(list(horizons))
    axes[-1].yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    axes[0].legend(frameon=False)
    return _save(fig, path)

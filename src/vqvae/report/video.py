"""Pictures of video generated in latent space (paper section 4.4) and the report's section on
them: a strip of frames per rollout (real context frames framed in green, generated ones in
grey, the real future in blue), an animated GIF, and the evaluation's numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from vqvae._io import atomic_write
from vqvae.data.episodes import read_episodes
from vqvae.inference.video import Sampling, encode_episodes, load_video_prior, rollout
from vqvae.report.figures import horizon_curves
from vqvae.report.html import figure, note, table

BORDER = 3
LABEL_WIDTH = 96
COLOURS = {"context": (40, 170, 60), "generated": (150, 150, 150), "real": (40, 110, 220)}
REPORT_ACTIONS = ("forward", "left", "right")  # the paper's figure: one context, several actions
# greedy (argmax) rollouts: on the maze they stay whole where sampled ones break into patches
# (docs/video.md), which is what a reader comparing the actions needs to see
REPORT_SAMPLING = Sampling(top_k=1)
DRAWN = {"fast": "in raster order", "parallel": "all of a frame's codes at once",
         "maskgit": "in a few passes, the most confident codes first"}  # fmt: skip


def _scale(frame: np.ndarray) -> np.ndarray:
    """Small frames drawn bigger (nearest neighbour) so that a strip is readable: >= 64 px."""
    s = max(1, 64 // frame.shape[0])
    return frame.repeat(s, axis=0).repeat(s, axis=1)


def _framed(frame: np.ndarray, kind: str) -> np.ndarray:
    """uint8 (H, W, 3) -> (H + 2b, W + 2b, 3) in a border of the kind's colour."""
    frame = _scale(frame)
    out = np.empty((frame.shape[0] + 2 * BORDER, frame.shape[1] + 2 * BORDER, 3), np.uint8)
    out[:] = COLOURS[kind]
    out[BORDER:-BORDER, BORDER:-BORDER] = frame
    return out


def _row(frames: list[tuple[np.ndarray, str]]) -> np.ndarray:
    return np.concatenate([_framed(f, kind) for f, kind in frames], axis=1)


def _save(image: Image.Image, path: Path, **kwargs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").upper()
    atomic_write(path, lambda tmp: image.save(tmp, format=fmt, **kwargs))
    return path


def rollout_strip(
    context: np.ndarray,
    rows: dict[str, np.ndarray],
    path: Path,
    real: np.ndarray | None = None,
) -> Path:
    """A PNG: one row per rollout ``rows[name]`` (F, H, W, 3), each after the same real
    ``context`` frames (c, H, W, 3); with ``real``, the real future beneath, after blanks."""
    lines = [(name, [(f, "context") for f in context] + [(f, "generated") for f in frames])
             for name, frames in rows.items()]  # fmt: skip
    if real is not None:
        blank = np.full_like(context[0], 255)
        lines.append(("real", [(blank, "real")] * len(context) + [(f, "real") for f in real]))
    strips = [_row(frames) for _, frames in lines]
    width = max(s.shape[1] for s in strips)
    height = sum(s.shape[0] for s in strips) + 2 * (len(strips) - 1)
    canvas = Image.new("RGB", (LABEL_WIDTH + width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for (name, _), strip in zip(lines, strips, strict=True):
        canvas.paste(Image.fromarray(strip), (LABEL_WIDTH, y))
        draw.text((4, y + strip.shape[0] // 2 - 5), name, fill="black")
        y += strip.shape[0] + 2
    return _save(canvas, path)


def rollout_gif(
    context: np.ndarray, rows: dict[str, np.ndarray], path: Path, ms: int = 250
) -> Path:
    """An animated GIF of c + F frames: the rollouts side by side, context frames framed in
    green, generated ones in grey; it loops."""
    shown = []
    for t in range(len(context) + len(next(iter(rows.values())))):
        if t < len(context):
            tiles = [(context[t], "context")] * len(rows)
        else:
            tiles = [(frames[t - len(context)], "generated") for frames in rows.values()]
        shown.append(Image.fromarray(_row(tiles)))
    return _save(shown[0], path, save_all=True, append_images=shown[1:], duration=ms, loop=0)


# -- the report's section ----------------------------------------------------------------------
def section(state: Any, out: Path) -> tuple[str, str]:
    """``vqvae report``: rollouts under "forward", "left", "right" and the recorded actions
    from one held-out context above its real future, and the numbers of ``vqvae video eval``
    by horizon (else the held-out bits per frame of training)."""
    folder = state.run.video
    if state.model is None:
        return "", note(f"Needs the trained model: {state.model_missing}")
    prior = load_video_prior(state.run)
    saved = json.loads(folder.config_file.read_text())
    episodes = read_episodes(saved["data"]).split("test")
    names = [a for a in REPORT_ACTIONS if a in prior.config.action_names]
    c = min(6, episodes.steps - 1, max(prior.context_frames, episodes.steps // 2))
    f = min(10, episodes.steps - c)  # the recorded actions and the real future must exist
    codes = encode_episodes(state.model, episodes.subset(np.array([0])), prior.context_frames)
    context = codes.codes[:, :c]  # (1, c, h, w)
    plans = {name: [prior.config.action_names.index(name)] * f for name in names}
    plans["recorded"] = episodes.actions[0, c - 1 : c - 1 + f].tolist()
    rows = {}
    for name, actions in plans.items():
        result = rollout(state.model, prior, context, actions, sampling=REPORT_SAMPLING)
        rows[name] = result.frames[0]
    real_context = result.context_frames[0]  # decoded from their codes, as the prior saw them
    real = episodes.frames[0, c : c + f]
    rollout_strip(real_context, rows, out / "video_rollout.png", real=real)
    rollout_gif(real_context, rows, out / "video_rollout.gif")
    lead = (
        f"Video generated in latent space (section 4.4): the first {c} frames of a held-out "
        f"episode (green, decoded from their codes) are encoded, and the prior generates the "
        f"next {f} frames' codes one frame at a time (greedy: the likeliest code at each "
        f"position, {DRAWN[REPORT_SAMPLING.method_for(prior)]}) under a fixed action, "
        f"{', '.join(repr(n) for n in names)}, and under the episode's recorded actions; "
        f"only then does the image decoder draw them (grey). The real future is beneath (blue)."
    )
    body = figure("video_rollout.png", "one context, several actions, and the real future")
    body += figure("video_rollout.gif", "the rollouts, animated")
    return lead, body + _numbers(folder.path, out)


def _numbers(folder: Path, out: Path) -> str:
    evaluation = folder / "eval.json"
    if evaluation.is_file():
        e = json.loads(evaluation.read_text())
        rec, shuf, still = e["rollout_recorded"], e["rollout_shuffled"], e["rollout_copy_last"]
        bits = "held-out bits / frame" + ("" if e.get("bits_exact", True) else " (upper bound)")
        rows = [
            (f"{bits}, recorded actions", f"{e['bits_per_frame_recorded']:.1f}"),
            (f"{bits}, shuffled actions", f"{e['bits_per_frame_shuffled']:.1f}"),
            ("rollout PSNR (dB), recorded actions", f"{rec['psnr']:.2f}"),
            ("rollout PSNR (dB), shuffled actions", f"{shuf['psnr']:.2f}"),
            ("rollout PSNR (dB), last context frame's codes held", f"{still['psnr']:.2f}"),
            ("codes matching the real future, recorded / shuffled",
             f"{rec['code_match']:.1%} / {shuf['code_match']:.1%}"),
        ]  # fmt: skip
        body = table(rows)
        if "by_horizon" in e:  # written by releases that evaluate by horizon
            horizon_curves(e["horizons"], e["by_horizon"], out / "video_horizons.png")
            body += figure("video_horizons.png", "rollouts against the real future, by horizon")
        return body
    trained = folder / "metrics.json"
    if trained.is_file():
        m = json.loads(trained.read_text())
        bound = " (upper bounds)" if m.get("upper_bound") else ""
        return note(
            f"Held-out bits per frame{bound}: {m['test_bits_per_frame']:.1f} under the recorded "
            f"actions, {m['test_bits_per_frame_shuffled']:.1f} under shuffled ones. "
            f"Run `vqvae video eval` for the rollouts' numbers."
        )
    return note("No evaluation yet: run `vqvae video eval`.")

"""WaveNet generation speed: cached (Paine et al. 2016) against naive, in the same run.

Generates 1 second of 8 kHz audio (125 latents x 64 samples) for 1 clip and for 32 clips
at once, with the default ``WaveNetConfig``: 2 stacks x 10 layers (dilations 1..512,
receptive field 2047 samples), 64 residual / 64 gate / 128 skip channels, 256 mu-law
classes, 64-wide latents: a VQ-VAE speech decoder sized for a CPU. Untrained weights
(speed does not depend on them), one thread.

Naive generation (a full pass over up to one receptive field per sample) of a whole
second would take minutes for 1 clip and hours for 32, so it runs on a shorter span from
the start, next to the cached sampler on the same span and seed (the two must draw the
same samples), and its 1-second time is extrapolated two ways:

- linearly per sample from the span: a lower bound, since the span's windows are all
  shorter than the receptive field that every later sample pays for;
- from one pass over a full receptive-field window (timed), the cost of every sample
  after the first 2047, with the first 2047 counted at half (cost linear in window length).

The speed-up on the span is measured outright; at 1 s it is given as the range between
the two extrapolations.

    .venv/bin/python benchmarks/wavenet_generation.py               # ~3 minutes
    .venv/bin/python benchmarks/wavenet_generation.py --span 256 64  # a quicker look
    .venv/bin/python benchmarks/wavenet_generation.py --preset speech8k  # the preset's decoder
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace

import torch

from vqvae.config import get_preset
from vqvae.nets import WaveNet, WaveNetConfig

RATE = 8000
LATENTS = 125  # 1 s at 8 kHz, one latent per 64 samples


def timed_generate(net: WaveNet, local: torch.Tensor, method: str, seed: int):
    start = time.perf_counter()
    samples = net.generate(local, generator=torch.Generator().manual_seed(seed), method=method)
    return time.perf_counter() - start, samples


def timed_window(net: WaveNet, clips: int, repeats: int = 2) -> float:
    """One full pass over a receptive-field window: the naive cost of one later sample."""
    rf = net.config.receptive_field
    x = torch.randint(0, net.config.num_classes, (clips, rf))
    cond = torch.randn(clips, net.config.local_channels, rf)
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            net._logits(x, cond, None)
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, nargs="+", default=[1, 32])
    parser.add_argument(
        "--span", type=int, nargs="+", default=[1024, 128],
        help="naive span in samples (a multiple of 64), one per --clips entry",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--preset", help="the WaveNet of a speech preset (e.g. speech8k) instead of the default"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = WaveNetConfig()
    if args.preset:  # the decoder exactly as AudioVQVAE builds it, speaker table included
        config = replace(get_preset(args.preset).wavenet, num_speakers=0)
    net = WaveNet(config).eval()
    c = net.config
    length = LATENTS * c.upsample_factor
    params = sum(p.numel() for p in net.parameters())
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}), load average "
        f"{os.getloadavg()[0]:.1f} at start"
    )
    print(
        f"WaveNet: {c.stacks} stacks x {c.layers} layers, kernel {c.kernel_size}, receptive "
        f"field {c.receptive_field}, residual {c.residual_channels} / gate {c.gate_channels} / "
        f"skip {c.skip_channels} channels, {c.num_classes} classes, latents "
        f"{c.local_channels} x {LATENTS}, {params / 1e6:.2f} M parameters; "
        f"{length} samples = {length / RATE:g} s at {RATE} Hz\n"
    )
    header = (
        "| clips | cached 1 s (s) | real-time factor | span | naive on span (s) "
        "| cached on span (s) | same samples | speed-up on span | naive 1 s: linear from span "
        "(s) | naive 1 s: full-window estimate (s) | speed-up at 1 s |"
    )
    rows = [header, "|" + "---:|" * 11]
    print(header, flush=True)
    begin = time.perf_counter()
    for clips, span in zip(args.clips, args.span, strict=True):
        local = torch.randn(clips, c.local_channels, LATENTS)
        short = local[:, :, : span // c.upsample_factor]
        timed_generate(net, short[:, :, :2], "cached", 0)  # warm-up
        t_cached, _ = timed_generate(net, local, "cached", 1)
        t_cached_span, a = timed_generate(net, short, "cached", 2)
        t_naive_span, b = timed_generate(net, short, "naive", 2)
        t_window = timed_window(net, clips)
        rf = c.receptive_field
        naive_linear = t_naive_span * length / span
        naive_window = t_window * (length - (rf - 1) / 2)
        row = (
            f"| {clips} | {t_cached:.2f} | {clips * length / RATE / t_cached:.2f}x | "
            f"{span} samples | {t_naive_span:.2f} | {t_cached_span:.3f} | "
            f"{'yes' if torch.equal(a, b) else 'NO'} | {t_naive_span / t_cached_span:.0f}x | "
            f"{naive_linear:.0f} | {naive_window:.0f} | "
            f"{naive_linear / t_cached:.0f}x (lower bound) to {naive_window / t_cached:.0f}x |"
        )
        rows.append(row)
        print(row, flush=True)
    print(
        f"\ntotal {time.perf_counter() - begin:.0f} s, load average {os.getloadavg()[0]:.1f} "
        "at end. Real-time factor: seconds of audio generated per second of compute "
        "(all clips together). Naive 1 s times are extrapolated, not run (see the docstring)."
    )
    print("\n" + "\n".join(rows))


if __name__ == "__main__":
    main()

"""Quality against codebook size: K = 2^6 .. 2^16 for ``ema``, ``fsq`` and ``lfq`` at one budget.

MAGVIT-v2 (Yu et al. 2023) and the FSQ paper (Mentzer et al. 2023) claim
that implicit codebooks keep improving as K grows where a learned codebook stops (its codes
go unused). This trains each (data set, kind, K) with one preset's network and budget and
scores the full test split: PSNR, code usage (share of the K codes used on the test split),
perplexity, and the quantizer's forward + backward time at the training batch's shape (128
images' code grids, 6,272 vectors of D = 64), in one run, one thread.

FSQ takes the FSQ paper's recommended levels for each size (``levels_for``: its table 3);
LFQ has log2 K bits; EMA has K learned codes, searched in chunks (``_nearest``) so that
K = 65,536 never holds the whole N x K distance matrix.

Run (MNIST took about 80 minutes on one loaded thread without ``ema`` at 2^16, whose
100-step refit window alone needs over an hour there; ``--log2-sizes 6,8,10,12,14`` leaves
out that size):
``OMP_NUM_THREADS=1 python benchmarks/codebook_scaling.py --data-root ../shared/data
--json scaling.json --plot docs/codebook-scaling.png``; ``--timing-only`` re-measures the
times alone (quiet machine). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from vqvae.config import get_full_preset
from vqvae.data import load_dataset
from vqvae.inference import evaluate
from vqvae.quantizers.fsq import levels_for
from vqvae.runs import RunDir
from vqvae.train.vqvae import train_vqvae

KINDS = ("ema", "fsq", "lfq")
LOG2_SIZES = (6, 8, 10, 12, 14, 16)


def quantizer_config(preset: str, kind: str, log2_k: int):
    """The preset's quantizer switched to ``kind`` with about 2^log2_k codes."""
    base = get_full_preset(preset).model.quantizer
    k = 2**log2_k
    if kind == "fsq":
        return replace(base, kind=kind, num_codes=k, levels=levels_for(k))
    return replace(base, kind=kind, num_codes=k)


def train_and_score(data_name: str, kind: str, log2_k: int, args, data) -> dict:
    preset = get_full_preset(args.preset)
    model = replace(preset.model, quantizer=quantizer_config(args.preset, kind, log2_k))
    train = replace(preset.train, steps=args.steps, batch_size=args.batch_size, eval_every=10**9)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = train_vqvae(
            RunDir(Path(tmp) / "run"), data[0], data[1], model, train, meta={}, progress=False
        )
        seconds = time.perf_counter() - t0
    ev = evaluate(result.model, data[1].images)
    return {
        "data": data_name,
        "kind": kind,
        "log2_K": log2_k,
        "K": result.model.num_codes,
        "psnr": ev.psnr,
        "code_usage": ev.code_usage,
        "perplexity": ev.perplexity,
        "bits_per_image": ev.bits_per_image,
        "train_seconds": seconds,
    }


def step_seconds(kind: str, log2_k: int, args) -> float:
    """Median forward + backward seconds of the quantizer alone at one training batch's
    shape (batch, D, 7, 7), after its data-dependent init and refit window."""
    quantizer = quantizer_config(args.preset, kind, log2_k).build().train()
    z = torch.randn(args.batch_size, quantizer.code_dim, 7, 7)
    quantizer(z)  # data-dependent init
    for level in quantizer.modules():  # the steady state, after the init's refit window
        if hasattr(level, "init_steps_done"):
            level.init_steps_done.fill_(level.init_steps)
    times = []
    for _ in range(args.repeats + 1):
        z.requires_grad_(True)
        t0 = time.perf_counter()
        out = quantizer(z)
        (out.z_q.square().mean() + out.loss).backward()
        times.append(time.perf_counter() - t0)
    return sorted(times[1:])[len(times[1:]) // 2]


def print_table(rows: list[dict], args) -> None:
    print(f"\n{args.steps} steps of batch {args.batch_size}, `{args.preset}` preset network, "
          f"{args.threads} thread(s); full test split\n")  # fmt: skip
    print("| data | kind | K | test PSNR (dB) | code usage | perplexity | fwd+bwd (ms) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        ms = f"{1000 * r['step_seconds']:.1f}" if "step_seconds" in r else ""
        print(
            f"| {r['data']} | {r['kind']} | {r['K']} | {r['psnr']:.2f} | "
            f"{r['code_usage']:.3f} | {r['perplexity']:.0f} | {ms} |"
        )


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({r["data"] for r in rows})
    fig, axes = plt.subplots(2, len(names), figsize=(5 * len(names), 6.5), squeeze=False)
    for col, name in enumerate(names):
        for kind in KINDS:
            mine = sorted((r for r in rows if r["data"] == name and r["kind"] == kind),
                          key=lambda r: r["K"])  # fmt: skip
            if not mine:
                continue
            ks = [r["K"] for r in mine]
            axes[0][col].plot(ks, [r["psnr"] for r in mine], "o-", label=kind)
            axes[1][col].plot(ks, [r["code_usage"] for r in mine], "o-", label=kind)
        axes[0][col].set_title(name)
        axes[0][col].set_ylabel("test PSNR (dB)")
        axes[1][col].set_ylabel("code usage (share of K)")
        for ax in axes[:, col]:
            ax.set_xscale("log", base=2)
            ax.set_xlabel("codebook size K")
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--datasets", default="mnist,fashion-mnist")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--log2-sizes", default=",".join(map(str, LOG2_SIZES)))
    parser.add_argument("--preset", default="mnist-paper")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10, help="timing repeats")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the rows here (and read rows already there)")
    parser.add_argument("--plot", help="draw PSNR and usage against K to this PNG")
    parser.add_argument("--timing-only", action="store_true", help="re-time the rows in --json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    kinds = args.kinds.split(",")
    sizes = [int(s) for s in args.log2_sizes.split(",")]
    rows = json.loads(Path(args.json).read_text()) if args.json and Path(args.json).exists() else []
    if not args.timing_only:
        for name in args.datasets.split(","):
            data = [load_dataset(name, s, args.data_root) for s in ("train", "test")]
            for kind in kinds:
                for log2_k in sizes:
                    if any((r["data"], r["kind"], r["log2_K"]) == (name, kind, log2_k)
                           for r in rows):  # fmt: skip
                        continue  # measured by an earlier, interrupted run
                    rows.append(train_and_score(name, kind, log2_k, args, data))
                    print(json.dumps(rows[-1]), flush=True)
                    if args.json:
                        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    timed = {(k, s): step_seconds(k, s, args) for k, s in {(r["kind"], r["log2_K"]) for r in rows}}
    for r in rows:
        r["step_seconds"] = timed[r["kind"], r["log2_K"]]
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    print_table(rows, args)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()

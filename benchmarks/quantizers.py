"""Every quantizer kind on MNIST with the `mnist` preset's network and budget, side by side
with vector-quantize-pytorch's implementation of the same idea plugged into the same network.

For each variant: train 1,000 steps of batch 128 (the preset's budget; ``--steps`` for a
lighter run), then the full 10,000-image test split: PSNR, code usage, perplexity, bits per
image; and the quantizer's own forward + backward time at the paper's shape (8,192 vectors
of D = 64, K = 512 or the kind's nearest implicit size), ours against the peer's.

The peer's modules enter our network through ``vqvae.registry.QUANTIZERS`` (an adapter per
module, registered here as ``peer-...``): the same encoder, decoder, optimizer, data order.

Run: ``python benchmarks/quantizers.py --data-root ../shared/data`` (needs
``pip install -e .[bench]``). Prints a markdown table; ``--json FILE`` keeps the numbers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from vqvae import QUANTIZERS, QuantizerOutput
from vqvae.config import get_full_preset
from vqvae.data import load_dataset
from vqvae.inference import evaluate
from vqvae.metrics import perplexity
from vqvae.runs import RunDir
from vqvae.train.vqvae import train_vqvae

# name -> (our quantizer config overrides, the peer's adapter kind or None)
VARIANTS = {
    "ema (preset)": ({"kind": "ema"}, None),
    "vq": ({"kind": "vq"}, None),
    "vq + rotation": ({"kind": "vq", "gradient": "rotation"}, "peer-rotation"),
    "ema + rotation": ({"kind": "ema", "gradient": "rotation"}, None),
    "cosine (lookup 32)": ({"kind": "cosine", "lookup_dim": 32}, "peer-cosine"),
    "fsq [8,8,8]": ({"kind": "fsq"}, "peer-fsq"),
    "lfq (9 bits)": ({"kind": "lfq"}, "peer-lfq"),
}


class PeerQuantizer(nn.Module):
    """A vector-quantize-pytorch module behind our quantizer interface (B, D, *S)."""

    make: staticmethod  # (config) -> the peer's module, set by each subclass

    def __init__(self, config) -> None:
        super().__init__()
        self.peer = self.make(config)
        self.code_dim = config.code_dim
        self.num_codes = int(getattr(self.peer, "codebook_size", 0) or config.num_codes)

    @classmethod
    def from_config(cls, config, level: int = 0) -> PeerQuantizer:
        return cls(config)

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        x = z_e.movedim(1, -1).reshape(z_e.shape[0], -1, self.code_dim)  # (B, D, *S) -> (B, N, D)
        out = self.peer(x)
        quantized, indices = out[0], out[1]
        loss = out[2] if len(out) > 2 else torch.zeros((), device=z_e.device)
        loss = loss.sum() if torch.is_tensor(loss) else torch.zeros((), device=z_e.device)
        codes = indices.reshape(z_e.shape[0], *z_e.shape[2:]).long()
        counts = torch.bincount(codes.reshape(-1), minlength=self.num_codes)
        return QuantizerOutput(
            z_q=quantized.reshape(*z_e.movedim(1, -1).shape).movedim(-1, 1),
            codes=codes,
            loss=loss,
            perplexity=perplexity(counts),
            commitment_loss=loss.detach(),
            codebook_loss=torch.zeros((), device=z_e.device),
        )

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        flat = codes.reshape(codes.shape[0], -1)  # (B, *S) -> (B, N)
        if hasattr(self.peer, "get_output_from_indices"):  # VectorQuantize
            out = self.peer.get_output_from_indices(flat)  # (B, N, D)
        else:  # FSQ, LFQ: the implicit code, projected back to D
            out = self.peer.indices_to_codes(flat)
        return out.reshape(*codes.shape, self.code_dim).movedim(-1, 1)


def register_peers() -> None:
    from vector_quantize_pytorch import FSQ, LFQ, VectorQuantize

    def vq(config, **kw):
        return VectorQuantize(
            dim=config.code_dim,
            codebook_size=config.num_codes,
            decay=config.decay,
            commitment_weight=config.beta,
            kmeans_init=True,
            threshold_ema_dead_code=2,
            **kw,
        )

    peers = {
        "peer-rotation": lambda c: vq(c, rotation_trick=True),
        "peer-cosine": lambda c: vq(c, use_cosine_sim=True, codebook_dim=32),
        "peer-fsq": lambda c: FSQ(levels=[8, 8, 8], dim=c.code_dim),
        "peer-lfq": lambda c: LFQ(
            dim=c.code_dim,
            codebook_size=c.num_codes,
            entropy_loss_weight=c.entropy_weight,
            commitment_loss_weight=c.beta,
        ),
    }
    for name, make in peers.items():
        cls = type(name.replace("-", "_"), (PeerQuantizer,), {"make": staticmethod(make)})
        QUANTIZERS.register(name, cls, about=f"vector-quantize-pytorch ({name})")


def train_and_score(name: str, overrides: dict, args, data) -> dict:
    preset = get_full_preset("mnist-paper")
    model_config = replace(preset.model, quantizer=replace(preset.model.quantizer, **overrides))
    train = replace(preset.train, steps=args.steps, batch_size=args.batch_size, eval_every=10**9)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp) / "run")
        t0 = time.perf_counter()
        result = train_vqvae(run, data[0], data[1], model_config, train, meta={}, progress=False)
        seconds = time.perf_counter() - t0
        usage_100 = [r["code_usage"] for r in run.read_metrics() if r.get("step", 0) <= 100]
    ev = evaluate(result.model, data[1].images)
    k = result.model.num_codes
    return {
        "variant": name,
        "kind": overrides["kind"],
        "K": k,
        "psnr": ev.psnr,
        "code_usage": ev.code_usage,
        "perplexity": ev.perplexity,
        "bits_per_image": ev.bits_per_image,
        "train_seconds": seconds,
        "min_usage_first_100_steps": min(usage_100) if usage_100 else None,
        "_quantizer": result.model.quantizer,
    }


def time_quantizer(quantizer: nn.Module, repeats: int) -> float:
    """Median seconds of forward + backward at the paper's shape: (8, 64, 32, 32)."""
    quantizer.train()
    z = torch.randn(8, 64, 32, 32, requires_grad=True)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        out = quantizer(z)
        (out.z_q.square().mean() + out.loss).backward()
        times.append(time.perf_counter() - t0)
    return sorted(times[1:])[len(times[1:]) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--variants", help="semicolon-separated subset of the variant names")
    parser.add_argument("--no-peer", action="store_true", help="ours only")
    parser.add_argument("--repeats", type=int, default=10, help="timing repeats")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument(
        "--timing-only", action="store_true", help="only the fwd+bwd times, no training"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.no_peer:
        register_peers()
    if args.timing_only:
        print_timings(args)
        return
    data = [load_dataset("mnist", s, args.data_root) for s in ("train", "test")]
    chosen = args.variants.split(";") if args.variants else list(VARIANTS)
    rows = []
    for name in chosen:
        overrides, peer = VARIANTS[name]
        ours = train_and_score(name, overrides, args, data)
        ours["step_seconds"] = time_quantizer(ours.pop("_quantizer"), args.repeats)
        rows.append(ours)
        print(json.dumps(ours), flush=True)
        if peer and not args.no_peer:
            theirs = train_and_score(f"{name}: peer", {**overrides, "kind": peer}, args, data)
            theirs["step_seconds"] = time_quantizer(theirs.pop("_quantizer"), args.repeats)
            rows.append(theirs)
            ours["peer_time_ratio"] = theirs["step_seconds"] / ours["step_seconds"]
            print(json.dumps(theirs), flush=True)
    print_table(rows, args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


def built(overrides: dict) -> nn.Module:
    """A quantizer of the mnist preset's sizes, initialised by one training batch (the EMA's
    refits of its first 100 steps are over: they cost 2 Lloyd iterations a step then)."""
    preset = get_full_preset("mnist-paper").model.quantizer
    torch.manual_seed(0)
    quantizer = replace(preset, **overrides).build().train()
    quantizer(torch.randn(8, 64, 32, 32))  # data-dependent init, dead-code counters
    for level in quantizer.modules():  # time the steady state, after the init's refit window
        if hasattr(level, "init_steps_done"):
            level.init_steps_done.fill_(level.init_steps)
    return quantizer


def print_timings(args) -> None:
    """Forward + backward at the paper's shape, ours against the peer's, in one run."""
    print(f"\nfwd+bwd at (8, 64, 32, 32), median of {args.repeats}, {args.threads} thread(s)\n")
    print("| variant | ours (ms) | peer (ms) | peer / ours |")
    print("|---|---:|---:|---:|")
    for name, (overrides, peer) in VARIANTS.items():
        ours = time_quantizer(built(overrides), args.repeats)
        theirs = None
        if peer and not args.no_peer:
            theirs = time_quantizer(built({**overrides, "kind": peer}), args.repeats)
        cells = (f"{1000 * theirs:.1f}", f"{theirs / ours:.1f}x") if theirs else ("", "")
        print(f"| {name} | {1000 * ours:.1f} | {cells[0]} | {cells[1]} |", flush=True)


def print_table(rows: list[dict], args) -> None:
    print(f"\n{args.steps} steps of batch {args.batch_size}, mnist preset network, "
          f"{args.threads} thread(s); full test split\n")  # fmt: skip
    print("| variant | K | test PSNR (dB) | code usage | perplexity | bits/image | "
          "min usage, steps 1-100 | fwd+bwd (ms) | peer time / ours |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['peer_time_ratio']:.1f}x" if "peer_time_ratio" in r else ""
        first = r["min_usage_first_100_steps"]
        first_text = "" if first is None else f"{first:.3f}"
        print(
            f"| {r['variant']} | {r['K']} | {r['psnr']:.2f} | {r['code_usage']:.3f} | "
            f"{r['perplexity']:.0f} | {r['bits_per_image']:.0f} | {first_text} | "
            f"{1000 * r['step_seconds']:.1f} | {ratio} |"
        )


if __name__ == "__main__":
    main()

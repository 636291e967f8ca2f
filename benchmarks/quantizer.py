"""Forward + backward time of our quantizers against the peer library and the bare matmul.

Target: at the paper's shape (8,192 vectors of D=64 against K=512 codes) the quantizer
should be >= 3x faster than ``vector-quantize-pytorch`` and within 3x of the floor, the
bare distance matmul ``addmm((N, D) x (D, K)) + argmin``. Also measures the peak extra
memory of the 65,536 x 65,536 (D=64) nearest-code search, which must stay under ~1 GiB.

Run: ``python benchmarks/quantizer.py`` (prints a markdown table; 2 threads, CPU).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import statistics
import time
from collections.abc import Callable

import torch

from vqvae.quantizers import EMAVectorQuantizer, VectorQuantizer

THREADS = 2
DECAY = 0.99
BETA = 0.25
# (name, z_e shape (B, D, H, W), K): the paper's 8,192 vectors and a large 65,536
SHAPES = [
    ("paper: N=8,192 D=64 K=512", (8, 64, 32, 32), 512),
    ("large: N=65,536 D=64 K=8,192", (64, 64, 32, 32), 8192),
]


def median_time(step: Callable[[], None], warmup: int, repeats: int) -> float:
    """Median wall time in seconds of ``step()`` after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fwd_bwd(module: torch.nn.Module, z_e: torch.Tensor, output: Callable) -> Callable[[], None]:
    """One training step of a quantizer alone: forward, loss + sum(z_q), backward."""
    z = z_e.clone().requires_grad_(True)

    def step() -> None:
        z.grad = None
        for p in module.parameters():
            p.grad = None
        z_q, loss = output(module(z))
        (z_q.sum() + loss).backward()

    return step


def ours(cls, k: int, d: int, restarts: bool) -> torch.nn.Module:
    """With restarts: k-means init on the first batch only (``init_steps=1``), so the steps
    timed are the steady state; the EMA's default refit of its first 100 steps costs two
    Lloyd iterations a step more while it lasts (BENCHMARKS.md section 6)."""
    kwargs = {"decay": DECAY} if cls is EMAVectorQuantizer else {}
    init = "kmeans" if restarts else "none"
    return cls(k, d, BETA, init=init, restart_dead_codes=restarts, init_steps=1, **kwargs).train()


def peer(k: int, d: int, learnable: bool) -> torch.nn.Module:
    from vector_quantize_pytorch import VectorQuantize

    # straight-through estimator (no rotation trick), image feature maps (B, D, H, W)
    kwargs = {"ema_update": False, "learnable_codebook": True} if learnable else {}
    return VectorQuantize(
        dim=d,
        codebook_size=k,
        decay=DECAY,
        commitment_weight=BETA,
        accept_image_fmap=True,
        rotation_trick=False,
        **kwargs,
    ).train()


def matmul_floor(z_e: torch.Tensor, k: int) -> Callable[[], None]:
    """The distance matmul and argmin alone, no autograd: what any quantizer must do."""
    n, d = z_e.shape[0] * z_e.shape[2] * z_e.shape[3], z_e.shape[1]
    z = torch.randn(n, d)
    e_t = torch.randn(d, k)
    e_sq = torch.randn(k)

    def step() -> None:
        torch.addmm(e_sq, z, e_t, alpha=-2.0).argmin(1)

    return step


MEMORY_PROBE = """
import sys, torch
from vqvae.quantizers import nearest_code
torch.set_num_threads(int(sys.argv[1]))
n = int(sys.argv[2])
z, e = torch.randn(n, 64), torch.randn(n, 64)
nearest_code(z[:4096], e[:1024])  # load the kernels before measuring
def status(key):  # kB -> bytes
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak resident set size (VmHWM) to the current size
before = status("VmRSS:")
codes = nearest_code(z, e)
print(status("VmHWM:") - before)
"""


def search_peak_memory(n: int) -> tuple[int, float]:
    """Peak extra resident memory (bytes) of an n x n (D=64) nearest_code search, and seconds.

    Measured in a fresh process: the high-water mark of its resident set (VmHWM, reset just
    before the search through /proc/self/clear_refs) minus its resident size at that moment,
    with the inputs already allocated. This
    counts every allocation (torch's CPU allocator, BLAS workspaces), unlike tracemalloc.
    """
    import subprocess
    import sys

    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(THREADS), str(n)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip().splitlines()[-1]), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    peer_version = importlib.metadata.version("vector-quantize-pytorch")
    print(
        f"torch {torch.__version__}, vector-quantize-pytorch {peer_version}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}\n"
    )

    def ours_out(o):
        return o.z_q, o.loss

    def peer_out(o):
        return o[0], o[2]

    rows = []
    for name, shape, k in SHAPES:
        d = shape[1]
        z_e = torch.randn(shape)
        reps = args.repeats if k <= 512 else max(3, args.repeats // 2)
        t = {}
        t["matmul"] = median_time(matmul_floor(z_e, k), args.warmup, reps)
        for label, make in [
            ("VQ", lambda k=k, d=d: ours(VectorQuantizer, k, d, False)),
            ("VQ+init/restart", lambda k=k, d=d: ours(VectorQuantizer, k, d, True)),
            ("EMA", lambda k=k, d=d: ours(EMAVectorQuantizer, k, d, False)),
            ("EMA+init/restart", lambda k=k, d=d: ours(EMAVectorQuantizer, k, d, True)),
        ]:
            t[label] = median_time(fwd_bwd(make(), z_e, ours_out), args.warmup, reps)
        t["peer EMA"] = median_time(fwd_bwd(peer(k, d, False), z_e, peer_out), args.warmup, reps)
        t["peer learnable"] = median_time(
            fwd_bwd(peer(k, d, True), z_e, peer_out), args.warmup, reps
        )
        rows.append((name, t))

    print("| shape | quantizer | ms | peer / ours | ours / matmul |")
    print("|---|---|---:|---:|---:|")
    for name, t in rows:
        m = t["matmul"]
        print(f"| {name} | bare addmm + argmin (floor) | {m * 1e3:.1f} | | 1.00 |")
        for label, p in [
            ("VQ", "peer learnable"),
            ("VQ+init/restart", "peer learnable"),
            ("EMA", "peer EMA"),
            ("EMA+init/restart", "peer EMA"),
        ]:
            print(
                f"| {name} | ours {label} | {t[label] * 1e3:.1f} | "
                f"{t[p] / t[label]:.2f} (vs {p}) | {t[label] / m:.2f} |"
            )
        for p in ("peer EMA", "peer learnable"):
            print(f"| {name} | {p} | {t[p] * 1e3:.1f} | | {t[p] / m:.2f} |")

    if not args.skip_memory:
        n = 65_536
        extra, secs = search_peak_memory(n)
        print(
            f"\nnearest_code {n:,} x {n:,} codes (D=64): peak memory beyond the inputs "
            f"{extra / 2**20:.0f} MiB (inputs {2 * n * 64 * 4 / 2**20:.0f} MiB; the full "
            f"distance matrix would be {n * n * 4 / 2**30:.0f} GiB); {secs:.1f} s"
        )


if __name__ == "__main__":
    main()

"""The nearest-code search at large K: blocks of codes against whole-row chunks.

``vqvae.quantizers._nearest.nearest_code`` searches a (rows x codes) block of 16 MiB at a
time, keeping each row's nearest so far; up to release 0.3 it searched chunks of whole rows,
64 MiB of distances each, and took the argmin of each. This times both on one MNIST training
batch's vectors (N = 6,272 = 128 images x 7 x 7, D = 64) against K = 2^10 .. 2^16 random
codes, in turn (A B A B ...), median of ``--repeats``, and checks that they pick the same
codes.

Run: ``OMP_NUM_THREADS=1 python benchmarks/nearest_search.py`` (prints a markdown table).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vqvae.quantizers._nearest import nearest_code

OLD_CHUNK_BYTES = 64 * 2**20


@torch.no_grad()
def row_chunks(z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """Release 0.3's search: whole rows of distances, 64 MiB at a time, argmin of each."""
    e_sq, e_t = e.pow(2).sum(1), e.t().contiguous()
    rows = max(1, OLD_CHUNK_BYTES // (4 * e.shape[0]))
    parts = [
        torch.addmm(e_sq, z[s : s + rows], e_t, alpha=-2.0).argmin(1)
        for s in range(0, z.shape[0], rows)
    ]
    return torch.cat(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--log2-sizes", default="10,12,14,16")
    args = parser.parse_args()
    torch.manual_seed(0)
    z = torch.randn(6272, 64)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n")
    print("| K | blocks of codes (ms) | whole-row chunks (ms) | speed-up | same codes |")
    print("|---:|---:|---:|---:|---|")
    for log2_k in map(int, args.log2_sizes.split(",")):
        e = torch.randn(2**log2_k, 64)
        times: dict[str, list[float]] = {"new": [], "old": []}
        same = torch.equal(nearest_code(z, e), row_chunks(z, e))
        for _ in range(args.repeats):
            for name, search in (("new", nearest_code), ("old", row_chunks)):
                t0 = time.perf_counter()
                search(z, e)
                times[name].append(time.perf_counter() - t0)
        new, old = (statistics.median(times[k]) * 1e3 for k in ("new", "old"))
        print(f"| {2**log2_k:,} | {new:.0f} | {old:.0f} | {old / new:.2f}x | {same} |")


if __name__ == "__main__":
    main()

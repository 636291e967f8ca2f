"""Training on 1 thread against torch's default of one per core, on a machine whose cores
other processes hold (run it beside other CPU-bound jobs; it reports the load average).

Each round runs ``vqvae train --data digits`` (the demo's preset) for ``--steps`` steps
with ``--threads 1`` and with ``--threads`` equal to the core count, in turn, as
subprocesses; a ratio is the median over rounds of the two runs' wall times within a round
(the load drifts between rounds far more than within one).

    python benchmarks/threads.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def wall(threads: int, steps: int, folder: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    cmd = [sys.executable, "-m", "vqvae.cli", "train", "--data", "digits",
           "--steps", str(steps), "--out", folder, "--force", "--no-progress", "--no-report",
           "--threads", str(threads)]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    rows: dict[int, list[float]] = {1: [], cores: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            load = os.getloadavg()[0]
            for threads in rows:
                rows[threads].append(wall(threads, args.steps, os.path.join(tmp, "run")))
            print(f"round {r + 1}: load average {load:.1f}; "
                  + ", ".join(f"{t} thread(s) {v[-1]:.0f} s" for t, v in rows.items()))  # fmt: skip
    ratio = statistics.median(b / a for a, b in zip(rows[1], rows[cores], strict=True))
    print(f"\ndigits, {args.steps} steps: 1 thread {statistics.median(rows[1]):.0f} s, "
          f"{cores} threads {statistics.median(rows[cores]):.0f} s (median of {args.rounds}); "
          f"{cores} threads take {ratio:.2f}x the time of 1")  # fmt: skip


if __name__ == "__main__":
    main()

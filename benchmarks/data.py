"""Training on a folder of image files against the in-memory array of the same images, and
our training step against a plain PyTorch loop.

A folder of ``--files`` small JPEGs (MNIST's digits, then Fashion-MNIST's clothes past
70,000: ``train/<class>/`` and ``test/<class>/``, six sevenths train) is written once into a
temporary folder and reused; its images, decoded, are also saved as one ``.npz`` (the
in-memory path: an ``.npz`` is read whole). Then, each in a subprocess of its own, with the
``mnist`` preset's network at batch ``--batch-size``:

- ``vqvae train`` on the folder (an index cold, then warm from its cache), and on a folder a
  fifth the size, with ``--workers`` (by default, the CPUs training leaves free); and on the
  folder with one worker process, whatever the default;
- ``vqvae train`` on the ``.npz`` of the same images (and of a fifth of them);
- a plain PyTorch loop over the same network, optimizer and batch, its data a float tensor
  in memory: no framework around it.

Measured: seconds from the command's launch to the start of its first training step;
steady images per second (the median step after ``--warmup`` steps); peak resident memory
of the process (and of its worker processes), and the workers' CPU time, from ``getrusage``.
Every path runs once a round, ``--rounds`` rounds; a figure is its median over the rounds, a
ratio the median of the rounds' ratios (this machine's speed drifts by a fifth from minute
to minute; within a round, a ratio drifts far less). Targets: the first step
within 10 s; the folder's throughput at least 0.9x the array's; the folder's memory the
same at both sizes; our step at least 0.95x the plain loop's images per second.

    python benchmarks/data.py                       # 60,000 files (written once, ~1 min)
    python benchmarks/data.py --files 3000 --steps 30 --rounds 1   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGETS = {"first_step_s": 10.0, "folder_vs_array": 0.9, "ours_vs_plain": 0.95}
SETS = ("mnist", "fashion-mnist")  # taken in turn until there are enough images
TRAIN_SHARE = 6 / 7  # MNIST's own: 60,000 train and 10,000 test


# -- the data, written once -----------------------------------------------------------------


def make_folder(n: int, root: Path, data_root: str) -> Path:
    """``root/jpeg-<n>/{train,test}/<set>-<label>/NNNNNN.jpg``, written once (a ``done``
    file marks a complete folder)."""
    from PIL import Image

    from vqvae.data import load_images

    folder = root / f"jpeg-{n}"
    if (folder / "done").is_file():
        return folder
    n_train = round(n * TRAIN_SHARE)
    for split, count in (("train", n_train), ("test", n - n_train)):
        written = 0
        for name in SETS:
            if written == count:
                break
            ds = load_images(name, split, data_root, download=False)
            take = min(count - written, len(ds))
            for i in range(take):
                cls = folder / split / f"{name}-{ds.labels[i]}"
                cls.mkdir(parents=True, exist_ok=True)
                Image.fromarray(ds.images[i, ..., 0]).save(cls / f"{i:06d}.jpg", quality=90)
            written += take
        if written < count:
            raise SystemExit(f"only {written} {split} images in {', '.join(SETS)}; lower --files")
    (folder / "done").write_text("")
    return folder


def make_array(folder: Path) -> Path:
    """The folder's images, decoded as the folder path decodes them, in one ``.npz``."""
    from vqvae.data import load_images

    path = folder.with_suffix(".npz")
    if not path.is_file():
        parts = [load_images(str(folder), s).images for s in ("train", "test")]
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, images=np.concatenate(parts))
        tmp.rename(path)
    return path


# -- one measurement, in a subprocess of its own ----------------------------------------------


def child(spec: dict) -> None:
    """Run one measurement and print its figures as JSON on the last line."""
    import torch

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    starts: list[float] = []  # time.time() at the start of each step
    cpu: list[float] = []  # this process's CPU seconds at the start of each step
    if spec["mode"] == "plain":
        _plain_loop(spec, starts, cpu)
    else:
        _vqvae_train(spec, starts, cpu)
    steps = np.diff(starts[spec["warmup"] :])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers, once joined
    workers = children.ru_maxrss / 1024
    figures = {
        "first_step_s": starts[0] - spec["launched"],
        "images_per_s": spec["batch"] / statistics.median(steps),
        "cpu_ms_per_step": 1000 * (cpu[-1] - cpu[spec["warmup"]]) / (len(cpu) - 1 - spec["warmup"]),
        "peak_rss_mib": rss,
        "worker_peak_rss_mib": workers,
        "workers_cpu_ms_per_step": 1000 * (children.ru_utime + children.ru_stime) / len(starts),
    }
    print(json.dumps(figures))


def _vqvae_train(spec: dict, starts: list[float], cpu: list[float]) -> None:
    import vqvae.train.vqvae as trainer
    from vqvae.cli import main

    make_step = trainer.vqvae_step

    def timed(*args):
        step_fn = make_step(*args)

        def step(batch):
            starts.append(time.time())
            cpu.append(time.process_time())
            return step_fn(batch)

        return step

    trainer.vqvae_step = timed
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            "train", "--data", spec["data"], "--out", f"{tmp}/run", "--preset", "mnist-paper",
            "--steps", str(spec["steps"]), "--batch-size", str(spec["batch"]),
            "--checkpoint-every", str(spec["steps"]), "--set", "eval_limit=500",
            "--no-progress", "--no-report",
        ]  # fmt: skip
        if spec["workers"] is not None:
            argv += ["--workers", str(spec["workers"])]
        if main(argv) != 0:
            raise SystemExit(f"vqvae train failed on {spec['data']}")


def _plain_loop(spec: dict, starts: list[float], cpu: list[float]) -> None:
    """The same network, optimizer and batch in plain PyTorch: a float tensor in memory,
    a random permutation per epoch, forward, backward, step."""
    import torch

    from vqvae.config import get_full_preset
    from vqvae.data import to_model_input
    from vqvae.models import VQVAE

    preset = get_full_preset("mnist-paper")
    with np.load(spec["data"]) as f:
        x = to_model_input(f["images"])  # (N, C, H, W) in [-1, 1]
    torch.manual_seed(0)
    model = VQVAE(preset.model).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=preset.train.lr)
    order = torch.randperm(len(x))
    for step in range(spec["steps"]):
        starts.append(time.time())
        cpu.append(time.process_time())
        k = step * spec["batch"] % (len(x) - spec["batch"])
        loss = model(x[order[k : k + spec["batch"]]]).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def measure(spec: dict, env: dict[str, str]) -> dict:
    spec = {**spec, "launched": time.time()}
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{spec['mode']} on {spec['data']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the comparison -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=60_000, help="JPEGs in the large folder")
    parser.add_argument("--steps", type=int, default=80, help="training steps per measurement")
    parser.add_argument("--warmup", type=int, default=10, help="steps left out of the speed")
    parser.add_argument("--rounds", type=int, default=3, help="every path once a round")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, help="--workers of vqvae train (its default)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--data-root", default=os.environ.get("VQVAE_DATA", "../shared/data"))
    parser.add_argument("--tmp", help="where the folders are written once and kept")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child))
    if args.steps <= args.warmup + 1:
        parser.error("--steps must exceed --warmup by at least 2")

    root = Path(args.tmp or Path(tempfile.gettempdir()) / "vqvae-benchmark-data")
    small_n = max(args.files // 5, args.batch_size * 2)
    t = time.perf_counter()
    folders = {n: make_folder(n, root, args.data_root) for n in (args.files, small_n)}
    arrays = {n: make_array(f) for n, f in folders.items()}
    print(f"data ready in {time.perf_counter() - t:.0f} s under {root}", file=sys.stderr)

    env = {**os.environ}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    base = {"steps": args.steps, "warmup": args.warmup, "batch": args.batch_size,
            "workers": args.workers, "threads": args.threads, "mode": "vqvae"}  # fmt: skip
    big, small = str(folders[args.files]), str(folders[small_n])
    rounds: list[dict[str, dict]] = []
    for r in range(args.rounds):
        rows: dict[str, dict] = {}
        # in an order that puts each ratio's two sides side by side: the array between the
        # folder's two runs, the plain loop after them
        with tempfile.TemporaryDirectory() as cold, tempfile.TemporaryDirectory() as other:
            cache = {**env, "VQVAE_CACHE": cold}
            rows["cold"] = measure({**base, "data": big}, cache)
            rows["array"] = measure({**base, "data": str(arrays[args.files])}, env)
            rows["cached"] = measure({**base, "data": big}, cache)
            rows["plain"] = measure({**base, "mode": "plain", "data": str(arrays[args.files])}, env)
            rows["small"] = measure({**base, "data": small}, {**env, "VQVAE_CACHE": other})
            rows["small array"] = measure({**base, "data": str(arrays[small_n])}, env)
            rows["one worker"] = measure({**base, "data": big, "workers": 1}, cache)
        rounds.append(rows)
        speeds = ", ".join(f"{k} {v['images_per_s']:.0f}/s" for k, v in rows.items())
        print(f"round {r + 1}/{args.rounds}: {speeds}", file=sys.stderr)
    report(rounds, args, small_n)


ROW_NAMES = {
    "cold": "folder, {n:,} files, index cold",
    "cached": "folder, {n:,} files, index cached",
    "small": "folder, {s:,} files",
    "one worker": "folder, {n:,} files, 1 worker process",
    "array": "array (.npz in memory), {n:,} images",
    "small array": "array (.npz in memory), {s:,} images",
    "plain": "plain PyTorch loop, {n:,} images",
}
FIGURES = ("first_step_s", "images_per_s", "cpu_ms_per_step", "workers_cpu_ms_per_step",
           "peak_rss_mib", "worker_peak_rss_mib")  # fmt: skip


def report(rounds: list[dict[str, dict]], args: argparse.Namespace, small_n: int) -> None:
    """Each figure is its median over the rounds; each ratio, the median of the rounds'
    ratios (paths measured minutes apart share the machine's mood: a ratio within a round
    varies far less than either figure across rounds)."""
    threads = args.threads or "torch's default"
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"threads {threads}, workers {args.workers if args.workers is not None else 'default'}, "
        f"batch {args.batch_size}, {args.steps} steps ({args.warmup} warm-up), preset mnist-paper, "
        f"medians of {len(rounds)} rounds\n"
    )
    print(
        "| path | first step (s) | images/s | main process CPU ms/step | workers' CPU ms/step "
        "| peak RSS (MiB) | workers' peak RSS (MiB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key, name in ROW_NAMES.items():
        m = [statistics.median(r[key][f] for r in rounds) for f in FIGURES]
        label = name.format(n=args.files, s=small_n)
        print(f"| {label} | {m[0]:.1f} | {m[1]:.0f} | {m[2]:.0f} | {m[3]:.1f} | {m[4]:.0f} "
              f"| {m[5]:.0f} |")  # fmt: skip

    def speed(r, key):
        return r[key]["images_per_s"]

    folders = [(speed(r, "cold") + speed(r, "cached")) / 2 / speed(r, "array") for r in rounds]
    plains = [speed(r, "array") / speed(r, "plain") for r in rounds]
    first = statistics.median(r["cold"]["first_step_s"] for r in rounds)
    folder, ours = statistics.median(folders), statistics.median(plains)
    memory = statistics.median(r["cold"]["peak_rss_mib"] / r["small"]["peak_rss_mib"]
                               for r in rounds)  # fmt: skip
    worker = statistics.median(speed(r, "one worker") / speed(r, "array") for r in rounds)
    checks = [
        ("first step, index cold (s)", first, f"<= {TARGETS['first_step_s']}",
         first <= TARGETS["first_step_s"]),
        ("folder / array images/s", folder, f">= {TARGETS['folder_vs_array']}",
         folder >= TARGETS["folder_vs_array"]),
        (f"folder peak RSS, {args.files:,} / {small_n:,} files", memory, "about 1",
         memory < 1.1),
        ("ours / plain loop images/s", ours, f">= {TARGETS['ours_vs_plain']}",
         ours >= TARGETS["ours_vs_plain"]),
    ]  # fmt: skip
    print("\n| measure | value | target | met |")
    print("|---|---:|---|---|")
    for name, value, target, met in checks:
        print(f"| {name} | {value:.2f} | {target} | {'yes' if met else 'no'} |")
    print(f"| folder with 1 worker process / array images/s | {worker:.2f} | (information) | |")
    print(f"\nfolder / array in each round: {', '.join(f'{x:.2f}' for x in folders)}")
    print(f"ours / plain loop in each round: {', '.join(f'{x:.2f}' for x in plains)}")


if __name__ == "__main__":
    main()

"""``vqvae export`` on trained runs: ONNX Runtime's codes and decoder outputs against PyTorch's
on a whole test split, and the speed of each, one thread each, in one run.

    VQVAE_DATA=/path/to/data OMP_NUM_THREADS=1 python benchmarks/onnx_export.py \
        --image-run RUN --speech-run RUN [--out DIR] [--repeats 2]

The image run is encoded on its data set's test split (MNIST for the ``mnist`` preset) as
``vqvae encode`` does (``vqvae.inference.encode``, batches of 256), the speech run on FSDD's
test split as ``encode_audio`` does (clips padded with silence to the longest, batches of 32);
ONNX Runtime gets the same arrays in the same batches. Codes are compared where the nearest
and second-nearest codes are further apart than ``TIE_RTOL`` of the distance (the bar: all
equal there) and everywhere; the decoders get PyTorch's codes, and the largest absolute
difference of their outputs is printed (``decode_codes`` for images on the [-1, 1] scale,
``decode_mel`` for speech in log-mel nats). Throughput: the whole split through each, best of
``--repeats`` passes, after a warm-up batch.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vqvae.data import load_audio, load_dataset, pad_to_hop, to_model_input
from vqvae.export import export_onnx
from vqvae.export.verify import Agreement, agreement, session
from vqvae.inference import encode
from vqvae.inference.audio import ENCODE_BATCH, encode_audio, speaker_ids
from vqvae.inference.images import BATCH_SIZE
from vqvae.runs import RunDir, load_run_model


def best_time(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def batched(n: int, size: int) -> list[slice]:
    return [slice(i, i + size) for i in range(0, n, size)]


def image_rows(run: str, folder: Path, repeats: int) -> list[str]:
    model = load_run_model(RunDir(run))
    spec = RunDir(run).read_config()["data"]
    images = load_dataset(spec, "test").images  # uint8 (N, H, W, C)
    export_onnx(run, folder, force=True)
    enc, dec = session(folder / "encoder.onnx"), session(folder / "decoder.onnx")
    parts = batched(len(images), BATCH_SIZE)
    theirs = encode(model, images)  # vqvae encode's codes
    ours = np.concatenate([enc.run(None, {"data": images[p]})[0] for p in parts])
    found = Agreement(0, 0, 0, 0)
    for p in parts:
        found += agreement(model, to_model_input(images[p]), ours[p], theirs[p])
    error = 0.0
    for p in parts:
        with torch.no_grad():
            want = model.decode_codes(torch.from_numpy(theirs[p])).numpy()
        error = max(error, float(np.abs(dec.run(None, {"codes": theirs[p]})[0] - want).max()))

    def torch_decode() -> None:
        with torch.inference_mode():
            for p in parts:
                model.decode_codes(torch.from_numpy(theirs[p]))

    speeds = {
        "encode": (lambda: encode(model, images),
                   lambda: [enc.run(None, {"data": images[p]}) for p in parts]),
        "decode": (torch_decode, lambda: [dec.run(None, {"codes": theirs[p]}) for p in parts]),
    }  # fmt: skip
    return rows(f"images: {spec} test, {len(images)}", found, error, speeds, len(images),
                "images/s", repeats)  # fmt: skip


def speech_rows(run: str, folder: Path, repeats: int) -> list[str]:
    model = load_run_model(RunDir(run))
    test = load_audio("fsdd", "test", sample_rate=model.config.sample_rate)
    export_onnx(run, folder, force=True)
    enc, dec = session(folder / "encoder.onnx"), session(folder / "decoder.onnx")
    found_codes = encode_audio(model, test)  # vqvae encode's codes, padded to the longest
    theirs = found_codes.codes
    width = theirs.shape[1] * model.hop
    audio = np.stack([pad_to_hop(w, model.hop, width) for w in test.waveforms])  # (N, T)
    speakers = speaker_ids(model, test)
    parts = batched(len(audio), ENCODE_BATCH)
    ours = np.concatenate([enc.run(None, {"audio": audio[p]})[0] for p in parts])
    found = Agreement(0, 0, 0, 0)
    for p in parts:
        x = torch.from_numpy(audio[p]).unsqueeze(1)  # (B, 1, T)
        found += agreement(model, x, ours[p], theirs[p])
    feeds = [{"codes": theirs[p], "speaker": speakers[p]} for p in parts]
    error = 0.0
    for p, feed in zip(parts, feeds, strict=True):
        want = model.decode_mel(torch.from_numpy(theirs[p]), torch.from_numpy(speakers[p]))
        error = max(error, float(np.abs(dec.run(None, feed)[0] - want.numpy()).max()))

    def torch_decode() -> None:
        for p in parts:
            model.decode_mel(torch.from_numpy(theirs[p]), torch.from_numpy(speakers[p]))

    speeds = {
        "encode": (lambda: encode_audio(model, test),
                   lambda: [enc.run(None, {"audio": audio[p]}) for p in parts]),
        "decode (log-mel)": (torch_decode, lambda: [dec.run(None, f) for f in feeds]),
    }  # fmt: skip
    seconds = audio.size / model.config.sample_rate  # padded audio, as both see it
    return rows(f"speech: fsdd test, {len(audio)} clips", found, error, speeds, seconds,
                "s of audio/s", repeats)  # fmt: skip


def rows(what, found: Agreement, error, speeds, amount, unit, repeats) -> list[str]:
    """One agreement row (prefixed ``A``) and one speed row per direction (``S``)."""
    out = [
        f"A| {what} | {found.decided_equal:,} / {found.decided:,} | {found.decided_rate:.2%} | "
        f"{found.equal_rate:.4%} | {error:.1e} |"
    ]
    for name, (torch_fn, onnx_fn) in speeds.items():
        a, b = best_time(torch_fn, repeats), best_time(onnx_fn, repeats)
        out.append(
            f"S| {what}: {name} | {amount / a:,.0f} {unit} | {amount / b:,.0f} {unit} | "
            f"{a / b:.2f}x |"
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image-run", required=True)
    p.add_argument("--speech-run", required=True)
    p.add_argument("--out", help="where the exported folders go (default: a temporary folder)")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        lines = image_rows(args.image_run, out / "image", args.repeats)
        lines += speech_rows(args.speech_run, out / "speech", args.repeats)
    after = os.getloadavg()
    print(
        f"torch {torch.__version__}, 1 thread each; load average {before[0]:.1f} before, "
        f"{after[0]:.1f} after (1-minute), {os.cpu_count()} CPUs"
    )
    print("| run | codes equal where decided | decided | codes equal everywhere | "
          "decoder max abs error |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    print("\n".join(line[1:] for line in lines if line[0] == "A"))
    print("\n| run: direction | PyTorch | ONNX Runtime | ONNX Runtime / PyTorch |")
    print("|---|---:|---:|---:|")
    print("\n".join(line[1:] for line in lines if line[0] == "S"))


if __name__ == "__main__":
    main()

"""Code usage in the first 100 steps of the ``mnist`` preset: the EMA codebook's
initialization on the first batch only (before) against the refits over the EMA's time
constant (now; ``Quantizer._maybe_initialize``), then the final test PSNR, usage and
perplexity of both on the full test split.

Both runs go through the trainer (``train_vqvae``: the preset's Adam at lr 1e-3, batch 128,
dead-code restarts on) with the same seed; only ``init_steps`` differs. Also prints the
encoder outputs' spread and the mean shift of the first optimizer step, the mechanism.

Run: ``OMP_NUM_THREADS=1 python benchmarks/ema_init.py --data-root ../shared/data``
(two 1,000-step runs, about 6 minutes on one CPU thread; ``--steps 100`` for the table only).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from vqvae.train.evaluate import evaluate
from vqvae.train.run import RunDir
from vqvae.train.trainer import train_vqvae

import vqvae.models.config as model_config_module
from vqvae.config import get_full_preset
from vqvae.data import load_dataset, to_model_input
from vqvae.models import VQVAE
from vqvae.quantizers import EMAVectorQuantizer
from vqvae.quantizers.base import flatten
from vqvae.train.loop import batch_indices

SETTINGS = {"before: first batch only": 1, "after: EMA time constant": None}


@contextlib.contextmanager
def init_steps(n: int | None):
    """Build the preset's EMA quantizer with ``init_steps=n`` (None: its default)."""
    original = model_config_module.EMAVectorQuantizer
    model_config_module.EMAVectorQuantizer = functools.partial(EMAVectorQuantizer, init_steps=n)
    try:
        yield
    finally:
        model_config_module.EMAVectorQuantizer = original


def first_step_shift(model_config, train_config, x_train: torch.Tensor) -> tuple[float, float]:
    """(spread of z_e at init, ||mean z_e after one Adam step - before||) on the first batch."""
    torch.manual_seed(train_config.seed)
    model = VQVAE(model_config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.lr)
    x = x_train[batch_indices(0, len(x_train), train_config.batch_size, train_config.seed)]
    with torch.no_grad():
        before = flatten(model.encoder(x), model_config.quantizer.code_dim)
    model(x).loss.backward()
    optimizer.step()
    with torch.no_grad():
        after = flatten(model.encoder(x), model_config.quantizer.code_dim)
    return float(before.std(0).norm()), float((after.mean(0) - before.mean(0)).norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)

    preset = get_full_preset("mnist-paper")
    train_config = replace(preset.train, steps=args.steps, log_every=1, eval_every=args.steps)
    train_set = load_dataset("mnist", "train", args.data_root)
    test_set = load_dataset("mnist", "test", args.data_root)

    spread, shift = first_step_shift(preset.model, train_config, to_model_input(train_set.images))
    print(f"z_e at init: spread {spread:.3f}; mean shift after the first Adam step {shift:.3f}\n")

    usage: dict[str, dict[int, float]] = {}
    finals = {}
    for name, n in SETTINGS.items():
        with tempfile.TemporaryDirectory() as tmp, init_steps(n):
            run = RunDir(Path(tmp) / "run")
            result = train_vqvae(
                run, train_set, test_set, preset.model, train_config,
                meta={"data": "mnist"}, progress=False,
            )  # fmt: skip
            records = [json.loads(line) for line in run.metrics_file.read_text().splitlines()]
        usage[name] = {r["step"]: r["code_usage"] for r in records if "code_usage" in r}
        finals[name] = evaluate(result.model.eval(), test_set.images)

    names = list(SETTINGS)
    print("| step | " + " | ".join(f"usage, {n}" for n in names) + " |")
    print("|---:|" + "---:|" * len(names))
    for step in [1, *range(10, min(args.steps, 100) + 1, 10)]:
        print(f"| {step} | " + " | ".join(f"{usage[n][step]:.3f}" for n in names) + " |")
    print(f"\nAfter {args.steps} steps, full test split ({len(test_set.images)} images):\n")
    print("| init | test PSNR (dB) | code usage | perplexity |")
    print("|---|---:|---:|---:|")
    for n in names:
        e = finals[n]
        print(f"| {n} | {e.psnr:.2f} | {e.code_usage:.3f} | {e.perplexity:.1f} |")


if __name__ == "__main__":
    main()

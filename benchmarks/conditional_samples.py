"""Are class-conditional samples recognisable? (the bar: >= 80% labelled right)

Trains a small CNN classifier on the real training images of the run's data set, then
labels ``--n`` samples drawn from the run's class-conditional prior (equally many per class)
and reports how often the classifier agrees with the conditioning class.

A masked-token prior (docs/maskgit.md) is judged at every combination of ``--steps``,
``--guidance`` and ``--temperature`` given, with the one classifier; ``--inpaint`` also
judges completions of the lower half of ``--n`` test images given their upper half: how
often the classifier names the original's class, given its label and with the label
dropped (guidance 0, the prior's null condition), beside the reconstructions' figure (the
lower half kept) and chance (sum over classes of p(c)^2: a completion of a class drawn
independently of the original's).

    python benchmarks/conditional_samples.py RUN [--n 1000] [--data-root DIR]
    python benchmarks/conditional_samples.py RUN --steps 8 10 12 --guidance 1 2 --inpaint
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vqvae.data import load_dataset, to_model_input
from vqvae.inference import box_mask, decode, encode, inpaint, sample
from vqvae.runs import RunDir, load_prior, load_run_model


def classifier(in_channels: int, num_classes: int) -> nn.Module:
    """Two conv layers and a linear head: ~99% on MNIST test after one epoch."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.LazyLinear(128), nn.ReLU(), nn.Linear(128, num_classes),
    )  # fmt: skip


def train_classifier(images: np.ndarray, labels: np.ndarray, epochs: int = 2) -> nn.Module:
    torch.manual_seed(0)
    x, y = to_model_input(images), torch.from_numpy(labels)
    net = classifier(x.shape[1], int(y.max()) + 1)
    net(x[:2])  # materialise the lazy layer before the optimizer sees the parameters
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(128):
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


@torch.no_grad()
def predict(net: nn.Module, images: np.ndarray) -> np.ndarray:
    x = to_model_input(images)
    return torch.cat([net(b).argmax(1) for b in x.split(512)]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--data-root")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, nargs="+", help="maskgit: passes to try")
    parser.add_argument("--guidance", type=float, nargs="+", help="maskgit: scales to try")
    parser.add_argument("--temperature", type=float, nargs="+", default=[1.0])
    parser.add_argument("--inpaint", action="store_true", help="maskgit: the lower-half bar")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    run = RunDir(args.run)
    spec = run.read_config()["data"]
    train, test = (load_dataset(spec, s, args.data_root) for s in ("train", "test"))
    t0 = time.perf_counter()
    net = train_classifier(train.images, train.labels)
    real_acc = float((predict(net, test.images) == test.labels).mean())

    model, prior = load_run_model(run), load_prior(run)
    k = prior.config.num_classes
    if k == 0:
        raise SystemExit(f"{run.path}: the prior is not class-conditional")
    labels = torch.arange(k).repeat_interleave(args.n // k)
    for options in _settings(args, prior):
        t1 = time.perf_counter()
        images, _ = sample(model, prior, len(labels), labels, seed=args.seed, **options)
        seconds = time.perf_counter() - t1
        hits = predict(net, images) == labels.numpy()
        per_class = [float(hits[labels.numpy() == c].mean()) for c in range(k)]
        result = {
            "run": str(run.path),
            "prior": type(prior).__name__,
            **options,
            "samples": len(labels),
            "sample_accuracy": float(hits.mean()),
            "per_class": per_class,
            "classifier_test_accuracy": real_acc,
            "sampling_seconds": round(seconds, 1),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print(json.dumps(result))
        print(
            f"| {spec} | {result['prior']} {_describe(options)} | {result['samples']} | "
            f"{result['sample_accuracy']:.3f} | {real_acc:.4f} |",
            flush=True,
        )
    if args.inpaint:
        _judge_inpainting(args, model, prior, net, test)


def _settings(args: argparse.Namespace, prior) -> list[dict]:
    """Every combination of the sampling options asked for (one empty one if none)."""
    grid = {"temperature": args.temperature}
    if "steps" in prior.sampling_options:
        grid |= {"steps": args.steps or [None], "guidance": args.guidance or [None]}
    names = list(grid)
    combos = itertools.product(*(grid[n] for n in names))
    return [{n: v for n, v in zip(names, c, strict=True) if v is not None} for c in combos]


def _describe(options: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in options.items())


def _judge_inpainting(args: argparse.Namespace, model, prior, net, test) -> None:
    """The lower half of ``--n`` test images redrawn given the upper half, judged as the
    original's class; with and without the label, beside reconstructions and chance."""
    n = min(args.n, len(test))
    images, labels = test.images[:n], test.labels[:n]
    height, width = model.config.input_size
    mask = box_mask(model, (height // 2, 0, height, width))
    codes = encode(model, images)
    truth = torch.from_numpy(labels)
    rows = {"reconstruction (lower half kept)": decode(model, codes)}
    for options in _settings(args, prior):
        for name, extra in (
            ("with its label", {}),
            ("label dropped (guidance 0)", {"guidance": 0.0}),
        ):
            key = f"completions {name}, {_describe({**options, **extra})}"
            if key in rows:  # the label dropped: the same whatever guidance was asked
                continue
            drawn, _ = inpaint(
                model, prior, codes, mask, truth, seed=args.seed, **{**options, **extra}
            )
            rows[key] = drawn
    p = np.bincount(labels) / len(labels)
    chance = float((p**2).sum())
    for name, data in rows.items():
        acc = float((predict(net, data) == labels).mean())
        print(json.dumps({"inpaint": name, "images": n, "accuracy": acc, "chance": chance}))
        print(f"| lower half of {n} test images | {name} | {acc:.3f} | {chance:.3f} |", flush=True)


if __name__ == "__main__":
    main()

"""Are class-conditional samples recognisable? (the bar: >= 80% labelled right)

Trains a small CNN classifier on the real training images of the run's data set, then
labels ``--n`` samples drawn from the run's class-conditional prior (equally many per class)
and reports how often the classifier agrees with the conditioning class.

    python benchmarks/conditional_samples.py RUN [--n 1000] [--data-root DIR]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vqvae.data import load_dataset, to_model_input
from vqvae.inference import sample
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
    args = parser.parse_args()
    torch.set_num_threads(2)

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
    images, _ = sample(model, prior, len(labels), labels, seed=args.seed)
    hits = predict(net, images) == labels.numpy()
    per_class = [float(hits[labels.numpy() == c].mean()) for c in range(k)]
    result = {
        "run": str(run.path),
        "prior": type(prior).__name__,
        "samples": len(labels),
        "sample_accuracy": float(hits.mean()),
        "per_class": per_class,
        "classifier_test_accuracy": real_acc,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result))
    print(
        f"| {spec} | {result['prior']} | {result['samples']} | "
        f"{result['sample_accuracy']:.3f} | {real_acc:.4f} |"
    )


if __name__ == "__main__":
    main()

"""``vqvae prior train`` and ``vqvae sample``: the second and third stages of the system.

Stage 2 (paper section 3.3): encode the training images with the trained VQ-VAE and fit an
autoregressive prior to the integer grids by cross-entropy. Stage 3: sample grids from the
prior and decode them with the VQ-VAE's decoder. The prior lives in ``RUN/prior/``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vqvae._io import write_json, write_npz, write_safetensors
from vqvae.config import TrainConfig
from vqvae.data import ImageDataset, load_dataset, save_png_grid, to_uint8_images
from vqvae.models import VQVAE
from vqvae.pretrained import config_to_dict
from vqvae.priors import PixelCNNConfig, PixelCNNPrior, Prior, TransformerConfig, TransformerPrior
from vqvae.train.evaluate import encode, read_code_file
from vqvae.train.loop import StepOutput, fit
from vqvae.train.run import RunDir, RunError, refuse_overwrite, resume_differences, say
from vqvae.train.trainer import load_run_model

PRIORS: dict[str, tuple[type[Prior], type]] = {
    "pixelcnn": (PixelCNNPrior, PixelCNNConfig),
    "transformer": (TransformerPrior, TransformerConfig),
}
# Defaults that reach the quality bar on MNIST's 7x7 grids in minutes on a 2-core CPU.
_PIXELCNN_TRAIN = TrainConfig(
    steps=3000, batch_size=64, lr=1e-3, checkpoint_every=500, eval_every=1000, log_every=20,
    eval_limit=2000,
)  # fmt: skip
PRIOR_TRAIN = {
    "pixelcnn": _PIXELCNN_TRAIN,
    "transformer": replace(_PIXELCNN_TRAIN, lr=5e-4),  # attention wants a gentler step
}


@dataclass(frozen=True)
class CodeSet:
    codes: torch.Tensor  # (N, h, w) int64
    labels: torch.Tensor | None  # (N,) int64


@dataclass(frozen=True)
class PriorEvaluation:
    test_bits_per_code: float
    uniform_bits_per_code: float
    unigram_bits_per_code: float


def code_sources(args: Any, run: RunDir, model: VQVAE) -> tuple[CodeSet | ImageDataset, ...]:
    """Train and test sources: code grids read from .npz, or the run's images to encode.

    Encoding is left to ``as_codes``, after every check has passed, so that a refusal is
    quick and says one line."""
    if args.codes:
        train = _read_code_file(Path(args.codes), model)
        test = _read_code_file(Path(args.test_codes), model) if args.test_codes else train
        return train, test
    spec = args.data or run.read_config().get("data")
    if not spec:
        raise RunError(f"{run.path}: no data spec recorded; pass --data or --codes")
    return tuple(load_dataset(spec, split, args.data_root) for split in ("train", "test"))


def as_codes(source: CodeSet | ImageDataset, model: VQVAE) -> CodeSet:
    if isinstance(source, CodeSet):
        return source
    say(f"vqvae: encoding {len(source)} images of {source.name}")
    labels = torch.from_numpy(source.labels) if source.labels is not None else None
    return CodeSet(torch.from_numpy(encode(model, source.images)), labels)


def _read_code_file(path: Path, model: VQVAE) -> CodeSet:
    codes, labels = read_code_file(path, model)
    return CodeSet(torch.from_numpy(codes), None if labels is None else torch.from_numpy(labels))


def unigram_bits(train: torch.Tensor, test: torch.Tensor, num_codes: int) -> float:
    """Cross-entropy (bits per code) of test codes under the train codes' add-one unigram."""
    counts = torch.bincount(train.reshape(-1), minlength=num_codes).double() + 1.0
    logp = torch.log2(counts / counts.sum())
    return float(-logp[test.reshape(-1)].mean())


@torch.no_grad()
def bits_per_code(prior: Prior, data: CodeSet, batch_size: int = 256) -> float:
    was_training = prior.training
    prior.eval()
    total = 0.0
    for start in range(0, len(data.codes), batch_size):
        sl = slice(start, start + batch_size)
        labels = data.labels[sl] if prior.config.num_classes else None
        total += float(-prior.log_prob(data.codes[sl], labels).sum())
    prior.train(was_training)
    return total / (data.codes.numel() * math.log(2))


def build_prior(kind: str, model: VQVAE, num_classes: int, overrides: dict[str, Any]) -> Prior:
    cls, config_cls = PRIORS[kind]
    config = config_cls(
        num_codes=model.num_codes,
        grid_size=model.config.grid_size,
        num_classes=num_classes,
        **overrides,
    )
    return cls(config)


def prior_config(prior: Prior, train: TrainConfig, kind: str) -> dict[str, Any]:
    """``RUN/prior/config.json``: what ``from_pretrained`` reads, plus the training config."""
    return {
        "class": type(prior).__name__,
        "config": config_to_dict(prior.config),
        "train": config_to_dict(train),
        "kind": kind,
    }


def _kind(prior: Prior) -> str:
    return next(k for k, (cls, _) in PRIORS.items() if isinstance(prior, cls))


def prior_train_command(args: Any) -> int:
    run = RunDir(args.run)
    model = load_run_model(run)
    folder = RunDir(run.path / "prior", kind="prior")
    folder.check(resume=args.resume, force=args.force)
    sources = code_sources(args, run, model)
    num_classes = 0
    if args.class_conditional:
        labels = sources[0].labels
        if labels is None:
            raise RunError("--class-conditional: the data has no labels")
        num_classes = int(labels.max()) + 1
    train_config = PRIOR_TRAIN[args.kind]
    flags = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed}
    train_config = replace(train_config, **{k: v for k, v in flags.items() if v is not None})
    torch.manual_seed(train_config.seed)  # the initial weights come from --seed too
    prior = build_prior(args.kind, model, num_classes, {})
    wanted = prior_config(prior, train_config, kind=args.kind)
    if args.resume:
        diffs = resume_differences(folder.read_config(), wanted)
        if diffs:
            raise RunError(
                f"{folder.path}: --resume with a config that does not match the prior "
                f"(differs in {', '.join(diffs)})"
            )
    train_set, test_set = (as_codes(source, model) for source in sources)
    folder.prepare(resume=args.resume, force=args.force)
    write_json(folder.config_file, wanted)
    evaluation = train_prior(
        prior,
        folder,
        train_set,
        test_set,
        train_config,
        resume=args.resume,
        progress=not args.no_progress,
    )
    print(
        f"{folder.path}: test {evaluation.test_bits_per_code:.3f} bits/code "
        f"(uniform {evaluation.uniform_bits_per_code:.3f}, "
        f"unigram {evaluation.unigram_bits_per_code:.3f})"
    )
    return 0


def train_prior(
    prior: Prior,
    folder: RunDir,
    train_set: CodeSet,
    test_set: CodeSet,
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    write_config: bool = False,
) -> PriorEvaluation:
    """Fit ``prior`` in ``folder`` (``write_config``: start it afresh with its config.json)."""
    if write_config:
        folder.prepare(resume=False, force=True)
        write_json(folder.config_file, prior_config(prior, config, kind=_kind(prior)))
    optimizer = torch.optim.Adam(prior.parameters(), lr=config.lr)
    conditional = prior.config.num_classes > 0
    held_out = CodeSet(
        test_set.codes[: config.eval_limit],
        None if test_set.labels is None else test_set.labels[: config.eval_limit],
    )

    def step_fn(idx: torch.Tensor) -> StepOutput:
        prior.train()
        codes = train_set.codes[idx]
        labels = train_set.labels[idx] if conditional else None
        loss = F.cross_entropy(prior(codes, labels), codes)  # nats per code
        return StepOutput(loss, {"bits_per_code": loss.item() / math.log(2)})

    def evaluate(step: int) -> dict[str, Any]:
        return {"test_bits_per_code": bits_per_code(prior, held_out)}

    fit(
        prior,
        optimizer,
        config,
        num_examples=len(train_set.codes),
        step_fn=step_fn,
        run=folder,
        evaluate=evaluate,
        resume=resume,
        progress=progress,
        desc=f"prior {type(prior).__name__}",
    )
    write_safetensors(folder.weights_file, prior.state_dict())
    k = prior.config.num_codes
    result = PriorEvaluation(
        test_bits_per_code=bits_per_code(prior, test_set),
        uniform_bits_per_code=math.log2(k),
        unigram_bits_per_code=unigram_bits(train_set.codes, test_set.codes, k),
    )
    write_json(folder.path / "metrics.json", result.__dict__)
    return result


def load_prior(run: RunDir) -> Prior:
    folder = run.path / "prior"
    if not (folder / "model.safetensors").is_file():
        raise RunError(f"{run.path}: no trained prior; run `vqvae prior train {run.path}` first")
    meta = RunDir(folder).read_config()
    for cls, _ in PRIORS.values():
        if meta.get("class") == cls.__name__:
            prior = cls.from_pretrained(folder)
            prior.eval()
            return prior
    raise RunError(f"{folder}/config.json: unknown prior class {meta.get('class')!r}")


def sample_command(args: Any) -> int:
    run = RunDir(args.run)
    out = Path(args.out)
    refuse_overwrite(out, args.force)
    model = load_run_model(run)
    prior = load_prior(run)
    labels = None if args.label is None else torch.full((args.n,), args.label, dtype=torch.long)
    images, codes = sample_images(
        model,
        prior,
        labels,
        n=args.n,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
    )
    write_samples(out, images, codes, labels)
    print(f"wrote {args.n} samples to {out}/grid.png and {out}/samples.npz")
    return 0


def sample_images(
    model: VQVAE,
    prior: Prior,
    labels: torch.Tensor | None,
    *,
    n: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, torch.Tensor]:
    """Stage 3: draw code grids from the prior and decode them -> uint8 (N, H, W, C), codes."""
    n = len(labels) if labels is not None else n
    generator = torch.Generator().manual_seed(seed)
    codes = prior.sample(n, labels, temperature=temperature, top_k=top_k, generator=generator)
    with torch.no_grad():
        images = to_uint8_images(model.decode_codes(codes))
    return images, codes


def write_samples(
    out: Path,
    images: np.ndarray,
    codes: torch.Tensor,
    labels: torch.Tensor | None,
    nrow: int | None = None,
) -> None:
    """``grid.png`` and ``samples.npz`` (images, codes, labels; -1 where unconditional)."""
    out.mkdir(parents=True, exist_ok=True)
    save_png_grid(images, out / "grid.png", nrow=nrow, scale=max(1, 64 // images.shape[1]))
    write_npz(
        out / "samples.npz",
        images=images,
        codes=codes.numpy(),
        labels=(labels.numpy() if labels is not None else np.full(len(images), -1)),
    )

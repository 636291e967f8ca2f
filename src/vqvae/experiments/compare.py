"""``vqvae compare``: the paper's Table 1 (bits/dim of VAE, VQ-VAE and VIMCO) on any data.

van den Oord et al. 2017 (arXiv:1711.00937), section 4.1: on CIFAR-10 the continuous VAE
reaches 4.51 bits/dim, the VQ-VAE 4.67 and VIMCO with independent categorical latents 5.14,
"all with the same encoder and decoder". Here the three are trained with one NetConfig, one
discrete likelihood (softmax256 by default), one batch size and one number of steps, each
with the shared ``fit`` loop in its own sub-folder of the output folder (checkpoints, exact
resume); a small PixelCNN prior gives the VQ-VAE's second figure. Results go to
``results.json`` and ``table.md``; the estimators are in ``vqvae.bits`` and the definitions
in docs/bits-per-dim.md.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from vqvae import bits
from vqvae._io import atomic_write, write_json
from vqvae.config import TrainConfig
from vqvae.console import say
from vqvae.data import ImageDataset, check_images, load_images, split_layout, to_model_input
from vqvae.errors import RunError
from vqvae.inference import encode
from vqvae.models import VQVAE, QuantizerConfig, VAEConfig, VIMCOConfig, VQVAEConfig
from vqvae.nets import NetConfig
from vqvae.pretrained import config_to_dict, write_weights
from vqvae.priors import PixelCNNConfig, PixelCNNPrior
from vqvae.registry import MODELS
from vqvae.runs import RunDir, run_config
from vqvae.train.loop import StepOutput, fit
from vqvae.train.prior import CodeSet, train_prior

MODEL_CLASSES = {"vae": "VAE", "vqvae": "VQVAE", "vimco": "VIMCO"}  # names in MODELS
MODEL_NAMES = tuple(MODEL_CLASSES)
PAPER_CIFAR10 = {"vae": 4.51, "vqvae": 4.67, "vimco": 5.14}  # Table 1, bits/dim
TITLES = {"vae": "VAE", "vqvae": "VQ-VAE", "vimco": "VIMCO"}


@dataclass(frozen=True)
class CompareConfig:
    """One budget for all three models. The defaults finish on MNIST in about a quarter of an
    hour on a 2-core CPU (docs/bits-per-dim.md); the paper's networks are wider and train
    longer. ``net``, ``quantizer`` and ``train`` are the sections a run's config has."""

    models: tuple[str, ...] = MODEL_NAMES
    likelihood: str = "softmax256"
    # the paper: 256 hidden units; num_downsamples is chosen from the images' size
    net: NetConfig = field(
        default_factory=lambda: NetConfig(hidden_channels=64, residual_channels=32)
    )
    # the VQ-VAE's codebook; VIMCO takes K categories and a D-dimensional embedding from it
    quantizer: QuantizerConfig = field(default_factory=lambda: QuantizerConfig(kind="ema"))
    # per model; Adam lr 1e-3 (the paper's 2e-4 is for 250k steps)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=500, batch_size=32, lr=1e-3)
    )
    latent_dim: int = 64  # the VAE's Gaussian channels per grid position
    num_samples: int = 4  # VIMCO's k in training and in its bound; the paper: 50
    iwae_samples: int = 16  # k of the VAE's importance-weighted bound
    eval_limit: int = 500  # test images scored (the first ones of the test split)
    prior_steps: int = 500  # PixelCNN prior over the VQ-VAE's codes; 0 = no prior

    def __post_init__(self) -> None:
        unknown = sorted(set(self.models) - set(MODEL_NAMES))
        if unknown or not self.models:
            raise ValueError(f"expected models among {', '.join(MODEL_NAMES)}, got {self.models}")
        for name in ("eval_limit", "num_samples", "iwae_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"expected {name} >= 1, got {getattr(self, name)}")
        if self.likelihood not in ("softmax256", "logistic_mixture"):
            raise ValueError(
                f"expected a discrete likelihood (softmax256, logistic_mixture), "
                f"got {self.likelihood!r}"
            )
        if self.prior_steps < 0:
            raise ValueError(f"expected prior_steps >= 0, got {self.prior_steps}")


@dataclass(frozen=True)
class CompareResult:
    results: dict[str, dict[str, float]]  # model -> {"bits_per_dim": ..., other estimates}
    table: str  # table.md's text


def net_for(image_size: tuple[int, int], config: CompareConfig) -> NetConfig:
    """x4 downsampling (the paper's) where the images allow it, x2 for tiny ones (8x8)."""
    h, w = image_size
    downsamples = 2 if min(h, w) >= 16 and h % 4 == 0 and w % 4 == 0 else 1
    return replace(config.net, num_downsamples=downsamples)


def model_config(name: str, data: ImageDataset, config: CompareConfig) -> Any:
    """The config of model ``name`` with the shared networks, likelihood and code sizes."""
    shared = {
        "in_channels": data.num_channels,
        "input_size": data.image_size,
        "net": net_for(data.image_size, config),
        "likelihood": config.likelihood,
    }
    q = config.quantizer
    if name == "vae":
        return VAEConfig(**shared, latent_dim=config.latent_dim)
    if name == "vqvae":
        return VQVAEConfig(**shared, quantizer=q)
    return VIMCOConfig(
        **shared, num_codes=q.num_codes, code_dim=q.code_dim, num_samples=config.num_samples
    )


def build_model(name: str, data: ImageDataset, config: CompareConfig) -> torch.nn.Module:
    return MODELS.get(MODEL_CLASSES[name])(model_config(name, data, config))


def _step_logs(name: str, out: Any, dims: int) -> dict[str, float]:
    to_bits = 1.0 / (dims * math.log(2))
    if name == "vae":
        return {"recon_loss": out.recon_loss.item(), "kl": out.kl.item()}
    if name == "vqvae":
        return {"recon_loss": out.recon_loss.item(), "perplexity": out.perplexity.item()}
    return {"bound_bits_per_dim": -out.bound.item() * to_bits}


def train_one(
    name: str,
    run: RunDir,
    x_train: torch.Tensor,
    data: ImageDataset,
    config: CompareConfig,
    *,
    resume: bool,
    progress: bool,
) -> torch.nn.Module:
    """Train (or, on resume, finish or load) one model in its own run folder."""
    torch.manual_seed(config.train.seed)  # the same initial weights, fresh or resumed
    model = build_model(name, data, config)
    if resume and run.weights_file.is_file():
        return type(model).from_pretrained(run.path).eval()
    run.path.mkdir(parents=True, exist_ok=True)
    steps = config.train.steps
    train = replace(
        config.train,
        checkpoint_every=max(1, min(250, steps)),
        eval_every=steps,
        log_every=max(1, min(10, steps)),
    )
    write_json(
        run.config_file, run_config(type(model).__name__, model.config, train, data=data.name)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=train.lr)
    dims = x_train[0].numel()

    def step_fn(idx: torch.Tensor) -> StepOutput:
        model.train()
        out = model(x_train[idx])
        return StepOutput(out.loss, _step_logs(name, out, dims))

    fit(
        model,
        optimizer,
        train,
        num_examples=len(x_train),
        step_fn=step_fn,
        run=run,
        resume=resume,
        progress=progress,
        desc=f"compare {name}",
    )
    write_weights(run.weights_file, model.state_dict())
    return model.eval()


def fit_prior(
    model: VQVAE,
    folder: RunDir,
    train_data: ImageDataset,
    x_test: torch.Tensor,
    config: CompareConfig,
    *,
    resume: bool,
    progress: bool,
) -> PixelCNNPrior:
    """A small PixelCNN over the VQ-VAE's training codes (paper section 3.3)."""
    torch.manual_seed(config.train.seed)
    prior = PixelCNNPrior(PixelCNNConfig(num_codes=model.num_codes, shape=model.latent_shape))
    if resume and folder.weights_file.is_file():
        return PixelCNNPrior.from_pretrained(folder.path).eval()
    folder.path.mkdir(parents=True, exist_ok=True)
    train = TrainConfig(
        steps=config.prior_steps,
        batch_size=64,
        lr=1e-3,
        seed=config.train.seed,
        checkpoint_every=max(1, min(250, config.prior_steps)),
        eval_every=config.prior_steps,
        log_every=max(1, min(20, config.prior_steps)),
        eval_limit=len(x_test),
    )
    write_json(
        folder.config_file,
        run_config("PixelCNNPrior", prior.config, train, kind="pixelcnn"),
    )
    codes = torch.from_numpy(encode(model, train_data.images))
    with torch.no_grad():
        test_codes = torch.cat(
            [model.encode(x_test[i : i + 256]) for i in range(0, len(x_test), 256)]
        )
    train_prior(
        prior,
        folder,
        CodeSet(codes, None),
        CodeSet(test_codes, None),
        train,
        resume=resume,
        progress=progress,
    )
    return prior.eval()


def estimate(
    name: str, model: torch.nn.Module, x: torch.Tensor, config: CompareConfig, prior=None
) -> dict[str, float]:
    """Every bits/dim estimate of one model on the test images x; "bits_per_dim" is the main
    one: the VAE's negative ELBO, the VQ-VAE's uniform-prior bound (as in the paper), and
    VIMCO's k-sample bound."""
    generator = torch.Generator().manual_seed(config.train.seed + 1)  # never the training stream
    k = config.num_samples

    def score(fn: bits.Estimator) -> float:
        return round(bits.mean_bits_per_dim(fn, x), 5)

    if name == "vae":
        elbo = score(lambda b: bits.vae_negative_elbo(model, b, generator))
        iwae = score(lambda b: bits.vae_iwae(model, b, config.iwae_samples, generator))
        return {"bits_per_dim": elbo, "negative_elbo": elbo, f"iwae_k{config.iwae_samples}": iwae}
    if name == "vqvae":
        uniform = score(lambda b: bits.vqvae_uniform(model, b))
        out = {"bits_per_dim": uniform, "uniform_prior": uniform}
        if prior is not None:
            out["pixelcnn_prior"] = score(lambda b: bits.vqvae_with_prior(model, prior, b))
        return out
    bound = score(lambda b: bits.vimco_bound(model, b, k, generator))
    elbo = score(lambda b: bits.vimco_bound(model, b, 1, generator))
    return {"bits_per_dim": bound, f"bound_k{k}": bound, "negative_elbo": elbo}


def format_table(
    results: dict[str, dict[str, float]], data_name: str, config: CompareConfig
) -> str:
    """Markdown in the paper's layout: one row per model, the paper's CIFAR-10 figure beside
    ours, and our other estimates."""
    lines = [
        f"| Model | paper, CIFAR-10 (bits/dim) | ours, {data_name} (bits/dim) | other estimates |",
        "|---|---|---|---|",
    ]
    for name in MODEL_NAMES:
        if name not in results:
            continue
        r = results[name]
        others = ", ".join(f"{k} {v:.3f}" for k, v in r.items() if k != "bits_per_dim")
        lines.append(
            f"| {TITLES[name]} | {PAPER_CIFAR10[name]:.2f} | {r['bits_per_dim']:.3f} | {others} |"
        )
    lines += [
        "",
        f"Main estimate: VAE negative ELBO; VQ-VAE -log p(x|z_q) + h*w*log K (uniform prior); "
        f"VIMCO {config.num_samples}-sample bound. {config.train.steps} steps of "
        f"{config.train.batch_size} images per model, likelihood {config.likelihood}, hidden "
        f"{config.net.hidden_channels}, K={config.quantizer.num_codes}; the first "
        f"{config.eval_limit} test images.",
    ]
    return "\n".join(lines) + "\n"


def run_compare(
    spec: str,
    out: str | Path,
    config: CompareConfig,
    *,
    data_root: str | None = None,
    force: bool = False,
    resume: bool = False,
    progress: bool = True,
    say: Callable[[str], None] = say,
) -> CompareResult:
    root = RunDir(out)
    if root.path.exists() and not root.path.is_dir():
        raise RunError(f"{root.path}: exists and is not a folder")
    check_images(spec)  # audio is refused before the output folder is made
    if resume:
        if not root.config_file.is_file():
            raise RunError(f"{root.path}: nothing to resume (no config.json)")
        saved = json.loads(root.config_file.read_text())
        if saved.get("compare") != json.loads(json.dumps(config_to_dict(config))):
            raise RunError(f"{root.path}: --resume with different options than the first run")
    else:
        root.prepare(resume=False, force=force)
    train_data = load_images(spec, "train", data_root)
    test_data = load_images(spec, split_layout(spec).held_out, data_root)  # test, else val
    write_json(root.config_file, {"compare": config_to_dict(config), "data": spec})
    x_train = to_model_input(train_data.images)  # (N, C, H, W) in [-1, 1]
    x_test = to_model_input(test_data.images[: config.eval_limit])
    say(
        f"vqvae: comparing {', '.join(config.models)} on {train_data.name} "
        f"({len(x_train)} train, {len(x_test)} test images)"
    )
    results: dict[str, dict[str, float]] = {}
    for name in config.models:
        t0 = time.perf_counter()
        run = RunDir(root.path / name)
        model = train_one(name, run, x_train, train_data, config, resume=resume, progress=progress)
        prior = None
        if name == "vqvae" and config.prior_steps:
            prior = fit_prior(
                model,
                RunDir(run.path / "prior"),
                train_data,
                x_test,
                config,
                resume=resume,
                progress=progress,
            )
        results[name] = estimate(name, model, x_test, config, prior)
        seconds = round(time.perf_counter() - t0, 1)
        run.log({"step": config.train.steps, "split": "test", **results[name], "seconds": seconds})
        say(f"vqvae: {name}: {results[name]} ({seconds} s)")
    table = format_table(results, train_data.name, config)
    write_json(root.path / "results.json", results)
    atomic_write(root.path / "table.md", lambda tmp: Path(tmp).write_text(table))
    return CompareResult(results, table)

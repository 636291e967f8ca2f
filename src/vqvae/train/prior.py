"""Fitting a prior to a VQ-VAE's codes: the second stage of the system (paper section 3.3).

The codes of the training data are fixed integers; the prior is fitted to them by
cross-entropy with the shared ``fit`` loop, and scored on held-out codes in bits per code
beside two references: the uniform code (log2 K) and the training codes' unigram.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from vqvae._io import write_json
from vqvae.config import TrainConfig
from vqvae.pretrained import write_weights
from vqvae.priors import Condition, Prior
from vqvae.runs import RunDir, prior_kind, run_config
from vqvae.torch_utils import eval_mode
from vqvae.train.loop import StepOutput, fit

# Defaults that reach the quality bar on MNIST's 7x7 grids in minutes on a 2-core CPU.
_PIXELCNN_TRAIN = TrainConfig(
    steps=3000, batch_size=64, lr=1e-3, checkpoint_every=500, eval_every=1000, log_every=20,
    eval_limit=2000,
)  # fmt: skip
PRIOR_TRAIN = {
    "pixelcnn": _PIXELCNN_TRAIN,
    "transformer": replace(_PIXELCNN_TRAIN, lr=5e-4),  # attention wants a gentler step
    "maskgit": replace(_PIXELCNN_TRAIN, lr=5e-4),  # the Transformer's network and step
}
# Speech: 2,700 FSDD sequences of 125 codes, each step 32 of them; about 15 minutes on 2 cores.
PRIOR_TRAIN_SPEECH = replace(PRIOR_TRAIN["transformer"], steps=1500, batch_size=32, eval_every=500)


@dataclass(frozen=True)
class CodeSet:
    """Code grids and what they are conditioned on, as tensors of one length N."""

    codes: torch.Tensor  # (N, *shape) int64
    labels: torch.Tensor | None = None  # (N,) int64
    vectors: torch.Tensor | None = None  # (N, cond_dim) float
    context: torch.Tensor | None = None  # (N, *context_shape) int64

    def __len__(self) -> int:
        return len(self.codes)

    def take(self, index: torch.Tensor | slice) -> CodeSet:
        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[index]

        return CodeSet(self.codes[index], pick(self.labels), pick(self.vectors), pick(self.context))

    def condition(self, prior: Prior) -> Condition:
        """What of this set ``prior`` is conditioned on (labels only if it takes them)."""
        c = prior.config
        return Condition(
            labels=self.labels if c.num_classes else None,
            vector=self.vectors if c.cond_dim else None,
            context=self.context if c.context_shape else None,
        )


@dataclass(frozen=True)
class PriorEvaluation:
    test_bits_per_code: float  # exact, or an upper bound where ``upper_bound``
    uniform_bits_per_code: float
    unigram_bits_per_code: float
    upper_bound: bool = False  # a prior without an exact likelihood (``Prior.nll``)
    # a masked-token prior's own loss on the test codes (bits per masked code); else None
    masked_bits_per_code: float | None = None

    def describe(self) -> str:
        """The test figure as the command line prints it, named for what it is."""
        what = "bits/code (order-agnostic upper bound)" if self.upper_bound else "bits/code"
        masked = (
            f", masked-token cross-entropy {self.masked_bits_per_code:.3f} bits/code"
            if self.masked_bits_per_code is not None
            else ""
        )
        return (
            f"test {self.test_bits_per_code:.3f} {what}{masked} "
            f"(uniform {self.uniform_bits_per_code:.3f}, unigram {self.unigram_bits_per_code:.3f})"
        )


def unigram_bits(train: torch.Tensor, test: torch.Tensor, num_codes: int) -> float:
    """Cross-entropy (bits per code) of test codes under the train codes' add-one unigram."""
    counts = torch.bincount(train.reshape(-1), minlength=num_codes).double() + 1.0
    logp = torch.log2(counts / counts.sum())
    return float(-logp[test.reshape(-1)].mean())


@torch.no_grad()
def bits_per_code(prior: Prior, data: CodeSet, batch_size: int = 256, seed: int = 0) -> float:
    """The prior's mean negative log-likelihood of ``data`` (``Prior.nll``: exact, or an
    upper bound drawn with a generator seeded by ``seed``), in bits per code."""
    total = 0.0
    generator = torch.Generator().manual_seed(seed)
    with eval_mode(prior):
        for start in range(0, len(data), batch_size):
            batch = data.take(slice(start, start + batch_size))
            total += float(prior.nll(batch.codes, batch.condition(prior), generator).sum())
    return total / (data.codes.numel() * math.log(2))


@torch.no_grad()
def masked_bits_per_code(prior: Prior, data: CodeSet, batch_size: int = 256, seed: int = 0):
    """A masked-token prior's training loss on ``data`` in eval mode (no condition dropped),
    in bits per masked code, the masks drawn with a generator seeded by ``seed``."""
    total, count = 0.0, 0
    generator = torch.Generator().manual_seed(seed)
    with eval_mode(prior):
        for start in range(0, len(data), batch_size):
            batch = data.take(slice(start, start + batch_size))
            loss = prior.training_loss(batch.codes, batch.condition(prior), generator)
            total, count = total + float(loss) * len(batch), count + len(batch)
    return total / (count * math.log(2))


def fit_and_save(
    prior: torch.nn.Module,
    folder: RunDir,
    config: TrainConfig,
    num_examples: int,
    step_fn: Callable[[torch.Tensor], StepOutput],
    evaluate: Callable[[int], dict[str, Any]],
    *,
    resume: bool,
    progress: bool,
    desc: str,
) -> None:
    """Adam on every parameter through the shared ``fit`` loop, then the weights in
    ``folder``: what fitting any prior to fixed codes comes to."""
    optimizer = torch.optim.Adam(prior.parameters(), lr=config.lr)
    fit(
        prior,
        optimizer,
        config,
        num_examples=num_examples,
        step_fn=step_fn,
        run=folder,
        evaluate=evaluate,
        resume=resume,
        progress=progress,
        desc=desc,
    )
    write_weights(folder.weights_file, prior.state_dict())


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
        kind = prior_kind({"class": type(prior).__name__})
        write_json(
            folder.config_file, run_config(type(prior).__name__, prior.config, config, kind=kind)
        )
    held_out = test_set.take(slice(0, config.eval_limit))

    def step_fn(idx: torch.Tensor) -> StepOutput:
        prior.train()
        batch = train_set.take(idx)
        loss = prior.training_loss(batch.codes, batch.condition(prior))
        return StepOutput(loss, {"bits_per_code": loss.item() / math.log(2)})  # nats -> bits

    def evaluate(step: int) -> dict[str, Any]:
        figures = {"test_bits_per_code": bits_per_code(prior, held_out)}
        if not prior.exact_likelihood:
            figures["test_masked_bits_per_code"] = masked_bits_per_code(prior, held_out)
        return figures

    fit_and_save(
        prior, folder, config, len(train_set), step_fn, evaluate,
        resume=resume, progress=progress, desc=f"prior {type(prior).__name__}",
    )  # fmt: skip
    k = prior.config.num_codes
    result = PriorEvaluation(
        test_bits_per_code=bits_per_code(prior, test_set),
        uniform_bits_per_code=math.log2(k),
        unigram_bits_per_code=unigram_bits(train_set.codes, test_set.codes, k),
        upper_bound=not prior.exact_likelihood,
        masked_bits_per_code=None
        if prior.exact_likelihood
        else masked_bits_per_code(prior, test_set),
    )
    write_json(folder.path / "metrics.json", asdict(result))
    return result

"""One registry for every kind: what `vqvae list` prints, and a quantizer and a prior
registered from outside the package that train through the public API (docs/extending.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vqvae import PRIORS, QUANTIZERS, Prior, PriorConfig, QuantizerOutput, VQVAEConfig
from vqvae.cli import main
from vqvae.config import TrainConfig, apply_overrides
from vqvae.data import ImageDataset
from vqvae.metrics import perplexity
from vqvae.nets import NetConfig
from vqvae.priors import build_prior
from vqvae.quantizers import QuantizerConfig
from vqvae.registry import Registry
from vqvae.runs import RunDir, load_run_model
from vqvae.train.prior import CodeSet, train_prior
from vqvae.train.vqvae import train_vqvae


class FixedCodebookQuantizer(nn.Module):
    """A toy kind: the nearest of K fixed random vectors, with a straight-through gradient."""

    def __init__(self, num_codes: int, code_dim: int, beta: float) -> None:
        super().__init__()
        self.num_codes, self.code_dim, self.beta = num_codes, code_dim, beta
        self.register_buffer("codebook", torch.randn(num_codes, code_dim))

    @classmethod
    def from_config(cls, config: QuantizerConfig) -> FixedCodebookQuantizer:
        return cls(config.num_codes, config.code_dim, config.beta)

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        flat = z_e.movedim(1, -1).reshape(-1, self.code_dim)  # (B, D, *S) -> (N, D)
        codes = torch.cdist(flat, self.codebook).argmin(1)
        e = self.codebook[codes]
        commitment = F.mse_loss(flat, e)
        z_q = (e + (flat - flat.detach())).reshape(*z_e.movedim(1, -1).shape).movedim(-1, 1)
        return QuantizerOutput(
            z_q=z_q,
            codes=codes.reshape(z_e.shape[0], *z_e.shape[2:]),
            loss=self.beta * commitment,
            perplexity=perplexity(torch.bincount(codes, minlength=self.num_codes)),
            commitment_loss=commitment,
            codebook_loss=torch.zeros(()),
        )

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        return self.codebook[codes].movedim(-1, 1)


@dataclass(frozen=True)
class UnigramConfig(PriorConfig):
    pass


class UnigramPrior(Prior):
    """A toy kind: every code drawn from one learned distribution, whatever came before."""

    config_class = UnigramConfig

    def __init__(self, config: UnigramConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.logits = nn.Parameter(torch.zeros(self.config.num_codes))

    def _logits(self, codes, cond):
        shape = (1, -1, *[1] * (codes.dim() - 1))
        return self.logits.view(shape).expand(len(codes), -1, *codes.shape[1:])

    def sample(self, n, cond=None, temperature=1.0, top_k=None, generator=None):
        return self._run_sampler(self._sample_naive, n, cond, temperature, top_k, generator)


@pytest.fixture
def toy_kinds():
    QUANTIZERS.register("fixed", FixedCodebookQuantizer)
    PRIORS.register("unigram", UnigramPrior)
    yield
    QUANTIZERS.unregister("fixed")
    PRIORS.unregister("unigram")


def _tiny_images(n: int, seed: int) -> ImageDataset:
    rng = np.random.default_rng(seed)
    return ImageDataset((rng.random((n, 8, 8, 1)) * 255).astype(np.uint8), None, "tiny")


def test_outside_kinds_train_through_the_public_api(toy_kinds, tmp_path, one_thread) -> None:
    model_config = VQVAEConfig(
        in_channels=1,
        input_size=(8, 8),
        net=NetConfig(hidden_channels=8, residual_channels=4, num_downsamples=1),
        quantizer=QuantizerConfig(kind="fixed", num_codes=6, code_dim=4),
    )
    train = TrainConfig(steps=3, batch_size=8, checkpoint_every=3, eval_every=3, log_every=1)
    run = RunDir(tmp_path / "run")
    result = train_vqvae(
        run, _tiny_images(32, 0), _tiny_images(8, 1), model_config, train, meta={}, progress=False
    )
    assert isinstance(result.model.quantizer, FixedCodebookQuantizer)
    losses = [r["loss"] for r in run.read_metrics() if r.get("split") == "train"]
    assert len(losses) == 3 and all(np.isfinite(losses))
    model = load_run_model(run)  # rebuilt from config.json through the registry
    codes = model.encode(torch.zeros(2, 1, 8, 8))
    assert codes.shape == (2, 4, 4) and int(codes.max()) < 6

    prior = build_prior("unigram", num_codes=6, shape=(4, 4))
    data = CodeSet(torch.full((40, 4, 4), 2, dtype=torch.long))
    ev = train_prior(prior, run.prior, data, data, train, write_config=True, progress=False)
    # three Adam steps towards code 2: its probability rose from 1/6, so fewer bits per code
    assert ev.test_bits_per_code < np.log2(6)
    assert int(prior.logits.argmax()) == 2
    sample = prior.sample(3, generator=torch.Generator().manual_seed(0))
    assert sample.shape == (3, 4, 4)


def test_outside_kind_is_a_valid_set_value_and_listed(toy_kinds, capsys) -> None:
    model, _ = apply_overrides(VQVAEConfig(), TrainConfig(), ["quantizer.kind=fixed"])
    assert model.quantizer.kind == "fixed"
    with pytest.raises(ValueError, match=r"unknown quantizer kind 'nope'; expected one of \["):
        apply_overrides(VQVAEConfig(), TrainConfig(), ["quantizer.kind=nope"])
    assert main(["list", "quantizers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == QUANTIZERS.names()
    assert any(line.startswith("fixed ") and "toy kind" in line for line in lines)
    assert main(["list", "priors"]) == 0
    assert "unigram" in capsys.readouterr().out


def test_list_shows_every_registry(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for heading in ("presets:", "datasets:", "quantizers:", "priors:", "nets:", "likelihoods:"):
        assert heading in out
    for name in ("mnist", "cifar10", "pixelcnn", "transformer", "conv1d", "conv3d", "ema"):
        assert f"  {name} " in out


def test_registry_refuses_a_second_object_under_one_name() -> None:
    reg: Registry[object] = Registry("thing")
    reg.register("a", 1)
    reg.register("a", 1)  # the same object again is harmless (a module imported twice)
    with pytest.raises(ValueError, match="thing 'a' is registered already"):
        reg.register("a", 2)
    assert list(reg) == ["a"] and "a" in reg and reg.entry("a").obj == 1


def test_a_retired_kind_is_refused_with_its_reason_and_is_no_longer_listed() -> None:
    reg: Registry[object] = Registry("thing")
    reg.register("a", 1)
    reg.register("b", 2)
    reg.retire("a", "it measured no gain; commit abc1234 has it")
    assert list(reg) == ["b"] and "a" not in reg
    with pytest.raises(ValueError, match=r"^thing 'a' was removed: it measured no gain; commit"):
        reg.get("a")
    with pytest.raises(ValueError, match=r"^unknown thing 'c'; expected one of \['b'\]"):
        reg.get("c")
    reg.register("a", 3)  # a kind may come back under its old name
    assert reg.get("a") == 3


def test_the_removed_net_kind_is_refused_by_the_config_and_the_command_line(
    tmp_path, capsys
) -> None:
    with pytest.raises(ValueError, match="network kind 'conv1d-norm' was removed"):
        NetConfig(kind="conv1d-norm")
    out = tmp_path / "run"
    assert (
        main(["train", "--data", "digits", "--set", "net.kind=conv1d-norm", "--out", str(out)]) == 2
    )
    assert "'conv1d-norm' was removed" in capsys.readouterr().err
    assert not out.exists()

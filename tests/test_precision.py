"""Mixed precision (vqvae.train.precision): the networks under autocast, and everything past
them in float32 by one rule (docs/design-notes.md, "Precision"), checked here for every
quantizer kind, likelihood and prior; float16's loss scaler skips an overflowed step and is
in every checkpoint."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, one_error_line
from test_accumulate import IMAGES, tiny_model
from vqvae.cli import main
from vqvae.config import TrainConfig
from vqvae.likelihoods import get_likelihood
from vqvae.priors import build_prior
from vqvae.quantizers import QuantizerConfig
from vqvae.registry import LIKELIHOODS, PRIORS, QUANTIZERS
from vqvae.runs import RunDir
from vqvae.train.checkpoint import list_checkpoints
from vqvae.train.loop import StepOutput, fit
from vqvae.train.vqvae import vqvae_step

pytestmark = pytest.mark.usefixtures("one_thread")

BF16 = torch.autocast("cpu", dtype=torch.bfloat16)
KINDS = [(k, 1) for k in QUANTIZERS.names()] + [("ema", 2), ("vq", 2)]  # + residual VQ


def _quantizer(kind: str, levels: int) -> torch.nn.Module:
    config = QuantizerConfig(kind=kind, num_codes=16, code_dim=8, num_quantizers=levels)
    return config.build().train()


@pytest.mark.parametrize("kind, levels", KINDS)
def test_every_quantizer_computes_in_float32_under_autocast(kind, levels):
    """Given the half-precision z_e a network makes under autocast, a quantizer picks the
    codes and computes the losses it would from that z_e in float32 without autocast, and
    its codebook, EMA statistics and counters stay float32 through training calls."""
    z_e = torch.randn(4, 8, 3, 3, generator=torch.Generator().manual_seed(1)).bfloat16()
    half, full = _quantizer(kind, levels), None
    full = copy.deepcopy(half)
    for call in range(3):
        torch.manual_seed(call)  # the same k-means and restart draws for both
        with BF16:
            a = half(z_e)
        torch.manual_seed(call)
        b = full(z_e.float())
        assert torch.equal(a.codes, b.codes), f"call {call}"
        for name in ("loss", "commitment_loss", "codebook_loss", "perplexity"):
            got = getattr(a, name)
            assert got.dtype == torch.float32, name
            assert torch.equal(got, getattr(b, name)), name
        assert a.z_q.dtype == torch.float32
    for name, t in [*half.named_parameters(), *half.named_buffers()]:
        if t.is_floating_point():
            assert t.dtype == torch.float32, name
            assert torch.equal(t, dict([*full.named_parameters(), *full.named_buffers()])[name])


@pytest.mark.parametrize("name", LIKELIHOODS.names())
def test_every_likelihood_scores_in_float32_under_autocast(name):
    likelihood = get_likelihood(name)
    g = torch.Generator().manual_seed(0)
    params = torch.randn(2, likelihood.out_channels(3), 4, 4, generator=g).bfloat16()
    x = torch.randint(0, 256, (2, 3, 4, 4), generator=g).float() / 127.5 - 1
    with BF16:
        loss = likelihood.loss(params, x)
    assert loss.dtype == torch.float32
    assert torch.equal(loss, likelihood.loss(params.float(), x))
    if likelihood.discrete:
        with BF16:
            table = likelihood.log_prob_table(params, x)
        assert table.dtype == torch.float32
        assert torch.equal(table, likelihood.log_prob_table(params.float(), x))


@pytest.mark.parametrize("kind", PRIORS.names())
def test_every_prior_scores_in_float32_under_autocast(kind):
    fields = {"pixelcnn": {"channels": 8, "num_layers": 2, "head_channels": 8},
              "transformer": {"d_model": 16, "num_layers": 1, "num_heads": 2}}  # fmt: skip
    prior = build_prior(kind, num_codes=7, shape=(3, 3), **fields.get(kind, {}))
    codes = torch.randint(0, 7, (2, 3, 3), generator=torch.Generator().manual_seed(0))
    # the exact log-likelihood, or the masked-token prior's upper bound on -log p (one seeded
    # random order per grid, the same under autocast and without)
    score = (
        prior.log_prob
        if prior.exact_likelihood
        else (lambda c: -prior.nll(c, generator=torch.Generator().manual_seed(1)))
    )
    with BF16:
        logits = prior(codes)
        logp = score(codes)
        loss = torch.nn.functional.cross_entropy(logits, codes)  # the prior step's loss
    assert logits.dtype == torch.bfloat16  # the network did run in half precision
    assert logp.dtype == torch.float32 and loss.dtype == torch.float32
    torch.testing.assert_close(logp, score(codes), rtol=0.05, atol=0.1)


def _fit(model, folder, step_fn, resume=False, **train) -> None:
    run = RunDir(folder)
    run.path.mkdir(exist_ok=True)
    config = TrainConfig(batch_size=64, checkpoint_every=1, eval_every=100, log_every=1, **train)
    fetch = lambda idx: (torch.from_numpy(IMAGES[i.numpy()]) for i in idx)  # noqa: E731
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    fit(model, optimizer, config, num_examples=len(IMAGES), step_fn=step_fn, fetch=fetch,
        run=run, progress=False, resume=resume)  # fmt: skip


@pytest.mark.parametrize("kind", ["ema", "vq"])
def test_bf16_training_keeps_codebooks_and_statistics_float32(tmp_path, kind):
    model = tiny_model(kind)
    _fit(model, tmp_path, vqvae_step(model, model, torch.device("cpu")), steps=5,
         precision="bf16")  # fmt: skip
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_floating_point():
            assert t.dtype == torch.float32, name
            assert torch.isfinite(t).all(), name
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["loss"] < metrics[0]["loss"]


def test_float16_overflow_skips_the_step_and_lowers_the_scale(tmp_path):
    """An infinite gradient in step 2 (as float16 overflowing would make): the scaler
    leaves the weights as step 1 left them and halves the scale; step 3 trains again."""
    model = tiny_model()
    inner = vqvae_step(model, model, torch.device("cpu"))
    weight = model.decoder.net[0].weight if hasattr(model.decoder, "net") else None
    weight = next(model.decoder.parameters()) if weight is None else weight
    calls, before_2 = [], {}
    weight.register_hook(lambda g: g * float("inf") if len(calls) == 2 else g)

    def step_fn(batch):
        calls.append(1)
        if len(calls) == 2:  # the weights step 1 left
            before_2.update({n: p.detach().clone() for n, p in model.named_parameters()})
        return inner(batch)

    _fit(model, tmp_path, step_fn, steps=3, precision="16")
    found = {c.step: c.path for c in list_checkpoints(tmp_path / "checkpoints")}
    assert sorted(found) == [2, 3]  # KEEP = 2
    after_2 = load_file(found[2] / "model.safetensors")
    after_3 = load_file(found[3] / "model.safetensors")
    for n, p in before_2.items():
        assert torch.equal(after_2[n], p), f"{n} moved in the overflowed step"
    assert any(not torch.equal(after_2[n], after_3[n]) for n in before_2)  # step 3 updated
    scales = [
        torch.load(found[s] / "state.pt", weights_only=True)["scaler"]["scale"] for s in (2, 3)
    ]
    assert scales == [2.0**15, 2.0**15]  # 2**16 halved once, by the overflow of step 2
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = [m["loss_scale"] for m in metrics if m["split"] == "train"]
    assert logged == [2.0**16, 2.0**15, 2.0**15]


def test_a_half_precision_loss_is_refused(tmp_path):
    model = tiny_model()

    def step_fn(batch):
        return StepOutput(model.encoder(batch.float().movedim(-1, 1)).mean().bfloat16())

    with pytest.raises(TypeError, match="float32"):
        _fit(model, tmp_path, step_fn, steps=1)


def test_float16_trains_the_digits_and_resumes_with_its_scale(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--data", "digits", "--out", str(run), *TINY, "--batch-size", "32",
            "--checkpoint-every", "5", "--no-progress", "--no-report"]  # fmt: skip
    assert main([*args, "--steps", "5", "--precision", "16"]) == 0
    capsys.readouterr()
    assert main([*args, "--steps", "10", "--resume", "--precision", "bf16"]) == 2
    line = one_error_line(capsys)
    assert "train.precision: 16 in the run, bf16 asked" in line
    assert main([*args, "--steps", "10", "--resume"]) == 0  # keeps 16
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["precision"] == "16" and saved["threads"] >= 1
    state = torch.load(run / "checkpoints/step-0000010/state.pt", weights_only=True)
    assert state["scaler"]["_growth_tracker"] == 10  # counted on across the resume


@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_resume_is_bit_exact_under_each_precision(tmp_path, precision):
    straight, stopped = tiny_model(), tiny_model()
    step = vqvae_step(straight, straight, torch.device("cpu"))
    _fit(straight, tmp_path / "straight", step, steps=4, precision=precision)
    step = vqvae_step(stopped, stopped, torch.device("cpu"))
    _fit(stopped, tmp_path / "stopped", step, steps=2, precision=precision)
    resumed = tiny_model()
    step = vqvae_step(resumed, resumed, torch.device("cpu"))
    _fit(resumed, tmp_path / "stopped", step, steps=4, precision=precision, resume=True)
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k

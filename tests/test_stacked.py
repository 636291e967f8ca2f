"""The stacked VQ-VAE (paper section 4.2, end): 3 codes of K=512 per frame over a first
stage's code grids, a PixelCNN decoder; `vqvae stack train|eval` and the report's section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from conftest import TINY, one_error_line
from vqvae.cli import main
from vqvae.models import StackedVQVAE, StackedVQVAEConfig
from vqvae.priors import Condition
from vqvae.quantizers import QuantizerConfig
from vqvae.registry import MODELS

pytestmark = pytest.mark.usefixtures("one_thread")

# `--set` pairs of a second stage that trains in a second (K=512 as the paper's).
TINY_STACK = [
    "--set", "pixelcnn_layers=2", "--set", "pixelcnn_channels=8",
    "--set", "pixelcnn_head_channels=16", "--set", "hidden_channels=8",
    "--set", "embed_dim=8", "--set", "quantizer.code_dim=4",
]  # fmt: skip
STACK_ARGS = [*TINY_STACK, "--batch-size", "8", "--no-progress"]


def tiny_model(seed: int = 0) -> StackedVQVAE:
    torch.manual_seed(seed)
    config = StackedVQVAEConfig(
        grid_codes=16,
        grid_shape=(8, 8),
        embed_dim=8,
        hidden_channels=8,
        quantizer=QuantizerConfig(kind="ema", num_codes=512, code_dim=4),
        pixelcnn_channels=8,
        pixelcnn_layers=2,
        pixelcnn_head_channels=16,
    )
    return StackedVQVAE(config)


def grids(n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 16, (n, 8, 8), generator=torch.Generator().manual_seed(seed))


def test_forward_gives_exactly_three_codes_of_their_own_codebooks():
    model = tiny_model()
    out = model(grids())
    assert out.codes.shape == (6, 3) and out.codes.dtype == torch.long
    assert int(out.codes.min()) >= 0 and int(out.codes.max()) < 512
    assert out.z_q.shape == out.z_e.shape == (6, 3, 4)
    assert out.logits.shape == (6, 16, 8, 8) and out.nll.shape == (6,)
    assert out.perplexity.shape == (3,)
    assert model.bits_per_frame == 27.0 and model.config.bits_per_frame == 27.0
    assert len(model.quantizers) == 3  # one codebook per latent, not shared
    assert model.quantizers[0].codebook.data_ptr() != model.quantizers[1].codebook.data_ptr()
    # each latent's z_q is its code's vector in its own codebook
    model.eval()
    out = model(grids())
    for i, q in enumerate(model.quantizers):
        assert torch.equal(out.z_q[:, i], q.codebook[out.codes[:, i]])
    assert torch.equal(model.encode(grids()), out.codes)
    assert out.bits_per_grid.item() == pytest.approx(out.nll.mean().item() / 0.6931471805599453)
    assert out.loss.item() == pytest.approx(out.nats_per_code.item() + out.vq_loss.item())


def test_nll_given_z_q_is_the_pixelcnns_log_prob_computed_independently():
    model = tiny_model().eval()
    g = grids()
    out = model(g)
    by_prior = -model.decoder.log_prob(g, Condition(vector=out.z_q.flatten(1)))
    by_codes = -model.log_prob(g, out.codes)  # the decoder without the encoder
    logp = F.log_softmax(out.logits.double(), dim=1)  # by hand: sum of -log p(c_i | ...)
    by_hand = -logp.gather(1, g[:, None]).squeeze(1).sum(dim=(1, 2))
    torch.testing.assert_close(out.nll, by_prior, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out.nll, by_codes, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out.nll.double(), by_hand, rtol=1e-5, atol=1e-4)
    assert out.nats_per_code.item() == pytest.approx(out.nll.mean().item() / 64, rel=1e-6)


def test_straight_through_gradient_reaches_the_encoder():
    model = tiny_model()
    out = model(grids())
    out.z_e.retain_grad()
    out.z_q.retain_grad()
    out.nll.sum().backward()  # the reconstruction term alone: no commitment gradient
    assert out.z_q.grad.abs().sum() > 0
    torch.testing.assert_close(out.z_e.grad, out.z_q.grad)  # d z_q / d z_e = identity
    assert model.encoder.to_latents.weight.grad.abs().sum() > 0
    assert model.encoder.embed.weight.grad.abs().sum() > 0


def test_decode_codes_is_reproducible_with_a_seeded_generator():
    model = tiny_model().eval()
    codes = model.encode(grids())

    def draw(seed: int) -> torch.Tensor:
        return model.decode_codes(codes, generator=torch.Generator().manual_seed(seed))

    a, b = draw(3), draw(3)
    assert a.shape == (6, 8, 8) and a.dtype == torch.long
    assert int(a.min()) >= 0 and int(a.max()) < 16
    assert torch.equal(a, b)
    assert not torch.equal(a, draw(4))
    with pytest.raises(ValueError, match="stacked codes"):
        model.decode_codes(torch.full((2, 3), 512))
    with pytest.raises(ValueError, match="stage-1 code grid"):
        model(torch.zeros(2, 4, 4, dtype=torch.long))


def test_save_and_load_rebuild_the_same_model(tmp_path):
    model = tiny_model().eval()
    model.save_pretrained(tmp_path)
    loaded = MODELS.get("StackedVQVAE").from_pretrained(tmp_path).eval()
    assert loaded.config == model.config
    assert torch.equal(loaded(grids()).nll, model(grids()).nll)


# -- the command line ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stage_one(toy_maze, tmp_path_factory) -> Path:
    """A tiny first stage on the toy maze: 16x16 frames -> 8x8 grids of K=16."""
    path = tmp_path_factory.mktemp("stack") / "run"
    argv = ["train", "--data", str(toy_maze), "--out", str(path), *TINY, "--steps", "6",
            "--batch-size", "8", "--no-progress", "--no-report"]  # fmt: skip
    assert main(argv) == 0
    return path


def test_train_then_eval_writes_the_run_figure_json_and_report(stage_one, tmp_path, capsys):
    argv = ["stack", "train", str(stage_one), "--steps", "4", "--force", *STACK_ARGS,
            "--set", "train.eval_every=2"]  # fmt: skip
    assert main(argv) == 0
    folder = stage_one / "stack"
    saved = json.loads((folder / "config.json").read_text())
    assert saved["class"] == "StackedVQVAE" and saved["data"].endswith("maze.npz")
    assert saved["config"]["grid_codes"] == 16 and saved["config"]["grid_shape"] == [8, 8]
    records = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "test"] == [2, 4]
    assert all("bits_per_grid" in r for r in records if r["split"] == "train")
    assert (folder / "model.safetensors").is_file()
    assert "27 bits per frame" in capsys.readouterr().out

    # with a first-stage prior, eval puts its NLL of the same grids beside the second stage's
    prior = ["prior", "train", str(stage_one), "--steps", "2", "--batch-size", "8", "--no-progress"]
    assert main([*prior, "--force"]) == 0
    out, summary = tmp_path / "eval", tmp_path / "eval.json"
    argv = ["stack", "eval", str(stage_one), "--samples", "2", "--frames", "3", "--out", str(out),
            "--json", str(summary)]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(summary.read_text())
    assert result["bits_per_frame"] == 27.0
    assert result["uniform_bits_per_grid"] == pytest.approx(64 * 4.0)  # 8x8 codes of K=16
    assert result["stage2_total_bits_per_grid"] == pytest.approx(
        27.0 + result["stage2_bits_per_grid"]
    )
    assert result["prior_bits_per_grid"] > 0
    for key in ("psnr_stage1", "psnr_27bit", "psnr_random"):
        assert result[key] > 0
    assert 0 <= result["same_codes_27bit"] <= 1 and len(result["code_usage"]) == 3
    from PIL import Image

    with Image.open(out / "stacked.png") as im:  # 3 rows of 1 + 1 + 2 frames of 16x16 x4
        assert im.size[0] > im.size[1] and im.size[1] >= 3 * 64
    assert "psnr_27bit" in capsys.readouterr().out
    # the same again refuses to overwrite; the default place is RUN/stack/eval/
    assert main(argv) != 0
    assert "already exists" in one_error_line(capsys)
    assert main(["stack", "eval", str(stage_one), "--samples", "1", "--frames", "2"]) == 0
    assert (folder / "eval" / "eval.json").is_file()
    assert main(["report", str(stage_one)]) == 0
    page = (stage_one / "report" / "index.html").read_text()
    assert "27 bits per frame" in page and 'src="stacked.png"' in page
    assert (stage_one / "report" / "stacked.png").is_file()


def test_resume_is_exact(stage_one, tmp_path):
    args = ["stack", "train", str(stage_one), *STACK_ARGS, "--set", "train.checkpoint_every=2"]
    assert main([*args, "--steps", "4", "--force"]) == 0
    whole = load_file(stage_one / "stack" / "model.safetensors")
    assert main([*args, "--steps", "2", "--force"]) == 0
    assert main([*args, "--steps", "4", "--resume"]) == 0
    resumed = load_file(stage_one / "stack" / "model.safetensors")
    assert whole.keys() == resumed.keys()
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), name
    steps = [json.loads(x)["step"] for x in (stage_one / "stack" / "metrics.jsonl").open()]
    assert steps == sorted(steps)  # the records after the checkpoint were not repeated


def test_bad_input_is_one_line(stage_one, tmp_path, speech_run, capsys):
    missing = tmp_path / "nothing"
    assert main(["stack", "train", str(missing), *STACK_ARGS]) != 0
    assert "no such run folder" in one_error_line(capsys)
    assert main(["stack", "train", str(speech_run), *STACK_ARGS]) != 0
    assert "needs a first-stage image VQ-VAE" in one_error_line(capsys)
    assert main(["stack", "eval", str(speech_run)]) != 0
    assert "needs a first-stage image VQ-VAE" in one_error_line(capsys)
    # an existing second stage is replaced only with --force
    assert main(["stack", "train", str(stage_one), "--steps", "1", "--force", *STACK_ARGS]) == 0
    capsys.readouterr()
    assert main(["stack", "train", str(stage_one), "--steps", "1", *STACK_ARGS]) != 0
    assert "already holds a stacked VQ-VAE" in one_error_line(capsys)
    # the first stage decides the grid; --set cannot change it
    argv = ["stack", "train", str(stage_one), "--force", *STACK_ARGS, "--set", "grid_codes=32"]
    assert main(argv) != 0
    assert "come from the first stage" in one_error_line(capsys)
    assert main(["stack", "train", str(stage_one), "--force", "--set", "nope=1"]) != 0
    assert "no such config key" in one_error_line(capsys)


def test_eval_without_a_second_stage_is_one_line(toy_maze, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", str(toy_maze), "--out", str(run), *TINY, "--steps", "1",
            "--batch-size", "8", "--no-progress", "--no-report"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["stack", "eval", str(run)]) != 0
    assert "no stacked VQ-VAE" in one_error_line(capsys)

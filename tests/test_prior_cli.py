"""`vqvae prior train` and `vqvae sample` (issue 4): files, references, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, one_error_line
from vqvae.cli import main
from vqvae.priors import PixelCNNPrior, TransformerPrior

pytestmark = pytest.mark.usefixtures("one_thread")

PRIOR_ARGS = ["--steps", "6", "--batch-size", "16", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny trained VQ-VAE on the bundled digits (4x4 grids of 16 codes)."""
    path = tmp_path_factory.mktemp("prior") / "run"
    argv = ["train", "--data", "digits", "--out", str(path), *TINY, "--steps", "8",
            "--batch-size", "32", "--no-progress", "--no-report"]  # fmt: skip
    assert main(argv) == 0
    return path


@pytest.mark.parametrize(
    "kind, cls", [("pixelcnn", PixelCNNPrior), ("transformer", TransformerPrior)]
)
def test_prior_train_writes_a_loadable_prior_and_references(run, kind, cls, capsys):
    argv = ["prior", "train", str(run), "--kind", kind, "--force", *PRIOR_ARGS]
    assert main(argv) == 0
    folder = run / "prior"
    prior = cls.from_pretrained(folder)
    assert prior.config.num_codes == 16 and prior.config.shape == (4, 4)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["uniform_bits_per_code"] == pytest.approx(4.0)  # log2 16
    assert 0 < metrics["unigram_bits_per_code"] <= 4.0 + 1e-9
    assert metrics["test_bits_per_code"] > 0
    assert "bits/code" in capsys.readouterr().out


def test_prior_train_refuses_an_existing_prior(run, capsys):
    assert main(["prior", "train", str(run), "--force", *PRIOR_ARGS]) == 0
    before = (run / "prior" / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["prior", "train", str(run), *PRIOR_ARGS]) != 0
    assert "already holds a prior" in one_error_line(capsys)
    assert (run / "prior" / "model.safetensors").read_bytes() == before


def test_prior_resume_ends_with_the_same_weights(run):
    common = ["prior", "train", str(run), "--batch-size", "16", "--no-progress"]
    assert main([*common, "--steps", "6", "--force"]) == 0
    straight = load_file(run / "prior" / "model.safetensors")
    # the same prior stopped after 3 steps (its last checkpoint), then resumed to 6
    assert main([*common, "--steps", "3", "--force"]) == 0
    assert main([*common, "--steps", "6", "--resume"]) == 0
    resumed = load_file(run / "prior" / "model.safetensors")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_prior_resume_with_another_config_is_refused(run, capsys):
    assert main(["prior", "train", str(run), "--force", *PRIOR_ARGS]) == 0
    capsys.readouterr()
    argv = ["prior", "train", str(run), "--resume", "--steps", "6", "--batch-size", "8",
            "--no-progress"]  # fmt: skip
    assert main(argv) != 0
    assert "does not match" in one_error_line(capsys)


def test_sample_writes_grid_and_npz(run, tmp_path):
    assert main(["prior", "train", str(run), "--force", *PRIOR_ARGS]) == 0
    out = tmp_path / "samples"
    assert main(["sample", str(run), "--n", "6", "--seed", "3", "--out", str(out)]) == 0
    assert (out / "grid.png").is_file()
    with np.load(out / "samples.npz") as f:
        assert f["images"].shape == (6, 8, 8, 1) and f["images"].dtype == np.uint8
        assert f["codes"].shape == (6, 4, 4) and f["codes"].max() < 16
        assert (f["labels"] == -1).all()
        first = f["codes"]
    again = tmp_path / "again"
    assert main(["sample", str(run), "--n", "6", "--seed", "3", "--out", str(again)]) == 0
    with np.load(again / "samples.npz") as f:
        assert np.array_equal(f["codes"], first)  # the seed fixes the samples


def test_class_conditional_labels_are_checked(run, tmp_path, capsys):
    argv = ["prior", "train", str(run), "--force", "--class-conditional", *PRIOR_ARGS]
    assert main(argv) == 0
    out = tmp_path / "s"
    assert main(["sample", str(run), "--n", "4", "--label", "7", "--out", str(out)]) == 0
    with np.load(out / "samples.npz") as f:
        assert (f["labels"] == 7).all()
    capsys.readouterr()
    assert main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "x")]) != 0
    assert "labels" in one_error_line(capsys)
    assert (
        main(["sample", str(run), "--n", "4", "--label", "10", "--out", str(tmp_path / "y")]) != 0
    )
    one_error_line(capsys)


def test_unconditional_prior_refuses_a_label(run, tmp_path, capsys):
    assert main(["prior", "train", str(run), "--force", *PRIOR_ARGS]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "--n", "2", "--label", "1", "--out", str(tmp_path / "z")]) != 0
    one_error_line(capsys)


def test_sample_without_a_prior_is_one_line(tmp_path, capsys):
    argv = ["train", "--data", "digits", "--out", str(tmp_path / "r"), *TINY, "--steps", "2",
            "--batch-size", "16", "--no-progress", "--no-report"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "r"), "--out", str(tmp_path / "o")]) != 0
    assert "no trained prior" in one_error_line(capsys)

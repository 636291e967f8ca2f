"""`vqvae prior train --kind maskgit`, `vqvae sample --steps`, `vqvae inpaint` on tiny digits
and speech runs (docs/maskgit.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, one_error_line
from vqvae.cli import main
from vqvae.priors import MaskGITPrior
from vqvae.runs import RunDir

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["--steps", "6", "--batch-size", "16", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny trained VQ-VAE on the bundled digits (8x8 images, 4x4 grids of 16 codes)
    with a class-conditional maskgit prior."""
    path = tmp_path_factory.mktemp("maskgit") / "run"
    argv = ["train", "--data", "digits", "--out", str(path), *TINY, "--steps", "8",
            "--batch-size", "32", "--no-progress", "--no-report"]  # fmt: skip
    assert main(argv) == 0
    argv = ["prior", "train", str(path), "--kind", "maskgit", "--class-conditional", *SMALL]
    assert main(argv) == 0
    return path


def test_prior_train_writes_a_maskgit_prior_with_its_bound(run, capsys):
    prior = MaskGITPrior.from_pretrained(run / "prior")
    assert prior.config.shape == (4, 4) and prior.config.num_classes == 10
    metrics = json.loads((run / "prior" / "metrics.json").read_text())
    assert metrics["upper_bound"] is True and metrics["test_bits_per_code"] > 0
    assert metrics["masked_bits_per_code"] > 0
    # a new prior: the line printed names the bound for what it is
    argv = ["prior", "train", str(run), "--kind", "maskgit", "--force", *SMALL]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "order-agnostic upper bound" in out and "masked-token cross-entropy" in out
    argv = ["prior", "train", str(run), "--kind", "maskgit", "--class-conditional", "--force"]
    assert main([*argv, *SMALL]) == 0


def test_sample_takes_steps_and_guidance(run, tmp_path):
    out = tmp_path / "s"
    argv = ["sample", str(run), "--n", "4", "--label", "3", "--steps", "3", "--guidance", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    with np.load(out / "samples.npz") as f:
        assert f["codes"].shape == (4, 4, 4) and (f["labels"] == 3).all()
    assert (out / "grid.png").is_file()


def test_inpaint_writes_the_png_and_keeps_the_codes_outside_the_box(run, tmp_path):
    out = tmp_path / "fill"
    argv = ["inpaint", str(run), "--data", "digits", "--index", "5", "--box", "4", "0", "8", "8",
            "--n", "3", "--steps", "4", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert (out / "inpaint.png").is_file()
    with np.load(out / "samples.npz") as f:
        mask, codes, original = f["mask"], f["codes"], f["original_codes"]
        # the lower half of an 8x8 image: the lower two rows of the 4x4 codes
        assert mask.shape == (4, 4) and mask[2:].all() and not mask[:2].any()
        assert codes.shape == (3, 4, 4) and f["images"].shape == (3, 8, 8, 1)
        assert (codes[:, ~mask] == original[:, ~mask]).all()
        # the example's own class conditions the completions
        from vqvae.data import load_dataset

        assert (f["labels"] == load_dataset("digits", "test").labels[5]).all()


def test_inpaint_refuses_bad_input_in_one_line(run, tmp_path, capsys):
    base = ["inpaint", str(run), "--data", "digits", "--out", str(tmp_path / "o")]
    cases = [
        (["--index", "0", "--box", "0", "0", "9", "8"], "box: expected"),
        (["--index", "0", "--box", "4", "0", "4", "8"], "box: expected"),
        (["--index", "100000", "--box", "0", "0", "4", "4"], "--index"),
        (["--index", "0", "--span", "0", "1"], "--box"),
        (["--index", "0", "--box", "0", "0", "4", "4", "--steps", "0"], "steps"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert main([*base, *extra]) == 2
        assert message in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_an_autoregressive_prior_is_refused_with_the_way_out(tmp_path, capsys):
    path = tmp_path / "ar"
    argv = ["train", "--data", "digits", "--out", str(path), *TINY, "--steps", "2",
            "--batch-size", "32", "--no-progress", "--no-report"]  # fmt: skip
    assert main(argv) == 0
    assert main(["prior", "train", str(path), "--kind", "transformer", *SMALL]) == 0
    capsys.readouterr()
    argv = ["inpaint", str(path), "--data", "digits", "--index", "0", "--box", "0", "0", "4", "4",
            "--out", str(tmp_path / "o")]  # fmt: skip
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert "transformer prior" in line and "--kind maskgit" in line
    assert main(["sample", str(path), "--steps", "8", "--out", str(tmp_path / "s")]) == 2
    line = one_error_line(capsys)
    assert "--steps" in line and "transformer" in line and "maskgit" in line
    assert not (tmp_path / "s").exists()


def test_speech_prior_inpaints_a_span_into_wavs(speech_run, speech_folder, tmp_path):
    run = str(speech_run)
    argv = ["prior", "train", run, "--data", str(speech_folder), "--kind", "maskgit",
            "--class-conditional", "--steps", "4", "--batch-size", "4",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    saved = RunDir(speech_run).prior.read_config()
    assert saved["kind"] == "maskgit" and saved["config"]["cond_dim"] == 2
    length = saved["config"]["shape"][0]
    out = tmp_path / "span"
    argv = ["inpaint", run, "--data", str(speech_folder), "--index", "1", "--span", "0.05",
            "0.1", "--n", "2", "--steps", "3", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert sorted(p.name for p in out.glob("*.wav")) == [
        "completion_0.wav",
        "completion_1.wav",
        "original.wav",
    ]
    with np.load(out / "samples.npz") as f:
        mask, codes, original = f["mask"], f["codes"], f["original_codes"]
        assert mask.shape == (length,) and 0 < mask.sum() < length
        assert (codes[:, ~mask] == original[:, ~mask]).all()
    out = tmp_path / "samples"
    argv = ["sample", run, "--label", "1", "--speaker", "bob", "--n", "2", "--steps", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    assert len(list(out.glob("*.wav"))) == 2

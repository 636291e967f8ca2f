"""``vqvae compare`` end to end on tiny data: three models, results.json, table.md."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vqvae.cli import main
from vqvae.config import TrainConfig
from vqvae.experiments.compare import PAPER_CIFAR10, CompareConfig, format_table, run_compare
from vqvae.nets import NetConfig
from vqvae.quantizers import QuantizerConfig


@pytest.fixture
def tiny_npz(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 8, 8), dtype=np.uint8)
    path = tmp_path / "tiny.npz"
    np.savez(path, images=images)
    return path


def test_compare_end_to_end(tiny_npz, tmp_path, capsys) -> None:
    out = tmp_path / "cmp"
    args = ["compare", "--data", str(tiny_npz), "--out", str(out), "--steps", "2"]
    args += ["--prior-steps", "2", "--eval-limit", "3", "--num-samples", "2", "--no-progress"]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"vae", "vqvae", "vimco"}
    for r in results.values():
        assert np.isfinite(r["bits_per_dim"]) and r["bits_per_dim"] > 0
    assert {"negative_elbo", "iwae_k16"} <= set(results["vae"])
    assert {"uniform_prior", "pixelcnn_prior"} <= set(results["vqvae"])
    assert {"bound_k2", "negative_elbo"} <= set(results["vimco"])
    table = (out / "table.md").read_text()
    for title, paper in (("VAE", 4.51), ("VQ-VAE", 4.67), ("VIMCO", 5.14)):
        assert f"| {title} | {paper:.2f} |" in table
    for name in ("vae", "vqvae", "vimco"):
        assert (out / name / "model.safetensors").is_file()
        assert (out / name / "checkpoints").is_dir()
    assert (out / "vqvae" / "prior" / "model.safetensors").is_file()
    assert "VQ-VAE" in capsys.readouterr().out

    # an existing folder is refused without --force, in one line
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    # --resume of a finished comparison loads the weights and scores them again
    assert main([*args, "--resume"]) == 0
    assert json.loads((out / "results.json").read_text())["vqvae"] == results["vqvae"]


def test_compare_subset_and_errors(tiny_npz, tmp_path, capsys) -> None:
    config = CompareConfig(
        models=("vqvae",),
        train=TrainConfig(steps=1, batch_size=32, lr=1e-3),
        prior_steps=0,
        eval_limit=2,
        net=NetConfig(hidden_channels=8, residual_channels=4),
        quantizer=QuantizerConfig(kind="ema", num_codes=8, code_dim=4),
        likelihood="logistic_mixture",
    )
    result = run_compare(str(tiny_npz), tmp_path / "one", config, progress=False, say=print)
    assert set(result.results) == {"vqvae"} and "pixelcnn_prior" not in result.results["vqvae"]
    with pytest.raises(ValueError, match="models among"):
        CompareConfig(models=("vae", "gan"))
    with pytest.raises(ValueError, match="discrete likelihood"):
        CompareConfig(likelihood="mse")
    assert (
        main(
            [
                "compare",
                "--data",
                str(tiny_npz),
                "--out",
                str(tmp_path / "x"),
                "--models",
                "vae,flow",
            ]
        )
        == 2
    )
    assert "models among" in capsys.readouterr().err


def test_table_layout() -> None:
    results = {name: {"bits_per_dim": 1.0 + i} for i, name in enumerate(PAPER_CIFAR10)}
    table = format_table(results, "mnist", CompareConfig())
    assert table.splitlines()[0].startswith("| Model | paper, CIFAR-10")
    assert "| VQ-VAE | 4.67 | 2.000 |" in table

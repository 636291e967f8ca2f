"""Every registered quantizer kind works with every model command and prior: ``--set
quantizer.kind=NAME`` alone trains, with defaults that give about the preset's number of
codes; a prior sees the quantizer's own ``num_codes``; residual levels work where they apply."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import TINY
from vqvae import QUANTIZERS, VQVAE, VQVAEConfig
from vqvae.cli import main
from vqvae.config import get_preset
from vqvae.quantizers import FiniteScalarQuantizer, QuantizerConfig, ResidualVQ

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_KIND = [a.replace("num_codes=16", "num_codes=64") for a in TINY]


def test_the_new_kinds_are_registered() -> None:
    assert {"vq", "ema", "fsq", "lfq", "cosine"} <= set(QUANTIZERS.names())


@pytest.mark.parametrize("kind", ["vq", "ema", "fsq", "lfq", "cosine"])
def test_set_kind_alone_gives_about_the_presets_codes(kind) -> None:
    base = get_preset("mnist")
    config = VQVAEConfig(
        **{
            **base.__dict__,
            "quantizer": QuantizerConfig(**{**base.quantizer.__dict__, "kind": kind}),
        }
    )
    model = VQVAE(config)
    assert model.num_codes == 4096  # fsq: the preset's 16x16x16 levels, lfq: 12 bits
    assert model.encode(torch.zeros(2, 1, 28, 28)).shape == (2, 7, 7)


@pytest.mark.parametrize("kind", ["fsq", "lfq", "cosine", "vq"])
def test_train_eval_prior_sample_with_each_kind(kind, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    argv = ["train", "--data", "digits", "--out", str(run), *TINY_KIND, "--set",
            f"quantizer.kind={kind}", "--steps", "4", "--batch-size", "32", "--no-progress",
            "--no-report"]  # fmt: skip
    assert main(argv) == 0
    assert main(["eval", str(run), "--data", "digits", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert np.isfinite(result["psnr"]) and 0 < result["code_usage"] <= 1
    prior = ["prior", "train", str(run), "--kind", "transformer", "--steps", "2", "--no-progress"]
    assert main(prior) == 0
    saved = json.loads((run / "prior" / "config.json").read_text())
    assert saved["config"]["num_codes"] == 64  # 4x4x4 levels, 6 bits, or K itself
    assert main(["sample", str(run), "--n", "2", "--out", str(tmp_path / "s")]) == 0
    with np.load(tmp_path / "s" / "samples.npz") as f:
        assert f["codes"].shape == (2, 4, 4) and int(f["codes"].max()) < 64


def test_rotation_trick_is_selectable_and_only_for_codebook_kinds() -> None:
    for kind in ("vq", "ema", "cosine"):
        q = QuantizerConfig(kind=kind, num_codes=8, code_dim=4, gradient="rotation").build()
        assert q.gradient == "rotation"
    with pytest.raises(ValueError, match="gradient"):
        QuantizerConfig(kind="vq", gradient="spin").build()


def test_residual_fsq_from_the_config_refines_with_finer_levels() -> None:
    # code_dim = number of levels: no projection, so the levels see the residuals themselves
    q = QuantizerConfig(kind="fsq", code_dim=3, levels=(5, 5, 5), num_quantizers=3).build()
    assert isinstance(q, ResidualVQ) and all(
        isinstance(lv, FiniteScalarQuantizer) for lv in q.levels
    )
    torch.manual_seed(0)
    z = torch.randn(64, 3, 5) * 0.5
    errors = [float((q(z, num_levels=n).z_q - z).pow(2).mean()) for n in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2]  # every level takes away some of the residual

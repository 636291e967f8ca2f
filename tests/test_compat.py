"""Runs written by release 0.1 (tests/fixtures/v0.1, written by the code of that release
before the package was reorganised) still load, evaluate, sample and resume today.

What is compared how. The fixture's expectations were computed on one CPU; another CPU runs
other kernels (vector widths, oneDNN's choice of algorithm), which sum in another order and
differ in the last bits of a float. So integers that the inputs decide (codes, samples, the
step counters) are compared exactly, and only where a float rounding cannot flip them (a code
whose nearest and second-nearest distances are further apart than rounding, a pixel not on a
rounding boundary); floats are compared with a tolerance stated beside each comparison; and
the exactness of resume is asserted bit for bit between two runs on this machine. The resume
is also run on the baseline kernels (no AVX, no oneDNN ISA beyond SSE4.1), another CPU as far
as the arithmetic is concerned, so the tolerances are exercised here, not only elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import decided_codes
from vqvae import VQVAE
from vqvae._io import read_safetensors
from vqvae.cli import main
from vqvae.data import load_dataset
from vqvae.data.transforms import to_model_input
from vqvae.inference import decode, reconstruct
from vqvae.runs import RunDir, load_prior, load_run_model

FIXTURES = Path(__file__).parent / "fixtures" / "v0.1"
KINDS = ("pixelcnn", "transformer")
# ATen's and oneDNN's baseline kernels: the arithmetic of a CPU without AVX
BASELINE_KERNELS = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}

# The resumed weights against release 0.1's. Steps 7-8 are recomputed here; a different
# CPU's kernels change a float32 gradient by a few units in its last place (relative 1e-7),
# and Adam divides each gradient by its running RMS, so a step of size <= lr (1e-3) moves by
# about lr * 1e-7 relative: measured 7e-9 on this machine's kernels and 1.5e-8 on the baseline
# kernels. 1e-6 is 60x above that, and 1,000x below one Adam step (1e-3): an update rule that
# changed in any way (a step skipped or doubled, another lr, a lost moment) is caught.
RESUMED_ATOL, RESUMED_RTOL = 1e-6, 1e-5
# A sum of 16 log-softmax terms in float32: rounding differs by a few ulps per term.
LOG_PROB_RTOL = 1e-5


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "expected.npz") as f:
        return dict(f)


@pytest.fixture
def copied(tmp_path) -> Path:
    """The fixture runs and their data in a scratch folder (tests never write the fixture)."""
    for name in ("run-pixelcnn", "run-transformer", "tiny.npz"):
        src = FIXTURES / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    return tmp_path


def test_the_fixture_holds_old_style_configs() -> None:
    run = RunDir(FIXTURES / "run-pixelcnn").read_config()["config"]
    prior = RunDir(FIXTURES / "run-pixelcnn" / "prior").read_config()["config"]
    assert "image_size" in run and "kind" not in run["net"] and "grid_size" in prior


def _off_boundary(model: VQVAE, codes: np.ndarray) -> np.ndarray:
    """(N, H, W, C) bool: pixels whose value on the 0..255 scale is not within 1e-3 of a
    rounding boundary (x.5), so that no CPU's last-bit difference can round them otherwise."""
    with torch.no_grad():
        x = model.decode_codes(torch.from_numpy(codes)).clamp(-1, 1)  # (N, C, H, W)
    v = x.add(1).mul(127.5).movedim(1, -1).double().numpy()
    return np.abs(v - np.floor(v) - 0.5) > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_old_runs_encode_decode_and_score_as_they_did(kind, expected, one_thread) -> None:
    run = RunDir(FIXTURES / f"run-{kind}")
    model = load_run_model(run)
    assert isinstance(model, VQVAE) and model.config.input_size == (8, 8)
    assert VQVAE.from_pretrained(run.path).config == model.config
    test = load_dataset(str(FIXTURES / "tiny.npz"), "test")
    codes, _ = reconstruct(model, test.images)
    want_codes, want_recons = expected[f"{kind}_codes"], expected[f"{kind}_recons"]
    with torch.no_grad():
        z_e = model.encoder(to_model_input(test.images))  # (N, D, h, w)
    decided = decided_codes(z_e, model.quantizer.codebook).numpy()  # (N, h, w)
    assert decided.mean() > 0.9  # the comparison below is not vacuous
    np.testing.assert_array_equal(codes[decided], want_codes[decided])
    # decoded from the codes release 0.1 chose, so that a near tie does not move a patch
    recons = decode(model, want_codes)
    exact = _off_boundary(model, want_codes)
    assert exact.mean() > 0.99
    np.testing.assert_array_equal(recons[exact], want_recons[exact])
    assert np.abs(recons.astype(int) - want_recons).max() <= 1  # a boundary rounds either way
    prior = load_prior(run)
    assert prior.config.shape == (4, 4) and prior.config.num_classes == 3
    labels = torch.from_numpy(test.labels)
    log_prob = prior.log_prob(torch.from_numpy(want_codes), labels).detach().numpy()
    np.testing.assert_allclose(log_prob, expected[f"{kind}_log_prob"], rtol=LOG_PROB_RTOL)
    # one uniform number a position, inverse CDF: a draw changes only if a uniform falls within
    # rounding (1e-7) of a step of the CDF, which none of these 64 does on any CPU tried
    sample = prior.sample(4, torch.tensor([0, 1, 2, 0]), generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(sample.numpy(), expected[f"{kind}_sample"])


def test_old_run_evaluates_and_samples_from_the_command_line(copied, capsys) -> None:
    run, data = copied / "run-transformer", copied / "tiny.npz"
    assert main(["eval", str(run), "--data", str(data), "--json"]) == 0
    assert '"psnr"' in capsys.readouterr().out
    assert main(["sample", str(run), "--n", "3", "--label", "1", "--out", str(copied / "s")]) == 0
    with np.load(copied / "s" / "samples.npz") as f:
        assert f["codes"].shape == (3, 4, 4) and (f["labels"] == 1).all()


def _movable(run: Path, data: Path) -> None:
    """config.json names the data by the absolute path it had when written: --resume refuses
    another spec, so point the recorded spec at the copy, as a user moving a run would."""
    text = (run / "config.json").read_text()
    recorded = RunDir(run).read_config()["data"]
    (run / "config.json").write_text(text.replace(recorded, str(data)))


def _resume(run: Path, data: Path, steps: int, env: dict[str, str] | None = None) -> None:
    """``vqvae train --resume`` to ``steps``: in this process, or in a fresh one under ``env``
    (kernel choices are read when torch is imported)."""
    args = ["train", "--data", str(data), "--out", str(run), "--steps", str(steps), "--resume"]
    args += ["--no-progress", "--no-report"]
    if env is None:
        assert main(args) == 0
        return
    code = "import sys, torch; from vqvae.cli import main; torch.set_num_threads(1); "
    code += "sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("kernels", ["this CPU", "baseline"])
def test_old_run_resumes_to_the_weights_the_old_release_reached(
    kernels, copied, expected, one_thread
):
    run, data = copied / "run-pixelcnn", copied / "tiny.npz"
    _movable(run, data)
    _resume(run, data, 8, env=BASELINE_KERNELS if kernels == "baseline" else None)
    weights = read_safetensors(run / "model.safetensors")
    old = {k.removeprefix("resumed/") for k in expected if k.startswith("resumed/")}
    # today's quantizer also saves how many steps of its initialization it has done
    assert set(weights) - old == {"quantizer.init_steps_done"} and old <= set(weights)
    for name in old:
        got, want = weights[name].numpy(), expected[f"resumed/{name}"]
        assert got.dtype == want.dtype, name
        if np.issubdtype(want.dtype, np.floating):
            np.testing.assert_allclose(
                got, want, rtol=RESUMED_RTOL, atol=RESUMED_ATOL, err_msg=name
            )
        else:  # step counters and flags
            np.testing.assert_array_equal(got, want, err_msg=name)


def test_resuming_an_old_run_is_exact_on_this_machine(copied, tmp_path, one_thread):
    """Release 0.1's checkpoint resumed to step 8 in one go, and resumed to 7, stopped, and
    resumed again to 8 from the checkpoint today's code wrote: the same bits."""
    data = copied / "tiny.npz"
    straight, interrupted = copied / "run-pixelcnn", tmp_path / "interrupted"
    shutil.copytree(straight, interrupted)
    for run in (straight, interrupted):
        _movable(run, data)
    _resume(straight, data, 8)
    _resume(interrupted, data, 7)
    _resume(interrupted, data, 8)
    a = read_safetensors(straight / "model.safetensors")
    b = read_safetensors(interrupted / "model.safetensors")
    assert set(a) == set(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]), name
    steps = [r["step"] for r in RunDir(interrupted).read_metrics() if r.get("split") == "train"]
    assert steps[-1] == 8


def test_old_prior_resumes(copied, capsys) -> None:
    run = copied / "run-transformer"
    args = ["prior", "train", str(run), "--kind", "transformer", "--class-conditional"]
    codes = copied / "codes.npz"
    assert main(["encode", str(run), "--data", str(copied / "tiny.npz"), "--split", "train",
                 "--out", str(codes)]) == 0  # fmt: skip
    # the saved prior is a small one (built through the API); --resume with the CLI's default
    # sizes is refused, naming the fields that differ, and nothing is overwritten
    before = (run / "prior" / "model.safetensors").read_bytes()
    assert main([*args, "--codes", str(codes), "--resume", "--steps", "6"]) == 2
    assert "model.d_model" in capsys.readouterr().err
    assert (run / "prior" / "model.safetensors").read_bytes() == before


def test_old_transformer_checkpoint_resumes_through_the_api(copied) -> None:
    """A checkpoint of release 0.1's Transformer (axis embeddings named ``row``/``col``)
    resumes: training continues from its step 4 to step 6."""
    from vqvae.config import TrainConfig
    from vqvae.inference import encode
    from vqvae.pretrained import config_from_dict
    from vqvae.priors import TransformerPrior
    from vqvae.train.prior import CodeSet, train_prior

    run = RunDir(copied / "run-transformer")
    saved = run.prior.read_config()
    prior = TransformerPrior(config_from_dict(TransformerPrior.config_class, saved["config"]))
    model = load_run_model(run)
    sets = [load_dataset(str(copied / "tiny.npz"), s) for s in ("train", "test")]
    codes = [
        CodeSet(torch.from_numpy(encode(model, d.images)), torch.from_numpy(d.labels)) for d in sets
    ]
    train = config_from_dict(TrainConfig, {**saved["train"], "steps": 6})
    train_prior(prior, run.prior, codes[0], codes[1], train, resume=True, progress=False)
    steps = [r["step"] for r in run.prior.read_metrics() if r.get("split") == "train"]
    assert steps == [2, 4, 6]  # steps 1-4 came from the old run, 5-6 were trained now

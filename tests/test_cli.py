"""Tests of the ``vqvae`` command line (issue 3): eval, encode, decode and reconstruct on a
trained run, and every kind of bad input giving one line on stderr, a non-zero exit, no
traceback, and nothing existing overwritten."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY, error_line
from vqvae.cli import main
from vqvae.data import load_dataset, to_model_input, to_uint8_images
from vqvae.models import VQVAE

pytestmark = pytest.mark.usefixtures("one_thread")


def _train_args(data: str, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--data", data, "--out", str(out), *TINY,
        "--steps", "10", "--batch-size", "16", "--no-progress", "--no-report", *extra,
    ]  # fmt: skip


def _fails(capsys, argv: list[str]) -> str:
    """Run ``vqvae argv``: it must fail with exactly one error line; return that line."""
    code = main(argv)
    assert code != 0
    return error_line(capsys.readouterr().err)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A tiny run on the bundled 8x8 digits (a 4x4 grid of K=16 codes)."""
    run = tmp_path_factory.mktemp("cli") / "run"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(_train_args("digits", run, "--steps", "20")) == 0
    return run


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    """A copy of the trained run that a test may damage."""
    return Path(shutil.copytree(trained_run, tmp_path / "copy"))


def _digits_test() -> np.ndarray:
    return load_dataset("digits", "test").images


# -- eval, encode, decode, reconstruct -----------------------------------------------------------


def test_eval_json_is_one_sane_object(trained_run, capsys):
    assert main(["eval", str(trained_run), "--data", "digits", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    result = json.loads(out[0])
    assert {"mse", "psnr", "perplexity", "code_usage", "bits_per_image"} <= set(result)
    assert 0 <= result["code_usage"] <= 1
    assert result["psnr"] > 0 and 0 <= result["mse"] <= 1
    assert 1 <= result["perplexity"] <= 16
    assert result["bits_per_image"] == 4 * 4 * 4  # a 4x4 grid of log2(16) bits
    assert result["num_images"] == len(_digits_test())


def test_eval_text_names_the_metrics(trained_run, capsys):
    assert main(["eval", str(trained_run), "--data", "digits"]) == 0
    out = capsys.readouterr().out
    for key in ("mse", "psnr", "perplexity", "code_usage", "bits_per_image"):
        assert key in out


def test_encode_writes_int_codes_and_labels(trained_run, tmp_path, capsys):
    out = tmp_path / "codes.npz"
    assert main(["encode", str(trained_run), "--data", "digits", "--out", str(out)]) == 0
    capsys.readouterr()
    test = load_dataset("digits", "test")
    with np.load(out, allow_pickle=False) as f:
        codes, labels = f["codes"], f["labels"]
    assert codes.dtype == np.int64 and codes.shape == (len(test), 4, 4)
    assert codes.min() >= 0 and codes.max() < 16
    np.testing.assert_array_equal(labels, test.labels)
    model = VQVAE.from_pretrained(trained_run).eval()
    np.testing.assert_array_equal(codes[:7], model.encode(to_model_input(test.images[:7])).numpy())

    # an existing --out is refused, untouched; --force replaces it
    out.write_bytes(b"precious")
    line = _fails(capsys, ["encode", str(trained_run), "--data", "digits", "--out", str(out)])
    assert "--force" in line
    assert out.read_bytes() == b"precious"
    argv = ["encode", str(trained_run), "--data", "digits", "--out", str(out), "--force"]
    assert main(argv) == 0
    capsys.readouterr()
    assert np.load(out)["codes"].shape == codes.shape


def test_decode_writes_pngs_equal_to_decode_codes(trained_run, tmp_path, capsys):
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 16, size=(6, 4, 4)).astype(np.int64)
    np.savez(tmp_path / "codes.npz", codes=codes)
    out = tmp_path / "pngs"
    assert main(["decode", str(trained_run), str(tmp_path / "codes.npz"), "--out", str(out)]) == 0
    capsys.readouterr()
    files = sorted(out.glob("*.png"))
    assert len(files) == 6
    model = VQVAE.from_pretrained(trained_run).eval()
    with torch.no_grad():
        want = to_uint8_images(model.decode_codes(torch.from_numpy(codes)))  # (6, 8, 8, 1)
    for f, w in zip(files, want, strict=True):
        with Image.open(f) as img:
            got = np.asarray(img)
        np.testing.assert_array_equal(got, w[..., 0])

    # refuses the existing folder, untouched; --force rewrites it
    before = _snapshot(out)
    _fails(capsys, ["decode", str(trained_run), str(tmp_path / "codes.npz"), "--out", str(out)])
    assert _snapshot(out) == before
    argv = ["decode", str(trained_run), str(tmp_path / "codes.npz"), "--out", str(out), "--force"]
    assert main(argv) == 0
    capsys.readouterr()


@pytest.mark.parametrize(
    "codes, fragment",
    [
        (np.full((2, 4, 4), 16, np.int64), "[0, 16)"),  # out of range
        (np.zeros((2, 5, 5), np.int64), "shape"),  # wrong grid
        (np.zeros((2, 4, 4), np.float32), "integer"),  # not integers
    ],
)
def test_decode_rejects_bad_codes(trained_run, tmp_path, capsys, codes, fragment):
    np.savez(tmp_path / "codes.npz", codes=codes)
    out = tmp_path / "pngs"
    line = _fails(
        capsys, ["decode", str(trained_run), str(tmp_path / "codes.npz"), "--out", str(out)]
    )
    assert fragment in line
    assert not out.exists() or not any(out.iterdir())


def test_decode_rejects_a_file_that_is_not_npz(trained_run, tmp_path, capsys):
    bad = tmp_path / "codes.npz"
    bad.write_bytes(b"not a zip")
    line = _fails(capsys, ["decode", str(trained_run), str(bad), "--out", str(tmp_path / "o")])
    assert "codes.npz" in line
    line = _fails(
        capsys, ["decode", str(trained_run), str(tmp_path / "no.npz"), "--out", str(tmp_path / "o")]
    )
    assert "no.npz" in line


def test_reconstruct_limit_is_decode_of_encode(trained_run, tmp_path, capsys):
    out = tmp_path / "recon.npz"
    argv = ["reconstruct", str(trained_run), "--data", "digits", "--limit", "5", "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    with np.load(out, allow_pickle=False) as f:
        originals, recons = f["originals"], f["reconstructions"]
    assert originals.dtype == recons.dtype == np.uint8
    assert originals.shape == recons.shape == (5, 8, 8, 1)
    np.testing.assert_array_equal(originals, _digits_test()[:5])
    model = VQVAE.from_pretrained(trained_run).eval()
    with torch.no_grad():
        want = to_uint8_images(model.decode_codes(model.encode(to_model_input(originals))))
    np.testing.assert_array_equal(recons, want)

    before = out.read_bytes()
    _fails(capsys, argv)
    assert out.read_bytes() == before
    assert main([*argv, "--force"]) == 0
    capsys.readouterr()


# -- a damaged or foreign run folder --------------------------------------------------------------


def test_eval_of_missing_or_unfinished_run(tmp_path, capsys):
    assert "no such run" in _fails(capsys, ["eval", str(tmp_path / "nope"), "--data", "digits"])
    (tmp_path / "half").mkdir()
    assert "model.safetensors" in _fails(
        capsys, ["eval", str(tmp_path / "half"), "--data", "digits"]
    )


def test_eval_of_corrupt_weights(run_copy, capsys):
    (run_copy / "model.safetensors").write_bytes(os.urandom(300))
    line = _fails(capsys, ["eval", str(run_copy), "--data", "digits"])
    assert "model.safetensors" in line


def test_eval_of_truncated_weights(run_copy, capsys):
    w = run_copy / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    assert "model.safetensors" in _fails(capsys, ["eval", str(run_copy), "--data", "digits"])


def test_eval_of_weights_from_another_config(run_copy, capsys):
    meta = json.loads((run_copy / "config.json").read_text())
    meta["config"]["quantizer"]["num_codes"] = 32
    (run_copy / "config.json").write_text(json.dumps(meta))
    line = _fails(capsys, ["eval", str(run_copy), "--data", "digits"])
    assert "another model" in line


def test_eval_of_a_config_of_another_class(run_copy, capsys):
    meta = json.loads((run_copy / "config.json").read_text())
    meta["class"] = "VAE"
    (run_copy / "config.json").write_text(json.dumps(meta))
    line = _fails(capsys, ["eval", str(run_copy), "--data", "digits"])
    assert "VAE" in line


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"class": "VQVAE", "config": 3}'])
def test_eval_of_a_broken_config(run_copy, capsys, text):
    (run_copy / "config.json").write_text(text)
    assert "config.json" in _fails(capsys, ["eval", str(run_copy), "--data", "digits"])


def test_eval_of_data_of_another_shape(trained_run, tmp_path, capsys):
    np.save(tmp_path / "big.npy", np.zeros((20, 16, 16), np.uint8))
    line = _fails(capsys, ["eval", str(trained_run), "--data", str(tmp_path / "big.npy")])
    assert "16x16" in line and "8x8" in line


# -- bad training input ------------------------------------------------------------------------


def _png(path: Path, size=(8, 8), value=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, np.uint8)).save(path)
    return path


def _bad_missing(tmp: Path) -> tuple[str, str]:
    return str(tmp / "does-not-exist"), "does-not-exist"


def _bad_empty_folder(tmp: Path) -> tuple[str, str]:
    (tmp / "empty").mkdir()
    return str(tmp / "empty"), "no images"


def _bad_corrupt_png(tmp: Path) -> tuple[str, str]:
    folder = tmp / "imgs"
    for i in range(12):
        _png(folder / f"{i:02d}.png", value=i * 10)
    bad = folder / "05.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    return str(folder), "05.png"


def _bad_mixed_sizes(tmp: Path) -> tuple[str, str]:
    folder = tmp / "mixed"
    for i in range(10):
        _png(folder / f"{i:02d}.png", size=(8, 8) if i != 7 else (12, 8))
    return str(folder), "07.png"


def _bad_npy_nan(tmp: Path) -> tuple[str, str]:
    x = np.zeros((40, 8, 8), np.float32)
    x[3, 2, 1] = np.nan
    np.save(tmp / "nan.npy", x)
    return str(tmp / "nan.npy"), "NaN"


def _bad_npy_float(tmp: Path) -> tuple[str, str]:
    np.save(tmp / "float.npy", np.random.default_rng(0).random((40, 8, 8)))
    return str(tmp / "float.npy"), "float64"


def _bad_npy_shape(tmp: Path) -> tuple[str, str]:
    np.save(tmp / "flat.npy", np.zeros((40, 64), np.uint8))
    return str(tmp / "flat.npy"), "shape"


def _bad_npy_channel_first(tmp: Path) -> tuple[str, str]:
    np.save(tmp / "chw.npy", np.zeros((40, 3, 8, 8), np.uint8))
    return str(tmp / "chw.npy"), "channel"


def _bad_npy_garbage(tmp: Path) -> tuple[str, str]:
    (tmp / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    return str(tmp / "junk.npy"), "junk.npy"


def _bad_text_file(tmp: Path) -> tuple[str, str]:
    (tmp / "notes.txt").write_text("hello")
    return str(tmp / "notes.txt"), "unsupported"


@pytest.mark.parametrize(
    "make",
    [
        _bad_missing,
        _bad_empty_folder,
        _bad_corrupt_png,
        _bad_mixed_sizes,
        _bad_npy_nan,
        _bad_npy_float,
        _bad_npy_shape,
        _bad_npy_channel_first,
        _bad_npy_garbage,
        _bad_text_file,
    ],
)
def test_bad_training_data_is_one_line_and_overwrites_nothing(tmp_path, capsys, make):
    data, fragment = make(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"an": "old run"}')
    before = _snapshot(run)
    line = _fails(capsys, _train_args(data, run, "--force"))
    assert fragment in line
    assert _snapshot(run) == before
    # and for a new run, no folder is left behind
    line = _fails(capsys, _train_args(data, tmp_path / "fresh"))
    assert not (tmp_path / "fresh").exists()


def test_bad_data_for_the_other_commands(trained_run, tmp_path, capsys):
    data, _ = _bad_npy_float(tmp_path)
    for argv in (
        ["eval", str(trained_run), "--data", data],
        ["encode", str(trained_run), "--data", data, "--out", str(tmp_path / "c.npz")],
        ["reconstruct", str(trained_run), "--data", data, "--out", str(tmp_path / "r.npz")],
    ):
        assert "float64" in _fails(capsys, argv)
    assert not (tmp_path / "c.npz").exists() and not (tmp_path / "r.npz").exists()


# -- presets and config errors ------------------------------------------------------------------


def test_preset_of_the_wrong_shape_is_one_line(tmp_path, capsys):
    line = _fails(capsys, _train_args("digits", tmp_path / "run", "--preset", "mnist"))
    assert "8x8" in line and "28x28" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--preset", "nope"], "nope"),
        (["--set", "quantizer.nonsense=3"], "nonsense"),
        (["--set", "quantizer.kind=vqq"], "vqq"),
        (["--set", "no-equals-sign"], "key=value"),
        (["--steps", "0"], "steps"),
        (["--config", "/no/such.toml"], "such.toml"),
    ],
)
def test_config_mistakes_are_one_line(tmp_path, capsys, extra, fragment):
    assert fragment in _fails(capsys, _train_args("digits", tmp_path / "run", *extra))
    assert not (tmp_path / "run").exists()


def test_automatic_preset_is_announced_for_a_folder_of_images(tmp_path, capsys):
    folder = tmp_path / "imgs"
    for i in range(24):
        _png(folder / f"{i:02d}.png", size=(16, 16), value=i * 10)
    argv = _train_args(str(folder), tmp_path / "run", "--steps", "2", "--set", "eval_every=2")
    assert main(argv) == 0
    _, err = capsys.readouterr()
    assert "chose preset 'digits' for 16x16 images with 1 channel(s)" in err
    assert VQVAE.from_pretrained(tmp_path / "run").config.input_size == (16, 16)


def test_console_script_error_in_a_real_process(tmp_path):
    """The installed entry point: exit status and a single stderr line, no traceback."""
    exe = Path(sys.executable).with_name("vqvae")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "vqvae.cli"]
    done = subprocess.run(
        [*cmd, "eval", str(tmp_path / "no-run"), "--data", "digits"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode != 0
    error_line(done.stderr)

"""The HTML report of a run: files, relative images, partial pages, and a real headless browser.

The browser part runs Debian's chromium: skipped when it is missing on a developer's machine,
but a failure under CI=true, where the CI script installs it.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vqvae import cli, metrics
from vqvae.config import TrainConfig
from vqvae.data import load_dataset
from vqvae.inference import encode
from vqvae.models import QuantizerConfig, VQVAEConfig
from vqvae.nets import NetConfig
from vqvae.priors import build_prior
from vqvae.report import analysis, build, try_write_report, write_report
from vqvae.report.figures import pca_2d
from vqvae.runs import RunDir
from vqvae.train.prior import CodeSet, train_prior
from vqvae.train.vqvae import train_vqvae

SECTIONS = ("curves", "reconstructions", "codes", "usage", "codebook", "rate", "samples")


def _tiny_config(num_quantizers: int = 1) -> VQVAEConfig:
    return VQVAEConfig(
        in_channels=1,
        input_size=(8, 8),
        net=NetConfig(
            hidden_channels=8, residual_channels=4, num_residual_blocks=1, num_downsamples=1
        ),
        quantizer=QuantizerConfig(
            kind="ema", num_codes=16, code_dim=4, num_quantizers=num_quantizers
        ),
    )


def _train_tiny(path: Path, num_quantizers: int = 1, prior: bool = True) -> RunDir:
    """A real run folder on the bundled digits in a few seconds: 4 steps, tiny nets."""
    run = RunDir(path)
    run.prepare(resume=False, force=True)
    train_set, test_set = load_dataset("digits", "train"), load_dataset("digits", "test")
    config = TrainConfig(
        steps=4, batch_size=32, eval_every=2, log_every=1, checkpoint_every=4, eval_limit=64
    )
    meta = {"data": "digits", "preset": None, "overrides": []}
    result = train_vqvae(
        run, train_set, test_set, _tiny_config(num_quantizers), config, meta=meta, progress=False
    )
    if prior:
        model = result.model.eval()
        codes = [
            CodeSet(
                torch.from_numpy(encode(model, d.images[:256])), torch.from_numpy(d.labels[:256])
            )
            for d in (train_set, test_set)
        ]
        pixelcnn = build_prior(
            "pixelcnn",
            num_codes=model.num_codes,
            shape=model.latent_shape,
            num_classes=10,
            channels=8,
            num_layers=2,
            head_channels=16,
        )
        prior_config = TrainConfig(steps=2, batch_size=32, checkpoint_every=2, eval_every=2)
        train_prior(
            pixelcnn,
            RunDir(run.path / "prior"),
            codes[0],
            codes[1],
            prior_config,
            progress=False,
            write_config=True,
        )
    return run


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    """A tiny run with a class-conditional prior, and its report: the index.html path."""
    run = _train_tiny(tmp_path_factory.mktemp("report") / "run")
    return write_report(run.path)


def _img_srcs(index: Path) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', index.read_text())


# -- the files ------------------------------------------------------------------------------------
def test_report_files_and_relative_images(reported: Path):
    assert reported.name == "index.html" and reported.parent.name == "report"
    text = reported.read_text()
    srcs = _img_srcs(reported)
    assert len(srcs) == len(SECTIONS)  # every part drew its figure
    for src in srcs:
        assert not src.startswith(("/", "http:", "https:", "file:")), src  # relative paths
        assert (reported.parent / src).is_file() and (reported.parent / src).stat().st_size > 1000
    for anchor in SECTIONS:
        assert f'id="{anchor}"' in text
    assert "could not be drawn" not in text and 'class="note"' not in text
    # Offline: nothing is fetched from the network (no CDN scripts, styles or fonts).
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert "PixelCNN" in text and "conditioned on 10 classes" in text


def test_header_shows_final_test_metrics(reported: Path):
    run = RunDir(reported.parent.parent)
    last = [r for r in run.read_metrics() if r["split"] == "test"][-1]
    text = reported.read_text()
    assert f"{last['psnr']:.2f}" in text and f"{last['bits_per_image']:.0f}" in text
    prior_bits = json.loads((run.path / "prior" / "metrics.json").read_text())
    assert f"{prior_bits['test_bits_per_code']:.2f}" in text


def test_rewriting_a_report_drops_stale_figures(reported: Path, tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(reported.parent.parent, run)
    shutil.rmtree(run / "prior")
    index = write_report(run)
    assert not (index.parent / "samples.png").exists()  # not the old prior's samples
    assert "No samples: no trained prior" in index.read_text()


def test_without_data_the_page_renders_what_it_can(reported: Path, tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(reported.parent.parent, run)
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "data": str(tmp_path / "gone")}))
    index = write_report(run)
    text = index.read_text()
    srcs = set(_img_srcs(index))
    assert {"curves.png", "codebook.png", "samples.png"} <= srcs  # need no held-out images
    assert "reconstructions.png" not in srcs and "codes.png" not in srcs
    assert "Needs the held-out images" in text and "gone" in text  # says what is missing
    for src in srcs:
        assert (index.parent / src).is_file()


def _curves_only_run(path: Path) -> RunDir:
    """A run folder stopped before its weights were written: config and metrics only."""
    run = RunDir(path)
    run.path.mkdir()
    run.config_file.write_text(json.dumps({"class": "VQVAE", "config": {}, "data": "digits"}))
    record = {"step": 1, "split": "train", "loss": 1.0, "recon_loss": 0.9, "vq_loss": 0.1}
    run.log({**record, "perplexity": 2.0, "code_usage": 0.1})
    return run


def test_run_without_weights_still_gets_curves(tmp_path: Path):
    run = _curves_only_run(tmp_path / "run")
    text = write_report(run.path).read_text()
    assert _img_srcs(run.report / "index.html") == ["curves.png"]
    assert "no trained weights" in text


def test_text_from_the_run_is_escaped(tmp_path: Path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    evil = "<script>alert(1)</script>"
    run.config_file.write_text(json.dumps({"class": "VQVAE", "config": {}, "data": evil}))
    text = write_report(run.path).read_text()
    assert evil not in text and "&lt;script&gt;" in text


# -- what is measured -----------------------------------------------------------------------------
def test_residual_rate_distortion_has_one_point_per_level(tmp_path: Path):
    run = _train_tiny(tmp_path / "rvq", num_quantizers=2, prior=False)
    model = analysis.VQVAE.from_pretrained(run.path).eval()
    held = analysis.load_held_out(model, "digits", None, limit=64)
    assert held.codes.shape[1:] == (2, 4, 4)
    rd = analysis.rate_distortion(model, held, prior_bits_per_code=None)
    per_level = 4 * 4 * math.log2(16)
    assert [c[1] for c in rd.curve] == [per_level, 2 * per_level]
    # All Q levels are the model's own reconstruction; one level is decoded from codes[:, :1].
    assert rd.curve[-1][2] == pytest.approx(metrics.psnr(held.originals, held.recons))
    one = analysis.decode(model, torch.from_numpy(held.codes[:, :1]))
    assert rd.curve[0][2] == pytest.approx(metrics.psnr(held.originals, one))
    assert rd.points[0][1] == 2 * per_level
    index = write_report(run.path)
    text = index.read_text()
    assert "could not be drawn" not in text and "rate.png" in _img_srcs(index)


def test_prior_rate_is_bits_per_code_times_grid(reported: Path):
    run = reported.parent.parent
    model = analysis.VQVAE.from_pretrained(run).eval()
    held = analysis.load_held_out(model, "digits", None, limit=32)
    rd = analysis.rate_distortion(model, held, prior_bits_per_code=2.5)
    (_, fixed_bits, fixed_psnr), (_, prior_bits, prior_psnr) = rd.points
    assert fixed_bits == 16 * math.log2(16) and prior_bits == 2.5 * 16
    assert prior_psnr == fixed_psnr and rd.curve == []


def test_pca_keeps_a_planar_codebook_exactly():
    rng = np.random.default_rng(0)
    plane = rng.normal(size=(2, 6))  # a random 2-D plane in 6-D
    book = rng.normal(size=(40, 2)) @ plane + 3.0  # (K, 2) @ (2, D): points on it, shifted
    proj, explained = pca_2d(book)
    dist = np.linalg.norm(book[:, None] - book[None], axis=-1)
    dist2 = np.linalg.norm(proj[:, None] - proj[None], axis=-1)
    np.testing.assert_allclose(dist2, dist, atol=1e-9)  # the projection is an isometry here
    assert explained.sum() == pytest.approx(1.0) and explained[0] >= explained[1]


# -- the command line and the end of training ----------------------------------------------------
def test_cli_report_and_its_errors(tmp_path: Path, capsys):
    run = _curves_only_run(tmp_path / "run")
    assert cli.main(["report", str(run.path)]) == 0
    assert (run.report / "index.html").is_file()
    assert capsys.readouterr().out.strip() == f"wrote {run.report / 'index.html'}"
    assert cli.main(["report", str(tmp_path / "missing")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such run folder" in err[0]


def test_a_failing_report_never_raises(tmp_path: Path, monkeypatch, capsys):
    def boom(*args, **kwargs):
        raise RuntimeError("matplotlib exploded\nsecond line")

    monkeypatch.setattr(build, "write_report", boom)
    assert try_write_report(tmp_path) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matplotlib exploded" in err[0] and "vqvae report" in err[0]


# -- a real browser -------------------------------------------------------------------------------
def test_browser_loads_every_image_and_renders(reported: Path, tmp_path: Path, browser):
    url = reported.resolve().as_uri()
    dom = browser.dom(url)
    loaded, total = browser.loaded(dom, "images")
    assert total == len(SECTIONS) and loaded == total
    assert '<p class="note broken-image">' not in dom  # no visible warning

    shot = tmp_path / "shot.png"
    browser.run(url, "--hide-scrollbars", "--window-size=1200,3000", f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 20_000
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (3000, 1200)
    assert pixels.std() > 10 and len(np.unique(pixels)) > 50  # text and figures, not one colour


def test_browser_flags_a_missing_image(reported: Path, tmp_path: Path, browser):
    report = tmp_path / "report"
    shutil.copytree(reported.parent, report)
    (report / "codes.png").unlink()  # as if the folder were copied without one of its PNGs
    dom = browser.dom((report / "index.html").as_uri())
    loaded, total = browser.loaded(dom, "images")
    assert (loaded, total) == (len(SECTIONS) - 1, len(SECTIONS))
    assert '<p class="note broken-image">Missing image: codes.png' in dom


def test_train_writes_the_report_unless_told_not_to(tmp_path: Path, capsys):
    tiny = ["--set", "net.hidden_channels=8", "--set", "net.residual_channels=4",
            "--set", "quantizer.num_codes=16", "--set", "quantizer.code_dim=4"]  # fmt: skip
    base = ["train", "--data", "digits", *tiny, "--steps", "2", "--batch-size", "16",
            "--no-progress"]  # fmt: skip
    assert cli.main([*base, "--out", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "report" / "index.html").is_file()
    assert cli.main([*base, "--out", str(tmp_path / "b"), "--no-report"]) == 0
    assert not (tmp_path / "b" / "report").exists()

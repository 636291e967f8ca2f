"""Data layouts (docs/design-notes.md, "Data layouts"): split folders read as splits, every
format Pillow reads, the imagenet128 preset chosen by itself, and a run that remembers its
resize and split layout."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY
from vqvae.cli import main
from vqvae.cli.common import layout_note
from vqvae.config import choose_preset, get_full_preset
from vqvae.data import DataError, load_dataset, split_layout
from vqvae.data.base import split_indices
from vqvae.data.images import IMAGE_SUFFIXES
from vqvae.report.analysis import load_held_out
from vqvae.runs import RunDir, load_run_model


def _image(path: Path, value: int, size=(12, 12), mode="L") -> Path:
    """A small image of one grey level (a gradient, so resizing has work to do)."""
    h, w = size
    ramp = (np.arange(h * w).reshape(h, w) * 3 + value) % 256
    arr = ramp.astype(np.uint8)
    img = Image.fromarray(arr if mode == "L" else np.stack([arr, arr // 2, 255 - arr], -1))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def _split_folder(root: Path, layout: dict[str, dict[str, int]], size=(12, 12)) -> Path:
    """``root/<split>/<class>/<i>.png`` with ``layout[split][class]`` images each."""
    for split, classes in layout.items():
        for cls, n in classes.items():
            for i in range(n):
                _image(root / split / cls / f"{i}.png", 10 * i + len(cls), size)
    return root


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vqvae: error:"), lines
    return lines[0]


# -- split folders ---------------------------------------------------------------------------


def test_split_folders_are_splits_and_labels_agree(tmp_path):
    root = _split_folder(
        tmp_path / "d",
        {"train": {"cat": 3, "dog": 2}, "valid": {"dog": 2, "eel": 1}, "test": {"cat": 1}},
    )
    (root / "train" / "cat" / ".hidden.png").write_bytes(b"not an image")  # ignored
    layout = split_layout(str(root))
    assert layout.kind == "folders" and layout.splits == ("train", "val", "test")
    assert layout.held_out == "test"
    assert layout.to_dict() == {
        "kind": "folders",
        "splits": ["train", "val", "test"],
        "folders": ["train", "valid", "test"],
    }
    train, val, test = (load_dataset(str(root), s) for s in ("train", "val", "test"))
    # classes: the union over the splits, sorted, so a label names one class everywhere
    for ds in (train, val, test):
        assert ds.class_names == ("cat", "dog", "eel")
    assert train.labels.tolist() == [0, 0, 0, 1, 1]
    assert val.labels.tolist() == [1, 1, 2]
    assert test.labels.tolist() == [0]
    assert (len(train), len(val), len(test)) == (5, 3, 1)  # no seeded split: the folders


def test_loose_images_in_split_folders_and_no_test(tmp_path):
    root = tmp_path / "d"
    for i in range(4):
        _image(root / "Train" / f"{i}.pgm", i)  # split names are matched without case
    _image(root / "validation" / "0.pgm", 99)
    layout = split_layout(str(root))
    assert layout.splits == ("train", "val") and layout.held_out == "val"
    assert load_dataset(str(root), "val").labels is None
    with pytest.raises(DataError, match=r"has no test split \(its splits: train, val\)"):
        load_dataset(str(root), "test")


def test_train_folder_alone_is_split_with_a_fixed_seed(tmp_path):
    root = _split_folder(tmp_path / "d", {"train": {"a": 6, "b": 5}})
    layout = split_layout(str(root))
    assert layout.kind == "seeded" and layout.splits == ("train", "test")
    assert layout.to_dict() == {
        "kind": "seeded",
        "splits": ["train", "test"],
        "folders": ["train"],
        "test_fraction": 0.1,
    }
    train, test = load_dataset(str(root), "train"), load_dataset(str(root), "test")
    assert train.class_names == test.class_names == ("a", "b")
    everything = np.concatenate([train.labels, test.labels])
    assert len(test) == 1 and sorted(everything.tolist()) == [0] * 6 + [1] * 5
    all_labels = np.array([0] * 6 + [1] * 5)
    np.testing.assert_array_equal(test.labels, all_labels[split_indices(11, "test")])
    # and the command line says so
    note = layout_note(str(root), layout)
    assert note == (
        f"vqvae: {root} has the split folder train/ only: a seeded 10% of train/ is the "
        "test split, the rest trains"
    )


@pytest.mark.parametrize(
    "folders, fragment",
    [
        (
            ["train", "test", "cats"],
            r"train/, test/ look like split folders but cats/ like classes",
        ),
        (["train", "val", "validation"], r"val/ and validation/ are both the val split"),
        (["val", "test"], r"has split folders val/, test/ but no train/"),
    ],
)
def test_ambiguous_layouts_are_one_line_errors(tmp_path, capsys, folders, fragment):
    root = tmp_path / "d"
    for name in folders:
        _image(root / name / "x" / "0.png", 0)
    (root / "notes").mkdir()  # a folder without images is not a class
    with pytest.raises(DataError, match=fragment) as e:
        split_layout(str(root))
    assert "\n" not in str(e.value) and str(root) in str(e.value)
    with pytest.raises(DataError, match=fragment):
        load_dataset(str(root))
    line = _one_line_error(capsys, ["train", "--data", str(root), "--out", str(tmp_path / "r")])
    assert "ambiguous" in line or "no train/" in line
    assert not (tmp_path / "r").exists()


def test_labelled_and_unlabelled_split_folders_are_refused(tmp_path):
    root = _split_folder(tmp_path / "d", {"train": {"a": 2}})
    _image(root / "test" / "0.png", 0)
    with pytest.raises(DataError, match=r"train/ holds class folders but test/ only loose"):
        load_dataset(str(root), "test")


def test_val_split_only_where_there_is_one(tmp_path):
    with pytest.raises(DataError, match=r"^digits: has no val split \(its splits: train, test\)$"):
        load_dataset("digits", "val")
    assert split_layout("digits").kind == "seeded" and split_layout("mnist").kind == "files"
    np.save(tmp_path / "x.npy", np.zeros((10, 4, 4, 1), np.uint8))
    with pytest.raises(DataError, match=r"has no val split"):
        load_dataset(str(tmp_path / "x.npy"), "val")
    with pytest.raises(DataError, match="a seeded split has only train and test"):
        split_indices(10, "val")


# -- formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix, mode, channels",
    [(".pgm", "L", 1), (".ppm", "RGB", 3), (".pbm", "1", 1), (".tif", "RGB", 3), (".tiff", "L", 1)],
)
def test_every_format_pillow_reads(tmp_path, suffix, mode, channels):
    assert suffix in IMAGE_SUFFIXES
    rng = np.random.default_rng(0)
    arrays = []
    for i in range(3):
        shape = (5, 6, 3) if mode == "RGB" else (5, 6)
        arr = rng.integers(0, 256, shape, dtype=np.uint8)
        if mode == "1":
            arr = np.where(arr > 127, 255, 0).astype(np.uint8)
        Image.fromarray(arr).convert(mode).save(tmp_path / f"{i}{suffix}")
        arrays.append(arr.reshape(5, 6, channels))
    (tmp_path / f".hidden{suffix}").write_bytes(b"junk")  # hidden files stay ignored
    ds = load_dataset(str(tmp_path), "train")
    assert ds.images.shape[1:] == (5, 6, channels)
    # lossless formats: every training image is one of the files, bit for bit
    for img in ds.images:
        assert any(np.array_equal(img, a) for a in arrays)


@pytest.mark.parametrize("suffix", [".pgm", ".png", ".tif"])
def test_16_bit_grey_keeps_its_range(tmp_path, suffix):
    wide = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5957).astype(np.uint16)
    for i in range(2):
        Image.fromarray(wide).save(tmp_path / f"{i}{suffix}")
    ds = load_dataset(str(tmp_path), "train")
    want = np.rint(wide / 257.0).astype(np.uint8)[..., None]  # 65535 -> 255, not clipped
    np.testing.assert_array_equal(ds.images[0], want)


def test_suffixes_come_from_pillow():
    assert {".png", ".jpg", ".pgm", ".ppm", ".pbm", ".tif", ".webp"} <= set(IMAGE_SUFFIXES)
    assert ".pdf" not in IMAGE_SUFFIXES  # Pillow writes PDF but cannot read it
    assert ".h5" not in IMAGE_SUFFIXES  # a stub: identified, never decoded


# -- the imagenet128 preset ------------------------------------------------------------------


def test_imagenet128_is_the_papers_imagenet_setting():
    name, preset = choose_preset(3, (128, 128))
    assert name == "imagenet128"
    m = preset.model
    assert m.latent_shape == (32, 32) and m.quantizer.num_codes == 512
    assert (m.net.hidden_channels, m.net.num_downsamples, m.quantizer.code_dim) == (256, 2, 64)
    bits_in, bits_codes = 128 * 128 * 3 * 8, 32 * 32 * np.log2(512)
    assert round(bits_in / bits_codes, 1) == 42.7  # the paper's "42.6 times" (truncated)
    assert get_full_preset("imagenet128").train.batch_size == 32


def test_other_sizes_keep_their_presets():
    assert choose_preset(1, (128, 128))[0] == "mnist"  # grey
    assert choose_preset(3, (64, 64))[0] == "frames64"  # first-person frames
    assert choose_preset(1, (64, 64))[0] == "mnist"
    assert choose_preset(3, (128, 64))[0] == "cifar10"
    assert choose_preset(3, (256, 256))[0] == "cifar10"
    assert choose_preset(3, (16, 16))[0] == "digits"


# -- the run remembers its data --------------------------------------------------------------


@pytest.fixture(scope="module")
def resized_run(tmp_path_factory, one_thread):
    """A tiny run trained with --resize 8 8 on split folders of 12x12 images."""
    tmp = tmp_path_factory.mktemp("layout")
    data = _split_folder(
        tmp / "data",
        {"train": {"a": 12, "b": 12}, "val": {"a": 3, "b": 3}, "test": {"a": 2, "b": 4}},
    )
    run = tmp / "run"
    argv = [
        "train", "--data", str(data), "--out", str(run), "--resize", "8", "8", *TINY,
        "--steps", "6", "--batch-size", "8", "--no-progress", "--no-report",
    ]  # fmt: skip
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert main(argv) == 0
    return data, run, err.getvalue()


def test_config_json_records_resize_and_split_layout(resized_run):
    data, run, err = resized_run
    saved = json.loads((run / "config.json").read_text())
    assert saved["resize"] == [8, 8]
    assert saved["split_layout"] == {
        "kind": "folders",
        "splits": ["train", "val", "test"],
        "folders": ["train", "val", "test"],
    }
    assert f"{data} has split folders train/, val/, test/: using train/ for training and " \
        "test/ for evaluation" in err  # fmt: skip


def _eval(capsys, run: Path, data: Path, *extra: str) -> tuple[dict, str]:
    assert main(["eval", str(run), "--data", str(data), "--json", *extra]) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.err


def test_eval_uses_the_runs_resize(resized_run, capsys):
    data, run, _ = resized_run
    recorded, err = _eval(capsys, run, data)
    explicit, _ = _eval(capsys, run, data, "--resize", "8", "8")
    assert recorded == explicit and recorded["num_images"] == 6  # test/ holds 6 images
    assert "using test/" in err
    val, err = _eval(capsys, run, data, "--split", "val")
    assert val["num_images"] == 6 and "using val/" in err
    line = _one_line_error(capsys, ["eval", str(run), "--data", str(data), "--resize", "12", "12"])
    assert "images are 12x12" in line  # an explicit --resize wins, and must fit the model


def test_encode_and_reconstruct_use_the_runs_resize(resized_run, tmp_path, capsys):
    data, run, _ = resized_run
    codes = tmp_path / "codes.npz"
    assert main(["encode", str(run), "--data", str(data), "--out", str(codes)]) == 0
    assert np.load(codes)["codes"].shape == (6, 4, 4)
    recon = tmp_path / "recon.npz"
    argv = ["reconstruct", str(run), "--data", str(data), "--out", str(recon), "--split", "train"]
    assert main(argv) == 0
    assert np.load(recon)["originals"].shape == (24, 8, 8, 1)


def test_report_uses_the_runs_resize(resized_run):
    data, run, _ = resized_run
    saved = RunDir(run).read_config()
    held = load_held_out(load_run_model(RunDir(run)), saved["data"], None, 100, (8, 8))
    assert held.note == "" and held.originals.shape == (6, 8, 8, 1)
    # without it (a run of an older release), the images are still resized to fit, with a note
    old = load_held_out(load_run_model(RunDir(run)), saved["data"], None, 100)
    assert "resized from 12x12" in old.note


def test_resume_keeps_the_resize_and_refuses_another(resized_run, tmp_path, capsys):
    import shutil

    data, run, _ = resized_run
    copy = Path(shutil.copytree(run, tmp_path / "copy"))
    base = ["train", "--data", str(data), "--out", str(copy), *TINY, "--batch-size", "8"]
    line = _one_line_error(capsys, [*base, "--resume", "--resize", "6", "6", "--steps", "6"])
    assert "differs in" in line and "resize" in line
    # without --resize, --resume trains on at the recorded size
    argv = [*base, "--resume", "--steps", "8", "--no-progress", "--no-report"]
    assert main(argv) == 0
    assert RunDir(copy).read_config()["resize"] == [8, 8]


def test_train_refuses_split_folders_of_different_sizes(tmp_path, capsys):
    data = _split_folder(tmp_path / "d", {"train": {"a": 4}}, size=(8, 8))
    _split_folder(data, {"test": {"a": 2}}, size=(12, 12))
    line = _one_line_error(capsys, ["train", "--data", str(data), "--out", str(tmp_path / "r")])
    assert "the test images are 12x12" in line and "--resize" in line

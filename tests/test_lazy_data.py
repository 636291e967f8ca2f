"""Reading images on demand (docs/design-notes.md, "Data at scale"): a folder indexed and
cached by its listing, decoded batch by batch in DataLoader workers, a .npy memory-mapped;
every way gives exactly the bytes the eager reader gives, and the commands stream them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY
from vqvae.cli import main
from vqvae.data import DataError, LazyImages, load_dataset, read_all, read_batches
from vqvae.data import folder_index as folder_index_module
from vqvae.data.folder_index import index_image_folder
from vqvae.data.lazy import MappedArray
from vqvae.inference import encode, evaluate, reconstruct, score
from vqvae.models import VQVAE, VQVAEConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """A cache folder of this test's own."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("VQVAE_CACHE", str(folder))
    return folder


def _pixels(seed: int, size: tuple[int, int], colour: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (*size, 3) if colour else size, dtype=np.uint8)


def _mixed_folder(root: Path) -> Path:
    """Class folders (one nested) of grey and colour PNG and JPEG, and a 16-bit PGM."""
    for i in range(14):
        cls = ("cat", "dog", "eel")[i % 3]
        sub = "deeper/" if i % 5 == 0 else ""
        path = root / cls / f"{sub}{i:02d}.{'jpg' if i % 4 == 0 else 'png'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_pixels(i, (10, 12), colour=i % 3 == 1)).save(path)
    wide = (np.arange(120, dtype=np.uint16).reshape(10, 12) * 500).astype(np.uint16)
    Image.fromarray(wide).save(root / "dog" / "wide.pgm")  # 16-bit grey
    return root


def _split_folders(root: Path) -> Path:
    for split, n in (("train", 9), ("val", 3), ("test", 4)):
        for i in range(n):
            path = root / split / ("a" if i % 2 else "b") / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_pixels(100 + i, (6, 7), colour=False)).save(path)
    return root


def _mixed_sizes(root: Path) -> Path:
    root.mkdir(parents=True)
    for i in range(12):
        Image.fromarray(_pixels(i, (8 + i, 20 - i), colour=i == 3)).save(root / f"{i}.png")
    return root


LAYOUTS = {
    "classes, grey and colour, seeded split": (_mixed_folder, None, ("train", "test")),
    "split folders": (_split_folders, None, ("train", "val", "test")),
    "mixed sizes, resized": (_mixed_sizes, (9, 11), ("train", "test")),
}


@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
def test_lazy_reading_gives_exactly_the_eager_images(tmp_path, layout):
    make, resize, splits = LAYOUTS[layout]
    root = str(make(tmp_path / "data"))
    for split in splits:
        eager = load_dataset(root, split, resize=resize)
        lazy = load_dataset(root, split, resize=resize, lazy=True, workers=0)
        assert isinstance(eager.images, np.ndarray) and isinstance(lazy.images, LazyImages)
        assert lazy.lazy and not eager.lazy
        assert lazy.images.shape == eager.images.shape and len(lazy) == len(eager)
        assert lazy.class_names == eager.class_names
        np.testing.assert_array_equal(lazy.labels, eager.labels)
        np.testing.assert_array_equal(np.asarray(lazy.images), eager.images)
        # the same bytes through a worker process, in any order of batches
        order = np.random.default_rng(0).permutation(len(eager))
        batches = [order[i : i + 3] for i in range(0, len(order), 3)]
        with_worker = lazy.images.with_workers(1)
        for idx, got in zip(batches, read_batches(with_worker, batches), strict=True):
            assert got.dtype == torch.uint8
            np.testing.assert_array_equal(got.numpy(), eager.images[idx])
        np.testing.assert_array_equal(read_all(with_worker, 5), eager.images[:5])


def test_a_file_whose_suffix_lies_is_read_by_what_it_is(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    pixels = _pixels(0, (5, 6), colour=True)
    Image.fromarray(pixels).save(root / "a.jpg", format="PNG")  # PNG bytes, JPEG's suffix
    Image.fromarray(pixels).save(root / "b.png")
    for lazy in (False, True):
        images = np.asarray(load_dataset(str(root), "train", lazy=lazy).images)
        np.testing.assert_array_equal(images[0], pixels)  # lossless: the very pixels


def test_lazy_images_index_like_a_read_only_array(tmp_path):
    root = _mixed_folder(tmp_path / "data")
    eager = load_dataset(str(root), "train").images
    lazy = load_dataset(str(root), "train", lazy=True).images
    assert (lazy.dtype, lazy.ndim, len(lazy)) == (np.uint8, 4, len(eager))
    np.testing.assert_array_equal(lazy[2], eager[2])
    np.testing.assert_array_equal(lazy[-1], eager[-1])
    np.testing.assert_array_equal(lazy[1:7:2], eager[1:7:2])
    np.testing.assert_array_equal(lazy[np.array([5, 0, 5])], eager[[5, 0, 5]])
    np.testing.assert_array_equal(lazy[torch.tensor([3, 1])], eager[[3, 1]])
    part = lazy.subset(np.array([4, 2, 8]))
    assert isinstance(part, LazyImages) and part.shape == (3, *eager.shape[1:])
    np.testing.assert_array_equal(part[1:], eager[[2, 8]])
    with pytest.raises(IndexError, match="1-D index array"):
        lazy[np.ones(len(lazy), dtype=bool)]


def test_the_index_is_cached_by_the_folder_listing(tmp_path, cache, monkeypatch):
    root = _mixed_folder(tmp_path / "data")
    first = index_image_folder(root)
    assert len(list((cache / "folder-index").glob("*.npz"))) == 1

    def no_header(path):
        raise AssertionError(f"{path}: read a header, though the listing is unchanged")

    monkeypatch.setattr(folder_index_module, "image_header", no_header)
    again = index_image_folder(root)
    assert again.files == first.files and again.class_names == first.class_names
    np.testing.assert_array_equal(again.sizes, first.sizes)
    np.testing.assert_array_equal(again.colour, first.colour)
    np.testing.assert_array_equal(again.labels, first.labels)
    monkeypatch.undo()
    monkeypatch.setenv("VQVAE_CACHE", str(cache))

    # a file rewritten with another size: a new listing, indexed again; one index kept
    target = root / "cat" / "03.png"
    Image.fromarray(_pixels(3, (10, 13), colour=False)).save(target)
    os.utime(target, ns=(1, 1))  # even with an old time: the size changed
    with pytest.raises(DataError, match=r"images differ in size .*03\.png is 10x13"):
        load_dataset(str(root), "train", lazy=True)
    assert len(list((cache / "folder-index").glob("*.npz"))) == 1


def test_headers_read_by_several_processes_make_the_same_index(tmp_path, monkeypatch):
    root = _mixed_folder(tmp_path / "data")
    one = index_image_folder(root, cache=False)
    monkeypatch.setattr(folder_index_module, "PARALLEL_FROM", 2)
    two = index_image_folder(root, cache=False, processes=2)
    assert two.files == one.files
    np.testing.assert_array_equal(two.sizes, one.sizes)
    np.testing.assert_array_equal(two.colour, one.colour)
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG nothing more")
    with pytest.raises(DataError, match=r"broken\.png: corrupt or unreadable image"):
        index_image_folder(root, cache=False, processes=2)


def test_a_corrupt_cache_file_is_ignored(tmp_path, cache):
    root = _split_folders(tmp_path / "data")
    index_image_folder(root / "train")
    (cached,) = (cache / "folder-index").glob("*.npz")
    cached.write_bytes(b"garbage")
    again = index_image_folder(root / "train")
    assert len(again) == 9 and again.sizes.tolist() == [[6, 7]] * 9


def test_a_file_that_cannot_be_decoded_fails_in_one_line_from_a_worker(tmp_path, capsys):
    root = tmp_path / "data"
    for split, n in (("train", 40), ("test", 4)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(_pixels(i, (8, 8), colour=False)).save(root / split / f"{i:02d}.jpg")
    bad = root / "train" / "17.jpg"
    whole = bad.read_bytes()
    bad.write_bytes(whole[: whole.index(b"\xff\xda") + 12])  # the header reads, pixels not
    images = load_dataset(str(root), "train", lazy=True, workers=1).images  # indexed fine
    with pytest.raises(DataError) as caught:
        list(read_batches(images, [np.arange(10), np.arange(10, 40)]))
    assert len(str(caught.value).splitlines()) == 1
    assert str(caught.value).startswith(f"{bad}: corrupt or unreadable image")

    argv = ["train", "--data", str(root), "--out", str(tmp_path / "run"), *TINY,
            "--steps", "3", "--batch-size", "40", "--workers", "1", "--no-progress",
            "--no-report"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"vqvae: error: {bad}: corrupt or unreadable image"), err
    assert "Traceback" not in "\n".join(err)


def test_a_npy_is_memory_mapped_and_split_as_before(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (50, 5, 6), dtype=np.uint8))
    for split in ("train", "test"):
        eager = load_dataset(str(path), split)
        lazy = load_dataset(str(path), split, lazy=True)
        assert isinstance(lazy.images, LazyImages)
        assert isinstance(lazy.images.source, MappedArray)
        assert isinstance(lazy.images.source.array, np.memmap)
        np.testing.assert_array_equal(np.asarray(lazy.images), eager.images)
        idx = np.array([3, 0, 2])
        (got,) = read_batches(lazy.images, [idx])
        np.testing.assert_array_equal(got.numpy(), eager.images[idx])


def test_starting_workers_draws_no_number_from_the_global_generator(tmp_path):
    """A checkpoint saves the global generator: reading through workers must not move it,
    or a resumed run would draw other numbers than an uninterrupted one."""
    images = load_dataset(str(_split_folders(tmp_path / "d")), "train", lazy=True, workers=2)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    assert len(list(read_batches(images.images, [np.arange(4), np.arange(4, 9)]))) == 2
    assert torch.equal(before, torch.get_rng_state())


def test_workers_must_be_a_count(tmp_path):
    with pytest.raises(DataError, match="workers must be an integer >= 0"):
        load_dataset(str(_split_folders(tmp_path / "d")), "train", lazy=True, workers=-1)


def test_inference_streams_lazy_images_to_the_same_results(tmp_path):
    root = _mixed_folder(tmp_path / "data")
    eager = load_dataset(str(root), "train", resize=(8, 8)).images
    lazy = load_dataset(str(root), "train", resize=(8, 8), lazy=True, workers=1).images
    torch.manual_seed(0)
    model = VQVAE(
        VQVAEConfig(in_channels=3, input_size=(8, 8), **_tiny_model()),
    ).eval()
    np.testing.assert_array_equal(encode(model, lazy, 4), encode(model, eager, 4))
    for got, want in zip(reconstruct(model, lazy, 5), reconstruct(model, eager, 5), strict=True):
        np.testing.assert_array_equal(got, want)
    streamed = evaluate(model, lazy, batch_size=3)
    whole = score(model, eager, *reconstruct(model, eager, 3))
    assert streamed.num_images == whole.num_images == len(eager)
    assert streamed.mse == pytest.approx(whole.mse, rel=1e-12)
    assert streamed.psnr == pytest.approx(whole.psnr, rel=1e-12)
    assert (streamed.perplexity, streamed.code_usage) == (whole.perplexity, whole.code_usage)
    assert streamed.bits_per_image == whole.bits_per_image


def _tiny_model() -> dict:
    from vqvae.models import QuantizerConfig
    from vqvae.nets import NetConfig

    return {
        "net": NetConfig(hidden_channels=8, residual_channels=4, num_downsamples=1),
        "quantizer": QuantizerConfig(num_codes=8, code_dim=4),
    }


def test_eval_encode_reconstruct_read_a_folder_as_the_run_did(digits_folder, tmp_path, capsys):
    run = tmp_path / "run"
    train = ["train", "--data", str(digits_folder), "--out", str(run), *TINY, "--steps", "4",
             "--batch-size", "32", "--workers", "1", "--no-progress", "--no-report"]  # fmt: skip
    assert main(train) == 0
    data = ["--data", str(digits_folder), "--workers", "1"]
    assert main(["eval", str(run), *data, "--json"]) == 0
    assert main(["eval", str(run), "--data", "digits", "--json"]) == 0  # the same images
    out = capsys.readouterr().out.strip().splitlines()
    folder, named = (json.loads(line) for line in out[-2:])
    assert folder["num_images"] == named["num_images"] == len(load_dataset("digits", "test"))
    assert folder == named
    assert main(["encode", str(run), *data, "--out", str(tmp_path / "c.npz")]) == 0
    assert main(["encode", str(run), "--data", "digits", "--out", str(tmp_path / "d.npz")]) == 0
    with np.load(tmp_path / "c.npz") as a, np.load(tmp_path / "d.npz") as b:
        np.testing.assert_array_equal(a["codes"], b["codes"])
    out_file = tmp_path / "r.npz"
    assert main(["reconstruct", str(run), *data, "--limit", "7", "--out", str(out_file)]) == 0
    with np.load(out_file) as f:
        assert f["originals"].shape == f["reconstructions"].shape == (7, 8, 8, 1)
        np.testing.assert_array_equal(f["originals"], load_dataset("digits", "test").images[:7])


def test_files_are_listed_in_the_order_their_paths_sort_in(tmp_path):
    from vqvae.data.images import list_image_folder

    names = ["a/b.png", "a-c.png", "A.png", "a0.png", "a/z/y.png", "a/a.png", "b.png", ".x.png"]
    for name in names:
        path = tmp_path / "cls" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_pixels(0, (4, 4), colour=False)).save(path)
    files, labels, classes = list_image_folder(tmp_path)
    expected = sorted((tmp_path / "cls" / n for n in names if n != ".x.png"), key=lambda p: p.parts)
    assert files == [str(p) for p in expected] and classes == ("cls",)
    assert files.index(str(tmp_path / "cls" / "a" / "b.png")) < files.index(
        str(tmp_path / "cls" / "a-c.png")
    )


@pytest.mark.parametrize(
    "cpus, threads, gpu, local_world, expected",
    [
        (2, 2, False, 1, 0),  # training on the CPU uses both: decode between steps
        (16, 8, False, 1, 8),  # torch's threads on half: the rest decode (at most 8)
        (16, 12, False, 1, 4),
        (2, 2, True, 1, 1),  # beside a GPU, one CPU keeps the GPU fed
        (32, 16, True, 1, 8),
        (8, 1, False, 4, 1),  # torchrun: 4 processes of one thread share 8 CPUs
    ],
)
def test_default_workers_take_the_cpus_training_leaves_free(
    monkeypatch, cpus, threads, gpu, local_world, expected
):
    from vqvae.data import default_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_world))
    assert default_workers() == expected

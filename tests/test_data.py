"""Tests for vqvae.data: every format, every bad input, the pixel round trip, the splits."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from vqvae.data import (
    DataError,
    ImageDataset,
    load_dataset,
    resolve_data_root,
    save_png_grid,
    save_pngs,
    to_model_input,
    to_uint8_images,
)
from vqvae.data.base import split_indices
from vqvae.registry import DATASETS

RNG = np.random.default_rng(0)


def _rand_images(n, h=6, w=5, c=1):
    return RNG.integers(0, 256, size=(n, h, w, c), dtype=np.uint8)


def _read_png(path):
    with Image.open(path) as img:
        return np.asarray(img), img.mode


def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


# -- pixels in and out -------------------------------------------------------------------------


def test_uint8_round_trip_is_exact():
    u = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(2, axis=0)
    x = to_model_input(u)
    assert x.dtype == torch.float32 and x.shape == (2, 1, 16, 16)
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    np.testing.assert_array_equal(to_uint8_images(x), u)
    rgb = _rand_images(3, 4, 5, 3)
    np.testing.assert_array_equal(to_uint8_images(to_model_input(rgb)), rgb)
    # channel-first layout: pixel (y, x) channel c lands at [n, c, y, x]
    assert to_model_input(rgb)[1, 2, 3, 4].item() == pytest.approx(rgb[1, 3, 4, 2] / 127.5 - 1)


def test_to_uint8_clamps_and_rounds():
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 5.0, 1 / 127.5 - 1 + 0.003]).reshape(1, 1, 1, 6)
    assert to_uint8_images(x).ravel().tolist() == [0, 0, 128, 255, 255, 1]


def test_conversions_reject_wrong_input():
    with pytest.raises(ValueError, match="uint8"):
        to_model_input(np.zeros((2, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match=r"\(N, C, \*spatial\)"):
        to_uint8_images(torch.zeros(4, 4))


def test_save_png_grid_and_pngs(tmp_path):
    imgs = _rand_images(5, 4, 3, 3)
    path = save_png_grid(imgs, tmp_path / "grid.png", nrow=3, pad=1, scale=2)
    grid, _ = _read_png(path)
    assert grid.shape == (2 * (1 + 2 * 5), 2 * (1 + 3 * 4), 3)  # 2 rows, 3 columns, scaled x2
    np.testing.assert_array_equal(grid[2:10:2, 2:8:2], imgs[0])
    np.testing.assert_array_equal(grid[2 * 6 : 2 * 10 : 2, 2 * 5 : 2 * 8 : 2], imgs[4])
    grey = save_png_grid(_rand_images(4), tmp_path / "g.png")
    assert _read_png(grey)[1] == "L"
    paths = save_pngs(imgs, tmp_path / "out")
    assert [p.name for p in paths] == [f"{i:06d}.png" for i in range(5)]
    np.testing.assert_array_equal(_read_png(paths[3])[0], imgs[3])
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_image_dataset_checks_and_properties():
    ds = ImageDataset(_rand_images(4, 6, 5, 3), np.array([0, 2, 1, 2]), "x", ("a", "b", "c"))
    assert (len(ds), ds.num_channels, ds.image_size, ds.num_classes) == (4, 3, (6, 5), 3)
    assert ImageDataset(_rand_images(2), None, "y").num_classes == 0
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(np.zeros((2, 3, 3, 1), np.float32), None, "z")
    with pytest.raises(ValueError, match="labels"):
        ImageDataset(_rand_images(2), np.array([1, 2, 3]), "z")


# -- splits and names ----------------------------------------------------------------------------


def test_digits_split_partitions_1797_images():
    from sklearn.datasets import load_digits

    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert len(train) + len(test) == 1797 and len(test) == 359
    assert train.images.dtype == np.uint8 and train.image_size == (8, 8)
    assert train.num_channels == 1 and train.images.max() == 255
    assert train.num_classes == 10
    full = load_digits()
    idx_test = split_indices(1797, "test", 0.2, 0)
    idx_train = split_indices(1797, "train", 0.2, 0)
    assert np.intersect1d(idx_test, idx_train).size == 0
    np.testing.assert_array_equal(np.union1d(idx_test, idx_train), np.arange(1797))
    np.testing.assert_array_equal(test.labels, full.target[idx_test])
    np.testing.assert_array_equal(load_dataset("digits", "test").images, test.images)  # fixed


def test_names_and_bad_split():
    assert set(DATASETS.names()) >= {"digits", "mnist", "fashion-mnist", "cifar10"}
    with pytest.raises(DataError, match="unknown split 'valid'"):
        load_dataset("digits", "valid")
    for bad in [(0, 4), (4,), "ab", 3]:
        with pytest.raises(DataError, match="resize must be two positive integers"):
            load_dataset("digits", resize=bad)


def test_data_root_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("VQVAE_DATA", raising=False)
    assert resolve_data_root() == resolve_data_root("~/.cache/vqvae/data")
    assert str(resolve_data_root()).endswith(os.path.join(".cache", "vqvae", "data"))
    monkeypatch.setenv("VQVAE_DATA", str(tmp_path))
    assert resolve_data_root() == tmp_path
    assert resolve_data_root(tmp_path / "x") == tmp_path / "x"


def test_missing_path_and_unsupported_file(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset(str(tmp_path / "nope"))
    (tmp_path / "a.txt").write_text("hi")
    with pytest.raises(DataError, match=r"a\.txt: unsupported file"):
        load_dataset(str(tmp_path / "a.txt"))


# -- idx -------------------------------------------------------------------------------------------


def _write_mnist(folder, fake_data, n_train=7, n_test=3, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = RNG.integers(0, 10, n).astype(np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte{ext}").write_bytes(fake_data.idx(images, gz))
        (folder / f"{prefix}-labels-idx1-ubyte{ext}").write_bytes(fake_data.idx(labels, gz))
        arrays[prefix] = (images, labels)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_path(tmp_path, fake_data, gz):
    arrays = _write_mnist(tmp_path / "m", fake_data, gz=gz)
    ds = load_dataset(str(tmp_path / "m"), "test")
    assert ds.images.shape == (3, 28, 28, 1) and ds.name == str(tmp_path / "m")
    np.testing.assert_array_equal(ds.images[..., 0], arrays["t10k"][0])
    np.testing.assert_array_equal(ds.labels, arrays["t10k"][1])
    assert len(load_dataset(str(tmp_path / "m"), "train")) == 7


def test_mnist_name_under_vqvae_data(tmp_path, fake_data, monkeypatch):
    arrays = _write_mnist(tmp_path / "fashion-mnist", fake_data)
    monkeypatch.setenv("VQVAE_DATA", str(tmp_path))
    ds = load_dataset("fashion-mnist", "train", download=False)
    np.testing.assert_array_equal(ds.labels, arrays["train"][1])
    assert ds.class_names[0] == "T-shirt/top" and ds.name == "fashion-mnist"
    assert load_dataset("digits", resize=(16, 12)).image_size == (16, 12)
    assert load_dataset("fashion-mnist", resize=(14, 14), download=False).image_size == (14, 14)


def test_missing_named_data_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_root=str(tmp_path), download=False)
    msg = str(e.value)
    assert str(tmp_path / "mnist") in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert "\n" not in msg


def test_single_idx_file_gets_seeded_split(tmp_path, fake_data):
    images = RNG.integers(0, 256, (20, 4, 4), dtype=np.uint8)
    (tmp_path / "my-images-idx3-ubyte").write_bytes(fake_data.idx(images, gz=False))
    train, test = load_dataset(str(tmp_path)), load_dataset(str(tmp_path), "test")
    assert (len(train), len(test), train.labels) == (18, 2, None)


def test_truncated_idx_is_named(tmp_path, fake_data):
    _write_mnist(tmp_path, fake_data, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="train-images-idx3-ubyte: idx header promises"):
        load_dataset(str(tmp_path))
    gz = tmp_path / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(fake_data.idx(np.zeros((2, 3, 3), np.uint8))[:-6])
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: corrupt or truncated gzip"):
        load_dataset(str(tmp_path), "test")


# -- CIFAR -----------------------------------------------------------------------------------------


def _write_cifar(folder, fake_data, n=4, old_numpy_name=False):
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in ("data_batch_1", "data_batch_2", "test_batch"):
        images = _rand_images(n, 32, 32, 3)
        labels = RNG.integers(0, 10, n)
        payload = fake_data.cifar_batch(images, labels)
        if old_numpy_name:  # as the real files, written by numpy 1.x under Python 2
            payload = payload.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        (folder / name).write_bytes(payload)
        out[name] = (images, labels)
    return out


@pytest.mark.parametrize("old_numpy_name", [False, True])
def test_cifar_folder(tmp_path, fake_data, old_numpy_name):
    arrays = _write_cifar(
        tmp_path / "cifar-10-batches-py", fake_data, old_numpy_name=old_numpy_name
    )
    train = load_dataset(str(tmp_path / "cifar-10-batches-py"))
    np.testing.assert_array_equal(
        train.images, np.concatenate([arrays["data_batch_1"][0], arrays["data_batch_2"][0]])
    )
    assert train.class_names[0] == "airplane" and train.num_classes == 10
    test = load_dataset(str(tmp_path), "test")  # the parent of cifar-10-batches-py works too
    np.testing.assert_array_equal(test.labels, arrays["test_batch"][1])


@pytest.mark.parametrize("layout", ["cifar10/cifar-10-batches-py", "cifar-10-batches-py"])
def test_cifar10_name(tmp_path, fake_data, layout):
    _write_cifar(tmp_path / layout, fake_data)
    ds = load_dataset("cifar10", "test", data_root=str(tmp_path), download=False)
    assert ds.images.shape == (4, 32, 32, 3) and ds.name == "cifar10"


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this would create the marker file
        return (open, (self.marker, "w"))


def test_malicious_cifar_pickle_is_refused_not_executed(tmp_path, fake_data):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder, fake_data)
    marker = tmp_path / "pwned"
    payload = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Evil(str(marker))}
    (folder / "data_batch_2").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_2: refused .*global io\.open"):
        load_dataset(str(folder))
    assert not marker.exists()
    # the payload is real: a plain pickle.loads creates its file
    pickle.loads(pickle.dumps(_Evil(str(tmp_path / "proof")))).close()
    assert (tmp_path / "proof").exists()
    (folder / "test_batch").write_bytes(pickle.dumps({b"a": os.system}, protocol=2))
    with pytest.raises(DataError, match="test_batch: refused"):
        load_dataset(str(folder), "test")


# -- .npy / .npz ---------------------------------------------------------------------------------


def test_npy_and_npz(tmp_path):
    grey = _rand_images(10, 5, 4, 1)[..., 0]
    np.save(tmp_path / "a.npy", grey)
    train, test = (
        load_dataset(str(tmp_path / "a.npy")),
        load_dataset(str(tmp_path / "a.npy"), "test"),
    )
    assert (len(train), len(test), train.images.shape[1:], train.labels) == (9, 1, (5, 4, 1), None)
    both = np.concatenate([train.images, test.images])[..., 0]
    assert sorted(map(bytes, both)) == sorted(map(bytes, grey))  # a partition
    rgb, labels = _rand_images(10, 5, 4, 3), np.arange(10) % 3
    np.savez(tmp_path / "b.npz", images=rgb, labels=labels)
    ds = load_dataset(str(tmp_path / "b.npz"), "test")
    assert ds.num_channels == 3 and ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.images, rgb[split_indices(10, "test")])
    np.savez(tmp_path / "c.npz", pixels=rgb.astype(np.int64))  # the only array; ints in 0..255
    assert load_dataset(str(tmp_path / "c.npz")).images.dtype == np.uint8


@pytest.mark.parametrize(
    "array, match",
    [
        (
            np.full((4, 5, 5), np.nan, np.float32),
            "expected uint8 .* got float32, and it contains NaN",
        ),
        (np.zeros((4, 5, 5), np.float64), r"expected uint8 .* got float64$"),
        (np.zeros((4, 5), np.uint8), r"got shape \(4, 5\)"),
        (np.zeros((4, 5, 5, 2), np.uint8), r"C in \{1, 3\}, got shape \(4, 5, 5, 2\)"),
        (np.zeros((4, 3, 8, 8), np.uint8), "channel-first"),
        (np.full((4, 5, 5), 300, np.int32), r"int32 values in 300\.\.300"),
        (np.zeros((4, 5, 5), bool), "got dtype bool"),
    ],
)
def test_bad_arrays(tmp_path, array, match):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(DataError, match=match) as e:
        load_dataset(str(tmp_path / "x.npy"))
    assert str(tmp_path / "x.npy") in str(e.value)


def test_bad_npz_and_object_array(tmp_path):
    np.savez(tmp_path / "two.npz", a=_rand_images(3), b=_rand_images(3))
    with pytest.raises(DataError, match="expected an 'images' array"):
        load_dataset(str(tmp_path / "two.npz"))
    np.savez(tmp_path / "lab.npz", images=_rand_images(3), labels=np.zeros(2, np.int64))
    with pytest.raises(DataError, match=r"'labels' as integers of shape \(3,\)"):
        load_dataset(str(tmp_path / "lab.npz"))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="obj.npy: not a readable numpy file"):
        load_dataset(str(tmp_path / "obj.npy"))


# -- image folders ---------------------------------------------------------------------------------


def test_image_folder_with_classes(tmp_path):
    for cls, n in (("zebra", 3), ("apple", 5)):
        for i in range(n):
            _write_png(tmp_path / cls / f"{i}.png", _rand_images(1, 6, 7, 3)[0])
    (tmp_path / "apple" / "notes.txt").write_text("not an image")
    train = load_dataset(str(tmp_path))
    test = load_dataset(str(tmp_path), "test")
    assert train.class_names == ("apple", "zebra") and train.images.shape[1:] == (6, 7, 3)
    assert len(train) + len(test) == 8
    assert sorted(np.concatenate([train.labels, test.labels]).tolist()) == [0] * 5 + [1] * 3


def test_loose_images_grey_and_colour(tmp_path):
    grey = _rand_images(1, 4, 4, 1)[0, ..., 0]
    _write_png(tmp_path / "a.png", grey)
    _write_png(tmp_path / "b.png", _rand_images(1, 4, 4, 3)[0])
    Image.fromarray(grey).save(tmp_path / "c.jpg", quality=95)
    for name in "defghijk":
        _write_png(tmp_path / f"{name}.png", grey)
    ds = load_dataset(str(tmp_path))
    assert ds.labels is None and ds.num_channels == 3  # colour anywhere -> all RGB
    idx = split_indices(11, "train")
    np.testing.assert_array_equal(ds.images[list(idx).index(0)], np.repeat(grey[..., None], 3, -1))


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no images found"):
        load_dataset(str(tmp_path / "empty"))

    mixed = tmp_path / "mixed"
    _write_png(mixed / "a.png", _rand_images(1, 8, 8, 1)[0, ..., 0])
    _write_png(mixed / "b.png", _rand_images(1, 6, 9, 1)[0, ..., 0])
    with pytest.raises(DataError, match=r"differ in size .*b\.png is 6x9.*resize"):
        load_dataset(str(mixed))
    ds = load_dataset(str(mixed), resize=(5, 4))
    assert ds.images.shape[1:] == (5, 4, 1)

    bad = tmp_path / "bad"
    good = _write_png(bad / "good.png", _rand_images(1, 8, 8, 3)[0])
    (bad / "broken.png").write_bytes(good.read_bytes()[:60])  # truncated PNG
    with pytest.raises(DataError, match=r"broken\.png: corrupt or unreadable image") as e:
        load_dataset(str(bad))
    assert "\n" not in str(e.value)


# -- real data (VQVAE_DATA) -----------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_mnist_like(real_data_root, name):
    if not (real_data_root / name).is_dir():
        pytest.fail(f"VQVAE_DATA is set but {real_data_root / name} is missing")
    for split, n in (("train", 60_000), ("test", 10_000)):
        ds = load_dataset(name, split, data_root=str(real_data_root), download=False)
        assert ds.images.shape == (n, 28, 28, 1) and ds.images.dtype == np.uint8
        assert ds.labels.min() == 0 and ds.labels.max() == 9 and ds.num_classes == 10
        assert np.bincount(ds.labels).min() > n // 20  # every class is there

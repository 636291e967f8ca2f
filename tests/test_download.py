"""Tests for vqvae.data.download against a local HTTP server: never the internet."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
from dataclasses import replace

import numpy as np
import pytest

from vqvae.data import DataError, load_dataset
from vqvae.data import download as dl

RNG = np.random.default_rng(1)


@pytest.fixture
def closed_port_url():
    """A URL on which nothing listens: connection refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _serve_mnist(www, fake_data):
    """Write tiny MNIST .gz files under www/mnist/; return {filename: bytes}."""
    (www / "mnist").mkdir()
    files = {}
    for prefix, n in (("train", 6), ("t10k", 2)):
        files[f"{prefix}-images-idx3-ubyte.gz"] = fake_data.idx(
            RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        )
        files[f"{prefix}-labels-idx1-ubyte.gz"] = fake_data.idx(
            RNG.integers(0, 10, n).astype(np.uint8)
        )
    for name, data in files.items():
        (www / "mnist" / name).write_bytes(data)
    return files


def _patch(monkeypatch, name, files, mirrors, bad_md5=False):
    remote = dl.REMOTES[name]
    new_files = tuple(
        replace(f, md5="0" * 32 if bad_md5 else _md5(files[f.filename])) for f in remote.files
    )
    monkeypatch.setitem(dl.REMOTES, name, replace(remote, files=new_files, mirrors=tuple(mirrors)))
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)


def test_registry_has_the_real_checksums():
    assert dl.REMOTES["mnist"].files[0].md5 == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert dl.REMOTES["fashion-mnist"].files[3].md5 == "bb300cfdad3c16e7a12a480ee83cd310"
    assert dl.REMOTES["cifar10"].files[0].md5 == "c58f30108f718f92721af3b95e74349a"
    assert dl.REMOTES["mnist"].mirrors[0].startswith("https://ossci-datasets.s3.amazonaws.com")


def test_download_lands_in_place_with_fallback(tmp_path, server, fake_data, monkeypatch):
    base, www = server
    files = _serve_mnist(www, fake_data)
    # the first mirror has nothing (404), the second serves the files
    _patch(monkeypatch, "mnist", files, [f"{base}/missing/", f"{base}/mnist/"])
    root = tmp_path / "root"
    ds = load_dataset("mnist", "test", data_root=str(root))
    assert len(ds) == 2 and ds.image_size == (28, 28)
    for name, data in files.items():
        assert (root / "mnist" / name).read_bytes() == data
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(files)  # no temp files
    n_requests = len(server.requests)
    load_dataset("mnist", "train", data_root=str(root))  # present now: no network
    assert len(server.requests) == n_requests


def test_checksum_mismatch_raises_and_keeps_nothing(tmp_path, server, fake_data, monkeypatch):
    base, www = server
    files = _serve_mnist(www, fake_data)
    _patch(monkeypatch, "mnist", files, [f"{base}/mnist/"], bad_md5=True)
    root = tmp_path / "root"
    with pytest.raises(DataError, match="checksum mismatch for train-images-idx3-ubyte.gz"):
        load_dataset("mnist", data_root=str(root))
    assert list((root / "mnist").iterdir()) == []


@pytest.mark.parametrize("where", ["404", "refused"])
def test_unreachable_says_where_to_put_files(
    tmp_path, server, fake_data, monkeypatch, closed_port_url, where
):
    base, www = server
    files = _serve_mnist(www, fake_data)
    mirror = f"{base}/nothing-here/" if where == "404" else closed_port_url
    _patch(monkeypatch, "mnist", files, [mirror])
    root = tmp_path / "root"
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_root=str(root))
    msg = str(e.value)
    assert msg.startswith("could not download mnist") and "\n" not in msg
    assert f"in {root / 'mnist'}" in msg and "train-images-idx3-ubyte.gz" in msg
    assert ("404" in msg) if where == "404" else ("refused" in msg.lower())
    assert list((root / "mnist").iterdir()) == []


def test_download_false_never_touches_network(tmp_path, server, fake_data, monkeypatch):
    base, www = server
    files = _serve_mnist(www, fake_data)
    _patch(monkeypatch, "mnist", files, [f"{base}/mnist/"])
    with pytest.raises(DataError, match=r"mnist not found; put train-images"):
        load_dataset("mnist", data_root=str(tmp_path / "root"), download=False)
    assert server.requests == []


def test_vqvae_mirror_env(tmp_path, server, fake_data, monkeypatch, closed_port_url):
    base, www = server
    files = _serve_mnist(www, fake_data)
    _patch(monkeypatch, "mnist", files, [closed_port_url])  # public mirrors "down"
    monkeypatch.setenv(dl.MIRROR_ENV, base)  # laid out as <mirror>/mnist/<file>
    ds = load_dataset("mnist", data_root=str(tmp_path / "root"))
    assert len(ds) == 6 and server.requests[0] == "/mnist/train-images-idx3-ubyte.gz"


def test_cifar10_download_and_unpack(tmp_path, server, fake_data, monkeypatch):
    base, www = server
    images = RNG.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    batches = {
        f"data_batch_{i}": fake_data.cifar_batch(images, np.array([1, 2, 3])) for i in range(1, 6)
    }
    batches["test_batch"] = fake_data.cifar_batch(images[:2], np.array([4, 5]))
    tar = fake_data.cifar_tar(batches)
    (www / "cifar-10-python.tar.gz").write_bytes(tar)
    _patch(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": tar}, [f"{base}/"])
    root = tmp_path / "root"
    ds = load_dataset("cifar10", "train", data_root=str(root))
    assert ds.images.shape == (15, 32, 32, 3)
    np.testing.assert_array_equal(ds.images[:3], images)
    assert (root / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file()
    assert (root / "cifar10" / "cifar-10-python.tar.gz").is_file()
    assert sorted(p.name for p in (root / "cifar10").iterdir()) == [
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
    ]  # the temporary extraction folder is gone
    assert load_dataset("cifar10", "test", data_root=str(root)).labels.tolist() == [4, 5]


def test_unsafe_tar_entry_is_refused(tmp_path, server, monkeypatch):
    base, www = server
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    (www / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    _patch(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": buf.getvalue()}, [f"{base}/"])
    root = tmp_path / "root"
    with pytest.raises(DataError, match="refused unsafe archive entry '../escaped'"):
        load_dataset("cifar10", data_root=str(root))
    assert not (root / "escaped").exists() and not (tmp_path / "escaped").exists()

"""Shared fixtures: where the real data sets are, and builders for tiny files in real formats."""

from __future__ import annotations

import functools
import gzip
import http.server
import io
import os
import pickle
import re
import shutil
import struct
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

# The suite's models are tiny: one thread is the quickest for them on any machine, and a
# thread count the user set is one the commands do not announce, so an in-process command's
# stderr is its own lines only (tests/test_threads.py checks the choice from the load).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def real_data_root() -> Path:
    """``$VQVAE_DATA``: skip when it is unset, fail (never skip) when it is set but missing.

    DESIGN.md: where VQVAE_DATA is set and the data is missing, tests fail rather than skip."""
    root = os.environ.get("VQVAE_DATA")
    if not root:
        pytest.skip("VQVAE_DATA is not set")
    if not Path(root).is_dir():
        pytest.fail(f"VQVAE_DATA={root} is set but is not a folder")
    return Path(root)


def _idx_bytes(array: np.ndarray, gz: bool = True) -> bytes:
    """An idx file of a uint8 array (http://yann.lecun.com/exdb/mnist/), gzipped if ``gz``."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.tobytes()
    return gzip.compress(raw) if gz else raw


def _cifar_batch_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """A CIFAR-10 python batch: a pickled dict with bytes keys, rows stored plane by plane."""
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # (N, H, W, 3) -> (N, 3*H*W)
    batch = {b"batch_label": b"test", b"labels": [int(x) for x in labels], b"data": data}
    return pickle.dumps(batch, protocol=2)


def _cifar_tar_bytes(batches: dict[str, bytes]) -> bytes:
    """A cifar-10-python.tar.gz holding ``cifar-10-batches-py/<name>`` for each batch."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, payload in batches.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


@pytest.fixture
def fake_data() -> SimpleNamespace:
    """Builders of tiny files in the real formats (idx, CIFAR batches, CIFAR tar.gz)."""
    return SimpleNamespace(
        idx=_idx_bytes, cifar_batch=_cifar_batch_bytes, cifar_tar=_cifar_tar_bytes
    )


# `--set` pairs that make a VQ-VAE small enough to train in a second (CLI and training tests).
TINY = [
    "--set", "net.hidden_channels=16",
    "--set", "net.residual_channels=8",
    "--set", "quantizer.num_codes=16",
    "--set", "quantizer.code_dim=8",
]  # fmt: skip


def decided_codes(z_e, codebook, tie_rtol: float = 1e-4):
    """(B, *S) bool: where the nearest code to ``z_e`` (B, D, *S) beats the second nearest in
    ``codebook`` (K, D) by more than ``tie_rtol`` of the distance, so that no CPU's rounding
    can reorder them: where codes recorded on one machine must match on any other."""
    import torch

    with torch.no_grad():
        flat = z_e.movedim(1, -1).reshape(-1, z_e.shape[1])  # (B, D, *S) -> (N, D)
        d = torch.cdist(flat.double(), codebook.double()) ** 2  # (N, K)
    two = d.topk(2, dim=-1, largest=False).values  # (N, 2)
    margin = two[:, 1] - two[:, 0]
    decided = margin > tie_rtol * two[:, 1].clamp_min(1e-12)
    return decided.reshape(z_e.shape[0], *z_e.shape[2:])


def error_line(err: str) -> str:
    """The one line a refused command printed on stderr (``vqvae: error: ...``), with no
    traceback."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vqvae: error:"), err
    return lines[0]


def one_error_line(capsys) -> str:
    """``error_line`` of what the command printed on stderr so far."""
    return error_line(capsys.readouterr().err)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny convolutions on two threads crawl when the cores are shared; one is quicker."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass
class LocalServer:
    """A static HTTP server on 127.0.0.1 over ``www``; ``base, www = server`` unpacks it."""

    base: str  # http://127.0.0.1:PORT
    www: Path  # the served folder
    requests: list[str] = field(default_factory=list)  # paths asked for, in order

    def __iter__(self) -> Iterator:
        return iter((self.base, self.www))


@pytest.fixture
def server(tmp_path) -> Iterator[LocalServer]:
    """A local HTTP server over ``tmp_path / "www"`` (download tests: never the internet)."""
    www = tmp_path / "www"
    www.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(www))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield LocalServer(f"http://127.0.0.1:{httpd.server_address[1]}", www, requests)
    httpd.shutdown()
    httpd.server_close()
    thread.join()


# -- a real browser, for the report's tests ---------------------------------------------------
@dataclass
class Browser:
    """Debian's headless chromium: a page's DOM after its scripts ran, or a screenshot."""

    path: str
    profiles: Path  # each call gets a fresh --user-data-dir under this folder
    calls: int = 0

    def run(self, url: str, *extra: str) -> subprocess.CompletedProcess:
        self.calls += 1
        cmd = [
            self.path,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={self.profiles / f'p{self.calls}'}",
            *extra,
            url,
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)

    def dom(self, url: str, budget_ms: int = 5000) -> str:
        """The DOM once the page has loaded and run ``budget_ms`` of virtual time."""
        return self.run(url, f"--virtual-time-budget={budget_ms}", "--dump-dom").stdout

    @staticmethod
    def loaded(dom: str, what: str) -> tuple[int, int]:
        """(loaded, total) that the report's load script wrote on ``<body>`` for ``what``
        (``images``, or ``audio``: players with a clip of positive duration)."""
        body = re.search(r"<body[^>]*>", dom)
        assert body, dom[:500]
        loaded = re.search(rf'data-{what}-loaded="(\d+)"', body.group(0))
        total = re.search(rf'data-{what}-total="(\d+)"', body.group(0))
        assert loaded and total, f"the page's load script did not run: {body.group(0)}"
        return int(loaded.group(1)), int(total.group(1))


@pytest.fixture
def browser(tmp_path) -> Browser:
    """Chromium, skipped when it is missing on a developer's machine but a failure under
    CI=true, where the CI script installs it."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing, but CI=true: the CI script installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return Browser(path, tmp_path / "chromium-profiles")


# -- a tiny speech data set and run, for the speech model's tests -----------------------------
RATE = 8000
SPEAKERS = ("amy", "bob")


# the encoder and codes every tiny speech model shares
_TINY_CODES = [
    "--set", "net.hidden_channels=16", "--set", "net.residual_channels=8",
    "--set", "quantizer.num_codes=16", "--set", "quantizer.code_dim=8",
]  # fmt: skip

# `--set` pairs that shrink the speech8k-wavenet preset to a model that trains in a second.
TINY_AUDIO = [
    "--preset", "speech8k-wavenet", *_TINY_CODES,
    "--set", "wavenet.residual_channels=8", "--set", "wavenet.gate_channels=8",
    "--set", "wavenet.skip_channels=16", "--set", "wavenet.layers=4",
    "--set", "wavenet.stacks=1", "--set", "input_size=[256]", "--set", "train.eval_limit=4",
]  # fmt: skip


def tone(digit: int, speaker: int, index: int) -> np.ndarray:
    """A short tone whose pitch says the digit and whose loudness says the speaker."""
    n = 300 + 40 * index + 25 * digit
    t = np.arange(n) / RATE
    return (0.2 + 0.3 * speaker) * np.sin(2 * np.pi * (300 + 200 * digit) * t).astype(np.float32)


@pytest.fixture(scope="module")
def speech_folder(tmp_path_factory) -> Path:
    """FSDD-style names: 3 digits x 2 speakers x 8 recordings; index 0..4 is the test split."""
    from vqvae.data import write_wav

    folder = tmp_path_factory.mktemp("speech")
    for digit in range(3):
        for s, name in enumerate(SPEAKERS):
            for index in range(8):
                write_wav(folder / f"{digit}_{name}_{index}.wav", tone(digit, s, index), RATE)
    return folder


# the same for the mel decoder (the speech8k preset), with a tiny mel decoder
TINY_MEL = [
    "--preset", "speech8k", *_TINY_CODES,
    "--set", "mel_decoder.hidden_channels=16", "--set", "mel_decoder.num_blocks=2",
    "--set", "mel_decoder.speaker_dim=4", "--set", "input_size=[256]",
    "--set", "train.eval_limit=4", "--set", "train.warmup_steps=2",
]  # fmt: skip


def train_speech(folder: Path, out: Path, steps: int, *extra: str) -> int:
    from vqvae.cli import main

    return main([
        "train", "--data", str(folder), "--out", str(out), *TINY_AUDIO, "--steps", str(steps),
        "--batch-size", "4", "--no-progress", "--no-report", *extra,
    ])  # fmt: skip


@pytest.fixture(scope="module")
def speech_run(speech_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "speech"
    assert train_speech(speech_folder, out, 6, "--set", "train.checkpoint_every=3") == 0
    return out


# -- a folder of image files -----------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def temporary_cache(tmp_path_factory) -> Iterator[Path]:
    """Folder indexes (``vqvae.data.folder_index``) go to a cache of the session, not the
    user's; subprocesses inherit it."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VQVAE_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory) -> Path:
    """scikit-learn's digits as PNG files, ``train/NNNN.png`` and ``test/NNNN.png``: the
    ``digits`` data set's own split and order, so a run over the folder can be compared with
    a run over ``digits`` bit for bit."""
    from PIL import Image

    from vqvae.data import load_images

    root = tmp_path_factory.mktemp("digits-folder")
    for split in ("train", "test"):
        (root / split).mkdir()
        for i, img in enumerate(load_images("digits", split).images):
            Image.fromarray(img[..., 0]).save(root / split / f"{i:04d}.png")
    return root


# -- a toy first-person world: episodes of frames and actions, in the recorder's layout -------

TOY_ACTIONS = ("noop", "forward", "left", "right", "forward_left", "forward_right")


def toy_episodes(episodes: int = 6, steps: int = 8, size: int = 16, seed: int = 0):
    """Episodes of a toy world the actions visibly move: the view is a window on a panorama of
    coloured stripes that ``left``/``right`` turn by an eighth of the frame, over a floor whose
    checkers ``forward`` moves one row closer. Small, deterministic, no renderer needed."""
    from vqvae.data.episodes import Episodes

    rng = np.random.default_rng(seed)
    panorama = rng.integers(0, 256, size=(size, 3), dtype=np.uint8)  # one colour per 4 px
    panorama = np.repeat(panorama, 4, axis=0)  # (4*size, 3): columns of the walls
    turn = {"left": -size // 8, "right": size // 8, "forward_left": -size // 8}
    turn["forward_right"] = size // 8
    frames = np.zeros((episodes, steps, size, size, 3), np.uint8)
    actions = rng.choice(len(TOY_ACTIONS), size=(episodes, steps), p=[0.1, 0.5, 0.1, 0.1, 0.1, 0.1])
    rows = np.arange(size // 2)[:, None]
    cols = np.arange(size)[None, :]
    for n in range(episodes):
        heading, position = int(rng.integers(0, 4 * size)), 0
        for t in range(steps):
            columns = (heading + np.arange(size)) % (4 * size)
            frames[n, t, : size // 2] = panorama[columns][None]  # (W, 3) -> walls (H/2, W, 3)
            checker = ((rows + position) // 2 + cols // 4) % 2  # (H/2, W), moves with forward
            frames[n, t, size // 2 :] = (60 + 120 * checker)[..., None]
            name = TOY_ACTIONS[actions[n, t]]
            heading += turn.get(name, 0)
            position += int(name.startswith("forward"))
    return Episodes(frames, actions, TOY_ACTIONS, name="toy")


@pytest.fixture(scope="session")
def toy_maze(tmp_path_factory) -> Path:
    """A tiny episodes file (6 episodes x 8 frames of 16x16) written as the recorder writes."""
    path = tmp_path_factory.mktemp("maze") / "maze.npz"
    toy_episodes().write(path)
    return path

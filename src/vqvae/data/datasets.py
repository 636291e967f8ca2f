"""``load_dataset(spec)``: a registered name or a path, turned into an ``ImageDataset`` or, for
audio, an ``AudioDataset`` (``load_images`` and ``load_audio`` insist on one kind).

Names (registered in ``vqvae.registry.DATASETS``) are looked up under the data root: the
``data_root`` argument, else ``$VQVAE_DATA``, else ``~/.cache/vqvae/data``, laid out as
``<root>/mnist/``, ``<root>/fashion-mnist/``, ``<root>/cifar10/cifar-10-batches-py/`` (or
``<root>/cifar-10-batches-py/``), ``<root>/fsdd/recordings/`` (or WAVs in ``<root>/fsdd/``), and
downloaded there when missing unless ``download=False``. A name wins over a folder of the same
name in the working directory; write ``./mnist`` for the folder.

Paths: a ``.npy``/``.npz`` file, a CIFAR batches folder, a folder of idx files, a folder of
images, or a folder of audio files (one that holds audio and no images: see ``audio.py``); a
folder of images whose sub-folders are ``train/``, ``val/`` and ``test/`` (any of them) is
read as those splits (``splits.py``). Data with no split of its own is split with a fixed
seed: 10% test (``digits``: 20%, as it has only 1,797 images), not stratified; the two splits
partition the data. ``split_layout(spec)`` says which of these it is.
"""

from __future__ import annotations

import operator
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vqvae.errors import DataError
from vqvae.registry import DATASETS

from . import download as _download
from .audio import AUDIO_SUFFIXES, FSDD_NAME, AudioDataset, audio_files, load_audio_folder
from .base import SPLIT_SEED, TEST_FRACTION, ImageDataset, check_split, split_indices
from .episodes import is_episodes_file, read_episodes
from .folder_index import index_image_folder
from .formats import find_idx, is_cifar_folder, read_array, read_cifar, read_idx_pair
from .images import IMAGE_SUFFIXES, read_image_folder
from .lazy import LazyImages
from .loader import default_workers
from .splits import (
    FILES,
    SEEDED,
    SplitLayout,
    check_has_split,
    find_split_folders,
    folder_layout,
    union_of_classes,
)
from .transforms import resize_images

_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
            "cifar-10": "cifar10", "cifar_10": "cifar10"}  # fmt: skip
DATA_ENV = "VQVAE_DATA"
DEFAULT_DATA_ROOT = "~/.cache/vqvae/data"

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")  # fmt: skip
_DIGIT_CLASSES = tuple(str(i) for i in range(10))
_IDX_SPLIT_PREFIXES = {"train": ("train",), "test": ("t10k", "test")}
FSDD_SAMPLE_RATE = 8000
IMAGES, AUDIO = "images", "audio"  # the kinds of data set, as data_kind() names them


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """``data_root`` if given, else ``$VQVAE_DATA``, else ``~/.cache/vqvae/data``."""
    root = data_root or os.environ.get(DATA_ENV) or DEFAULT_DATA_ROOT
    return Path(root).expanduser()


def load_dataset(
    spec: str,
    split: str = "train",
    data_root: str | None = None,
    *,
    download: bool = True,
    resize: tuple[int, int] | None = None,
    sample_rate: int | None = None,
    lazy: bool = False,
    workers: int | None = None,
) -> ImageDataset | AudioDataset:
    """Load split ``train``, ``val`` or ``test`` of a registered data set or a path (see module
    doc); ``val`` only where the data has one (``split_layout(spec).splits``).

    ``resize=(H, W)`` resizes every image (bicubic); it also lets a folder of images of mixed
    sizes load. ``sample_rate`` resamples audio (default: the data's own rate). Each applies
    to its kind only. ``lazy`` reads images on demand: a folder of images is indexed
    (``folder_index.py``) and decoded batch by batch by ``workers`` processes (default:
    ``loader.default_workers()``), a ``.npy`` is memory-mapped; ``images`` is then a
    ``LazyImages``. Other formats are read into memory either way. Every problem with the
    input raises ``DataError`` with a one-line message."""
    check_split(split)
    if resize is not None:
        try:
            h, w = (operator.index(s) for s in resize)
        except (TypeError, ValueError):
            h = w = 0
        if h <= 0 or w <= 0:
            raise DataError(f"resize must be two positive integers (H, W), got {resize!r}")
        resize = (h, w)
        if data_kind(spec) == AUDIO:
            raise DataError(f"{spec} is an audio data set; resize applies to images")
    if sample_rate is not None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise DataError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        if data_kind(spec) == IMAGES:
            raise DataError(f"{spec} is an image data set; sample_rate applies to audio")
    if workers is not None and (isinstance(workers, bool) or operator.index(workers) < 0):
        raise DataError(f"workers must be an integer >= 0, got {workers!r}")
    spec = str(spec)
    name = _registered_name(spec)
    if name is not None:
        check_has_split(_named_layout(name), split, name)
        ds = DATASETS.get(name)(split, resolve_data_root(data_root), download)
    else:
        reading = _Reading(resize, lazy, default_workers() if workers is None else workers)
        ds = _load_path(Path(spec).expanduser(), spec, split, reading, sample_rate)
    if len(ds) == 0:
        items = "recordings" if isinstance(ds, AudioDataset) else "images"
        raise DataError(f"{ds.name}: the {split} split is empty (too few {items} to split)")
    if isinstance(ds, AudioDataset):
        return ds.resampled(sample_rate) if sample_rate is not None else ds
    if resize is not None and ds.image_size != resize:
        pixels = resize_images(np.asarray(ds.images), resize)
        ds = ImageDataset(pixels, ds.labels, ds.name, ds.class_names)
    return ds


def load_images(
    spec: str,
    split: str = "train",
    data_root: str | None = None,
    *,
    download: bool = True,
    resize: tuple[int, int] | None = None,
    lazy: bool = False,
    workers: int | None = None,
) -> ImageDataset:
    """``load_dataset`` for the image commands: audio is refused in one line before any file
    is read or downloaded."""
    check_images(spec)
    ds = load_dataset(
        spec, split, data_root, download=download, resize=resize, lazy=lazy, workers=workers
    )
    if not isinstance(ds, ImageDataset):  # a registered loader that did not declare its kind
        raise DataError(_wrong_kind(spec, AUDIO))
    return ds


def load_audio(
    spec: str,
    split: str = "train",
    data_root: str | None = None,
    *,
    download: bool = True,
    sample_rate: int | None = None,
) -> AudioDataset:
    """``load_dataset`` for audio: a registered audio name or a folder of audio files. Image
    data is refused in one line before it is read."""
    if data_kind(spec) == IMAGES:
        path = Path(str(spec)).expanduser()
        if _registered_name(str(spec)) is not None:
            raise DataError(_wrong_kind(spec, IMAGES))
        if not path.exists():
            raise DataError(f"{spec}: no such folder (and not a data set name: {_known()})")
        if not path.is_dir():
            raise DataError(f"{path}: not a folder of audio files")
        if audio_files(path, recursive=True):
            raise DataError(f"{path}: holds image data as well as audio, so it loads as images")
        raise DataError(f"{path}: no audio files found (looked for {', '.join(AUDIO_SUFFIXES)})")
    ds = load_dataset(spec, split, data_root, download=download, sample_rate=sample_rate)
    if not isinstance(ds, AudioDataset):
        raise DataError(_wrong_kind(spec, IMAGES))
    return ds


def check_images(spec: str) -> None:
    """Raise ``DataError`` in one line if ``spec`` names audio (nothing is read or fetched)."""
    if data_kind(spec) == AUDIO:
        raise DataError(_wrong_kind(spec, AUDIO))


def _wrong_kind(spec: str, kind: str) -> str:
    if kind == AUDIO:
        return (
            f"{spec} is an audio data set; this command takes images "
            "(audio runs come with the audio model)"
        )
    return f"{spec} is an image data set, not audio"


def data_kind(spec: str) -> str:
    """``"images"`` or ``"audio"``: what ``load_dataset(spec)`` returns, found without reading
    the data. A registered loader declares audio with a ``kind`` attribute; a folder is audio
    when it holds audio files and no images (images win, so image folders load as before)."""
    name = _registered_name(str(spec))
    if name is not None:
        return getattr(DATASETS.get(name), "kind", IMAGES)
    path = Path(str(spec)).expanduser()
    return AUDIO if path.is_dir() and _is_audio_folder(path) else IMAGES


def _known() -> str:
    return ", ".join(DATASETS.names())


def _registered_name(spec: str) -> str | None:
    name = _ALIASES.get(spec.lower(), spec.lower())
    return name if name in DATASETS else None


# -- registered names -----------------------------------------------------------------------------


@DATASETS.register("mnist", about="MNIST: 60,000 + 10,000 handwritten digits, 28x28 grey")
def _load_mnist(split: str, root: Path, download: bool) -> ImageDataset:
    return _load_named_idx("mnist", split, root, download, _DIGIT_CLASSES)


@DATASETS.register("fashion-mnist", about="Fashion-MNIST: 60,000 + 10,000 clothes, 28x28 grey")
def _load_fashion_mnist(split: str, root: Path, download: bool) -> ImageDataset:
    return _load_named_idx("fashion-mnist", split, root, download, FASHION_MNIST_CLASSES)


def _load_named_idx(
    name: str, split: str, root: Path, download: bool, classes: tuple[str, ...]
) -> ImageDataset:
    folder = root / name
    prefixes = _IDX_SPLIT_PREFIXES[split]
    images_path = find_idx(folder, "images", prefixes)
    labels_path = find_idx(folder, "labels", prefixes)
    if (images_path is None or labels_path is None) and download:
        _download.fetch(name, root)
        images_path = find_idx(folder, "images", prefixes)
        labels_path = find_idx(folder, "labels", prefixes)
    if images_path is None or labels_path is None:
        raise DataError(f"{name} not found; {_download.where_to_put(name, root)}")
    images, labels = read_idx_pair(images_path, labels_path)
    return ImageDataset(images, labels, name, classes)


@DATASETS.register("cifar10", about="CIFAR-10: 50,000 + 10,000 colour images, 32x32, 10 classes")
def _load_cifar10(split: str, root: Path, download: bool) -> ImageDataset:
    folder = _find_cifar(root)
    if folder is None and download:
        _download.fetch("cifar10", root)
        folder = _find_cifar(root)
    if folder is None:
        raise DataError(f"cifar10 not found; {_download.where_to_put('cifar10', root)}")
    images, labels, class_names = read_cifar(folder, split)
    return ImageDataset(images, labels, "cifar10", class_names)


def _find_cifar(root: Path) -> Path | None:
    for folder in (root / "cifar10" / "cifar-10-batches-py", root / "cifar-10-batches-py"):
        if folder.is_dir() and is_cifar_folder(folder):
            return folder
    return None


@DATASETS.register("digits", about="scikit-learn's bundled 1,797 8x8 grey digits: no network")
def _load_digits(split: str, root: Path | None = None, download: bool = False) -> ImageDataset:
    """scikit-learn's bundled 8x8 digits (UCI), 1,797 images: no network needed."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # values are counts 0..16 of set pixels in 4x4 blocks -> 0..255
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # (N, 8, 8, 1)
    labels = bunch.target.astype(np.int64)
    idx = split_indices(len(images), split, test_fraction=_DIGITS_TEST, seed=SPLIT_SEED)
    return ImageDataset(images[idx], labels[idx], "digits", _DIGIT_CLASSES)


@DATASETS.register(
    "fsdd", about="Free Spoken Digit Dataset: 2,700 + 300 spoken digits, 6 speakers, 8 kHz audio"
)
def _load_fsdd(split: str, root: Path, download: bool) -> AudioDataset:
    """FSDD (Jackson et al.): recordings 0..4 of each digit and speaker are the test split."""
    folder = _find_fsdd(root)
    if folder is None and download:
        _download.fetch("fsdd", root)
        folder = _find_fsdd(root)
    if folder is None:
        raise DataError(f"fsdd not found; {_download.where_to_put('fsdd', root)}")
    stray = next((p for p in folder.glob("*.wav") if not FSDD_NAME.fullmatch(p.stem)), None)
    if stray is not None:
        raise DataError(f"{stray}: not an FSDD name ({{digit}}_{{speaker}}_{{index}}.wav)")
    return load_audio_folder(folder, split, FSDD_SAMPLE_RATE, name="fsdd")


_load_fsdd.kind = AUDIO  # type: ignore[attr-defined]  # read by data_kind()


def _find_fsdd(root: Path) -> Path | None:
    for folder in (root / "fsdd" / "recordings", root / "fsdd"):
        if folder.is_dir() and any(folder.glob("*.wav")):
            return folder
    return None


_DIGITS_TEST = 0.2  # of only 1,797 images
_load_digits.split_layout = SplitLayout(SEEDED, ("train", "test"), test_fraction=_DIGITS_TEST)  # type: ignore[attr-defined]


# -- paths ----------------------------------------------------------------------------------------


def _check_exists(path: Path, name: str) -> None:
    if not path.exists():
        raise DataError(f"{name}: no such file or folder (and not a data set name: {_known()})")


@dataclass(frozen=True)
class _Reading:
    """How a path's images are read: resized, on demand (and by how many workers)."""

    resize: tuple[int, int] | None
    lazy: bool
    workers: int


def _load_path(
    path: Path, name: str, split: str, reading: _Reading, sample_rate: int | None
) -> ImageDataset | AudioDataset:
    _check_exists(path, name)
    check_has_split(_path_layout(path), split, name)
    if path.is_file():
        if path.suffix.lower() not in (".npy", ".npz"):
            raise DataError(
                f"{path}: unsupported file; expected a .npy/.npz array or a folder "
                "(of images, of idx files, of CIFAR batches, or of audio files)"
            )
        if is_episodes_file(path):  # recorded episodes: their frames, split by episode
            episodes = read_episodes(path).split(split)
            return ImageDataset(episodes.flat_frames(), None, name)
        images, labels = read_array(path, mmap=reading.lazy)
        if isinstance(images, np.memmap):  # pages are read as batches ask for them
            images = LazyImages.from_array(images)
        return _seeded_split(images, labels, name, None, split)
    for folder in (path, path / "cifar-10-batches-py"):
        if folder.is_dir() and is_cifar_folder(folder):
            images, labels, class_names = read_cifar(folder, split)
            return ImageDataset(images, labels, name, class_names)
    if any(path.glob("*-idx3-ubyte*")):
        return _load_idx_folder(path, name, split)
    if _is_audio_folder(path):
        return load_audio_folder(path, split, sample_rate, name=name)
    return _load_image_folder(path, name, split, reading)


def _is_audio_folder(folder: Path) -> bool:
    """Audio files anywhere in the folder, and no image file anywhere: images win (and CIFAR
    batches and idx files, which ``_load_path`` looks for first)."""
    if any(f.is_dir() and is_cifar_folder(f) for f in (folder, folder / "cifar-10-batches-py")):
        return False
    if any(folder.glob("*-idx3-ubyte*")):
        return False
    found_audio = False
    for p in folder.rglob("*"):
        suffix = p.suffix.lower()
        if suffix in IMAGE_SUFFIXES and p.is_file():
            return False
        found_audio = found_audio or (suffix in AUDIO_SUFFIXES and p.is_file())
    return found_audio


def _load_idx_folder(folder: Path, name: str, split: str) -> ImageDataset:
    """Train/test files (``train-*``, ``t10k-*`` or ``test-*``) if present, else one images
    file (plus its labels file, if any) split with a fixed seed."""
    train = find_idx(folder, "images", _IDX_SPLIT_PREFIXES["train"])
    test = find_idx(folder, "images", _IDX_SPLIT_PREFIXES["test"])
    if train is not None and test is not None:
        prefixes = _IDX_SPLIT_PREFIXES[split]
        images_path = train if split == "train" else test
        images, labels = read_idx_pair(images_path, find_idx(folder, "labels", prefixes))
        return ImageDataset(images, labels, name)
    candidates = sorted(p for p in folder.glob("*-idx3-ubyte*") if p.suffix in ("", ".gz"))
    if len(candidates) != 1:
        names = ", ".join(p.name for p in candidates)
        raise DataError(
            f"{folder}: expected train-/t10k- idx files or a single images idx file, found {names}"
        )
    images_path = candidates[0]
    labels_path = images_path.with_name(images_path.name.replace("images-idx3", "labels-idx1"))
    images, labels = read_idx_pair(images_path, labels_path if labels_path.is_file() else None)
    return _seeded_split(images, labels, name, None, split)


def _seeded_split(
    images: np.ndarray | LazyImages,
    labels: np.ndarray | None,
    name: str,
    class_names: tuple[str, ...] | None,
    split: str,
) -> ImageDataset:
    idx = split_indices(len(images), split, test_fraction=TEST_FRACTION, seed=SPLIT_SEED)
    chosen = images.subset(idx) if isinstance(images, LazyImages) else images[idx]
    return ImageDataset(chosen, None if labels is None else labels[idx], name, class_names)


def _load_image_folder(path: Path, name: str, split: str, reading: _Reading) -> ImageDataset:
    """Split folders (``train/``, ``val/``, ``test/``) if there are, else one folder split
    with a fixed seed; so is ``train/`` alone."""
    folders = find_split_folders(path)
    if not folders:
        images, labels, class_names = _read_folder(path, reading)
        return _seeded_split(images, labels, name, class_names, split)
    classes = union_of_classes(folders)
    if set(folders) == {"train"}:
        images, labels, _ = _read_folder(folders["train"], reading, classes)
        return _seeded_split(images, labels, name, classes, split)
    images, labels, _ = _read_folder(folders[split], reading, classes)
    return ImageDataset(images, labels, name, classes)


def _read_folder(
    folder: Path, reading: _Reading, classes: tuple[str, ...] | None = None
) -> tuple[np.ndarray | LazyImages, np.ndarray | None, tuple[str, ...] | None]:
    """A folder's images (decoded now, or indexed to be read on demand), labels and classes."""
    if not reading.lazy:
        return read_image_folder(folder, reading.resize, classes)
    index = index_image_folder(folder, classes, processes=reading.workers + 1)
    images = LazyImages.from_index(index, reading.resize, reading.workers)
    return images, index.labels, index.class_names


# -- layouts --------------------------------------------------------------------------------------
def _named_layout(name: str) -> SplitLayout:
    """A registered loader's ``split_layout`` attribute where it sets one (``digits``);
    else its own train and test files."""
    layout = getattr(DATASETS.get(name), "split_layout", None)
    return layout if isinstance(layout, SplitLayout) else SplitLayout(FILES, ("train", "test"))


def _path_layout(path: Path) -> SplitLayout:
    seeded = SplitLayout(SEEDED, ("train", "test"), test_fraction=TEST_FRACTION)
    if path.is_file():
        return seeded
    if any(f.is_dir() and is_cifar_folder(f) for f in (path, path / "cifar-10-batches-py")):
        return SplitLayout(FILES, ("train", "test"))
    if any(path.glob("*-idx3-ubyte*")):
        train = find_idx(path, "images", _IDX_SPLIT_PREFIXES["train"])
        test = find_idx(path, "images", _IDX_SPLIT_PREFIXES["test"])
        return SplitLayout(FILES, ("train", "test")) if train and test else seeded
    folders = find_split_folders(path)
    return folder_layout(folders, TEST_FRACTION) if folders else seeded


def split_layout(spec: str) -> SplitLayout:
    """How the data of ``spec`` is split (``splits.py``): its own files, split folders, or a
    fixed seeded split; which splits there are, and which one evaluation uses. Reads only
    folder listings, never the data; refuses an ambiguous folder layout with a DataError."""
    spec = str(spec)
    name = _registered_name(spec)
    if name is not None:
        return _named_layout(name)
    path = Path(spec).expanduser()
    _check_exists(path, spec)
    return _path_layout(path)

"""Tests for vqvae.data.audio and the ``fsdd`` data set: tiny WAV/FLAC/OGG files written into
tmp_path, downloads from a local HTTP server (never the internet), and the real FSDD."""

from __future__ import annotations

import io
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vqvae.cli import main
from vqvae.data import (
    AudioDataset,
    DataError,
    ImageDataset,
    data_kind,
    load_audio,
    load_audio_folder,
    load_dataset,
    load_images,
    read_audio,
    resample,
)
from vqvae.data import download as dl

RNG = np.random.default_rng(3)


def _pcm(n: int) -> np.ndarray:
    return RNG.integers(-20000, 20000, n, dtype=np.int16)


def _wav(path: Path, data: np.ndarray, rate: int = 8000, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, **kwargs)
    return path


def _sine(freq: float, rate: int, n: int, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])


def _one_line_error(call, *fragments: str) -> str:
    with pytest.raises(DataError) as e:
        call()
    msg = str(e.value)
    assert "\n" not in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


# -- the data set ---------------------------------------------------------------------------------


def test_audio_dataset_checks_and_properties():
    waves = (np.zeros(8000, np.float32), np.full(4000, 0.5, np.float32))
    ds = AudioDataset(
        waves,
        8000,
        labels=np.array([3, 1]),
        speakers=np.array([0, 1]),
        speaker_names=("ann", "bob"),
        class_names=tuple("0123456789"),
        name="toy",
    )
    assert len(ds) == 2 and ds.num_classes == 10 and ds.num_speakers == 2
    np.testing.assert_allclose(ds.durations, [1.0, 0.5])
    assert ds.files == ("0", "1")  # numbered when not given
    bare = AudioDataset(waves, 16000)
    assert bare.num_classes == 0 and bare.num_speakers == 0 and bare.name == "audio"
    half = ds.resampled(4000)
    assert half.sample_rate == 4000 and [len(x) for x in half.waveforms] == [4000, 2000]
    assert half.labels is ds.labels and ds.resampled(8000) is ds

    bad = {
        "waveforms must be a tuple": dict(waveforms=list(waves)),
        "waveform 1 must be float32 (T,)": dict(waveforms=(waves[0], waves[1].astype(float))),
        "waveform 0 must be float32 (T,), got float32 (2, 3)": dict(
            waveforms=(np.zeros((2, 3), np.float32),)
        ),
        "waveform 0 is empty": dict(waveforms=(np.zeros(0, np.float32),)),
        "outside [-1, 1] or NaN": dict(waveforms=(np.array([0.5, np.nan], np.float32),)),
        "sample_rate must be a positive int": dict(sample_rate=0),
        "labels must be int64 (2,)": dict(labels=np.array([1, 2], np.int32)),
        "speakers must be int64 (2,)": dict(speakers=np.array([1])),
        "id 2 has no entry in speaker_names": dict(speakers=np.array([0, 2])),
        "files must be a tuple of 2 names": dict(files=("a.wav",)),
    }
    for fragment, change in bad.items():
        with pytest.raises(ValueError) as e:
            replace(ds, **change)
        assert fragment in str(e.value) and "\n" not in str(e.value)


# -- one file -------------------------------------------------------------------------------------


def test_int_pcm_is_scaled_and_stereo_mixed_to_mono(tmp_path):
    pcm = np.array([-32768, -16384, 0, 16384, 32767], np.int16)
    x = read_audio(_wav(tmp_path / "mono.wav", pcm), 8000)
    assert x.dtype == np.float32 and x.shape == (5,)
    np.testing.assert_array_equal(x, pcm / 32768.0)
    left, right = _pcm(300), _pcm(300)
    stereo = read_audio(_wav(tmp_path / "stereo.wav", np.stack([left, right], axis=1)), 8000)
    assert stereo.shape == (300,)
    np.testing.assert_allclose(stereo, (left / 32768.0 + right / 32768.0) / 2, atol=1e-7)
    loud = _wav(tmp_path / "loud.wav", np.array([2.0, -3.0, 0.25], np.float32), subtype="FLOAT")
    np.testing.assert_array_equal(read_audio(loud, 8000), [1.0, -1.0, 0.25])  # clipped


@pytest.mark.parametrize("backend", ["soxr", "scipy"])
def test_resampling_keeps_a_sine_and_removes_what_cannot_be_kept(monkeypatch, backend):
    if backend == "scipy":
        monkeypatch.setitem(sys.modules, "soxr", None)  # `import soxr` raises ImportError
    tone = _sine(440, 16000, 1600)  # 0.1 s at 16 kHz
    y = resample(tone, 16000, 8000)
    assert y.dtype == np.float32 and y.shape == (800,)
    assert _peak_hz(y, 8000) == 440  # bins are 10 Hz apart
    # the same tone sampled at 8 kHz directly, away from the filter's edge effects
    np.testing.assert_allclose(y[100:-100], _sine(440, 8000, 800)[100:-100], atol=0.02)
    # 5 kHz is above the new Nyquist frequency (4 kHz): filtered out, not aliased to 3 kHz
    alias = resample(_sine(5000, 16000, 1600), 16000, 8000)
    assert np.sqrt(np.mean(alias[100:-100] ** 2)) < 0.01 * np.sqrt(np.mean(tone**2))
    # lengths are round(T * new / old), half up, whatever the ratio
    x = np.zeros(1001, np.float32)
    assert [len(resample(x, 16000, r)) for r in (8000, 22050, 11025)] == [501, 1380, 690]


def test_resampled_file_has_the_right_length_and_frequency(tmp_path):
    path = _wav(tmp_path / "a.wav", _sine(1000, 16000, 3200), rate=16000)
    x = read_audio(path, 8000)
    assert x.shape == (1600,) and _peak_hz(x, 8000) == 1000


@pytest.mark.parametrize(
    ("suffix", "subtype", "atol"), [(".flac", "PCM_16", 1 / 32768), (".ogg", "VORBIS", 0.05)]
)
def test_flac_and_ogg(tmp_path, suffix, subtype, atol):
    tone = _sine(300, 8000, 4000)
    x = read_audio(_wav(tmp_path / f"tone{suffix}", tone, subtype=subtype), 8000)
    assert x.shape == tone.shape
    np.testing.assert_allclose(x[500:-500], tone[500:-500], atol=atol)  # OGG is lossy


def _bytes(payload: bytes):
    def write(path: Path) -> Path:
        path.write_bytes(payload)
        return path

    return write


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (_bytes(RNG.bytes(300)), "corrupt or unreadable audio"),
        (_bytes(b""), "corrupt or unreadable audio"),
        (lambda p: _wav(p, np.zeros(0, np.int16)), "no audio in the file (0 frames)"),
        (_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64)), "unreadable audio"),
        (
            lambda p: _wav(p, np.array([0.1, np.nan], np.float32), subtype="FLOAT"),
            "NaN or infinite",
        ),
    ],
    ids=["corrupt", "empty", "zero-frames", "png-bytes", "nan"],
)
def test_bad_files_are_named_in_one_line(tmp_path, make, fragment):
    folder = tmp_path / "speech"
    folder.mkdir()
    bad = make(folder / "bad.wav")
    _one_line_error(lambda: read_audio(bad, 8000), str(bad), fragment)
    # in a folder, the same error names the same file
    for i in range(3):
        _wav(folder / f"good{i}.wav", _pcm(100))
    _one_line_error(lambda: load_audio_folder(folder, "train", 8000), "bad.wav", fragment)


def test_missing_file_is_named(tmp_path):
    _one_line_error(lambda: read_audio(tmp_path / "nope.flac", 8000), "nope.flac")


# -- a folder -------------------------------------------------------------------------------------


def test_folder_with_speaker_subfolders(tmp_path):
    written = {}
    for speaker, n in (("zoe", 12), ("adam", 8)):
        for i in range(n):
            written[f"{speaker}/u{i:02d}.wav"] = _pcm(50 + i)
            _wav(
                tmp_path / "speech" / speaker / f"u{i:02d}.wav", written[f"{speaker}/u{i:02d}.wav"]
            )
    (tmp_path / "speech" / "notes.txt").write_text("ignored")
    spec = str(tmp_path / "speech")
    assert data_kind(spec) == "audio"
    train, test = (load_dataset(spec, split) for split in ("train", "test"))
    assert isinstance(train, AudioDataset) and (len(train), len(test)) == (18, 2)
    assert train.speaker_names == ("adam", "zoe") and train.num_speakers == 2
    assert train.labels is None and test.labels is None and train.sample_rate == 8000
    # the splits partition the folder, and each waveform is its file's
    assert sorted(train.files + test.files) == sorted(written)
    for ds in (train, test):
        for f, x, s in zip(ds.files, ds.waveforms, ds.speakers, strict=True):
            np.testing.assert_array_equal(x, written[f] / 32768.0)
            assert ds.speaker_names[s] == f.split("/")[0]
    # the same seeded split every time
    assert load_dataset(spec, "test").files == test.files


def test_loose_files_and_fsdd_names(tmp_path):
    loose = tmp_path / "loose"
    for i in range(10):
        _wav(loose / f"clip{i}.wav", _pcm(40))
    ds = load_audio_folder(loose, "train")
    assert len(ds) == 9 and ds.speakers is None and ds.labels is None and ds.name == str(loose)

    named = tmp_path / "digits"
    for digit in (3, 7):
        for speaker in ("theo", "ann"):
            for index in (0, 4, 5, 12):
                _wav(named / f"{digit}_{speaker}_{index}.wav", _pcm(30))
    train = load_dataset(str(named), "train")
    test = load_dataset(str(named), "test")
    assert (len(train), len(test)) == (8, 8)  # index 0..4 is the test split
    assert all(int(f[:-4].split("_")[2]) < 5 for f in test.files)
    assert train.speaker_names == ("ann", "theo") and train.num_classes == 10
    for ds in (train, test):
        for f, y, s in zip(ds.files, ds.labels, ds.speakers, strict=True):
            digit, speaker, _ = f[:-4].split("_")
            assert int(digit) == y and ds.speaker_names[s] == speaker


def test_folder_rate_is_the_most_common_one(tmp_path):
    folder = tmp_path / "mixed"
    for i in range(3):
        _wav(folder / f"hi{i}.wav", _sine(500, 16000, 1600), rate=16000)
    _wav(folder / "lo.wav", _sine(500, 8000, 800), rate=8000)
    everything = {
        **_by_file(load_dataset(str(folder), "train")),
        **_by_file(load_dataset(str(folder), "test")),
    }
    assert {len(x) for x in everything.values()} == {1600}  # lo.wav upsampled to 16 kHz
    assert load_dataset(str(folder), "test").sample_rate == 16000
    eight = load_audio(str(folder), "train", sample_rate=8000)
    assert eight.sample_rate == 8000 and {len(x) for x in eight.waveforms} == {800}


def _by_file(ds: AudioDataset) -> dict[str, np.ndarray]:
    return dict(zip(ds.files, ds.waveforms, strict=True))


def test_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no audio here")
    _one_line_error(lambda: load_audio_folder(empty, "train"), str(empty), "no audio files found")
    _one_line_error(lambda: load_audio(str(empty)), "no audio files found")
    mixed = tmp_path / "mixed"
    _wav(mixed / "loose.wav", _pcm(20))
    _wav(mixed / "ann" / "a.wav", _pcm(20))
    _one_line_error(lambda: load_audio_folder(mixed, "train"), "loose audio files", "ann")
    _one_line_error(lambda: load_audio(str(tmp_path / "nowhere")), "no such folder")
    _one_line_error(lambda: load_audio("mnist"), "mnist is an image data set")
    _one_line_error(
        lambda: load_dataset(str(mixed / "ann"), resize=(8, 8)), "audio data set; resize"
    )
    _one_line_error(lambda: load_dataset("digits", sample_rate=8000), "image data set")
    one = tmp_path / "one"
    _wav(one / "only.wav", _pcm(20))
    _one_line_error(lambda: load_dataset(str(one), "test"), "test split is empty")


def test_images_win_over_audio_in_a_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "both"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(RNG.integers(0, 256, (6, 6), dtype=np.uint8)).save(folder / f"{i}.png")
    _wav(folder / "voice.wav", _pcm(30))
    assert data_kind(str(folder)) == "images"
    assert isinstance(load_dataset(str(folder)), ImageDataset)
    _one_line_error(lambda: load_audio(str(folder)), "loads as images")


# -- fsdd: the name, the download, the image commands ----------------------------------------------


def _fsdd_files() -> dict[str, bytes]:
    files = {}
    for digit in (0, 1):
        for speaker in ("jackson", "george"):
            for index in (0, 7):
                buf = io.BytesIO()
                sf.write(buf, _pcm(200), 8000, format="WAV", subtype="PCM_16")
                files[f"{digit}_{speaker}_{index}.wav"] = buf.getvalue()
    return files


def _fsdd_tar(files: dict[str, bytes], top: str) -> bytes:
    """An archive laid out as GitHub's: ``top/recordings/*.wav`` among other files, with a
    pax global header (git archive writes the commit id there)."""
    buf = io.BytesIO()
    headers = {"comment": "d6938f9bf1545aa66d8489fc9f1385a7abd64282"}
    with tarfile.open(
        fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT, pax_headers=headers
    ) as tar:
        extra = {f"{top}/README.md": b"# FSDD\n", f"{top}/utils/fsdd.py": b"print()\n"}
        for name, payload in {
            **extra,
            **{f"{top}/recordings/{k}": v for k, v in files.items()},
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def _patch_fsdd(monkeypatch, base: str, sha256: str) -> str:
    remote = dl.REMOTES["fsdd"]
    (file,) = remote.files
    monkeypatch.setitem(
        dl.REMOTES,
        "fsdd",
        replace(remote, files=(replace(file, content_sha256=sha256),), mirrors=(f"{base}/",)),
    )
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    return file.filename


def _digest_of(files: dict[str, bytes], folder: Path) -> str:
    folder.mkdir()
    for name, payload in files.items():
        (folder / name).write_bytes(payload)
    return dl.content_digest(folder)


def test_fsdd_download_checks_the_content(tmp_path, server, monkeypatch):
    base, www = server
    files = _fsdd_files()
    remote_file = dl.REMOTES["fsdd"].files[0]
    archive = _patch_fsdd(monkeypatch, base, _digest_of(files, tmp_path / "expected"))
    (www / archive).write_bytes(_fsdd_tar(files, remote_file.inside))
    root = tmp_path / "root"
    test = load_dataset("fsdd", "test", data_root=str(root))
    assert isinstance(test, AudioDataset) and test.name == "fsdd" and test.sample_rate == 8000
    assert sorted(test.files) == sorted(f for f in files if f.endswith("_0.wav"))
    assert test.speaker_names == ("george", "jackson") and test.class_names[1] == "1"
    assert sorted(p.name for p in (root / "fsdd").iterdir()) == sorted([archive, "recordings"])
    assert sorted(p.name for p in (root / "fsdd" / "recordings").iterdir()) == sorted(files)
    (www / archive).unlink()  # present now: no network needed
    assert len(load_dataset("fsdd", "train", data_root=str(root))) == 4


def test_fsdd_tampered_archive_is_refused_and_leaves_nothing(tmp_path, server, monkeypatch):
    base, www = server
    files = _fsdd_files()
    remote_file = dl.REMOTES["fsdd"].files[0]
    archive = _patch_fsdd(monkeypatch, base, _digest_of(files, tmp_path / "expected"))
    name = "1_george_7.wav"
    tampered = {**files, name: files[name][:-2] + b"\x00\x01"}  # one sample changed
    (www / archive).write_bytes(_fsdd_tar(tampered, remote_file.inside))
    root = tmp_path / "root"
    _one_line_error(
        lambda: load_dataset("fsdd", data_root=str(root)), archive, "not the expected content"
    )
    assert list((root / "fsdd").iterdir()) == []  # no archive, no recordings, no temporary folder


def test_fsdd_archive_without_recordings_and_offline(tmp_path, server, monkeypatch):
    base, www = server
    archive = _patch_fsdd(monkeypatch, base, "0" * 64)
    (www / archive).write_bytes(_fsdd_tar(_fsdd_files(), "some-other-folder"))
    root = tmp_path / "root"
    _one_line_error(lambda: load_dataset("fsdd", data_root=str(root)), "no free-spoken-digit")
    _one_line_error(
        lambda: load_dataset("fsdd", data_root=str(tmp_path / "r2"), download=False),
        "fsdd not found; put the folder recordings",
        str(tmp_path / "r2" / "fsdd"),
    )


def test_fsdd_folder_layouts(tmp_path):
    files = _fsdd_files()
    for layout in ("fsdd/recordings", "fsdd"):
        root = tmp_path / layout.replace("/", "_")
        for name, payload in files.items():
            (root / layout).mkdir(parents=True, exist_ok=True)
            (root / layout / name).write_bytes(payload)
        ds = load_dataset("FSDD", "train", data_root=str(root), download=False)
        assert len(ds) == 4 and set(ds.labels.tolist()) == {0, 1}
    (root / "fsdd" / "hello.wav").write_bytes(files["0_george_0.wav"])
    _one_line_error(
        lambda: load_dataset("fsdd", data_root=str(root), download=False), "hello.wav", "FSDD name"
    )


def test_image_commands_refuse_audio_in_one_line(tmp_path, capsys):
    speech = tmp_path / "speech"
    for i in range(4):
        _wav(speech / f"clip{i}.wav", _pcm(50))
    for data in ("fsdd", str(speech)):
        out = tmp_path / "run"
        # fsdd is not on disk: the refusal comes before any download is tried (`train` takes
        # audio, for the speech model: tests/test_audio_model.py; Table 1 is images only)
        argv = [
            "compare",
            "--data",
            data,
            "--data-root",
            str(tmp_path / "nothing"),
            "--out",
            str(out),
        ]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err == (
            f"vqvae: error: {data} is an audio data set; this command takes images "
            "(audio runs come with the audio model)"
        )
        assert not out.exists() and not (tmp_path / "nothing").exists()
        _one_line_error(lambda d=data: load_images(d), "is an audio data set")
    assert main(["compare", "--data", "fsdd", "--out", str(tmp_path / "cmp")]) == 2
    assert "audio data set" in capsys.readouterr().err and not (tmp_path / "cmp").exists()


# -- the real data set ---------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_fsdd(real_data_root):
    train = load_dataset("fsdd", "train", data_root=str(real_data_root), download=False)
    test = load_dataset("fsdd", "test", data_root=str(real_data_root), download=False)
    assert (len(train), len(test)) == (2700, 300)
    assert train.speaker_names == test.speaker_names == (
        "george", "jackson", "lucas", "nicolas", "theo", "yweweler",
    )  # fmt: skip
    for ds in (train, test):
        assert ds.sample_rate == 8000 and ds.num_classes == 10 and ds.num_speakers == 6
        assert np.bincount(ds.labels).tolist() == [len(ds) // 10] * 10
        assert np.bincount(ds.speakers).tolist() == [len(ds) // 6] * 6
        assert ds.durations.min() >= 0.14 and ds.durations.max() <= 2.3
        assert all(x.dtype == np.float32 and np.abs(x).max() <= 1 for x in ds.waveforms)
    assert not set(train.files) & set(test.files)
    assert all(int(f[:-4].rsplit("_", 1)[1]) <= 4 for f in test.files)


@pytest.mark.realdata
def test_fsdd_content_digest_is_of_the_real_recordings(real_data_root):
    assert dl.content_digest(real_data_root / "fsdd" / "recordings") == dl.FSDD_SHA256

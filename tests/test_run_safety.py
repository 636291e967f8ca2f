"""A run folder that survives what users do to it (docs/run-folders.md): one writer at a time,
checksummed checkpoints and weights, and a disk that refuses a write.

No test depends on timing: a second writer meets a lock held by this process, or by a
training process stopped (SIGSTOP) once it holds the lock; a failing write is injected
(monkeypatched, or past a file-size limit set in a child process). Bit-for-bit comparisons
are between runs of this process (one thread), or between child processes of one thread.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY, assert_same_weights, error_line, run_weights
from vqvae.cli import main
from vqvae.cli.common import run_lock
from vqvae.runs import RunDir
from vqvae.train.checkpoint import list_checkpoints

pytestmark = pytest.mark.usefixtures("one_thread")

FIXTURES = Path(__file__).parent / "fixtures" / "v0.1"


def _train(out: Path, steps: int, *extra: str, every: int = 10) -> list[str]:
    return [
        "train", "--data", "digits", "--preset", "digits", "--out", str(out), *TINY,
        "--steps", str(steps),
        "--batch-size", "32", "--checkpoint-every", str(every), "--set", "log_every=10",
        "--no-progress", "--no-report", *extra,
    ]  # fmt: skip


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _train_steps(run: Path) -> list[int]:
    return [r["step"] for r in RunDir(run).read_metrics() if r.get("split") == "train"]


def _leftovers(run: Path) -> list[Path]:
    """Temporary files and folders of an atomic write (``.NAME.*.tmp``, ``.tmp-step-*``)."""
    return [p for p in run.rglob(".*") if p.name.endswith(".tmp") or p.name.startswith(".tmp")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """The weights of a 30-step run never stopped, trained in this process."""
    run = tmp_path_factory.mktemp("reference") / "run"
    assert main(_train(run, 30)) == 0
    return run_weights(run)


@pytest.fixture
def trained(tmp_path, capsys) -> Path:
    """A finished 20-step run with checkpoints at steps 10 and 20."""
    run = tmp_path / "run"
    assert main(_train(run, 20)) == 0
    capsys.readouterr()
    return run


# -- one writer at a time -----------------------------------------------------------------------


def _child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _holder(run: Path) -> dict | None:
    """What the lock file says of its holder, once it has said it."""
    try:
        return json.loads((run / ".lock").read_text())
    except (FileNotFoundError, ValueError):
        return None


def _start_writer(run: Path, steps: int) -> subprocess.Popen:
    """``vqvae train`` in a child process, returned once it holds the run's lock."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vqvae.cli", *_train(run, steps, every=20)],
        env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while (_holder(run) or {}).get("pid") != proc.pid:  # waits for a state, not a duration
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the writer never took the lock"
        time.sleep(0.01)
    return proc


SECOND_WRITERS = {
    "train --resume": lambda run: _train(run, 60, "--resume", every=20),
    "train --force": lambda run: _train(run, 10, "--force"),
    "prior train": lambda run: ["prior", "train", str(run), "--steps", "4", "--force"],
}


def test_a_second_writer_is_refused_while_the_first_trains_and_the_first_ends_normally(
    tmp_path, capsys
):
    run = tmp_path / "run"
    first = _start_writer(run, 60)
    os.kill(first.pid, signal.SIGSTOP)  # holds the lock, and stays where it is
    try:
        before = sorted(p.name for p in run.iterdir())
        for name, argv in SECOND_WRITERS.items():
            assert main(argv(run)) != 0, name
            line = error_line(capsys.readouterr().err)
            assert "another command is writing" in line, line
            assert f"pid {first.pid} on {socket.gethostname()}" in line, line
            assert "vqvae train --data digits" in line and "since" in line, line
            assert sorted(p.name for p in run.iterdir()) == before, name  # --force deleted nothing
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert _train_steps(run) == [10, 20, 30, 40, 50, 60]  # each step once
    assert [c.step for c in list_checkpoints(run / "checkpoints")] == [40, 60]
    assert not (run / ".lock").exists()  # released at the end
    assert main(["verify", str(run)]) == 0


def test_a_writer_killed_with_sigkill_blocks_no_one(tmp_path, capsys):
    run = tmp_path / "run"
    first = _start_writer(run, 100_000)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate(timeout=60)
    assert _holder(run)["pid"] == first.pid  # its lock file is still there, naming it
    assert main(_train(run, 10, "--force")) == 0  # and the next writer starts at once
    assert _train_steps(run) == [10]


@pytest.mark.parametrize("name", ["train --resume", "train --force", "prior train", "report"])
def test_every_writer_is_refused_by_a_held_lock_and_touches_nothing(trained, name, capsys):
    before = _snapshot(trained)
    argv = {**SECOND_WRITERS, "report": lambda run: ["report", str(run)]}[name](trained)
    with RunDir(trained).lock("vqvae train --out elsewhere"):
        assert main(argv) != 0
        line = error_line(capsys.readouterr().err)
        assert f"pid {os.getpid()}" in line and "`vqvae train --out elsewhere`" in line, line
        # readers take no lock
        assert main(["verify", str(trained)]) == 0
        assert main(["eval", str(trained), "--data", "digits", "--json"]) == 0
    assert _snapshot(trained) == before
    assert not (trained / ".lock").exists()


def test_a_refused_new_run_leaves_no_folder_behind(tmp_path, capsys):
    """The lock of a new run makes its folder; a refusal (bad data) removes it again."""
    run = tmp_path / "new"
    argv = _train(run, 10)
    argv[argv.index("digits")] = str(tmp_path / "missing.npy")
    assert main(argv) != 0
    assert "missing.npy" in error_line(capsys.readouterr().err)
    assert not run.exists()


WRITERS = {  # argv -> the folder whose lock it takes, and whether it may create it
    "train --data d --out R": ("R", True),
    "demo --out R": ("R", True),
    "prior train R": ("R", False),
    "stack train R": ("R", False),
    "stack eval R": ("R", False),
    "video train R": ("R", False),
    "video eval R": ("R", False),
    "vocoder train --data d --out V": ("V", True),
    "compare --data d --out C": ("C", True),
    "report R": ("R", False),
}
READERS = [
    "eval R --data d", "encode R --data d --out x.npz", "decode R x.npz --out o",
    "reconstruct R --data d --out o", "sample R --out o", "probe R", "verify R",
    "stack eval R --out elsewhere", "rollout R --episode 0 --out o",
]  # fmt: skip


def test_every_command_that_writes_a_run_takes_its_lock_and_readers_take_none():
    from vqvae.cli.parser import build_parser

    parser = build_parser()
    for argv, wanted in WRITERS.items():
        args = parser.parse_args(argv.split())
        assert args.writes(args) == wanted, argv
    for argv in READERS:
        args = parser.parse_args(argv.split())
        assert getattr(args, "writes", lambda a: (None, False))(args)[0] is None, argv


def test_under_torchrun_only_rank_0_locks(trained, monkeypatch):
    import argparse

    args = argparse.Namespace(out=str(trained), writes=lambda a: (a.out, True))
    with RunDir(trained).lock("the holder"):
        monkeypatch.setenv("RANK", "1")
        with run_lock(args, ["train"]):  # rank 1 writes nothing, and takes no lock
            pass
        monkeypatch.setenv("RANK", "0")
        with pytest.raises(ValueError, match="another command is writing"), run_lock(args, []):
            pass


# -- checksummed checkpoints ----------------------------------------------------------------------


def _flip_byte(path: Path, offset: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGES = {
    "a flipped byte in its weights": lambda c: _flip_byte(c / "model.safetensors"),
    "a flipped byte in state.pt": lambda c: _flip_byte(c / "state.pt", -200),
    "truncated weights": lambda c: (c / "model.safetensors").write_bytes(
        (c / "model.safetensors").read_bytes()[:1000]
    ),
    "no manifest": lambda c: (c / "manifest.json").unlink(),
}
SAID = {
    "a flipped byte in its weights": "model.safetensors: its sha256 differs",
    "a flipped byte in state.pt": "state.pt: its sha256 differs",
    "truncated weights": "model.safetensors: 1000 bytes",
    "no manifest": "incomplete (no step-0000020/manifest.json)",
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_newest_checkpoint_is_named_and_passed_over_exactly(
    trained, damage, reference, capsys
):
    newest = trained / "checkpoints" / "step-0000020"
    DAMAGES[damage](newest)
    assert main(["verify", str(trained)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and SAID[damage] in out[0] and str(newest) in out[0], out

    assert main(_train(trained, 30, "--resume")) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert SAID[damage] in err[0] and "resuming from step 10 instead" in err[0], err
    assert "damaged-step-0000020" in err[0]
    assert_same_weights(reference, run_weights(trained))
    assert _train_steps(trained) == [10, 20, 30]
    assert [c.step for c in list_checkpoints(trained / "checkpoints")] == [20, 30]
    assert main(["verify", str(trained)]) == 0  # the damaged one was set aside


def test_load_checkpoint_refuses_a_damaged_checkpoint_before_restoring_anything(trained):
    from vqvae.models import VQVAE
    from vqvae.train.checkpoint import load_checkpoint

    newest = list_checkpoints(trained / "checkpoints")[-1]
    _flip_byte(newest.path / "state.pt", -200)
    model = VQVAE(VQVAE.read_config(trained))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"state\.pt: its sha256 differs"):
        load_checkpoint(newest, model, torch.optim.Adam(model.parameters()))
    assert_same_weights(before, model.state_dict())


def test_verify_of_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nothing")]) == 2
    assert "no such run folder" in error_line(capsys.readouterr().err)


def test_with_every_checkpoint_damaged_resume_refuses_in_one_line(trained, capsys):
    for checkpoint in list_checkpoints(trained / "checkpoints"):
        _flip_byte(checkpoint.path / "state.pt", -200)
    before = _snapshot(trained)
    assert main(_train(trained, 30, "--resume")) != 0
    line = error_line(capsys.readouterr().err)
    assert "every checkpoint is damaged" in line and "step-0000010/state.pt" in line, line
    after = _snapshot(trained)
    after.pop("config.json"), before.pop("config.json")  # its train.steps is the one asked
    assert after == before  # the checkpoints, weights and logs are as they were


def test_damaged_final_weights_are_refused_on_load_and_reported_by_verify(trained, capsys):
    _flip_byte(trained / "model.safetensors")
    assert main(["eval", str(trained), "--data", "digits"]) != 0
    line = error_line(capsys.readouterr().err)
    assert "model.safetensors: its sha256 differs from its manifest" in line, line
    assert main(["verify", str(trained)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"{trained / 'model.safetensors'}: its sha256 differs from its manifest's "
                   f"(damaged)"]  # fmt: skip


def test_damaged_prior_weights_are_refused_on_load_and_reported_by_verify(trained, capsys):
    prior = ["prior", "train", str(trained), "--steps", "2", "--batch-size", "16"]
    assert main([*prior, "--no-progress"]) == 0
    assert (trained / "prior" / "manifest.json").is_file()
    capsys.readouterr()
    assert main(["verify", str(trained)]) == 0
    said = capsys.readouterr().out.strip().splitlines()
    assert said == [f"{trained}: all is well (2 weight file(s) and 3 checkpoint(s) checked)"]
    _flip_byte(trained / "prior" / "model.safetensors")
    assert main(["sample", str(trained), "--n", "2", "--out", str(trained.parent / "s")]) != 0
    line = error_line(capsys.readouterr().err)
    assert "prior/model.safetensors: its sha256 differs" in line, line
    assert main(["verify", str(trained)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "prior/model.safetensors" in out[0], out


def test_an_old_run_without_manifests_resumes_and_its_next_checkpoint_has_one(tmp_path, capsys):
    """Release 0.1's run (tests/test_compat.py): no manifests, no lock file. It verifies,
    resumes, and the checkpoint written then has a manifest; its old ones stay readable."""
    run, data = tmp_path / "run-pixelcnn", tmp_path / "tiny.npz"
    shutil.copytree(FIXTURES / "run-pixelcnn", run)
    shutil.copy(FIXTURES / "tiny.npz", data)
    assert not list(run.rglob("manifest.json"))
    assert main(["verify", str(run)]) == 0
    capsys.readouterr()
    saved = (run / "config.json").read_text()
    (run / "config.json").write_text(saved.replace(RunDir(run).read_config()["data"], str(data)))
    argv = ["train", "--data", str(data), "--out", str(run), "--steps", "7", "--resume"]
    assert main([*argv, "--no-progress", "--no-report"]) == 0
    assert "damaged" not in capsys.readouterr().err
    assert json.loads((run / "checkpoints" / "format.json").read_text()) == {
        "manifests_since_step": 7
    }
    steps = {c.step: c.path for c in list_checkpoints(run / "checkpoints")}
    assert sorted(steps) == [6, 7]
    assert (steps[7] / "manifest.json").is_file() and not (steps[6] / "manifest.json").exists()
    assert main(["verify", str(run)]) == 0
    # the old checkpoint without a manifest is still one to fall back to
    _flip_byte(steps[7] / "model.safetensors")
    assert main([*argv, "--no-progress", "--no-report"]) == 0
    assert "resuming from step 6 instead" in capsys.readouterr().err


# -- a disk that refuses a write ------------------------------------------------------------------

REFUSALS = [errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EACCES]


def _refuse(monkeypatch, suffix: str, code: int) -> None:
    """``os.replace`` onto a path ending in ``suffix`` fails as a disk would."""
    replace = os.replace

    def failing(src, dst, *args, **kwargs):
        if str(dst).endswith(suffix):
            raise OSError(code, os.strerror(code))
        return replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", failing)


@pytest.mark.parametrize("code", REFUSALS, ids=[errno.errorcode[c] for c in REFUSALS])
def test_a_refused_checkpoint_write_is_one_line_and_resume_is_exact(
    tmp_path, code, reference, monkeypatch, capsys
):
    run = tmp_path / "run"
    _refuse(monkeypatch, "step-0000020/state.pt", code)
    assert main(_train(run, 30)) != 0
    line = error_line(capsys.readouterr().err)
    assert "step-0000020/state.pt" in line and os.strerror(code) in line, line
    assert "the last good checkpoint is step 10" in line, line
    assert _leftovers(run) == [] and not (run / ".lock").exists()
    assert [c.step for c in list_checkpoints(run / "checkpoints")] == [10]
    monkeypatch.undo()  # the user frees space
    assert main(_train(run, 30, "--resume")) == 0
    assert_same_weights(reference, run_weights(run))
    assert _train_steps(run) == [10, 20, 30]


def test_a_refused_final_weights_write_names_the_last_checkpoint(
    tmp_path, reference, monkeypatch, capsys
):
    run = tmp_path / "run"
    _refuse(monkeypatch, f"{run.name}/model.safetensors", errno.ENOSPC)
    assert main(_train(run, 30)) != 0
    line = error_line(capsys.readouterr().err)
    assert f"{run / 'model.safetensors'}: could not write it (No space left on device)" in line
    assert "the last good checkpoint is step 30" in line, line
    assert _leftovers(run) == [] and not (run / "model.safetensors").exists()
    monkeypatch.undo()
    assert main(_train(run, 30, "--resume")) == 0
    assert_same_weights(reference, run_weights(run))


def _child(argv: list[str], file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    def limit() -> None:  # in the child: `ulimit -f`, and nothing else of the test's
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        [sys.executable, "-m", "vqvae.cli", *argv], env=_child_env(), capture_output=True,
        text=True, timeout=300, preexec_fn=limit if file_size_limit else None,
    )  # fmt: skip


def test_past_the_file_size_limit_a_run_stops_in_one_line_and_resumes_exactly(tmp_path):
    """``ulimit -f`` in a child process: the checkpoint of step 20 (a 100 kB state.pt) goes
    past it; the CLI ignores SIGXFSZ, so the write fails with EFBIG and is reported."""
    straight, run = tmp_path / "straight", tmp_path / "run"
    done = _child(_train(straight, 30))
    assert done.returncode == 0, done.stderr
    done = _child(_train(run, 10))
    assert done.returncode == 0, done.stderr
    limit = 60_000  # above config.json, the logs and the weights (41 kB); below state.pt
    assert (run / "model.safetensors").stat().st_size < limit
    assert (run / "checkpoints" / "step-0000010" / "state.pt").stat().st_size > limit
    done = _child(_train(run, 30, "--resume"), file_size_limit=limit)
    assert done.returncode != 0
    line = error_line(done.stderr)
    assert "step-0000020/" in line and "File too large" in line, line
    assert "the last good checkpoint is step 10" in line, line
    assert _leftovers(run) == [] and not (run / ".lock").exists()
    done = _child(_train(run, 30, "--resume"))
    assert done.returncode == 0, done.stderr
    assert_same_weights(run_weights(straight), run_weights(run))
    assert _train_steps(run) == [10, 20, 30]

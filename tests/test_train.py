"""Tests of ``vqvae train`` and its run folder (issue 3): what a run writes, exact resumption
after a stop, a SIGKILL or a Ctrl-C, a non-finite loss, and the refusals that keep a run safe.

Bit-for-bit comparisons run every training as a subprocess with OMP_NUM_THREADS=1, so that
the reference and the interrupted runs reduce in the same order.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, assert_same_weights, error_line, run_weights
from vqvae.cli import main
from vqvae.models import VQVAE
from vqvae.train.checkpoint import list_checkpoints, load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def _train_args(out: Path, steps: int = 20, every: int = 10, *extra: str) -> list[str]:
    return [
        "train", "--data", "digits", "--out", str(out), *TINY,
        "--steps", str(steps), "--batch-size", "32", "--checkpoint-every", str(every),
        "--no-progress", "--no-report", *extra,
    ]  # fmt: skip


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: its bytes and mtime, to show nothing was touched."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# -- a run folder --------------------------------------------------------------------------------


def test_train_writes_a_complete_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(run, 20, 10, "--set", "eval_every=10", "--set", "log_every=10")) == 0
    out, err = capsys.readouterr()
    assert "chose preset 'digits'" in err
    assert "test PSNR" in out

    for name in ("config.json", "model.safetensors", "metrics.jsonl", "reconstructions.png"):
        assert (run / name).is_file(), name
    assert [c.step for c in list_checkpoints(run / "checkpoints")] == [10, 20]
    assert not list((run / "checkpoints").glob(".tmp*"))

    saved = json.loads((run / "config.json").read_text())
    assert saved["class"] == "VQVAE"
    assert saved["preset"] == "digits"
    assert saved["data"] == "digits"
    assert saved["overrides"] == [TINY[i] for i in range(1, len(TINY), 2)] + [
        "eval_every=10",
        "log_every=10",
    ]
    assert saved["config"]["quantizer"]["num_codes"] == 16
    assert saved["train"]["steps"] == 20 and saved["train"]["batch_size"] == 32

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    test = [r for r in records if r["split"] == "test"]
    assert [r["step"] for r in train] == [10, 20]
    assert [r["step"] for r in test] == [10, 20]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in train)
    assert all(0 <= r["code_usage"] <= 1 and r["psnr"] > 0 for r in test)

    # written atomically, yet with the ordinary permissions of the user's umask
    mask = os.umask(0o022)
    os.umask(mask)
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "reconstructions.png"):
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~mask, name

    model = VQVAE.from_pretrained(run)
    assert model.num_codes == 16 and model.config.input_size == (8, 8)
    assert_same_weights(model.state_dict(), run_weights(run))
    # the last checkpoint holds the final weights
    assert_same_weights(load_file(str(run / "checkpoints/step-0000020/model.safetensors")),
                         run_weights(run))  # fmt: skip


def test_resume_with_more_steps_equals_one_longer_run(tmp_path, capsys):
    """Extending a finished run (same trajectory settings, larger --steps) is exact."""
    long, short = tmp_path / "long", tmp_path / "short"
    assert main(_train_args(long, 30, 10)) == 0
    assert main(_train_args(short, 20, 10)) == 0
    assert main(_train_args(short, 30, 10, "--resume")) == 0
    capsys.readouterr()
    assert_same_weights(run_weights(long), run_weights(short))
    steps = [json.loads(x)["step"] for x in (short / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 30  # no duplicated records


def test_resuming_a_finished_run_changes_nothing_in_the_weights(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(run)) == 0
    before = run_weights(run)
    assert main(_train_args(run, 20, 10, "--resume")) == 0
    capsys.readouterr()
    assert_same_weights(before, run_weights(run))


# -- refusals ------------------------------------------------------------------------------------


def test_refuses_an_existing_run_without_resume_or_force(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(run)) == 0
    capsys.readouterr()
    before = _snapshot(run)
    assert main(_train_args(run, 30)) != 0
    line = error_line(capsys.readouterr().err)
    assert "--force" in line and "--resume" in line
    assert _snapshot(run) == before

    # --force replaces it: a new config, no stale checkpoints from the old run
    assert main(_train_args(run, 10, 5, "--force")) == 0
    capsys.readouterr()
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 10
    assert [c.step for c in list_checkpoints(run / "checkpoints")] == [5, 10]


def test_refuses_a_file_as_run_folder_and_resume_of_nothing(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("keep me")
    assert main(_train_args(f, 10, 5, "--force")) != 0
    error_line(capsys.readouterr().err)
    assert f.read_text() == "keep me"
    assert main(_train_args(tmp_path / "none", 10, 5, "--resume")) != 0
    assert "nothing to resume" in error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "change",
    [
        ["--set", "quantizer.num_codes=32"],
        ["--batch-size", "16"],
        ["--lr", "0.0005"],
        ["--seed", "3"],
    ],
)
def test_resume_with_a_different_config_is_refused(tmp_path, capsys, change):
    run = tmp_path / "run"
    assert main(_train_args(run, 10, 5)) == 0
    capsys.readouterr()
    before = _snapshot(run)
    args = _train_args(run, 20, 5, "--resume")
    i = args.index(change[0]) if change[0] == "--batch-size" else len(args)
    if change[0] == "--batch-size":
        args[i + 1] = change[1]
    else:
        args += change
    assert main(args) != 0
    line = error_line(capsys.readouterr().err)
    assert "does not match" in line
    assert _snapshot(run) == before


def test_bad_data_with_force_destroys_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(run, 10, 5)) == 0
    capsys.readouterr()
    before = _snapshot(run)
    args = _train_args(run, 10, 5, "--force")
    args[args.index("digits")] = str(tmp_path / "missing.npy")
    assert main(args) != 0
    assert "missing.npy" in error_line(capsys.readouterr().err)
    assert _snapshot(run) == before


def test_an_unsafe_pickle_in_a_checkpoint_is_refused_never_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(run, 20, 10)) == 0
    capsys.readouterr()
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for ckpt in list_checkpoints(run / "checkpoints"):
        (ckpt.path / "state.pt").write_bytes(pickle.dumps({"step": ckpt.step, "x": Evil()}))
    assert main(_train_args(run, 30, 10, "--resume")) != 0
    line = error_line(capsys.readouterr().err)
    assert "state.pt" in line
    assert not marker.exists()


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    forward = VQVAE.forward
    calls = [0]

    def poisoned(self, x):
        out = forward(self, x)
        if self.training:
            calls[0] += 1
            if calls[0] > 12:  # after the checkpoint of step 10
                return dataclasses.replace(out, loss=out.loss * float("nan"))
        return out

    monkeypatch.setattr(VQVAE, "forward", poisoned)
    code = main(_train_args(run, 30, 5, "--preset", "digits"))
    assert code != 0
    line = error_line(capsys.readouterr().err)
    assert "nan" in line.lower() and "step 13" in line and "step 10" in line
    assert not (run / "model.safetensors").exists()
    found = list_checkpoints(run / "checkpoints")
    assert [c.step for c in found] == [5, 10]

    # the last good checkpoint loads, and holds finite weights
    monkeypatch.setattr(VQVAE, "forward", forward)
    model = VQVAE(VQVAE.read_config(run))
    optimizer = torch.optim.Adam(model.parameters())
    assert load_checkpoint(found[-1], model, optimizer)["step"] == 10
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # and the run can be continued from it
    assert main(_train_args(run, 30, 5, "--resume")) == 0
    capsys.readouterr()
    assert (run / "model.safetensors").is_file()


# -- exact resumption across real processes -------------------------------------------------------

STEPS, EVERY = 240, 20


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _cli(out: Path, *extra: str) -> list[str]:
    argv = _train_args(out, STEPS, EVERY, "--set", "log_every=10", *extra)
    return [sys.executable, "-m", "vqvae.cli", *argv]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)


def _wait_for(proc: subprocess.Popen, ready, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"finished before the moment came: {proc.communicate()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """The weights of a run that was never stopped (a subprocess, one thread)."""
    cwd = tmp_path_factory.mktemp("reference")
    done = _run(_cli(cwd / "run"), cwd)
    assert done.returncode == 0, done.stderr
    return run_weights(cwd / "run")


def _checkpoint_at_least(run: Path, step: int):
    return lambda: any(c.step >= step for c in list_checkpoints(run / "checkpoints"))


def _writing_a_checkpoint(run: Path):
    return lambda: (
        any((run / "checkpoints").glob(".tmp-step-*")) if (run / "checkpoints").is_dir() else False
    )


def test_sigkill_at_several_moments_then_resume_is_bit_identical(tmp_path, reference):
    """Killed before the first checkpoint, just after one, and while writing one: each
    --resume continues, and the last one ends with the reference weights bit for bit."""
    run = tmp_path / "run"
    moments = [
        lambda: (run / "config.json").is_file(),  # before any checkpoint
        _checkpoint_at_least(run, 60),  # just after a checkpoint
        # while one is being written, if the polling catches it (else at a later checkpoint)
        lambda: _writing_a_checkpoint(run)() or _checkpoint_at_least(run, 180)(),
    ]
    for i, moment in enumerate(moments):
        proc = subprocess.Popen(
            _cli(run, *(["--resume"] if i else [])),
            cwd=tmp_path,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _wait_for(proc, moment)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        assert not (run / "model.safetensors").exists()
    # simulate the worst leftovers of a kill mid-write: a partial temporary checkpoint folder
    # with a truncated file, and a half-written temporary weights file
    partial = run / "checkpoints" / ".tmp-step-9999999"
    partial.mkdir(parents=True, exist_ok=True)
    (partial / "model.safetensors").write_bytes(b"\x00\x01trunc")
    (run / ".model.safetensors.abc.tmp").write_bytes(b"garbage")

    done = _run(_cli(run, "--resume"), tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_weights(reference, run_weights(run))
    assert not any((run / "checkpoints").glob(".tmp-step-*"))
    assert [c.step for c in list_checkpoints(run / "checkpoints")] == [STEPS - EVERY, STEPS]
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["split"] == "train"]
    assert steps == list(range(10, STEPS + 1, 10))  # none lost, none duplicated


def test_ctrl_c_saves_exits_130_and_resumes_bit_identical(tmp_path, reference):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        _cli(run), cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    _wait_for(proc, _checkpoint_at_least(run, 40))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = [x for x in err.strip().splitlines() if "chose preset" not in x]
    assert len(lines) == 1 and "interrupted" in lines[0] and "--resume" in lines[0], err
    step = int(lines[0].split("step")[-1].split(";")[0])
    assert 40 <= step < STEPS
    assert list_checkpoints(run / "checkpoints")[-1].step == step  # saved where it stopped
    assert not (run / "model.safetensors").exists()

    done = _run(_cli(run, "--resume"), tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_weights(reference, run_weights(run))


def test_a_folder_read_by_a_worker_trains_and_resumes_as_the_array_does(
    tmp_path, reference, digits_folder
):
    """The digits as PNG files, decoded batch by batch by a worker process: killed after a
    checkpoint and resumed, the run ends with the weights of the in-memory run of the same
    images, bit for bit (the batches, the images and the random numbers are all the same)."""
    run = tmp_path / "run"

    def cli(*extra: str) -> list[str]:
        args = _cli(run, "--workers", "1", *extra)
        args[args.index("digits")] = str(digits_folder)
        return args

    proc = subprocess.Popen(cli(), cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    _wait_for(proc, _checkpoint_at_least(run, 100))
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not (run / "model.safetensors").exists()

    done = _run(cli("--resume"), tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "config.json").read_text())["data"] == str(digits_folder)
    assert_same_weights(reference, run_weights(run))


# -- real data -----------------------------------------------------------------------------------


@pytest.mark.realdata
def test_mnist_trains_to_a_useful_codebook(real_data_root, tmp_path, capsys):
    """150 steps of a small model on MNIST: loose bounds that a broken pipeline would miss
    (an untrained model is near 10 dB, a collapsed codebook uses a few codes)."""
    run = tmp_path / "mnist"
    root = ["--data", "mnist", "--data-root", str(real_data_root)]
    argv = [
        "train", *root, "--out", str(run), "--preset", "mnist",
        "--set", "net.hidden_channels=32", "--set", "net.residual_channels=16",
        "--set", "quantizer.num_codes=64", "--set", "quantizer.code_dim=16",
        "--set", "eval_limit=500", "--steps", "150", "--batch-size", "64", "--lr", "2e-3",
        "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["eval", str(run), *root, "--split", "test", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_images"] == 10_000
    assert result["psnr"] > 15
    assert result["code_usage"] > 0.5

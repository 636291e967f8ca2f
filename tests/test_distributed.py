"""Several processes on a CPU (gloo): ``torchrun --nproc-per-node 2 -m vqvae.cli train``.

Each rank trains on its half of every global batch (and reads only those images); gradients
and codebook statistics are summed over processes, so the replicas must stay identical, and
rank 0 alone writes the run. A failure in one process stops both at the same step, and under
``torchrun --max-restarts 1`` a killed process costs nothing but time: the run resumes from
its last checkpoint and ends with the weights of a run never interrupted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY
from vqvae.data import load_images
from vqvae.models import VQVAE
from vqvae.train.checkpoint import list_checkpoints
from vqvae.train.loop import batch_indices

# Launched by torchrun in each process: run the CLI as usual, and save this rank's final
# weights beside the run, so the test can compare the two replicas. With SHARDS, each rank
# records the indices of the images it reads; with FAIL="rank:step:how", that rank fails at
# that step of its first attempt (how: kill, ctrl-c or nan).
WRAPPER = textwrap.dedent(
    """
    import json, os, signal, sys
    from dataclasses import replace
    from safetensors.torch import save_file
    import vqvae.cli.train as commands
    import vqvae.train.vqvae as trainer
    from vqvae.cli import main

    RANK, ATTEMPT = os.environ["RANK"], os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    train, make_step, read = commands.train_vqvae, trainer.vqvae_step, trainer.read_batches

    def spy(*args, **kwargs):
        result = train(*args, **kwargs)
        state = {k: v.detach().cpu().contiguous().clone()
                 for k, v in result.model.state_dict().items()}
        save_file(state, os.path.join(os.environ["REPLICAS"], f"rank{RANK}.st"))
        return result

    def recording(images, batches, **kwargs):
        def logged():
            for idx in batches:
                with open(os.path.join(os.environ["SHARDS"], f"rank{RANK}"), "a") as f:
                    f.write(json.dumps(idx.tolist()) + "\\n")
                yield idx
        return read(images, logged(), **kwargs)

    def failing(*args):
        step_fn, calls = make_step(*args), [0]
        rank, step, how = os.environ["FAIL"].split(":")
        def step_once(batch):
            calls[0] += 1
            out = step_fn(batch)
            if RANK == rank and ATTEMPT == "0" and calls[0] == int(step):
                if how == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                if how == "ctrl-c":
                    os.kill(os.getpid(), signal.SIGINT)
                if how == "nan":
                    out = replace(out, loss=out.loss * float("nan"))
            return out
        return step_once

    commands.train_vqvae = spy
    if "SHARDS" in os.environ:
        trainer.read_batches = recording
    if "FAIL" in os.environ:
        trainer.vqvae_step = failing
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.parametrize(
    "extra",
    # micro-batches: DDP's all-reduce on the last one only, codebook statistics once a step
    [(), ("--accumulate", "2", "--precision", "bf16")],
    ids=["plain", "accumulate-bf16"],
)
def test_two_cpu_processes_train_one_run_with_equal_replicas(tmp_path, extra):
    script = tmp_path / "wrapper.py"
    script.write_text(WRAPPER)
    replicas = tmp_path / "replicas"
    replicas.mkdir()
    run = tmp_path / "run"  # an old run, replaced with --force (by rank 0 alone: no race)
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "old-file.txt").write_text("old")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "REPLICAS": str(replicas)}
    env.pop("WORLD_SIZE", None)
    steps, batch = 12, 32
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        str(script), "train", "--data", "digits", "--out", str(run),
        "--set", "net.hidden_channels=16", "--set", "net.residual_channels=8",
        "--set", "quantizer.num_codes=16", "--set", "quantizer.code_dim=8",
        "--set", "eval_every=6", "--set", "log_every=3",
        "--steps", str(steps), "--batch-size", str(batch), "--checkpoint-every", "6",
        "--no-progress", "--device", "cpu", "--force", *extra,
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "Grad strides do not match" not in done.stderr  # DDP's warning, once per run
    assert done.stdout.count("test PSNR") == 1  # the summary, from rank 0 only
    assert done.stderr.count("chose preset") == 1

    # one run folder, written once: the old run is gone, no temporary files are left
    names = {p.name for p in run.iterdir()}
    assert {"checkpoints", "config.json", "metrics.jsonl", "model.safetensors"} <= names
    assert "reconstructions.png" in names and "old-file.txt" not in names
    assert not [n for n in names if n.startswith(".")]
    assert [c.step for c in list_checkpoints(run / "checkpoints")] == [6, 12]
    assert not list((run / "checkpoints").glob(".tmp*"))
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [3, 6, 9, 12]
    assert [r["step"] for r in records if r["split"] == "test"] == [6, 12]

    # the two replicas ended with the same weights, and those are the run's weights
    rank0 = load_file(str(replicas / "rank0.st"))
    rank1 = load_file(str(replicas / "rank1.st"))
    written = load_file(str(run / "model.safetensors"))
    assert rank0.keys() == rank1.keys() == written.keys()
    for k in rank0:
        assert torch.equal(rank0[k], rank1[k]), f"replicas differ in {k}"
        assert torch.equal(rank0[k], written[k]), k
    model = VQVAE.from_pretrained(run)
    assert bool(model.quantizer.initialized)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # the codebook learned from both halves of the batches: it moved away from its init
    init = VQVAE(model.config).quantizer.codebook
    assert not torch.equal(init, model.quantizer.codebook)


# -- a folder read by workers, failures, restarts --------------------------------------------

STEPS, EVERY, BATCH = 12, 4, 32


def _launch(tmp_path, run, data: str, *extra: str, env_extra: dict[str, str] | None = None,
            restarts: int = 0) -> subprocess.CompletedProcess:  # fmt: skip
    """Two gloo processes training ``run`` on ``data`` (the wrapper above), to the end."""
    script = tmp_path / "wrapper.py"
    script.write_text(WRAPPER)
    replicas = tmp_path / "replicas"
    replicas.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "REPLICAS": str(replicas), **(env_extra or {})}
    env.pop("WORLD_SIZE", None)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "--max-restarts", str(restarts), str(script), "train", "--data", data, "--out", str(run),
        *TINY, "--set", f"eval_every={EVERY}", "--set", "log_every=2", "--steps", str(STEPS),
        "--batch-size", str(BATCH), "--checkpoint-every", str(EVERY), "--no-progress",
        "--no-report", "--device", "cpu", *extra,
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, digits_folder):
    """An uninterrupted two-process run over a folder of PNGs, one worker each, recording the
    images each process read."""
    tmp = tmp_path_factory.mktemp("folder-run")
    shards = tmp / "shards"
    shards.mkdir()
    done = _launch(tmp, tmp / "run", str(digits_folder), "--workers", "1",
                   env_extra={"SHARDS": str(shards)})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "Grad strides" not in done.stderr
    return tmp


def test_two_processes_read_disjoint_halves_of_every_batch(folder_run, digits_folder):
    read = {
        rank: [json.loads(line) for line in (folder_run / "shards" / f"rank{rank}").open()]
        for rank in (0, 1)
    }
    n = len(load_images(str(digits_folder), "train"))
    assert len(read[0]) == len(read[1]) == STEPS
    for step in range(STEPS):
        mine, theirs = set(read[0][step]), set(read[1][step])
        assert not mine & theirs  # each image is read by one process only
        assert mine | theirs == set(batch_indices(step, n, BATCH, seed=0).tolist())
        assert len(mine) == len(theirs) == BATCH // 2
    replicas = [load_file(str(folder_run / "replicas" / f"rank{r}.st")) for r in (0, 1)]
    for k in replicas[0]:
        assert torch.equal(replicas[0][k], replicas[1][k]), k


def test_a_killed_process_is_restarted_and_the_run_ends_as_if_never_stopped(
    tmp_path, folder_run, digits_folder
):
    """``torchrun --max-restarts 1``: rank 1 is killed (SIGKILL) in step 7; torchrun restarts
    both processes, which resume from the checkpoint of step 4 by themselves."""
    run = tmp_path / "run"
    done = _launch(tmp_path, run, str(digits_folder), "--workers", "1",
                   env_extra={"FAIL": "1:7:kill"}, restarts=1)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("test PSNR") == 1
    reference = load_file(str(folder_run / "run" / "model.safetensors"))
    resumed = load_file(str(run / "model.safetensors"))
    assert reference.keys() == resumed.keys()
    for k in reference:
        assert torch.equal(reference[k], resumed[k]), f"{k} differs from the uninterrupted run"
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["split"] == "train"]
    assert steps == list(range(2, STEPS + 1, 2))  # steps 5-7 were done again, logged once


@pytest.mark.parametrize(
    "fail, said",
    [
        # Ctrl-C reaches one process: both save the same step and stop, as one process does
        ("1:5:ctrl-c", ["interrupted; saved a checkpoint at step 5"] * 2),
        # a NaN loss in one process: both stop before the gradients are exchanged
        ("0:6:nan", ["loss became nan at step 6", "non-finite in another process at step 6"]),
    ],
    ids=["ctrl-c", "nan"],
)
def test_a_failure_in_one_process_stops_both_at_the_same_step(tmp_path, fail, said):
    run = tmp_path / "run"
    done = _launch(tmp_path, run, "digits", env_extra={"FAIL": fail})
    assert done.returncode != 0
    for line in said:  # each process said why it stopped: none was left waiting, none killed
        assert line in done.stderr, done.stderr[-3000:]
    assert not (run / "model.safetensors").exists()
    saved = [c.step for c in list_checkpoints(run / "checkpoints")]
    assert saved == ([4, 5] if "ctrl-c" in fail else [4])


def test_an_image_one_process_cannot_decode_stops_both(tmp_path, digits_folder):
    """The process whose share holds the corrupt file says which file; the other stops with
    it at the same step instead of waiting for it in the next collective."""
    data = tmp_path / "digits"
    shutil.copytree(digits_folder, data)
    n = len(list((data / "train").iterdir()))
    first = int(batch_indices(0, n, BATCH, seed=0)[0])  # read in the first step
    bad = data / "train" / f"{first:04d}.png"
    bad.write_bytes(bad.read_bytes()[:45])  # the header reads, the pixels do not
    run = tmp_path / "run"
    done = _launch(tmp_path, run, str(data), "--workers", "1")
    assert done.returncode != 0
    assert f"vqvae: error: {bad}: corrupt or unreadable image" in done.stderr, done.stderr[-3000:]
    assert "another process failed to read step" in done.stderr
    assert not (run / "model.safetensors").exists()

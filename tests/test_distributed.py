"""Several processes on a CPU (gloo): ``torchrun --nproc-per-node 2 -m vqvae.cli train``.

Each rank trains on its half of every global batch; gradients and codebook statistics are
summed over processes, so the replicas must stay identical, and rank 0 alone writes the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import torch
from safetensors.torch import load_file

from vqvae.models import VQVAE
from vqvae.train.checkpoint import list_checkpoints

# Launched by torchrun in each process: run the CLI as usual, then save this rank's final
# weights beside the run, so the test can compare the two replicas.
WRAPPER = textwrap.dedent(
    """
    import os, sys
    from safetensors.torch import save_file
    import vqvae.cli.train as commands
    from vqvae.cli import main

    train = commands.train_vqvae

    def spy(*args, **kwargs):
        result = train(*args, **kwargs)
        state = {k: v.detach().cpu().contiguous().clone()
                 for k, v in result.model.state_dict().items()}
        save_file(state, os.path.join(os.environ["REPLICAS"], f"rank{os.environ['RANK']}.st"))
        return result

    commands.train_vqvae = spy
    sys.exit(main(sys.argv[1:]))
    """
)


def test_two_cpu_processes_train_one_run_with_equal_replicas(tmp_path):
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
        "--no-progress", "--device", "cpu", "--force",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
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

"""``--channels-last``: image convolutions on NHWC memory follow the default layout's loss
curve, save ordinary weights, and resume bit-exactly."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY
from vqvae.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _train(run, steps: int, *extra: str) -> int:
    return main(["train", "--data", "digits", "--out", str(run), *TINY, "--steps", str(steps),
                 "--batch-size", "32", "--checkpoint-every", "2", "--set", "log_every=1",
                 "--no-progress", "--no-report", *extra])  # fmt: skip


def _losses(run) -> list[float]:
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if r["split"] == "train"]


def test_channels_last_follows_the_default_layout_and_resumes_exactly(tmp_path):
    assert _train(tmp_path / "default", 4) == 0
    assert _train(tmp_path / "nhwc", 4, "--channels-last") == 0
    # another summation order inside the convolutions: close, not bit-equal
    assert _losses(tmp_path / "nhwc") == pytest.approx(_losses(tmp_path / "default"), rel=1e-3)
    assert json.loads((tmp_path / "nhwc/config.json").read_text())["train"]["channels_last"]

    assert _train(tmp_path / "stopped", 2, "--channels-last") == 0
    assert _train(tmp_path / "stopped", 4, "--resume") == 0  # keeps --channels-last
    straight = load_file(str(tmp_path / "nhwc/model.safetensors"))
    resumed = load_file(str(tmp_path / "stopped/model.safetensors"))
    for k, v in straight.items():
        assert torch.equal(v, resumed[k]), k

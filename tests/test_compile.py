"""``--compile`` (vqvae.train.compiled): the networks through torch.compile follow the eager
loss curve, save the same weight names, resume exactly, and a platform where compiling
fails trains eagerly after one line. One tiny model: compiling is the slow part."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from test_accumulate import tiny_model, train
from vqvae.train import compiled as compiled_module
from vqvae.train.compiled import networks

pytestmark = pytest.mark.usefixtures("one_thread")


def _losses(folder) -> list[float]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines if json.loads(line)["split"] == "train"]


def test_compiled_steps_follow_the_eager_loss_curve(tmp_path):
    eager, compiled = tiny_model(), tiny_model()
    train(eager, tmp_path / "eager", steps=3)
    train(compiled, tmp_path / "compiled", steps=3, compile=True)
    # inductor fuses and reorders float arithmetic: close, not bit-equal
    assert _losses(tmp_path / "compiled") == pytest.approx(_losses(tmp_path / "eager"), rel=1e-4)
    saved = (tmp_path / "compiled/checkpoints/step-0000002/model.safetensors").read_bytes()
    assert b"_orig_mod" not in saved
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    assert all(m._compiled_call_impl is None for m in compiled.modules())  # eager outside steps

    # a compiled run stopped at step 2 and resumed ends where the straight one did, bit for
    # bit (the same graphs compile to the same kernels; inductor's cache makes it quick)
    shutil.rmtree(tmp_path / "compiled/checkpoints/step-0000003")  # as if killed in step 3
    resumed = tiny_model()
    train(resumed, tmp_path / "compiled", steps=3, compile=True, resume=True)
    for k, v in compiled.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_the_networks_are_the_parts_without_a_codebook():
    model = tiny_model()
    assert networks(model) == [model.encoder, model.decoder]


def test_a_platform_that_cannot_compile_trains_eagerly(tmp_path, monkeypatch, capsys):
    def broken(fn, *args, **kwargs):
        def call(*a, **k):
            raise RuntimeError("InductorError: no working C compiler\nmore detail")

        return call

    monkeypatch.setattr(compiled_module.torch, "compile", broken)
    eager, fallback = tiny_model(), tiny_model()
    train(eager, tmp_path / "eager", steps=2)
    train(fallback, tmp_path / "fallback", steps=2, compile=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "vqvae: --compile does not work on this platform (InductorError: no working C "
        "compiler); training eagerly"
    ]
    for k, v in eager.state_dict().items():
        assert torch.equal(v, fallback.state_dict()[k]), k

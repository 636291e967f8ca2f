"""Gradient accumulation (vqvae.train.accumulate): N micro-batches make the step one batch
of them all would have made, the codebook's EMA statistics, k-means fits and restarts
included; and a run killed between micro-batches resumes bit-exactly.

Parameters are compared to float tolerance (a convolution over 32 images rounds differently
from one over 128); bit-exact comparisons are between two runs on this machine.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch

from vqvae.config import TrainConfig
from vqvae.models import VQVAE, QuantizerConfig, VQVAEConfig
from vqvae.nets import NetConfig
from vqvae.runs import RunDir
from vqvae.train.loop import batch_indices, fit
from vqvae.train.vqvae import vqvae_step

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGES = np.random.default_rng(0).integers(0, 256, (256, 8, 8, 1), dtype=np.uint8)
IMAGES[:128] //= 4  # two kinds of image, so that the codes have something to tell apart


def tiny_model(kind: str = "ema", **quantizer) -> VQVAE:
    torch.manual_seed(0)
    q = QuantizerConfig(kind=kind, num_codes=16, code_dim=4, **quantizer)
    net = NetConfig(hidden_channels=16, residual_channels=8, num_downsamples=1)
    return VQVAE(VQVAEConfig(in_channels=1, input_size=(8, 8), net=net, quantizer=q))


def train(
    model: VQVAE, folder, steps: int, resume=False, fail_at=None, trained=None, **train
) -> None:
    """``steps`` steps of batch 128 through the shared loop; ``fail_at=(step, micro-batch)``
    raises inside that micro-batch's forward pass, as a kill would stop it there."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    config = TrainConfig(steps=steps, batch_size=128, checkpoint_every=2, eval_every=100,
                         log_every=1, **train)  # fmt: skip
    run = RunDir(folder)
    run.path.mkdir(exist_ok=True)
    inner = vqvae_step(model, model, torch.device("cpu"))
    calls = []

    def step_fn(batch: torch.Tensor):
        calls.append(len(batch))
        if fail_at is not None and len(calls) == fail_at:
            raise KeyboardInterrupt("killed between micro-batches")
        return inner(batch)

    def fetch(index_batches):
        return (torch.from_numpy(IMAGES[i.numpy()]) for i in index_batches)

    fit(model, optimizer, config, num_examples=len(IMAGES), step_fn=step_fn, fetch=fetch,
        run=run, resume=resume, progress=False, trained=trained)  # fmt: skip


def assert_close_states(a: VQVAE, b: VQVAE, atol: float) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if sa[k].is_floating_point():
            torch.testing.assert_close(sa[k], sb[k], atol=atol, rtol=1e-4, msg=k)
        else:
            assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize(
    "kind, quantizer",
    [
        # EMA codebook: k-means fit for the first steps, then EMA statistics and restarts
        ("ema", {"init_steps": 2, "dead_code_steps": 1}),
        # gradient-trained codebook: k-means once, restarts before the Adam update
        ("vq", {"dead_code_steps": 1}),
    ],
)
def test_four_micro_batches_make_the_step_of_one_batch(tmp_path, kind, quantizer):
    whole, parts = tiny_model(kind, **quantizer), tiny_model(kind, **quantizer)
    train(whole, tmp_path / "whole", steps=4)
    train(parts, tmp_path / "parts", steps=4, accumulate=4)
    assert_close_states(whole, parts, atol=1e-5)
    q = parts.quantizer
    assert int(q.init_steps_done) == q.init_steps  # fitted once per step, not per micro-batch
    if kind == "ema":  # the EMA counts are the batch's: 16 codes x 4 steps of 128*16 rows
        assert torch.allclose(whole.quantizer.cluster_size, q.cluster_size, atol=1e-3)


def test_statistics_applied_per_micro_batch_would_end_elsewhere():
    """What the test above guards against: micro-batches run by hand, each moving the EMA
    codebook (and re-fitting it) on its own, end far from one batch's codebook."""
    whole, parts = tiny_model(init_steps=2), tiny_model(init_steps=2)
    for model, pieces in ((whole, 1), (parts, 4)):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        step = vqvae_step(model, model, torch.device("cpu"))
        torch.manual_seed(0)
        for s in range(4):
            optimizer.zero_grad()
            for piece in torch.tensor_split(batch_indices(s, len(IMAGES), 128, 0), pieces):
                (step(torch.from_numpy(IMAGES[piece.numpy()])).loss / pieces).backward()
            optimizer.step()
    assert not torch.allclose(whole.quantizer.embedding, parts.quantizer.embedding, atol=1e-3)


def test_a_kill_between_micro_batches_resumes_bit_exactly(tmp_path):
    reference = tiny_model(init_steps=3, dead_code_steps=1)
    train(reference, tmp_path / "ref", steps=4, accumulate=4)
    killed = tiny_model(init_steps=3, dead_code_steps=1)
    # steps 1-3 each call the step function 5 times (the pass fitting the codebook to the
    # whole batch, then 4 micro-batches): call 13 is step 3's second micro-batch, after the
    # checkpoint of step 2
    with pytest.raises(KeyboardInterrupt):
        train(killed, tmp_path / "run", steps=4, accumulate=4, fail_at=13)
    resumed = tiny_model(init_steps=3, dead_code_steps=1)
    train(resumed, tmp_path / "run", steps=4, accumulate=4, resume=True)
    for k, v in reference.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


class _Wrapper(torch.nn.Module):
    """DistributedDataParallel's ``no_sync`` as a counter: where the all-reduce would wait."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.module = model
        self.waits = 0

    @contextmanager
    def no_sync(self):
        self.waits += 1
        yield


def test_the_gradient_all_reduce_waits_for_the_last_micro_batch(tmp_path):
    model = tiny_model()
    wrapper = _Wrapper(model)
    train(model, tmp_path, steps=2, accumulate=4, trained=wrapper)
    assert wrapper.waits == 2 * 3  # micro-batches 1-3 of each step skip the all-reduce

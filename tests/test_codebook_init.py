"""The EMA codebook's data-dependent initialization survives the encoder's first steps.

At initialization an encoder's outputs are a small cloud that Adam's first steps move by
more than its own width; a codebook fitted by k-means to the first batch alone is left
behind, every output becomes nearest one edge code, and as unchosen EMA codes never move
(paper appendix A.1) the collapse lasts. The initialization therefore refits the codebook to
each batch for the EMA's time constant (``Quantizer._maybe_initialize``). Tiny and fast: a
two-layer MLP autoencoder on synthetic "mostly background" vectors, one spatial position.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vqvae.quantizers import EMAVectorQuantizer, VectorQuantizer

K, D = 32, 4


def usage_per_step(init_steps: int | None, steps: int = 30) -> list[float]:
    """Fraction of the K codes used at each training step, restarts off (so nothing masks a
    collapse), Adam at lr 1e-3 as in the mnist preset."""
    torch.manual_seed(0)
    # (2048, 16): near -1 (the background) plus a small non-negative signal, as MNIST pixels
    data = -1 + torch.relu(torch.randn(2048, 16) @ torch.randn(16, 16) * 0.3)
    encoder = nn.Sequential(
        nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, D)
    )
    decoder = nn.Sequential(nn.Linear(D, 32), nn.ReLU(), nn.Linear(32, 16))
    q = EMAVectorQuantizer(K, D, init_steps=init_steps, restart_dead_codes=False).train()
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    used = []
    for step in range(steps):
        x = data[(step * 256) % 2048 :][:256]  # (256, 16)
        out = q(encoder(x)[:, :, None])  # z_e (256, D, 1): one spatial position
        loss = (decoder(out.z_q[:, :, 0]) - x).pow(2).mean() + out.loss
        used.append(out.codes.unique().numel() / K)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return used


def test_codebook_fitted_once_collapses_as_the_encoder_moves():
    """The mechanism, reproduced: with the first batch's k-means only, usage falls."""
    used = usage_per_step(init_steps=1)
    assert used[0] == 1.0  # k-means on the first batch uses every code ...
    assert max(used[-10:]) < 0.25  # ... and a few steps later most codes are dead


def test_default_init_keeps_codes_in_use_from_the_first_step():
    used = usage_per_step(init_steps=None)  # the default: the EMA's time constant, 100
    assert min(used) >= 0.9, used


def test_init_window_length_and_state():
    q = EMAVectorQuantizer(K, D, decay=0.99, restart_dead_codes=False).train()
    assert q.init_steps == 100  # 1 / (1 - decay)
    assert EMAVectorQuantizer(K, D, decay=0.9).init_steps == 10
    assert VectorQuantizer(K, D).init_steps == 1  # the gradient codebook: first batch only
    q(torch.randn(4, D, 4, 4))
    assert bool(q.initialized) and int(q.init_steps_done) == 1
    q.eval()(torch.randn(4, D, 4, 4))  # evaluation neither refits nor counts
    assert int(q.init_steps_done) == 1
    assert int(q.state_dict()["init_steps_done"]) == 1  # saved: a resumed run goes on from here


def test_refits_stop_after_the_window():
    q = EMAVectorQuantizer(K, D, init_steps=3, restart_dead_codes=False).train()
    for _ in range(3):
        q(torch.randn(4, D, 4, 4) + 10)
    assert q.codebook.mean() > 5
    q(torch.randn(4, D, 4, 4) - 10)  # past the window: only the EMA moves the codebook
    assert q.codebook.mean() > 5
    assert int(q.init_steps_done) == 3


@pytest.mark.parametrize("initialized", [True, False])
def test_weights_saved_without_the_step_count_still_load(initialized):
    """Weights from before ``init_steps_done`` existed: an initialized quantizer had
    finished its (one-batch) initialization and is not refitted when trained further."""
    from vqvae.pretrained import load_state_checked

    q = EMAVectorQuantizer(K, D, restart_dead_codes=False)
    old = {k: v for k, v in q.state_dict().items() if k != "init_steps_done"}
    old["initialized"] = torch.tensor(initialized)
    fresh = EMAVectorQuantizer(K, D, restart_dead_codes=False)
    load_state_checked(fresh, old, "old weights")
    assert int(fresh.init_steps_done) == (100 if initialized else 0)
    plain = EMAVectorQuantizer(K, D, restart_dead_codes=False)
    plain.load_state_dict(old)  # plain torch loading too, as BatchNorm's old weights load
    assert int(plain.init_steps_done) == int(fresh.init_steps_done)

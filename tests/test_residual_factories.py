"""Residual quantization over the newer quantizers: residual FSQ (levels built by a factory,
finer grids at later levels), residual cosine VQ (a ``Quantizer`` subclass, built from its
class), and the factory's checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vqvae.quantizers import (
    CosineVectorQuantizer,
    FiniteScalarQuantizer,
    LookupFreeQuantizer,
    ResidualVQ,
)

LEVELS = (5, 5, 5, 5)
D = len(LEVELS)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def residual_fsq(num_quantizers: int = 3, code_dim: int = D, scaled: bool = True) -> ResidualVQ:
    def level(i: int) -> FiniteScalarQuantizer:
        scale = [(n - 1) ** -i for n in LEVELS] if scaled else 1.0
        return FiniteScalarQuantizer(LEVELS, code_dim, scale=scale)

    return ResidualVQ(num_quantizers, code_dim=code_dim, quantizer=level)


def record_level_inputs(q: ResidualVQ) -> list[torch.Tensor]:
    inputs: list[torch.Tensor] = []
    for level in q.levels:
        level.register_forward_pre_hook(lambda m, args: inputs.append(args[0].detach()))
    return inputs


@pytest.mark.parametrize("code_dim", [D, 10], ids=["identity", "projected"])
def test_residual_fsq_quantizes_the_residuals(code_dim):
    q = residual_fsq(code_dim=code_dim).eval()
    inputs = record_level_inputs(q)
    z_e = torch.randn(2, code_dim, 3, 5) * 0.5
    out = q(z_e)
    assert out.codes.shape == (2, 3, 3, 5) and q.num_codes == 625
    assert q.codebook.shape == (3, 625, code_dim)
    vectors = [level.lookup(out.codes[:, i]) for i, level in enumerate(q.levels)]
    for i, level_out in enumerate(out.levels):
        assert torch.equal(vectors[i], level_out.z_q)  # each level's lookup is its z_q
    # level 0 sees z_e, level 1 z_e - (level 0's output), level 2 what both left over
    torch.testing.assert_close(inputs[0], z_e, rtol=0, atol=0)
    torch.testing.assert_close(inputs[1], z_e - vectors[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(inputs[2], z_e - vectors[0] - vectors[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(out.z_q, sum(vectors), rtol=0, atol=1e-6)
    assert torch.equal(q.lookup(out.codes), out.z_q)
    assert torch.equal(out.loss, torch.zeros(()))


def test_residual_fsq_error_shrinks_with_each_scaled_level():
    q = residual_fsq(num_quantizers=4).eval()
    z_e = torch.rand(4, D, 6, 6) * 1.6 - 0.8  # inside the first grid's range
    out = q(z_e)
    errors = [F.mse_loss(q.lookup(out.codes[:, :n]), z_e).item() for n in range(1, 5)]
    # each finer level (grid 4x as fine) removes most of what is left (1/16 of the squared
    # error for a uniform grid; tanh's bent cells leave somewhat more at the finest levels)
    assert all(b < 0.3 * a for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 0.01 * errors[0], errors
    # without the scales, level 1 sees residuals too small for its grid and adds little
    flat = residual_fsq(num_quantizers=2, scaled=False).eval()
    out = flat(z_e)
    unscaled = F.mse_loss(flat.lookup(out.codes), z_e).item()
    assert unscaled > 0.8 * errors[0] and unscaled > 3 * errors[1]


def test_residual_fsq_gradient_is_identity():
    q = residual_fsq().train()
    z_e = torch.randn(2, D, 3, 3, requires_grad=True)
    g = torch.randn_like(z_e)
    (grad,) = torch.autograd.grad(q(z_e).z_q, z_e, grad_outputs=g)
    assert torch.equal(grad, g)


def test_residual_cosine_vq():
    q = ResidualVQ(
        2, 16, 8, quantizer=CosineVectorQuantizer, lookup_dim=4, init="none",
        restart_dead_codes=False,
    ).eval()  # fmt: skip
    inputs = record_level_inputs(q)
    z_e = torch.randn(2, 8, 5)
    out = q(z_e)
    assert all(isinstance(level, CosineVectorQuantizer) for level in q.levels)
    assert q.levels[0].lookup_dim == 4 and out.codes.shape == (2, 2, 5)
    first = q.levels[0].lookup(out.codes[:, 0])
    torch.testing.assert_close(inputs[1], z_e - first, rtol=0, atol=1e-6)
    assert torch.equal(q.lookup(out.codes), out.z_q)
    torch.testing.assert_close(out.loss, out.levels[0].loss + out.levels[1].loss)


def test_residual_lfq_from_a_factory():
    q = ResidualVQ(2, code_dim=8, quantizer=lambda i: LookupFreeQuantizer(8, num_bits=3)).eval()
    out = q(torch.randn(2, 8, 4, 4))
    assert q.num_codes == 8 and out.codes.shape == (2, 2, 4, 4)
    assert torch.equal(q.lookup(out.codes), out.z_q)
    torch.testing.assert_close(out.loss, out.levels[0].loss + out.levels[1].loss)


def test_factory_checks():
    with pytest.raises(ValueError, match=r"code_dim 8 .*got code_dim \[4\]"):
        ResidualVQ(2, code_dim=8, quantizer=lambda i: FiniteScalarQuantizer(LEVELS, 4))
    with pytest.raises(ValueError, match=r"one num_codes.*num_codes \[125, 625\]"):
        ResidualVQ(2, code_dim=4, quantizer=lambda i: FiniteScalarQuantizer(LEVELS[: 3 + i], 4))
    with pytest.raises(ValueError, match=r"no quantizer keyword arguments.*\['init'\]"):
        ResidualVQ(2, code_dim=4, quantizer=lambda i: FiniteScalarQuantizer(LEVELS, 4), init="none")

"""The rotation trick (Fifty et al. 2024, arXiv:2410.06424, section 4): the gradient against
the paper's R and scale built explicitly in float64, a forward value bit-identical to
straight-through's, finite degenerate cases, and the ``gradient`` option of the quantizers."""

from __future__ import annotations

import pytest
import torch

from vqvae.quantizers import EMAVectorQuantizer, VectorQuantizer, rotation_trick
from vqvae.quantizers.base import straight_through

K, D = 16, 8


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def flat_of(z: torch.Tensor) -> torch.Tensor:
    """(B, D, *S) -> (B * prod(S), D)."""
    return z.movedim(1, -1).reshape(-1, z.shape[1])


def paper_jacobian(z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """d z_q / d z_e for one row: ||e|| / ||z|| * R, R = I - 2 r r^T + 2 e_hat z_hat^T."""
    z_hat, e_hat = z / z.norm(), e / e.norm()
    r = (z_hat + e_hat) / (z_hat + e_hat).norm()
    eye = torch.eye(len(z), dtype=z.dtype)
    R = eye - 2 * torch.outer(r, r) + 2 * torch.outer(e_hat, z_hat)
    # R is the rotation taking z_hat to e_hat: orthogonal, determinant +1
    torch.testing.assert_close(R @ z_hat, e_hat)
    torch.testing.assert_close(R.t() @ R, eye)
    torch.testing.assert_close(torch.linalg.det(R), torch.tensor(1.0, dtype=z.dtype))
    return e.norm() / z.norm() * R


def test_gradient_equals_the_papers_formula():
    z = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    e = torch.randn(6, 5, dtype=torch.float64) * 2
    g = torch.randn(6, 5, dtype=torch.float64)
    (grad,) = torch.autograd.grad(rotation_trick(z, e), z, grad_outputs=g)
    for n in range(6):
        J = paper_jacobian(z[n].detach(), e[n])
        torch.testing.assert_close(grad[n], J.t() @ g[n])  # the VJP g^T J
    # the full Jacobian: block diagonal, one block per row, each the paper's
    full = torch.autograd.functional.jacobian(lambda x: rotation_trick(x, e), z.detach())
    for n in range(6):
        for m in range(6):
            block = full[n, :, m, :]
            expected = paper_jacobian(z[n].detach(), e[n]) if n == m else torch.zeros(5, 5)
            torch.testing.assert_close(block, expected.to(block.dtype))


def test_gradient_differs_from_straight_through_and_keeps_norm_ratio():
    z = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    e = torch.randn(4, 3, dtype=torch.float64)
    g = torch.randn(4, 3, dtype=torch.float64)
    (grad,) = torch.autograd.grad(rotation_trick(z, e), z, grad_outputs=g)
    assert not torch.allclose(grad, g)
    # a rotation keeps lengths: ||grad|| = ||e|| / ||z|| * ||g|| row by row
    torch.testing.assert_close(
        grad.norm(dim=1), e.norm(dim=1) / z.detach().norm(dim=1) * g.norm(dim=1)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_forward_is_bit_identical_to_straight_through(dtype):
    z = (torch.randn(100, D) * 3).to(dtype).requires_grad_()
    e = torch.randn(100, D).to(dtype)
    out = rotation_trick(z, e)
    assert out.dtype == dtype
    assert torch.equal(out, straight_through(z, e))
    assert torch.equal(out, e)


def grad_of(z: torch.Tensor, e: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    z = z.clone().requires_grad_()
    out = rotation_trick(z, e)
    assert torch.equal(out, e) and torch.isfinite(out).all()
    (grad,) = torch.autograd.grad(out, z, grad_outputs=g)
    assert torch.isfinite(grad).all()
    return grad


def test_degenerate_rows_stay_finite():
    z = torch.randn(1, D, dtype=torch.float64)
    g = torch.randn(1, D, dtype=torch.float64)
    # z_e == e: R = I and scale 1, so the gradient is straight-through's
    torch.testing.assert_close(grad_of(z, z.clone(), g), g)
    # e == -z_e: r is undefined; the reflection I - 2 z_hat z_hat^T takes z_hat to e_hat
    z_hat = z / z.norm()
    expected = g - 2 * z_hat * (z_hat * g).sum()
    torch.testing.assert_close(grad_of(z, -z, g), expected)
    # e == -2 z_e: the same reflection, scaled by ||e|| / ||z_e|| = 2
    torch.testing.assert_close(grad_of(z, -2 * z, g), 2 * expected)
    # z_e == 0 has no direction: straight-through's identity
    zero = torch.zeros(1, D, dtype=torch.float64)
    torch.testing.assert_close(grad_of(zero, torch.randn(1, D, dtype=torch.float64), g), g)
    # e == 0: the formula's scale ||e|| / ||z_e|| is 0, so no gradient
    torch.testing.assert_close(grad_of(z, zero, g), torch.zeros_like(g))
    # both zero
    torch.testing.assert_close(grad_of(zero, zero, g), g)


def test_no_gradient_reaches_the_code_vectors():
    z = torch.randn(5, D, requires_grad=True)
    e = torch.randn(5, D, requires_grad=True)
    (g_e,) = torch.autograd.grad(rotation_trick(z, e).sum(), e, allow_unused=True)
    assert g_e is None  # sg[e], as in straight-through: the codebook learns from its loss


def test_bad_shapes_raise_value_error():
    with pytest.raises(ValueError, match=r"same shape \(N, D\).*got \(5, 8\) and \(5, 7\)"):
        rotation_trick(torch.randn(5, 8), torch.randn(5, 7))
    with pytest.raises(ValueError, match=r"got \(8,\) and \(8,\)"):
        rotation_trick(torch.randn(8), torch.randn(8))


# -- the quantizers' ``gradient`` option --------------------------------------------------
def make(cls, gradient: str):
    return cls(K, D, init="none", restart_dead_codes=False, gradient=gradient)


@pytest.mark.parametrize("cls", [VectorQuantizer, EMAVectorQuantizer])
def test_codebook_quantizers_take_the_rotation_gradient(cls):
    ste, rot = make(cls, "ste"), make(cls, "rotation")
    with torch.no_grad():
        ste.codebook.copy_(torch.randn(K, D))
    rot.load_state_dict(ste.state_dict())
    z_e = torch.randn(2, D, 3, 4, requires_grad=True)
    a, b = ste.eval()(z_e), rot.eval()(z_e)
    # the same forward pass, bit for bit, and lookup still gives it back
    assert (
        torch.equal(a.codes, b.codes) and torch.equal(a.z_q, b.z_q) and torch.equal(a.loss, b.loss)
    )
    assert torch.equal(rot.lookup(b.codes), b.z_q)
    # the gradient to z_e is the paper's, row by row
    g = torch.randn_like(z_e)
    (grad,) = torch.autograd.grad(b.z_q, z_e, grad_outputs=g)
    flat, g_flat = flat_of(z_e).detach().double(), flat_of(g).double()
    e = rot.codebook[b.codes.reshape(-1)].detach().double()
    for n in range(flat.shape[0]):
        expected = paper_jacobian(flat[n], e[n]).t() @ g_flat[n]
        torch.testing.assert_close(flat_of(grad)[n].double(), expected, rtol=1e-4, atol=1e-5)
    if cls is VectorQuantizer:  # the decoder's gradient still never reaches the codebook
        g_e = torch.autograd.grad(b.z_q.sum(), rot.embedding, allow_unused=True)[0]
        assert g_e is None or torch.count_nonzero(g_e) == 0


@pytest.mark.parametrize("cls", [VectorQuantizer, EMAVectorQuantizer])
def test_gradient_option_is_checked(cls):
    with pytest.raises(ValueError, match=r"expected gradient in \('ste', 'rotation'\), got 'rot'"):
        cls(K, D, gradient="rot")

"""Finite scalar quantization (Mentzer et al. 2023, arXiv:2309.15505): the mixed-radix index is
a bijection onto the grid, rounding passes the gradient straight through, every code can be
reached, and ``lookup`` gives back forward's z_q bit for bit."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from vqvae.quantizers import FiniteScalarQuantizer, QuantizerOutput

LEVELS = (8, 5, 5, 5)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def flat_of(z: torch.Tensor) -> torch.Tensor:
    """(B, D, *S) -> (B * prod(S), D)."""
    return z.movedim(1, -1).reshape(-1, z.shape[1])


def inputs_for(q: FiniteScalarQuantizer, digits: torch.Tensor) -> torch.Tensor:
    """z (N, d) whose bound rounds to ``digits`` (N, d): f^-1 at the target level, clamped
    inside tanh's open range for the outermost levels."""
    target = (digits - q._half_width).double()  # (N, d) integers
    u = (target + q._offset.double()) / q._half_l.double()
    return (torch.atanh(u.clamp(-1 + 1e-6, 1 - 1e-6)) - q._shift.double()).float()


@pytest.mark.parametrize("levels", [LEVELS, (3, 4, 2), (2,)])
def test_index_and_level_vector_are_a_bijection(levels):
    q = FiniteScalarQuantizer(levels, code_dim=len(levels))
    k = math.prod(levels)
    assert q.num_codes == k
    codes = torch.arange(k)
    digits = q.codes_to_digits(codes)  # (K, d)
    assert torch.equal(q.digits_to_codes(digits), codes)
    assert digits.unique(dim=0).shape[0] == k  # K distinct level vectors: onto the grid
    # against the mixed-radix number written out by hand, first dimension least significant
    for digit_tuple in itertools.product(*(range(n) for n in levels)):
        index = sum(d * math.prod(levels[:i]) for i, d in enumerate(digit_tuple))
        assert tuple(digits[index].tolist()) == digit_tuple


def test_bound_centres_zero_and_grid_matches_the_paper():
    q = FiniteScalarQuantizer(LEVELS, code_dim=4)
    assert q.bound(torch.zeros(1, 4)).abs().max() < 1e-4  # f(0) ~ 0: centred grids
    z = torch.linspace(-30, 30, 4001).unsqueeze(1).expand(-1, 4)  # (N, 4)
    z_hat, digits = q.quantize(z)
    for i, n in enumerate(LEVELS):
        values = sorted(set(z_hat[:, i].tolist()))
        half = n // 2
        assert values == [(j - half) / half for j in range(n)]  # n points in [-1, 1]
        assert sorted(set(digits[:, i].tolist())) == list(range(n))
    # monotone: a larger input never rounds to a lower level
    assert torch.all(digits.diff(dim=0) >= 0)


def test_rounding_is_straight_through():
    """d z_hat / d f(z) is the identity: the gradient to z is f'(z) / floor(L/2), elementwise."""
    q = FiniteScalarQuantizer(LEVELS, code_dim=4)
    z = (torch.randn(50, 4) * 2).requires_grad_()
    z_hat, _ = q.quantize(z)
    g = torch.randn_like(z_hat)
    (grad,) = torch.autograd.grad(z_hat, z, grad_outputs=g)
    with torch.no_grad():
        f_prime = (1 - torch.tanh(z + q._shift) ** 2) * q._half_l  # d f / d z
    torch.testing.assert_close(grad, g * f_prime / q._half_width)


def test_forward_gradient_through_projections_is_the_chain_rule():
    """With projections: d z_q / d z_e = W_out diag(f'(z) / floor(L/2)) W_in, row by row."""
    D = 6
    q = FiniteScalarQuantizer(LEVELS, code_dim=D)
    z_e = torch.randn(3, D, 4, requires_grad=True)
    out = q(z_e)
    g = torch.randn_like(out.z_q)
    (grad,) = torch.autograd.grad(out.z_q, z_e, grad_outputs=g)
    w_in, w_out = q.project_in.weight, q.project_out.weight  # (d, D), (D, d)
    with torch.no_grad():
        z = q.project_in(flat_of(z_e))  # (N, d)
        diag = (1 - torch.tanh(z + q._shift) ** 2) * q._half_l / q._half_width  # (N, d)
        expected = ((flat_of(g) @ w_out) * diag) @ w_in  # (N, D)
    torch.testing.assert_close(flat_of(grad), expected)


@pytest.mark.parametrize(
    ("levels", "code_dim"),
    [(LEVELS, 4), (LEVELS, 9), ((2, 3, 4, 7), 4)],
    ids=["identity", "projected", "two-levels"],
)
def test_every_code_is_reachable(levels, code_dim):
    q = FiniteScalarQuantizer(levels, code_dim=code_dim).eval()
    codes = torch.arange(q.num_codes)
    z = inputs_for(q, q.codes_to_digits(codes))  # (K, d)
    if code_dim != 4:  # solve W_in z_e + b = z for z_e (W_in is (4, 9): full row rank)
        with torch.no_grad():
            w, b = q.project_in.weight.double(), q.project_in.bias.double()
            z = ((z.double() - b) @ torch.linalg.pinv(w).t()).float()  # (K, D)
    z_e = z.t().reshape(1, code_dim, q.num_codes)  # (K, D) -> (1, D, K)
    out = q(z_e)
    assert torch.equal(out.codes.reshape(-1), codes)
    torch.testing.assert_close(out.perplexity, torch.tensor(float(q.num_codes)), rtol=1e-5, atol=0)
    # the materialised codebook holds the same vectors, row k for code k
    torch.testing.assert_close(q.codebook, flat_of(out.z_q))


@pytest.mark.parametrize("spatial", [(11,), (5, 7), (3, 4, 5)], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("code_dim", [4, 16], ids=["identity", "projected"])
def test_lookup_equals_forward(spatial, code_dim):
    q = FiniteScalarQuantizer(LEVELS, code_dim=code_dim).eval()
    z_e = torch.randn(2, code_dim, *spatial) * 3
    out = q(z_e)
    assert isinstance(out, QuantizerOutput)
    assert out.codes.shape == (2, *spatial) and out.codes.dtype == torch.int64
    assert out.z_q.shape == z_e.shape
    assert torch.equal(q.lookup(out.codes), out.z_q)
    assert q.codebook.shape == (q.num_codes, code_dim)


def test_no_losses_and_nothing_saved_but_projections():
    q = FiniteScalarQuantizer(LEVELS, code_dim=8).train()
    out = q(torch.randn(2, 8, 3, 3))
    for loss in (out.loss, out.commitment_loss, out.codebook_loss):
        assert torch.equal(loss, torch.zeros(()))
    assert set(q.state_dict()) == {
        f"project_{s}.{p}" for s in ("in", "out") for p in ("weight", "bias")
    }
    assert list(FiniteScalarQuantizer(LEVELS, code_dim=4).parameters()) == []


def test_scale_makes_a_finer_grid():
    coarse = FiniteScalarQuantizer((5, 5), code_dim=2).eval()
    fine = FiniteScalarQuantizer((5, 5), code_dim=2, scale=0.25).eval()
    z_e = torch.rand(2, 2, 30) * 0.4 - 0.2  # inside the fine grid's range [-0.25, 0.25]
    c, f = coarse(z_e), fine(z_e)
    # the fine grid is the coarse one shrunk 4 times, and it serves inputs 4 times as small
    assert torch.equal(fine(z_e * 0.25).codes, c.codes)
    assert torch.equal(fine(z_e * 0.25).z_q, c.z_q * 0.25)
    assert torch.equal(c.z_q, torch.zeros_like(z_e))  # too small for the coarse grid
    # (tanh bends the cells, so this is not the nearest grid point; still far closer)
    assert (f.z_q - z_e).abs().max() < 0.5 * z_e.abs().max()
    assert torch.equal(fine.lookup(f.codes), f.z_q)


def test_codes_are_float32_under_autocast():
    """The quantizer, its projections included, runs in float32 under autocast (the
    precision rule, docs/design-notes.md): the codes are the float32 ones, and ``lookup``
    gives forward's z_q, so decoding codes under autocast matches the forward pass."""
    q = FiniteScalarQuantizer(LEVELS, code_dim=12).eval()
    z_e = torch.randn(2, 12, 8, 8)
    expected = q(z_e)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(z_e.bfloat16())
        looked_up = q.lookup(out.codes)
    assert out.z_q.dtype == looked_up.dtype == torch.float32
    assert torch.equal(looked_up, out.z_q)
    # a bf16 input is rounded: all but a few inputs stay in their cell
    assert (out.codes == expected.codes).float().mean() > 0.9
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(q(z_e).codes, expected.codes)  # float32 inputs: the very codes


def test_bad_input_raises_value_error():
    q = FiniteScalarQuantizer(LEVELS, code_dim=8)
    with pytest.raises(ValueError, match=r"8 channels.*got shape \(2, 9, 4\)"):
        q(torch.randn(2, 9, 4))
    with pytest.raises(ValueError, match=r"expected z_e of shape \(B, D, \*spatial\).*got shape"):
        q(torch.randn(2, 8))
    with pytest.raises(
        ValueError, match=r"expected codes in \[0, 1000\).*got values in \[0, 1000\]"
    ):
        q.lookup(torch.tensor([[0, 1000]]))
    with pytest.raises(ValueError, match="integers >= 2"):
        FiniteScalarQuantizer((8, 1), code_dim=2)
    with pytest.raises(ValueError, match="integers >= 2"):
        FiniteScalarQuantizer((), code_dim=2)
    with pytest.raises(ValueError, match="scale > 0"):
        FiniteScalarQuantizer((5, 5), code_dim=2, scale=0.0)

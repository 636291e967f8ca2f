"""Lookup-free quantization (MAGVIT-v2, arXiv:2310.05737, section 3.1): signs and their binary
index, the entropy penalty's sign and value against a brute-force computation, half precision,
and ``lookup`` against forward's z_q."""

from __future__ import annotations

import math

import pytest
import torch

from vqvae.quantizers import LookupFreeQuantizer, LookupFreeQuantizerOutput
from vqvae.quantizers.lfq import entropy_terms
from vqvae.runs import RunDir

BITS = 4


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def flat_of(z: torch.Tensor) -> torch.Tensor:
    """(B, D, *S) -> (B * prod(S), D)."""
    return z.movedim(1, -1).reshape(-1, z.shape[1])


def as_z_e(flat: torch.Tensor) -> torch.Tensor:
    """(N, d) -> (1, d, N): a batch of one 1-D sequence."""
    return flat.t().unsqueeze(0)


def test_signs_and_index_with_zero_mapped_to_minus_one():
    q = LookupFreeQuantizer(code_dim=BITS, num_bits=BITS).eval()
    z = torch.tensor(
        [
            [0.0, -0.0, 1e-30, -1e-30],
            [-2.0, 3.0, 0.0, -0.5],
            [5.0, 5.0, 5.0, 5.0],
            [-1.0, -1.0, -1.0, -1.0],
        ]
    )
    out = q(as_z_e(z))
    expected_q = torch.where(z > 0, 1.0, -1.0)  # 0 (and -0.0) -> -1, as the paper's eq.
    assert torch.equal(flat_of(out.z_q), expected_q)
    # Index = sum_i 2^i [q_i = +1], dimension 0 the lowest bit (paper's Index(z), 0-based)
    expected_codes = [4, 2, 15, 0]  # rows 1-2: only the positive entries (1e-30, 3.0) are set
    assert out.codes.reshape(-1).tolist() == expected_codes
    assert torch.equal(q.lookup(out.codes), out.z_q)


def test_index_and_sign_vector_are_a_bijection():
    q = LookupFreeQuantizer(code_dim=BITS, num_bits=BITS).eval()
    corners = q.codes_to_signs(torch.arange(16))  # (K, d)
    assert corners.unique(dim=0).shape[0] == 16
    assert set(corners.unique().tolist()) == {-1.0, 1.0}
    out = q(as_z_e(corners))
    assert torch.equal(out.codes.reshape(-1), torch.arange(16))
    torch.testing.assert_close(q.codebook, corners)


def brute_force_entropies(z: torch.Tensor, tau: float) -> tuple[float, float]:
    """From the definition, in float64: p(c|z) = softmax(-||z - c||^2 / tau) over all corners."""
    d = z.shape[1]
    corners = torch.tensor(
        [[1.0 if (k >> i) & 1 else -1.0 for i in range(d)] for k in range(2**d)],
        dtype=torch.float64,
    )
    p = (-torch.cdist(z.double(), corners).pow(2) / tau).softmax(1)  # (N, K)
    per_sample = -(p * p.clamp(min=1e-300).log()).sum(1).mean()
    p_mean = p.mean(0)
    batch = -(p_mean * p_mean.clamp(min=1e-300).log()).sum()
    return per_sample.item(), batch.item()


@pytest.mark.parametrize("bits", [BITS, 5, 1])  # even, uneven and one-sided splits of the bits
def test_entropy_terms_equal_the_definition(bits):
    z = torch.randn(40, bits) * 0.7
    sample, batch = entropy_terms(z, 0.5)
    ref_sample, ref_batch = brute_force_entropies(z, 0.5)
    assert sample.item() == pytest.approx(ref_sample, rel=1e-4)
    assert batch.item() == pytest.approx(ref_batch, rel=1e-4)


def entropy_loss(q: LookupFreeQuantizer, z: torch.Tensor) -> torch.Tensor:
    out = q(as_z_e(z))
    assert isinstance(out, LookupFreeQuantizerOutput)
    torch.testing.assert_close(out.entropy_loss, out.sample_entropy - out.codebook_entropy)
    return out.entropy_loss


def test_penalty_is_higher_for_one_code_than_for_all_codes():
    q = LookupFreeQuantizer(code_dim=BITS, num_bits=BITS, temperature=0.01)
    corners = q.codes_to_signs(torch.arange(16))  # each code once, confidently
    one_code = corners[5].expand(16, -1)  # the whole batch on code 5
    spread, collapsed = entropy_loss(q, corners), entropy_loss(q, one_code)
    assert collapsed > spread
    # confident (tau = 0.01): per-sample entropy ~ 0, batch entropy log K or 0
    assert spread.item() == pytest.approx(-math.log(16), abs=1e-4)
    assert collapsed.item() == pytest.approx(0.0, abs=1e-4)


def test_penalty_is_lower_for_confident_than_uncertain_assignments():
    q = LookupFreeQuantizer(code_dim=BITS, num_bits=BITS)
    z = q.codes_to_signs(torch.arange(16))
    confident, uncertain = entropy_loss(q, z), entropy_loss(q, z * 1e-3)  # same codes
    assert confident < uncertain
    out = q(as_z_e(z * 1e-3))
    assert out.sample_entropy > 0.9 * math.log(16)  # nearly uniform per sample


def test_batch_entropy_counts_codes_not_bits():
    """Two codes, (+1,...,+1) and (-1,...,-1): every bit balanced, yet only log 2 of entropy
    (a per-bit factorised batch entropy would report BITS * log 2), at a confident tau."""
    q = LookupFreeQuantizer(code_dim=BITS, num_bits=BITS, temperature=0.01)
    z = torch.cat([torch.ones(8, BITS), -torch.ones(8, BITS)])
    out = q(as_z_e(z))
    assert out.codebook_entropy.item() == pytest.approx(math.log(2), abs=1e-4)


def test_entropy_gradient_spreads_a_collapsed_batch():
    """One gradient step on the penalty moves a collapsed batch toward more codes."""
    q = LookupFreeQuantizer(code_dim=BITS, num_bits=BITS, temperature=1.0)
    z = (torch.ones(32, BITS) * 0.3 + 0.05 * torch.randn(32, BITS)).requires_grad_()
    loss = q(as_z_e(z)).entropy_loss
    (grad,) = torch.autograd.grad(loss, z)
    after = q(as_z_e(z.detach() - 0.5 * grad))
    assert after.codebook_entropy > q(as_z_e(z.detach())).codebook_entropy
    assert after.entropy_loss < loss


def test_loss_is_commitment_plus_weighted_entropy():
    q = LookupFreeQuantizer(code_dim=6, num_bits=BITS, beta=0.3, entropy_weight=0.2)
    z_e = torch.randn(2, 6, 5, requires_grad=True)
    out = q(z_e)
    z = q.project_in(flat_of(z_e))
    torch.testing.assert_close(
        out.commitment_loss, (z - torch.where(z >= 0, 1.0, -1.0)).pow(2).mean()
    )
    torch.testing.assert_close(out.loss, 0.3 * out.commitment_loss + 0.2 * out.entropy_loss)
    assert torch.equal(out.codebook_loss, torch.zeros(()))


def test_straight_through_gradient_is_identity():
    q = LookupFreeQuantizer(code_dim=BITS, num_bits=BITS).train()
    z_e = torch.randn(2, BITS, 3, 5, requires_grad=True)
    out = q(z_e)
    g = torch.randn_like(z_e)
    (grad,) = torch.autograd.grad(out.z_q, z_e, grad_outputs=g)
    assert torch.equal(grad, g)


def test_bfloat16_input_gives_finite_float32_entropy():
    q = LookupFreeQuantizer(code_dim=BITS, num_bits=BITS)
    z_e = (torch.randn(2, BITS, 8, 8) * 3).bfloat16().requires_grad_()
    out = q(z_e)
    assert out.z_q.dtype == torch.float32  # a quantizer computes in float32 (design notes)
    assert out.entropy_loss.dtype == torch.float32 and out.loss.dtype == torch.float32
    assert torch.isfinite(out.loss) and torch.isfinite(out.z_q).all()
    assert torch.equal(out.codes, q(z_e.float()).codes)
    (grad,) = torch.autograd.grad(out.loss, z_e)
    assert torch.isfinite(grad.float()).all()
    # with projections, under autocast
    q = LookupFreeQuantizer(code_dim=16, num_bits=BITS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(torch.randn(2, 16, 8, 8) * 3)
    assert out.entropy_loss.dtype == torch.float32 and torch.isfinite(out.loss)
    assert torch.isfinite(out.z_q).all()


@pytest.mark.parametrize("spatial", [(11,), (5, 7), (3, 4, 5)], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("code_dim", [BITS, 16], ids=["identity", "projected"])
def test_lookup_equals_forward(spatial, code_dim):
    q = LookupFreeQuantizer(code_dim=code_dim, num_bits=BITS).eval()
    z_e = torch.randn(2, code_dim, *spatial)
    out = q(z_e)
    assert out.codes.shape == (2, *spatial) and out.codes.dtype == torch.int64
    assert torch.equal(q.lookup(out.codes), out.z_q)
    assert q.codebook.shape == (16, code_dim)
    torch.testing.assert_close(q.codebook[out.codes.reshape(-1)], flat_of(out.z_q))


def test_bad_input_raises_value_error():
    q = LookupFreeQuantizer(code_dim=8, num_bits=BITS)
    with pytest.raises(ValueError, match=r"8 channels.*got shape \(2, 9, 4\)"):
        q(torch.randn(2, 9, 4))
    with pytest.raises(ValueError, match=r"expected z_e of shape \(B, D, \*spatial\).*got shape"):
        q(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"expected codes in \[0, 16\).*got values in \[0, 16\]"):
        q.lookup(torch.tensor([[0, 16]]))
    with pytest.raises(ValueError, match="num_bits >= 1"):
        LookupFreeQuantizer(code_dim=8, num_bits=0)
    with pytest.raises(ValueError, match="temperature > 0"):
        LookupFreeQuantizer(code_dim=8, num_bits=4, temperature=0.0)


def test_a_short_training_uses_most_of_its_codes(tmp_path, one_thread):
    """LFQ with its defaults on the bundled digits: 150 steps use over half of the 64 codes
    on the test images (MAGVIT-v2's tau = 0.01 leaves bits stuck: about a quarter used)."""
    from vqvae import VQVAE
    from vqvae.cli import main
    from vqvae.data import load_dataset
    from vqvae.inference import encode

    run = tmp_path / "run"
    argv = ["train", "--data", "digits", "--preset", "digits", "--set", "quantizer.kind=lfq",
            "--steps", "150", "--out", str(run), "--no-progress", "--no-report"]  # fmt: skip
    assert main(argv) == 0
    model = VQVAE.from_pretrained(run)
    codes = encode(model, load_dataset("digits", "test").images)
    assert model.num_codes == 64
    assert len(set(codes.reshape(-1).tolist())) / model.num_codes > 0.5
    logged = [r for r in RunDir(run).read_metrics() if r.get("split") == "train"]
    assert all(0 <= r["codebook_entropy"] <= math.log(64) + 1e-4 for r in logged)


def test_first_training_batch_balances_every_bit():
    """The data-dependent init: encoder outputs that barely vary (as a wide network's do at
    PyTorch's default init) still split every bit of the first batch in half, so the batch
    uses many codes rather than one."""
    torch.manual_seed(0)
    quantizer = LookupFreeQuantizer(code_dim=16, num_bits=6).train()
    z_e = 0.5 + 1e-3 * torch.randn(32, 16, 4, 4)  # (B, D, H, W): a constant plus a trace
    without = LookupFreeQuantizer(code_dim=16, num_bits=6).eval()  # eval: no init
    assert without(z_e).codes.unique().numel() <= 4
    out = quantizer(z_e)
    assert bool(quantizer.initialized)
    z = quantizer.project_in(z_e.movedim(1, -1).reshape(-1, 16)).detach()  # (N, d)
    # the init divides by the batch's spread (about 1e-3 here), so float32's rounding of the
    # constant 0.5 (6e-8 relative) reaches the centred values amplified about a thousandfold:
    # a median within 1e-3 of zero is centred; which side of 1e-4 it lands on depends on the
    # summation order of the CPU's kernels (1.2e-4 seen on one machine, under 1e-4 on another)
    assert torch.allclose(z.median(0).values, torch.zeros(6), atol=1e-3)
    assert torch.allclose(z.std(0), torch.ones(6), atol=1e-4)
    assert out.codes.unique().numel() > 32  # of 64
    weight = quantizer.project_in.weight.clone()
    quantizer(z_e * 2)  # only the first batch initialises
    assert torch.equal(quantizer.project_in.weight, weight)


def test_weights_saved_before_the_init_load_as_initialised():
    trained = LookupFreeQuantizer(code_dim=8, num_bits=4).train()
    trained(torch.randn(4, 8, 3, 3))
    state = trained.state_dict()
    del state["initialized"]  # as release 0.2 wrote it
    loaded = LookupFreeQuantizer(code_dim=8, num_bits=4)
    loaded.load_state_dict(state)
    assert bool(loaded.initialized)
    loaded.train()(torch.randn(4, 8, 3, 3))  # no re-initialisation of trained weights
    assert torch.equal(loaded.project_in.weight, trained.project_in.weight)

"""The quantizers' mathematics (issue 2): nearest codes against a brute-force search,
straight-through gradients, where each loss term sends its gradient, the EMA update of
appendix A.1 computed by hand, dead-code restarts, data-dependent init, residual VQ.

Tiny shapes throughout; every test runs in well under a second on a 2-core CPU.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vqvae.quantizers import (
    EMAVectorQuantizer,
    QuantizerOutput,
    ResidualVQ,
    VectorQuantizer,
    _nearest,
    kmeans,
    nearest_code,
)
from vqvae.quantizers.residual import DROPPED

K, D = 16, 8


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def brute_force(flat: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest code by the full float64 distance matrix: (codes (N,), squared distances (N, K))."""
    dist2 = torch.cdist(flat.double(), codebook.double()).pow(2)  # (N, K)
    return dist2.argmin(1), dist2


def assert_nearest(codes: torch.Tensor, flat: torch.Tensor, codebook: torch.Tensor) -> None:
    """codes equal the brute-force argmin, except where two codes tie to float32 rounding.

    The search expands ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2 in float32, whose rounding
    error is a few float32 epsilons times ||z||^2 + ||e||^2: closer than that is a tie.
    """
    ref, dist2 = brute_force(flat, codebook)
    codes = codes.reshape(-1)
    tol = 1e-6 * (flat.double().pow(2).sum(1) + codebook.double().pow(2).sum(1).max())  # (N,)
    chosen = dist2.gather(1, codes[:, None]).squeeze(1)
    top2 = dist2.topk(min(2, dist2.shape[1]), dim=1, largest=False).values
    assert torch.all(chosen - top2[:, 0] <= tol), "a code is farther than the nearest"
    clear = (top2[:, -1] - top2[:, 0] > tol) if dist2.shape[1] > 1 else torch.ones_like(tol).bool()
    assert torch.equal(codes[clear], ref[clear])
    assert clear.float().mean() > 0.95  # ties are rare on these inputs


def flat_of(z_e: torch.Tensor) -> torch.Tensor:
    """(B, D, *S) -> (B * prod(S), D), the order in which the quantizers number vectors."""
    return z_e.movedim(1, -1).reshape(-1, z_e.shape[1])


def make(cls, **kwargs):
    """A quantizer whose state the test controls: no data init and no restarts."""
    kwargs = {"init": "none", "restart_dead_codes": False} | kwargs
    if cls is ResidualVQ:
        return ResidualVQ(3, K, D, **kwargs)
    return cls(K, D, **kwargs)


ALL = [VectorQuantizer, EMAVectorQuantizer, ResidualVQ]
SINGLE = [VectorQuantizer, EMAVectorQuantizer]


# -- nearest codes ------------------------------------------------------------------------
@pytest.mark.parametrize("cls", SINGLE)
@pytest.mark.parametrize("spatial", [(11,), (5, 7), (3, 4, 5)], ids=["1d", "2d", "3d"])
def test_codes_equal_brute_force(cls, spatial):
    q = make(cls).eval()
    z_e = torch.randn(3, D, *spatial)
    out = q(z_e)
    assert isinstance(out, QuantizerOutput)
    assert out.codes.shape == (3, *spatial) and out.codes.dtype == torch.int64
    assert out.z_q.shape == z_e.shape
    assert_nearest(out.codes, flat_of(z_e), q.codebook)
    # z_q holds exactly the chosen code vectors, and lookup gives them back
    assert torch.equal(out.z_q, q.lookup(out.codes))
    assert torch.equal(flat_of(out.z_q), q.codebook[out.codes.reshape(-1)])


def test_nearest_code_against_cdist_many_codes():
    z, e = torch.randn(1000, 32), torch.randn(700, 32)
    assert_nearest(nearest_code(z, e), z, e)


def test_nearest_code_chunked_equals_one_shot():
    z, e = torch.randn(1003, 16), torch.randn(97, 16)
    one_shot = nearest_code(z, e)
    for rows in (1, 7, 100, 1002):  # uneven chunks, and a last chunk of one row
        chunked = nearest_code(z, e, chunk_bytes=rows * 97 * 4)
        assert torch.equal(chunked, one_shot)
    assert_nearest(one_shot, z, e)


def test_nearest_code_in_blocks_of_codes_equals_one_shot_and_keeps_the_first_of_ties():
    z, e = torch.randn(301, 8), torch.randn(90, 8)
    e[70] = e[5]  # the same vector in the first block and a later one: argmin keeps 5
    e[41] = e[40]  # and twice within one block
    z[:3] = torch.stack([e[5], e[40], e[89]])
    one_shot = nearest_code(z, e)
    assert one_shot[:3].tolist() == [5, 40, 89]
    for rows, block in ((7, 16), (50, 30), (1, 89), (301, 1)):
        blocked = nearest_code(z, e, chunk_bytes=rows * block * 4, code_block=block)
        assert torch.equal(blocked, one_shot)


def test_nearest_code_chunk_stays_within_budget(monkeypatch):
    """Every distance block the search allocates is at most chunk_bytes (issue 2, item 6)."""
    blocks = []
    real_addmm = torch.addmm

    def spy(bias, a, b, **kwargs):
        blocks.append(a.shape[0] * b.shape[1] * 4)
        return real_addmm(bias, a, b, **kwargs)

    monkeypatch.setattr(_nearest.torch, "addmm", spy)
    k, budget = 300, 300 * 4 * 10  # ten rows per chunk
    nearest_code(torch.randn(95, 4), torch.randn(k, 4), chunk_bytes=budget)
    assert len(blocks) == 10 and max(blocks) <= budget
    # the default budget at the 65,536 x 65,536 shape: blocks of codes
    blocks.clear()
    nearest_code(torch.randn(3000, 4), torch.randn(3 * _nearest.CODE_BLOCK, 4))
    assert len(blocks) == 3 * -(-3000 // (_nearest.CHUNK_BYTES // (4 * _nearest.CODE_BLOCK)))
    assert max(blocks) <= _nearest.CHUNK_BYTES <= 256 * 2**20


def test_nearest_code_is_float32_under_autocast():
    """Half-precision distances pick wrong codes on close codebooks; the search must not."""
    # codes and data close together far from the origin: bf16 (8 bits of mantissa) cannot
    # resolve their distances, float32 can
    centre = torch.full((D,), 3.0)
    e = centre + 0.05 * torch.randn(K, D)
    z = centre + 0.05 * torch.randn(2000, D)
    expected = nearest_code(z, e)
    bf16 = torch.addmm((e.bfloat16() ** 2).sum(1), z.bfloat16(), e.bfloat16().t(), alpha=-2)
    assert not torch.equal(bf16.argmin(1), expected)  # the test can tell the difference
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = nearest_code(z, e)
        q = make(VectorQuantizer).eval()
        q.embedding.data.copy_(e)
        out = q(z.t().reshape(1, D, 2000))
    assert torch.equal(got, expected)
    assert torch.equal(out.codes.reshape(-1), expected)
    assert_nearest(expected, z, e)


def test_nearest_code_has_no_graph_and_rejects_bad_shapes():
    z = torch.randn(10, D, requires_grad=True)
    e = torch.randn(K, D, requires_grad=True)
    codes = nearest_code(z, e)
    assert codes.dtype == torch.int64 and not codes.requires_grad
    assert nearest_code(torch.randn(0, D), e).shape == (0,)
    with pytest.raises(ValueError, match="same D"):
        nearest_code(torch.randn(10, D + 1), e)
    with pytest.raises(ValueError, match=r"got \(10,\)"):
        nearest_code(torch.randn(10), e)


# -- straight-through and gradient routing ------------------------------------------------
@pytest.mark.parametrize("cls", ALL)
def test_straight_through_gradient_is_identity(cls):
    q = make(cls).train()
    z_e = torch.randn(2, D, 3, 5, requires_grad=True)
    out = q(z_e)
    g = torch.randn_like(z_e)
    (grad,) = torch.autograd.grad(out.z_q, z_e, grad_outputs=g)
    assert torch.equal(grad, g)


def test_vq_loss_terms_route_gradients():
    """Eq. 3: ||sg[z_e] - e||^2 trains only the codebook, ||z_e - sg[e]||^2 only the encoder."""
    q = make(VectorQuantizer).train()
    q.embedding.data.normal_()
    z_e = torch.randn(2, D, 4, 4, requires_grad=True)
    out = q(z_e)
    e = q.codebook[out.codes.reshape(-1)].detach()  # (N, D) chosen codes
    flat = flat_of(z_e).detach()
    n = flat.shape[0]

    g_z, g_e = torch.autograd.grad(
        out.codebook_loss, [z_e, q.embedding], retain_graph=True, allow_unused=True
    )
    assert g_z is None or torch.count_nonzero(g_z) == 0
    # d/de_k mean((e - z)^2) = 2 / (N D) * sum over vectors assigned to k of (e_k - z)
    expected = torch.zeros(K, D).index_add_(0, out.codes.reshape(-1), 2 * (e - flat) / (n * D))
    torch.testing.assert_close(g_e, expected)

    g_z, g_e = torch.autograd.grad(
        out.commitment_loss, [z_e, q.embedding], retain_graph=True, allow_unused=True
    )
    assert g_e is None or torch.count_nonzero(g_e) == 0
    torch.testing.assert_close(flat_of(g_z), 2 * (flat - e) / (n * D))

    # the decoder's gradient through z_q reaches z_e only, never the codebook
    g_e = torch.autograd.grad(out.z_q.sum(), q.embedding, allow_unused=True)[0]
    assert g_e is None or torch.count_nonzero(g_e) == 0

    torch.testing.assert_close(out.codebook_loss, F.mse_loss(e, flat))
    torch.testing.assert_close(out.commitment_loss, F.mse_loss(flat, e))
    torch.testing.assert_close(out.loss, out.codebook_loss + 0.25 * out.commitment_loss)


def test_ema_codebook_is_not_a_parameter():
    q = make(EMAVectorQuantizer).train()
    assert list(q.parameters()) == []
    out = q(torch.randn(2, D, 4, 4))
    assert torch.equal(out.codebook_loss, torch.zeros(()))
    torch.testing.assert_close(out.loss, 0.25 * out.commitment_loss)


@pytest.mark.parametrize("cls", ALL)
def test_loss_and_perplexity_in_eval_mode(cls):
    q = make(cls).eval()
    z_e = torch.randn(2, D, 4, 4)
    out = q(z_e)
    assert out.loss.item() > 0 and out.commitment_loss.item() > 0
    if cls is not ResidualVQ:
        counts = torch.bincount(out.codes.reshape(-1), minlength=K).double()
        p = counts / counts.sum()
        expected = torch.exp(-(p[p > 0] * p[p > 0].log()).sum())
        torch.testing.assert_close(out.perplexity, expected.float())  # at float32's tolerance


# -- EMA (appendix A.1) -------------------------------------------------------------------
def test_ema_buffers_do_not_move_in_eval():
    q = make(EMAVectorQuantizer, restart_dead_codes=True, init="kmeans").eval()
    before = {k: v.clone() for k, v in q.state_dict().items()}
    q(torch.randn(2, D, 4, 4))
    for k, v in q.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_ema_update_matches_formula():
    decay, eps = 0.9, 1e-3
    q = make(EMAVectorQuantizer, decay=decay, eps=eps).train()
    q.cluster_size.uniform_(0.5, 3.0)
    q.embed_sum.copy_(torch.randn(K, D))
    q.embedding.copy_(q.embed_sum / q.cluster_size[:, None])
    n_old, m_old, e_old = q.cluster_size.clone(), q.embed_sum.clone(), q.embedding.clone()

    z_e = torch.randn(4, D, 5, 5)
    out = q(z_e)
    flat = flat_of(z_e)
    codes, _ = brute_force(flat, e_old)  # codes come from the codebook before the step
    assert_nearest(out.codes, flat, e_old)
    onehot = F.one_hot(codes, K).double()  # (N, K)
    counts = onehot.sum(0)  # n_i
    sums = onehot.t() @ flat.double()  # sum_j z_{i,j}
    n_new = decay * n_old.double() + (1 - decay) * counts
    m_new = decay * m_old.double() + (1 - decay) * sums
    total = n_new.sum()
    smoothed = (n_new + eps) / (total + K * eps) * total  # Laplace smoothing
    # float32 buffers against the formula in float64, at float32's tolerance: the last bits of
    # a float32 sum depend on the CPU's kernels, so float64's tolerance holds on some CPUs only
    torch.testing.assert_close(q.cluster_size, n_new.float())
    torch.testing.assert_close(q.embed_sum, m_new.float())
    torch.testing.assert_close(q.embedding, (m_new / smoothed[:, None]).float())
    # the loss and z_q use the codebook before the update (as Sonnet does)
    torch.testing.assert_close(out.commitment_loss, F.mse_loss(flat, e_old[codes]))
    assert torch.equal(flat_of(out.z_q), e_old[out.codes.reshape(-1)])


# -- dead-code restarts -------------------------------------------------------------------
FAR = 100.0


def far_code_setup(cls, restart: bool, **kwargs):
    q = make(cls, restart_dead_codes=restart, **kwargs).train()
    with torch.no_grad():
        q.codebook[:] = torch.randn(K, D) * 0.5
        q.codebook[3] = FAR  # no data point will ever be nearest to this code
        if cls is EMAVectorQuantizer:
            q.embed_sum.copy_(q.embedding)  # consistent statistics, N_i = 1
    return q


def distance_to_data(vector: torch.Tensor, z_e: torch.Tensor) -> torch.Tensor:
    return (flat_of(z_e) - vector).norm(dim=1).min()


def test_vq_dead_code_restarts_after_steps():
    q = far_code_setup(VectorQuantizer, restart=True, dead_code_steps=3)
    for step in range(1, 4):
        z_e = torch.randn(2, D, 4, 4)
        out = q(z_e)
        if step < 3:
            assert out.num_restarted == 0
            assert torch.all(q.codebook[3] == FAR)
    assert out.num_restarted >= 1
    assert q.steps_unused[3] == 0
    # re-seeded from the current batch: exactly one of its encoder outputs
    assert distance_to_data(q.codebook[3], z_e) == 0


def test_ema_dead_code_restarts_after_steps():
    q = far_code_setup(EMAVectorQuantizer, restart=True, dead_code_steps=2)
    assert q(torch.randn(2, D, 4, 4)).num_restarted == 0
    assert q.codebook[3].min() > FAR / 2  # unused: still far (the EMA only rescales it)
    z_e = torch.randn(2, D, 4, 4)
    out = q(z_e)  # second step unused: re-seeded
    assert out.num_restarted >= 1
    assert distance_to_data(q.codebook[3], z_e) == 0
    # statistics reset: one observation of the new vector
    assert q.cluster_size[3] == 1
    assert torch.equal(q.embed_sum[3], q.embedding[3])
    assert q.steps_unused[3] == 0


@pytest.mark.parametrize("cls", SINGLE)
def test_restarts_switched_off_leave_dead_codes(cls):
    q = far_code_setup(cls, restart=False)
    for _ in range(30):
        out = q(torch.randn(2, D, 4, 4))
        assert out.num_restarted == 0
    assert q.codebook[3].min() > FAR / 2  # still far from every data point


@pytest.mark.parametrize("cls", SINGLE)
def test_no_restarts_in_eval(cls):
    q = far_code_setup(cls, restart=True, dead_code_steps=1)
    q.eval()
    for _ in range(3):
        assert q(torch.randn(2, D, 4, 4)).num_restarted == 0
    assert torch.all(q.codebook[3] == FAR)


# -- data-dependent initialization --------------------------------------------------------
@pytest.mark.parametrize("cls", SINGLE)
def test_kmeans_init_on_first_training_batch(cls):
    q = cls(K, D, init="kmeans", restart_dead_codes=False).train()
    assert not bool(q.initialized)
    z_e = torch.randn(4, D, 8, 8) * 3 + 5  # far from the random initial codebook
    q(z_e)
    assert bool(q.initialized)
    flat = flat_of(z_e)
    lo, hi = flat.min(0).values, flat.max(0).values
    assert torch.all(q.codebook >= lo) and torch.all(q.codebook <= hi)
    used = q.eval()(z_e).codes.unique().numel()
    assert used >= 0.9 * K


def test_random_init_takes_encoder_outputs():
    q = VectorQuantizer(K, D, init="random", restart_dead_codes=False).train()
    z_e = torch.randn(2, D, 4, 4)
    q(z_e)
    flat = flat_of(z_e)
    for row in q.codebook:
        assert distance_to_data(row, z_e) == 0
    assert q.codebook.unique(dim=0).shape[0] == K  # without replacement: K distinct rows
    assert flat.shape[0] >= K


@pytest.mark.parametrize("cls", SINGLE)
def test_init_runs_only_in_training_and_once(cls):
    q = cls(K, D, init="kmeans", restart_dead_codes=False)
    before = q.codebook.clone()
    q.eval()(torch.randn(2, D, 4, 4) + 10)
    assert torch.equal(q.codebook, before) and not bool(q.initialized)
    q.train()(torch.randn(2, D, 4, 4) + 10)
    assert bool(q.initialized)
    if cls is VectorQuantizer:  # the gradient codebook does not move without an optimizer
        after = q.codebook.clone()
        q(torch.randn(2, D, 4, 4) - 10)
        assert torch.equal(q.codebook, after)


@pytest.mark.parametrize("cls", SINGLE)
def test_init_state_is_saved_so_reloading_does_not_reinit(cls):
    # init_steps=1: initialization ends with this first batch (by default the EMA codebook
    # refits for its time constant; tests/test_codebook_init.py)
    q = cls(K, D, init="kmeans", restart_dead_codes=False, init_steps=1).train()
    q(torch.randn(2, D, 4, 4) + 10)
    state = q.state_dict()
    assert state["initialized"].item() is True
    fresh = cls(K, D, init="kmeans", restart_dead_codes=False, init_steps=1)
    fresh.load_state_dict(state)
    fresh.train()
    fresh(torch.randn(2, D, 4, 4) - 10)  # a batch a fresh kmeans init would jump to
    # not re-initialized: the codebook stays near +10 (the EMA moves it by 1 - decay at most)
    assert fresh.codebook.mean() > 5


def test_kmeans_finds_separated_clusters():
    centres = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0]])
    x = torch.cat([torch.randn(50, 2) * 0.1 + c for c in centres])
    centroids = kmeans(x, 3)
    assert torch.cdist(centres, centroids).min(1).values.max() < 0.1


# -- residual VQ --------------------------------------------------------------------------
def test_residual_levels_quantize_residuals():
    q = ResidualVQ(3, K, D, init="kmeans", restart_dead_codes=False)
    inputs: list[torch.Tensor] = []
    for level in q.levels:
        level.register_forward_pre_hook(lambda m, args: inputs.append(args[0].detach()))
    q.train()(torch.randn(2, D, 4, 4))  # data init of every level on its residual
    inputs.clear()
    z_e = torch.randn(2, D, 4, 4)
    out = q.eval()(z_e)
    assert out.codes.shape == (2, 3, 4, 4) and len(out.levels) == 3
    vectors = [level.lookup(out.codes[:, i]) for i, level in enumerate(q.levels)]
    for i, got in enumerate(inputs):
        expected = z_e - sum(vectors[:i]) if i else z_e
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
        assert_nearest(out.codes[:, i], flat_of(got), q.levels[i].codebook)
    # z_q is the sum of the levels' vectors, and lookup gives the same
    torch.testing.assert_close(out.z_q, sum(vectors), rtol=0, atol=1e-6)
    assert torch.equal(q.lookup(out.codes), out.z_q)


@pytest.mark.parametrize("level", [EMAVectorQuantizer, VectorQuantizer])
def test_residual_partial_lookup_and_error_decreases(level):
    q = ResidualVQ(4, K, D, quantizer=level, init="kmeans", restart_dead_codes=False)
    z_e = torch.randn(4, D, 6, 6)
    q.train()(z_e)
    q.eval()
    out = q(z_e)
    errors = []
    for n in range(1, 5):
        partial = q.lookup(out.codes[:, :n])
        expected = sum(q.levels[i].lookup(out.codes[:, i]) for i in range(n))
        assert torch.equal(partial, expected)
        assert torch.equal(q(z_e, num_levels=n).z_q, partial)  # same as quantizing with n levels
        errors.append(F.mse_loss(partial, z_e).item())
    assert all(b <= a for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 0.9 * errors[0]


def test_residual_loss_is_sum_of_levels():
    q = make(ResidualVQ)
    out = q.train()(torch.randn(2, D, 3, 3))
    torch.testing.assert_close(out.loss, sum(o.loss for o in out.levels))
    torch.testing.assert_close(out.commitment_loss, sum(o.commitment_loss for o in out.levels))


def test_quantizer_dropout_uses_fewer_levels_in_training_only():
    q = ResidualVQ(4, K, D, init="none", restart_dead_codes=False, quantizer_dropout=1.0).train()
    used = set()
    for _ in range(20):
        out = q(torch.randn(2, D, 3, 3))
        n = len(out.levels)
        used.add(n)
        assert out.codes.shape == (2, 4, 3, 3)
        assert torch.all(out.codes[:, n:] == DROPPED) and torch.all(out.codes[:, :n] >= 0)
    assert len(used) > 1
    q.eval()
    assert len(q(torch.randn(2, D, 3, 3)).levels) == 4


# -- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ALL)
def test_bad_shapes_raise_value_error(cls):
    q = make(cls)
    with pytest.raises(ValueError, match=rf"{D} channels.*got shape \(2, {D + 1}, 4\)"):
        q(torch.randn(2, D + 1, 4))
    with pytest.raises(ValueError, match=r"expected z_e of shape \(B, D, \*spatial\).*got shape"):
        q(torch.randn(2, D))


@pytest.mark.parametrize("cls", SINGLE)
def test_lookup_rejects_codes_out_of_range(cls):
    q = make(cls)
    assert q.lookup(torch.tensor([[0, K - 1]])).shape == (1, D, 2)
    with pytest.raises(
        ValueError, match=rf"expected codes in \[0, {K}\).*got values in \[0, {K}\]"
    ):
        q.lookup(torch.tensor([[0, K]]))
    with pytest.raises(ValueError, match="-1"):
        q.lookup(torch.tensor([[-1, 0]]))
    with pytest.raises(ValueError, match="integer codes"):
        q.lookup(torch.tensor([[0.0, 1.0]]))


def test_residual_lookup_rejects_too_many_levels():
    q = make(ResidualVQ)
    with pytest.raises(ValueError, match=r"1 <= q <= 3.*got \(2, 4, 5\)"):
        q.lookup(torch.zeros(2, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="num_levels"):
        q(torch.randn(2, D, 3), num_levels=4)


def test_constructor_checks():
    with pytest.raises(ValueError, match="init"):
        VectorQuantizer(K, D, init="uniform")
    with pytest.raises(ValueError, match="decay"):
        EMAVectorQuantizer(K, D, decay=1.0)
    with pytest.raises(ValueError, match="num_codes"):
        VectorQuantizer(0, D)

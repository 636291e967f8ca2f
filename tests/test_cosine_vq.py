"""Cosine-similarity VQ with factorised codes (ViT-VQGAN, arXiv:2110.04627, section 3.2): the
nearest code is the brute-force maximum of cosine similarity in the lookup space, eq. 3's
losses on the normalised vectors route their gradients as in the VQ-VAE paper, init and
restarts act on the unit sphere, and ``lookup`` gives back forward's z_q bit for bit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vqvae.quantizers import CosineVectorQuantizer, QuantizerOutput, rotation_trick

K, D, LOOKUP = 16, 12, 4


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def flat_of(z: torch.Tensor) -> torch.Tensor:
    """(B, D, *S) -> (B * prod(S), D)."""
    return z.movedim(1, -1).reshape(-1, z.shape[1])


def make(**kwargs) -> CosineVectorQuantizer:
    kwargs = {"lookup_dim": LOOKUP, "init": "none", "restart_dead_codes": False} | kwargs
    return CosineVectorQuantizer(K, kwargs.pop("code_dim", D), **kwargs)


@pytest.mark.parametrize("spatial", [(11,), (5, 7), (3, 4, 5)], ids=["1d", "2d", "3d"])
def test_codes_maximise_cosine_similarity_and_lookup_equals_forward(spatial):
    q = make().eval()
    z_e = torch.randn(3, D, *spatial)
    out = q(z_e)
    assert isinstance(out, QuantizerOutput)
    assert out.codes.shape == (3, *spatial) and out.z_q.shape == z_e.shape
    with torch.no_grad():
        x = q.project_in(flat_of(z_e)).double()  # (N, lookup_dim)
        cos = F.cosine_similarity(x[:, None], q.embedding.double()[None], dim=2)  # (N, K)
    top2 = cos.topk(2, dim=1).values
    clear = top2[:, 0] - top2[:, 1] > 1e-5  # ties to float32 rounding are not decided here
    assert clear.float().mean() > 0.95
    assert torch.equal(out.codes.reshape(-1)[clear], cos.argmax(1)[clear])
    assert torch.equal(q.lookup(out.codes), out.z_q)
    assert q.codebook.shape == (K, D)
    torch.testing.assert_close(q.codebook[out.codes.reshape(-1)], flat_of(out.z_q))


def test_codes_ignore_length():
    """Cosine similarity sees directions only: rescaling z_e (identity projections) keeps codes."""
    q = make(code_dim=LOOKUP).eval()
    z_e = torch.randn(2, LOOKUP, 20)
    scales = torch.rand(2, 1, 20) * 100 + 0.01  # a positive length per vector
    assert torch.equal(q(z_e).codes, q(z_e * scales).codes)
    assert torch.equal(q(z_e).z_q, q(z_e * scales).z_q)
    # z_q is a unit vector: the normalised code
    torch.testing.assert_close(q(z_e).z_q.norm(dim=1), torch.ones(2, 20))


def test_losses_are_eq3_on_normalised_vectors_and_route_gradients():
    q = make().train()
    z_e = torch.randn(2, D, 4, 4, requires_grad=True)
    out = q(z_e)
    u = F.normalize(q.project_in(flat_of(z_e)), dim=1).detach()  # (N, lookup_dim)
    e = F.normalize(q.embedding, dim=1)[out.codes.reshape(-1)].detach()
    torch.testing.assert_close(out.codebook_loss, F.mse_loss(e, u))
    torch.testing.assert_close(out.commitment_loss, F.mse_loss(u, e))
    torch.testing.assert_close(out.loss, out.codebook_loss + 0.25 * out.commitment_loss)
    # ||sg[u] - e||^2 trains only the codebook; ||u - sg[e]||^2 only the encoder side
    g_z, g_w = torch.autograd.grad(
        out.codebook_loss, [z_e, q.project_in.weight], retain_graph=True, allow_unused=True
    )
    assert (g_z is None or not g_z.any()) and (g_w is None or not g_w.any())
    (g_e,) = torch.autograd.grad(
        out.commitment_loss, [q.embedding], retain_graph=True, allow_unused=True
    )
    assert g_e is None or not g_e.any()
    # the decoder's gradient through z_q never reaches the codebook
    (g_e,) = torch.autograd.grad(out.z_q.sum(), [q.embedding], allow_unused=True)
    assert g_e is None or not g_e.any()


def test_straight_through_passes_through_the_normalisation():
    """Identity projections: z_q = sg[e] + (u - sg[u]) with u = z_e / ||z_e||, so the gradient
    is the Jacobian of the normalisation, (I - u u^T) / ||z_e||."""
    q = make(code_dim=LOOKUP).train()
    z_e = torch.randn(1, LOOKUP, 6, requires_grad=True)
    g = torch.randn_like(z_e)
    (grad,) = torch.autograd.grad(q(z_e).z_q, z_e, grad_outputs=g)
    x, g_flat = flat_of(z_e).detach(), flat_of(g)
    u = x / x.norm(dim=1, keepdim=True)
    expected = (g_flat - u * (u * g_flat).sum(1, keepdim=True)) / x.norm(dim=1, keepdim=True)
    torch.testing.assert_close(flat_of(grad), expected)


def test_rotation_gradient_is_the_rotation_pulled_back_through_the_normalisation():
    ste = make(code_dim=LOOKUP)
    rot = make(code_dim=LOOKUP, gradient="rotation")
    rot.load_state_dict(ste.state_dict())
    z_e = torch.randn(1, LOOKUP, 5, requires_grad=True)
    a, b = ste.eval()(z_e), rot.eval()(z_e)
    assert torch.equal(a.z_q, b.z_q) and torch.equal(rot.lookup(b.codes), b.z_q)
    g = torch.randn_like(z_e)
    (grad,) = torch.autograd.grad(b.z_q, z_e, grad_outputs=g)
    # expected: the rotation trick's VJP at u (tested against the paper in
    # test_rotation_trick.py), then the normalisation's Jacobian (I - u u^T) / ||z_e||
    x = flat_of(z_e).detach()
    u = (x / x.norm(dim=1, keepdim=True)).requires_grad_()
    e = rot.normalized_codebook()[b.codes.reshape(-1)].detach()
    (g_u,) = torch.autograd.grad(rotation_trick(u, e), u, grad_outputs=flat_of(g))
    u = u.detach()
    expected = (g_u - u * (u * g_u).sum(1, keepdim=True)) / x.norm(dim=1, keepdim=True)
    torch.testing.assert_close(flat_of(grad), expected)
    assert not torch.allclose(grad, torch.autograd.grad(a.z_q, z_e, grad_outputs=g)[0])


def test_random_init_takes_normalised_encoder_outputs():
    q = make(init="random").train()
    z_e = torch.randn(2, D, 4, 4)
    q(z_e)
    with torch.no_grad():
        u = F.normalize(q.project_in(flat_of(z_e)), dim=1)  # (N, lookup_dim)
    dist = (q.normalized_codebook().detach()[:, None] - u[None]).norm(dim=2)  # (K, N)
    assert dist.min(1).values.max() < 1e-6  # every code is one of the batch's directions
    assert bool(q.initialized)


def test_kmeans_init_uses_most_codes():
    q = make(init="kmeans").train()
    z_e = torch.randn(4, D, 8, 8)
    q(z_e)
    assert q.eval()(z_e).codes.unique().numel() >= 0.75 * K


def test_dead_code_restarts_on_the_sphere():
    q = make(code_dim=LOOKUP, restart_dead_codes=True, dead_code_steps=2).train()
    with torch.no_grad():
        q.embedding.copy_(torch.randn(K, LOOKUP).abs())
        q.embedding[3] = -1.0  # points away from every input below: never the nearest
    z_e = torch.randn(2, LOOKUP, 4, 4).abs()  # all in the positive orthant
    assert q(z_e).num_restarted == 0
    assert torch.all(q.embedding[3] == -1.0)
    z_e = torch.randn(2, LOOKUP, 4, 4).abs()
    out = q(z_e)
    assert out.num_restarted >= 1 and q.steps_unused[3] == 0
    u = F.normalize(flat_of(z_e), dim=1)
    dist = (u - q.normalized_codebook()[3]).norm(dim=1).min()
    assert dist < 1e-6  # re-seeded from one of this batch's directions


def test_bad_input_raises_value_error():
    q = make()
    with pytest.raises(ValueError, match=rf"{D} channels.*got shape \(2, {D + 1}, 4\)"):
        q(torch.randn(2, D + 1, 4))
    with pytest.raises(ValueError, match=r"expected z_e of shape \(B, D, \*spatial\).*got shape"):
        q(torch.randn(2, D))
    with pytest.raises(
        ValueError, match=rf"expected codes in \[0, {K}\).*got values in \[0, {K}\]"
    ):
        q.lookup(torch.tensor([[0, K]]))
    with pytest.raises(ValueError, match="init"):
        make(init="uniform")
    with pytest.raises(ValueError, match="projection sizes"):
        make(lookup_dim=0)

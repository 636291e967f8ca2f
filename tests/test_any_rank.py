"""Codes of any rank: 1-D and 3-D VQ-VAEs are registered network kinds, not new model
classes; the Transformer prior models grids of any rank; both priors take a global vector
and a code context, with fast samplers equal to the slow ones."""

from __future__ import annotations

import pytest
import torch

from vqvae import (
    VQVAE,
    Condition,
    NetConfig,
    PixelCNNPrior,
    QuantizerConfig,
    TransformerPrior,
    VQVAEConfig,
)

SMALL_NET = {"hidden_channels": 8, "residual_channels": 4, "num_downsamples": 2}


@pytest.mark.parametrize(
    ("kind", "size", "latent"),
    [("conv1d", (32,), (8,)), ("conv2d", (8, 12), (2, 3)), ("conv3d", (4, 8, 8), (1, 2, 2))],
)
def test_a_vqvae_of_each_rank_encodes_decodes_and_trains(kind, size, latent) -> None:
    config = VQVAEConfig(
        in_channels=2,
        input_size=size,
        net=NetConfig(kind=kind, **SMALL_NET),
        quantizer=QuantizerConfig(num_codes=8, code_dim=4, init="none"),
    )
    torch.manual_seed(0)
    model = VQVAE(config)
    assert model.latent_shape == latent
    x = torch.rand(3, 2, *size) * 2 - 1
    out = model(x)
    assert out.x_hat.shape == x.shape and out.codes.shape == (3, *latent)
    out.loss.backward()  # every part gets a gradient
    assert all(p.grad is not None for p in model.encoder.parameters())
    model.eval()
    codes = model.encode(x)
    torch.testing.assert_close(model.decode_codes(codes), model(x).x_hat, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"expected inputs of shape \(B, 2, "):
        model(torch.zeros(3, 2, *[s * 2 for s in size], 1))
    with pytest.raises(ValueError, match="expected codes of shape"):
        model.decode_codes(codes[..., :1] if len(latent) > 1 else codes[:, :1])


def test_input_sizes_must_match_the_network_rank() -> None:
    with pytest.raises(ValueError, match="a conv1d net takes 1"):
        VQVAEConfig(input_size=(8, 8), net=NetConfig(kind="conv1d"))
    with pytest.raises(ValueError, match="unknown network kind 'conv4d'"):
        NetConfig(kind="conv4d")


def _priors(**fields):
    torch.manual_seed(0)
    return [
        PixelCNNPrior(num_codes=5, channels=8, num_layers=3, head_channels=8, **fields),
        TransformerPrior(num_codes=5, d_model=16, num_layers=2, num_heads=2, **fields),
    ]


def _causal_in_codes(prior, codes, cond) -> None:
    """Changing the code at position t changes no logits at positions <= t."""
    flat = codes.reshape(len(codes), -1)
    base = prior(codes, cond).flatten(2)
    for t in range(flat.shape[1]):
        changed = flat.clone()
        changed[:, t] = (changed[:, t] + 1) % prior.config.num_codes
        logits = prior(changed.view_as(codes), cond).flatten(2)
        torch.testing.assert_close(logits[:, :, : t + 1], base[:, :, : t + 1])


@pytest.mark.parametrize("shape", [(7,), (2, 2, 3)])
def test_the_transformer_models_grids_of_any_rank(shape) -> None:
    prior = TransformerPrior(num_codes=5, shape=shape, d_model=16, num_layers=2, num_heads=2)
    codes = torch.randint(0, 5, (2, *shape))
    assert prior(codes).shape == (2, 5, *shape) and prior.log_prob(codes).shape == (2,)
    _causal_in_codes(prior.eval(), codes, None)
    fast = prior.sample(3, generator=torch.Generator().manual_seed(1))
    slow = prior.sample(3, generator=torch.Generator().manual_seed(1), use_cache=False)
    assert fast.shape == (3, *shape) and torch.equal(fast, slow)


def test_the_pixelcnn_is_for_2d_grids() -> None:
    with pytest.raises(ValueError, match="models 2-D grids"):
        PixelCNNPrior(num_codes=5, shape=(7,))
    # a context of the grid's shape, or of k frames of it (k, h, w), and nothing else
    for other in [(3, 4), (2, 3, 4), (1, 2, 3, 3)]:
        with pytest.raises(ValueError, match="context of the grid's own shape"):
            PixelCNNPrior(num_codes=5, shape=(3, 3), context_shape=other)
    assert (
        PixelCNNPrior(num_codes=5, shape=(3, 3), context_shape=(2, 3, 3)).config.context_frames == 2
    )


def _condition(n: int, context_shape=(3, 4)) -> Condition:
    g = torch.Generator().manual_seed(2)
    return Condition(
        labels=torch.randint(0, 2, (n,), generator=g),
        vector=torch.randn(n, 3, generator=g),
        context=torch.randint(0, 4, (n, *context_shape), generator=g),
    )


FIELDS = {"shape": (3, 4), "num_classes": 2, "cond_dim": 3, "context_shape": (3, 4)}


@pytest.mark.parametrize("index", [0, 1], ids=["pixelcnn", "transformer"])
def test_every_kind_of_condition_is_read_and_samplers_agree(index) -> None:
    prior = _priors(**FIELDS, context_codes=4)[index].eval()
    cond = _condition(2)
    codes = torch.randint(0, 5, (2, 3, 4))
    base = prior(codes, cond)
    for changed in (
        Condition(1 - cond.labels, cond.vector, cond.context),
        Condition(cond.labels, cond.vector + 1.0, cond.context),
        Condition(cond.labels, cond.vector, (cond.context + 1) % 4),
    ):
        # the very first code's logits see the condition, and nothing else
        assert not torch.allclose(prior(codes, changed)[:, :, 0, 0], base[:, :, 0, 0])
    _causal_in_codes(prior, codes, cond)
    seed = torch.Generator().manual_seed(3)
    fast = prior.sample(2, cond, generator=seed)
    seed = torch.Generator().manual_seed(3)
    slow = (
        prior.sample(2, cond, generator=seed, method="naive")
        if isinstance(prior, PixelCNNPrior)
        else prior.sample(2, cond, generator=seed, use_cache=False)
    )
    assert torch.equal(fast, slow)


def test_a_context_of_another_shape_for_the_transformer() -> None:
    """The previous frames' codes, say: a (2, 3, 4) context for a (3, 4) grid."""
    prior = TransformerPrior(
        num_codes=5, shape=(3, 4), context_shape=(2, 3, 4), d_model=16, num_layers=2, num_heads=2
    ).eval()
    context = torch.randint(0, 5, (2, 2, 3, 4))
    codes = torch.randint(0, 5, (2, 3, 4))
    changed = context.clone()
    changed[:, 0, 0, 0] = (changed[:, 0, 0, 0] + 1) % 5
    assert not torch.allclose(
        prior(codes, Condition(context=changed)), prior(codes, Condition(context=context))
    )
    a = prior.sample(2, Condition(context=context), generator=torch.Generator().manual_seed(0))
    b = prior.sample(
        2, Condition(context=context), generator=torch.Generator().manual_seed(0), use_cache=False
    )
    assert torch.equal(a, b)


def test_conditions_are_checked_in_one_line() -> None:
    prior = _priors(**FIELDS, context_codes=4)[1]
    codes = torch.randint(0, 5, (2, 3, 4))
    cond = _condition(2)
    for bad, message in [
        (Condition(cond.labels, None, cond.context), r"vector: expected a \(2, 3\) float"),
        (Condition(cond.labels, cond.vector[:, :2], cond.context), r"shape \(2, 3\)"),
        (Condition(cond.labels, cond.vector * float("nan"), cond.context), "NaN"),
        (Condition(cond.labels, cond.vector, cond.context[:, :2]), r"context: expected shape"),
        (Condition(cond.labels, cond.vector, cond.context + 4), r"context: expected values"),
        (Condition(cond.labels, cond.vector, None), "context: expected codes"),
        ("labels", "expected a Condition"),
    ]:
        with pytest.raises(ValueError, match=message):
            prior.log_prob(codes, bad)
    plain = _priors(shape=(3, 4))[0]
    with pytest.raises(ValueError, match="vector: expected none"):
        plain.log_prob(codes, Condition(vector=cond.vector))

"""Autoregressive priors over code grids: causality, normalisation, samplers, checks."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from vqvae.priors import (
    PixelCNNConfig,
    PixelCNNPrior,
    Prior,
    TransformerConfig,
    TransformerPrior,
    draw_codes,
)

TINY = {
    # 4 layers of 3x3 reach every earlier position of the small grids used here
    PixelCNNPrior: dict(channels=8, num_layers=4, head_channels=16),
    TransformerPrior: dict(d_model=16, num_layers=2, num_heads=2),
}
PRIORS = list(TINY)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # the tensors here are tiny: a second thread only adds synchronisation, which costs
    # tens of milliseconds per op when the machine's cores are busy with other work
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make(cls, num_codes=5, shape=(3, 4), num_classes=0, seed=0, sharpen=True, **kw) -> Prior:
    """A tiny prior. ``sharpen`` scales the weights up so that the conditionals are far from
    uniform and depend strongly on the context (untrained nets are almost uniform, which
    would let a wrong sampler agree with a right one by accident)."""
    torch.manual_seed(seed)
    prior = cls(num_codes=num_codes, shape=shape, num_classes=num_classes, **TINY[cls], **kw)
    if sharpen:
        with torch.no_grad():
            for name, p in prior.named_parameters():
                if "ln" not in name:  # keep LayerNorm gains at 1
                    p.mul_(4.0 if cls is TransformerPrior else 2.0)
    return prior.eval()


def labels_for(prior: Prior, n: int) -> torch.Tensor | None:
    c = prior.config.num_classes
    return torch.arange(n) % c if c else None


def alternative_sampler(prior: Prior) -> dict:
    """The keyword selecting the slow reference sampler of each prior."""
    return {"method": "naive"} if isinstance(prior, PixelCNNPrior) else {"use_cache": False}


def fast_sampler(prior: Prior):
    return prior._sample_fast if isinstance(prior, PixelCNNPrior) else prior._sample_cached


# -- causality --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", PRIORS)
@pytest.mark.parametrize("num_classes", [0, 3])
def test_changing_code_i_never_changes_logits_at_or_before_i(cls, num_classes):
    prior = make(cls, num_classes=num_classes)
    h, w = prior.config.shape
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 5, (2, h, w), generator=g)
    labels = labels_for(prior, 2)
    base = prior(codes, labels).flatten(2)  # (B, K, h*w)
    for i in range(h * w):
        changed = codes.clone().flatten(1)  # (B, h, w) -> (B, h*w)
        changed[:, i] = (changed[:, i] + 1 + torch.arange(2)) % 5
        out = prior(changed.view(2, h, w), labels).flatten(2)
        torch.testing.assert_close(out[:, :, : i + 1], base[:, :, : i + 1], rtol=0, atol=1e-6)
        if i + 1 < h * w:  # and it does reach the next position (the test is not vacuous)
            assert (out[:, :, i + 1] - base[:, :, i + 1]).abs().max() > 1e-4


@pytest.mark.parametrize("cls", PRIORS)
def test_every_earlier_position_is_seen_no_blind_spot(cls):
    # gradients of the logits at the last position wrt the input embeddings: nonzero at
    # every earlier position (the original PixelCNN's blind spot would leave some at 0),
    # zero at the position itself
    prior = make(cls)
    h, w = prior.config.shape
    codes = torch.randint(0, 5, (1, h, w), generator=torch.Generator().manual_seed(2))
    embedding = prior.embed if isinstance(prior, PixelCNNPrior) else prior.tok
    captured = {}

    def keep(module, inputs, output):
        output.retain_grad()
        captured["emb"] = output

    handle = embedding.register_forward_hook(keep)
    try:
        logits = prior(codes)
    finally:
        handle.remove()
    logits[0, :, h - 1, w - 1].logsumexp(0).backward()
    grad = captured["emb"].grad.abs().sum(-1)  # (1, h, w, C) or (1, h*w - 1, d) -> per position
    grad = grad.flatten()
    if isinstance(prior, PixelCNNPrior):
        assert (grad[:-1] > 0).all(), grad
        assert grad[-1] == 0
    else:  # the Transformer's inputs are codes 0 .. h*w-2: all of them earlier than the last
        assert (grad > 0).all(), grad


# -- likelihood ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", PRIORS)
def test_log_prob_is_sum_of_log_softmax_at_true_codes(cls):
    prior = make(cls, num_classes=2)
    codes = torch.randint(0, 5, (3, 3, 4), generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 1, 1])
    logits = prior(codes, labels)
    expected = torch.zeros(3)
    for b in range(3):
        for i in range(3):
            for j in range(4):
                expected[b] += F.log_softmax(logits[b, :, i, j], dim=0)[codes[b, i, j]]
    torch.testing.assert_close(prior.log_prob(codes, labels), expected)


@pytest.mark.parametrize("cls", PRIORS)
@pytest.mark.parametrize("num_classes", [0, 2])
def test_probabilities_of_all_grids_sum_to_one(cls, num_classes):
    k, (h, w) = 3, (2, 2)
    prior = make(cls, num_codes=k, shape=(h, w), num_classes=num_classes).double()
    grids = torch.tensor(list(itertools.product(range(k), repeat=h * w))).view(-1, h, w)
    for label in range(max(num_classes, 1)):
        labels = label if num_classes else None
        logp = prior.log_prob(grids, labels)
        assert logp.shape == (k ** (h * w),)
        torch.testing.assert_close(logp.exp().sum(), torch.tensor(1.0, dtype=torch.float64))
        assert logp.exp().max() > 2.0 / k ** (h * w)  # far from uniform: a real distribution


# -- samplers -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", PRIORS)
@pytest.mark.parametrize("num_classes", [0, 3])
@pytest.mark.parametrize("options", [{}, {"temperature": 0.7, "top_k": 3}])
def test_fast_and_reference_samplers_draw_the_same_codes(cls, num_classes, options):
    prior = make(cls, num_classes=num_classes)
    labels = labels_for(prior, 6)
    fast = prior.sample(6, labels, generator=torch.Generator().manual_seed(4), **options)
    slow = prior.sample(
        6,
        labels,
        generator=torch.Generator().manual_seed(4),
        **options,
        **alternative_sampler(prior),
    )
    assert fast.dtype == torch.long and fast.shape == (6, 3, 4)
    assert torch.equal(fast, slow)
    assert len(torch.unique(fast.flatten(1), dim=0)) > 1  # not one grid repeated


@pytest.mark.parametrize("cls", PRIORS)
def test_fast_sampler_sees_the_logits_of_the_full_forward_pass(cls):
    # stronger than equal samples: at every step the incremental sampler's logits equal
    # the full pass's logits on the finished grid (valid because the model is causal)
    prior = make(cls, num_classes=3)
    labels = labels_for(prior, 4)
    seen = []
    g = torch.Generator().manual_seed(5)

    def record(logits):
        seen.append(logits.clone())
        return draw_codes(logits, generator=g)

    with torch.no_grad():
        codes = fast_sampler(prior)(4, prior.check_condition(labels, 4), record)
        full = prior(codes, labels).flatten(2)  # (n, K, h*w)
    torch.testing.assert_close(torch.stack(seen, dim=-1), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", PRIORS)
def test_top_k_one_follows_the_argmax_path(cls):
    prior = make(cls, num_classes=3)
    labels = labels_for(prior, 3)
    a = prior.sample(3, labels, top_k=1, generator=torch.Generator().manual_seed(0))
    b = prior.sample(
        3, labels, top_k=1, temperature=2.5, generator=torch.Generator().manual_seed(9)
    )
    assert torch.equal(a, b)
    h, w = prior.config.shape
    greedy = torch.zeros(3, h, w, dtype=torch.long)
    with torch.no_grad():
        for i, j in itertools.product(range(h), range(w)):
            greedy[:, i, j] = prior(greedy, labels)[:, :, i, j].argmax(1)
    assert torch.equal(a, greedy)


def test_draw_codes_matches_the_distribution_and_respects_top_k():
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]])).expand(40000, 4)
    g = torch.Generator().manual_seed(0)
    freq = torch.bincount(draw_codes(logits, generator=g), minlength=4) / 40000
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.2, 0.3, 0.4]), atol=0.01, rtol=0)
    freq = torch.bincount(draw_codes(logits, top_k=2, generator=g), minlength=4) / 40000
    torch.testing.assert_close(freq, torch.tensor([0, 0, 3 / 7, 4 / 7]), atol=0.01, rtol=0)
    # temperature 0.5 squares the probabilities before normalising
    p2 = torch.tensor([0.01, 0.04, 0.09, 0.16]) / 0.30
    freq = torch.bincount(draw_codes(logits, temperature=0.5, generator=g), minlength=4) / 40000
    torch.testing.assert_close(freq, p2, atol=0.01, rtol=0)


@pytest.mark.parametrize("cls", PRIORS)
def test_sample_restores_training_mode(cls):
    prior = make(cls).train()
    prior.sample(1)
    assert prior.training
    prior.eval().sample(1)
    assert not prior.training


@pytest.mark.parametrize("cls", PRIORS)
def test_labels_condition_the_samples(cls):
    # toy problem: class c is the grid filled with code c
    torch.manual_seed(0)
    prior = cls(num_codes=3, shape=(2, 2), num_classes=3, **TINY[cls])
    opt = torch.optim.Adam(prior.parameters(), lr=2e-2)
    labels = torch.arange(3).repeat(4)  # (12,)
    codes = labels[:, None, None].expand(12, 2, 2)
    for _ in range(60):
        loss = F.cross_entropy(prior(codes, labels), codes)
        opt.zero_grad()
        loss.backward()
        opt.step()
    want = torch.tensor([0, 1, 2, 2, 1, 0])
    samples = prior.sample(6, want, generator=torch.Generator().manual_seed(0))
    assert torch.equal(samples, want[:, None, None].expand(6, 2, 2))
    probs = prior.log_prob(want[:, None, None].expand(6, 2, 2), want).exp()
    assert (probs > 0.9).all(), probs
    assert torch.equal(
        prior.sample(4, 1, generator=torch.Generator().manual_seed(1)), torch.ones(4, 2, 2).long()
    )


# -- save / load --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", PRIORS)
def test_save_and_load_round_trip_bit_exactly(cls, tmp_path):
    prior = make(cls, num_classes=2)
    prior.save_pretrained(tmp_path / "prior")
    loaded = cls.from_pretrained(tmp_path / "prior").eval()
    assert loaded.config == prior.config
    codes = torch.randint(0, 5, (3, 3, 4))
    labels = torch.tensor([0, 1, 0])
    with torch.no_grad():
        assert torch.equal(loaded(codes, labels), prior(codes, labels))


def test_loading_one_prior_as_the_other_is_a_value_error(tmp_path):
    make(PixelCNNPrior).save_pretrained(tmp_path / "pixelcnn")
    with pytest.raises(ValueError, match="PixelCNNPrior"):
        TransformerPrior.from_pretrained(tmp_path / "pixelcnn")


def test_config_and_keyword_forms_build_the_same_model():
    config = PixelCNNConfig(num_codes=7, shape=(2, 3), num_classes=2, channels=8)
    assert PixelCNNPrior(num_codes=7, shape=(2, 3), num_classes=2, channels=8).config == config
    assert PixelCNNPrior(config).config == config
    assert TransformerPrior(num_codes=7, shape=[2, 3], d_model=16, num_heads=2).config == (
        TransformerConfig(num_codes=7, shape=(2, 3), d_model=16, num_heads=2)
    )
    with pytest.raises(TypeError):
        PixelCNNPrior(config, channels=8)


# -- bad input ----------------------------------------------------------------------------


def _codes(shape=(2, 3, 4), value=1, dtype=torch.long):
    return torch.full(shape, value, dtype=dtype)


BAD_CODES = {
    "too large": (_codes(value=5), r"values in \[0, 5\)"),
    "negative": (_codes(value=-1), r"values in \[0, 5\)"),
    "wrong grid": (_codes(shape=(2, 4, 3)), r"shape \(B, 3, 4\)"),
    "wrong rank": (_codes(shape=(3, 4)), r"shape \(B, 3, 4\)"),
    "float": (_codes(dtype=torch.float32), "integer"),
    "not a tensor": ([[1, 2]], "tensor"),
}


@pytest.mark.parametrize("cls", PRIORS)
@pytest.mark.parametrize("case", list(BAD_CODES))
def test_bad_codes_are_value_errors(cls, case):
    prior = make(cls, sharpen=False)
    codes, message = BAD_CODES[case]
    with pytest.raises(ValueError, match=message):
        prior(codes)
    with pytest.raises(ValueError, match=message):
        prior.log_prob(codes)


@pytest.mark.parametrize("cls", PRIORS)
def test_bad_labels_are_value_errors(cls):
    conditional = make(cls, num_classes=3, sharpen=False)
    unconditional = make(cls, sharpen=False)
    codes = _codes()
    with pytest.raises(ValueError, match=r"values in \[0, 3\)"):
        conditional(codes, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"values in \[0, 3\)"):
        conditional.sample(2, -1)
    with pytest.raises(ValueError, match="class-conditional"):
        conditional.log_prob(codes)
    with pytest.raises(ValueError, match="class-conditional"):
        conditional.sample(2)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        conditional(codes, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="integer"):
        conditional(codes, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="takes no labels"):
        unconditional(codes, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="takes no labels"):
        unconditional.sample(2, 0)


@pytest.mark.parametrize("cls", PRIORS)
def test_bad_sampling_options_are_value_errors(cls):
    prior = make(cls, sharpen=False)
    for kwargs, message in [
        ({"temperature": 0.0}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"n": 0}, "n: expected"),
    ]:
        with pytest.raises(ValueError, match=message):
            prior.sample(**{"n": 2, **kwargs})
    with pytest.raises(ValueError, match="shape"):
        cls(num_codes=5, shape=(0, 4))
    with pytest.raises(ValueError, match="num_codes"):
        cls(num_codes=1, shape=(2, 2))


def test_unknown_pixelcnn_sampling_method_is_a_value_error():
    with pytest.raises(ValueError, match="method"):
        make(PixelCNNPrior, sharpen=False).sample(1, method="fast-ish")

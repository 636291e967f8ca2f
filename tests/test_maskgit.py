"""The masked-token (MaskGIT) prior: its schedule, inpainting, the order-agnostic bound,
what a tiny one learns, saving and loading, and its refusals (docs/maskgit.md)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import vqvae
from vqvae.priors import Condition, MaskGITConfig, MaskGITPrior, TransformerPrior
from vqvae.priors.maskgit import masked_counts
from vqvae.registry import PRIORS

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(d_model=16, num_layers=2, num_heads=2)


def make(num_codes=5, shape=(3, 4), num_classes=0, seed=0, sharpen=True, **kw) -> MaskGITPrior:
    """A tiny prior; ``sharpen`` scales the weights so its predictions are far from uniform
    and depend strongly on the visible codes (an untrained net is almost uniform)."""
    torch.manual_seed(seed)
    prior = MaskGITPrior(num_codes=num_codes, shape=shape, num_classes=num_classes, **TINY, **kw)
    if sharpen:
        with torch.no_grad():
            for name, p in prior.named_parameters():
                if "ln" not in name:
                    p.mul_(4.0)
    return prior.eval()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_registered_and_exported():
    assert PRIORS.get("maskgit") is MaskGITPrior and vqvae.MaskGITPrior is MaskGITPrior
    c = MaskGITConfig(num_codes=8, shape=(2, 2))
    # the Transformer prior's width, depth and heads: speed comparisons compare decoding
    assert (c.d_model, c.num_layers, c.num_heads) == (128, 6, 4)


# -- the schedule ---------------------------------------------------------------------------


@pytest.mark.parametrize("total", [1, 2, 5, 49, 256, 1024])
@pytest.mark.parametrize("steps", [1, 2, 8, 10, 12, 64])
def test_schedule_fixes_every_position_monotonely(total, steps):
    counts = masked_counts(torch.tensor([total]), steps)[:, 0].tolist()
    assert counts[-1] == 0  # nothing masked after the last pass
    previous = total
    for c in counts:
        assert 0 <= c <= max(previous - 1, 0)  # at least one code fixed per pass
        previous = c
    # MaskGIT's floor(N cos(pi/2 (s+1)/S)) is never exceeded, and is the count itself
    # wherever it already fixes a code at every pass
    want = [math.floor(total * math.cos(math.pi / 2 * (s + 1) / steps)) for s in range(steps)]
    want[-1] = 0
    assert all(c <= w for c, w in zip(counts, want, strict=True))
    if all(a > b for a, b in zip([total, *want], want[:-1], strict=False)):
        assert counts == want


def test_sampling_runs_the_schedule_pass_by_pass():
    prior = make(shape=(7, 7))
    seen: list[int] = []
    network = prior._network

    def counting(tokens, cond, keep=None, aligned=None):
        seen.append(int((tokens == prior.mask_id).sum()))
        return network(tokens, cond, keep, aligned)

    prior._network = counting  # type: ignore[method-assign]
    codes = prior.sample(2, steps=8, generator=gen())
    counts = masked_counts(torch.tensor([49, 49]), 8)
    # pass s sees the positions left masked by pass s - 1: 49 each first
    assert seen == [98] + [2 * int(c) for c in counts[:-1, 0]]
    assert codes.shape == (2, 7, 7) and int(codes.max()) < 5 and int(codes.min()) >= 0


# -- inpainting -----------------------------------------------------------------------------


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_inpaint_returns_every_unmasked_code_exactly(guidance):
    prior = make(num_classes=3)
    codes = torch.randint(0, 5, (6, 3, 4), generator=gen(1))
    mask = torch.rand(6, 3, 4, generator=gen(2)) < 0.5
    mask[0] = False  # nothing to draw: the grid comes back as it was
    mask[1] = True  # everything to draw
    out = prior.inpaint(codes, mask, torch.arange(6) % 3, guidance=guidance, generator=gen())
    assert torch.equal(out[~mask], codes[~mask])
    assert torch.equal(out[0], codes[0])
    assert int(out.min()) >= 0 and int(out.max()) < 5
    # the masked codes are redrawn, not copied: some differ from the originals
    assert (out[mask] != codes[mask]).any()
    # one mask of the grid's shape applies to every grid
    box = torch.zeros(3, 4, dtype=torch.bool)
    box[1:, 2:] = True
    out = prior.inpaint(codes, box, torch.arange(6) % 3, steps=3, generator=gen())
    assert torch.equal(out[:, ~box], codes[:, ~box])


def test_inpaint_draws_from_the_conditional_given_the_rest():
    """One masked position and one pass: the draw is from the network's softmax at that
    position given every other code (temperature 1), checked by its frequencies."""
    prior = make(num_codes=4, shape=(2, 2))
    codes = torch.tensor([[[1, 2], [3, 0]]]).repeat(4000, 1, 1)
    mask = torch.zeros(2, 2, dtype=torch.bool)
    mask[1, 1] = True
    with torch.no_grad():
        want = torch.softmax(prior(codes[:1], mask=mask)[0, :, 1, 1], dim=0)
    out = prior.inpaint(codes, mask, steps=1, generator=gen())
    freq = torch.bincount(out[:, 1, 1], minlength=4).double() / len(out)
    assert torch.allclose(freq, want.double(), atol=4 * math.sqrt(0.25 / len(out)))


# -- the held-out figures -------------------------------------------------------------------


def _log_p_order(prior: MaskGITPrior, x: torch.Tensor, order: tuple[int, ...]) -> float:
    """log p_sigma(x) = sum_t log p(x_sigma(t) | x_sigma(<t)) for one order of positions."""
    total, visible = 0.0, torch.zeros(x.numel(), dtype=torch.bool)
    for i in order:
        with torch.no_grad():
            logits = prior(x[None], mask=~visible.view(x.shape))[0].flatten(1)  # (K, L)
        total += float(torch.log_softmax(logits[:, i].double(), dim=0)[x.flatten()[i]])
        visible[i] = True
    return total


def test_every_order_is_a_normalised_model_and_nll_bounds_it():
    """Each order sigma defines p_sigma summing to one over all K^L grids; the bound
    E_sigma[-log p_sigma(x)] is >= -log E_sigma[p_sigma(x)] (Jensen); ``nll`` estimates it
    without bias."""
    prior = make(num_codes=3, shape=(3,))
    orders = list(itertools.permutations(range(3)))
    grids = [torch.tensor(g) for g in itertools.product(range(3), repeat=3)]
    table = torch.tensor(
        [[_log_p_order(prior, g, o) for o in orders] for g in grids], dtype=torch.float64
    )
    assert torch.allclose(table.exp().sum(dim=0), torch.ones(len(orders), dtype=torch.float64))
    x = grids[5]
    bound = float(-table[5].mean())
    assert bound >= float(-table[5].exp().mean().log())
    n = 6000
    with torch.no_grad():
        estimates = prior.nll(x[None].repeat(n, 1), generator=gen()).double()
    se = float(estimates.std()) / math.sqrt(n)
    assert abs(float(estimates.mean()) - bound) < 4 * se + 1e-4


def test_log_prob_is_refused_and_the_loss_is_a_cross_entropy():
    prior = make()
    codes = torch.randint(0, 5, (4, 3, 4), generator=gen())
    with pytest.raises(ValueError, match="upper bound"):
        prior.log_prob(codes)
    loss = prior.training_loss(codes, generator=gen()).detach()
    assert loss.dim() == 0 and float(loss) > 0 and torch.isfinite(loss)
    logits = prior(codes)  # every position hidden
    assert torch.allclose(logits.softmax(dim=1).sum(dim=1), torch.ones(4, 3, 4))


def test_guidance_one_is_the_conditional_and_zero_the_null_condition():
    prior = make(num_classes=3)
    tokens = torch.full((2, 12), prior.mask_id)
    cond = prior.check_condition(torch.tensor([0, 2]), 2)
    with torch.no_grad():
        conditional = prior._network(tokens, cond)
        null = prior._network(tokens, cond, keep=torch.zeros(2, dtype=torch.bool))
        assert torch.allclose(prior._guided_logits(tokens, cond, 1.0), conditional)
        assert torch.allclose(prior._guided_logits(tokens, cond, 0.0), null, atol=1e-5)
        two = prior._guided_logits(tokens, cond, 2.0)
        assert torch.allclose(two, 2 * conditional - null, atol=1e-4)


# -- what it learns -------------------------------------------------------------------------


def _toy(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Grids (n, 2, 3) of K=6 codes: row 0 all c, row 1 all (c + 1) % 6, c uniform."""
    c = torch.randint(0, 6, (n,), generator=generator)
    grids = torch.stack([c, (c + 1) % 6], dim=1)[:, :, None].expand(n, 2, 3)
    return grids.contiguous(), c


def _fit(prior: MaskGITPrior, steps: int, labels: bool) -> None:
    torch.manual_seed(0)
    g = gen(3)
    opt = torch.optim.Adam(prior.parameters(), lr=3e-3)
    prior.train()
    for _ in range(steps):
        grids, c = _toy(64, g)
        loss = prior.training_loss(grids, c if labels else None)
        opt.zero_grad()
        loss.backward()
        opt.step()
    prior.eval()


def _valid(grids: torch.Tensor) -> torch.Tensor:
    c = grids[:, 0, 0]
    return (grids[:, 0] == c[:, None]).all(1) & (grids[:, 1] == ((c + 1) % 6)[:, None]).all(1)


def test_a_tiny_prior_learns_a_toy_distribution_and_fills_it_in():
    torch.manual_seed(0)
    prior = MaskGITPrior(num_codes=6, shape=(2, 3), d_model=32, num_layers=2, num_heads=2)
    _fit(prior, 300, labels=False)
    samples = prior.sample(300, steps=4, generator=gen())
    assert float(_valid(samples).float().mean()) >= 0.9
    assert len(set(samples[:, 0, 0].tolist())) == 6  # every mode drawn
    # given the top row, the bottom row is filled in as the distribution says
    grids, c = _toy(100, gen(9))
    mask = torch.zeros(2, 3, dtype=torch.bool)
    mask[1] = True
    filled = prior.inpaint(grids, mask, generator=gen())
    assert float((filled[:, 1] == ((c + 1) % 6)[:, None]).all(1).float().mean()) >= 0.9


def test_a_class_conditional_prior_draws_the_class_asked_for():
    torch.manual_seed(0)
    prior = MaskGITPrior(
        num_codes=6, shape=(2, 3), num_classes=6, d_model=32, num_layers=2, num_heads=2
    )
    _fit(prior, 300, labels=True)
    labels = torch.arange(120) % 6
    for guidance in (1.0, 2.0):
        samples = prior.sample(120, labels, steps=4, guidance=guidance, generator=gen())
        hits = _valid(samples) & (samples[:, 0, 0] == labels)
        assert float(hits.float().mean()) >= 0.9, guidance


# -- any rank, context, save / load -----------------------------------------------------------


def test_one_dimensional_grids_with_a_vector_and_a_context():
    prior = make(shape=(9,), cond_dim=3, context_shape=(2, 2), context_codes=4)
    cond = Condition(
        vector=torch.randn(2, 3, generator=gen()), context=torch.randint(0, 4, (2, 2, 2))
    )
    codes = prior.sample(2, cond, steps=3, guidance=2.0, generator=gen())
    assert codes.shape == (2, 9)
    other = Condition(vector=cond.vector, context=(cond.context + 1) % 4)
    with torch.no_grad():  # the context is read
        assert not torch.allclose(prior(codes, cond), prior(codes, other))


def test_an_aligned_context_is_read_where_it_lies_and_keeps_the_sequence_short():
    prior = make(shape=(3, 4), context_shape=(2, 3, 4), context_aligned=True)
    context = torch.randint(0, 5, (2, 2, 3, 4), generator=gen())
    codes = prior.sample(2, Condition(context=context), steps=3, generator=gen())
    seen = []
    hook = prior.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    with torch.no_grad():
        base = prior(codes, Condition(context=context))
        for frame in range(2):  # each frame, at the far corner, reaches position (0, 0)
            other = context.clone()
            other[:, frame, -1, -1] = (other[:, frame, -1, -1] + 1) % 5
            assert not torch.allclose(prior(codes, Condition(context=other))[..., 0, 0],
                                      base[..., 0, 0])  # fmt: skip
    hook.remove()
    assert seen[0] == (2, 1 + 12, 16)  # the condition token and the grid's 12: no prefix
    with pytest.raises(ValueError, match="context_aligned: expected a context of frames"):
        MaskGITConfig(num_codes=4, shape=(3, 4), context_shape=(2, 4, 3), context_aligned=True)
    with pytest.raises(ValueError, match="context_blocks: expected 0, or blocks over an aligned"):
        MaskGITConfig(num_codes=4, shape=(3, 4), context_shape=(2, 3, 4), context_blocks=2)


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_an_aligned_context_is_computed_once_a_draw_and_read_as_at_every_pass(guidance):
    prior = make(shape=(3, 4), num_classes=2, context_shape=(2, 3, 4), context_aligned=True,
                 context_blocks=2)  # fmt: skip
    cond = Condition(labels=torch.tensor([0, 1]), context=torch.randint(0, 5, (2, 2, 3, 4)))
    calls = []
    hook = prior.context_net[0].register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    prior.sample(2, cond, steps=4, guidance=guidance, generator=gen())
    hook.remove()
    assert calls == [2 if guidance == 1.0 else 4]  # once, for the guided batch if any
    checked = prior.check_condition(cond, 2)
    batch, keep = prior._guided_batch(checked, 2, guidance)
    tokens = torch.randint(0, 6, (len(batch.labels), 12), generator=gen(2))  # [MASK] = 5
    with torch.no_grad():
        once = prior._network(tokens, batch, keep, prior._aligned_context(batch, keep))
        torch.testing.assert_close(once, prior._network(tokens, batch, keep))


def test_convolutions_over_the_aligned_context_read_the_label_and_its_null():
    prior = make(shape=(3, 4), num_classes=2, context_shape=(1, 3, 4), context_aligned=True,
                 context_blocks=2)  # fmt: skip
    context = torch.randint(0, 5, (2, 1, 3, 4), generator=gen())
    codes = torch.randint(0, 5, (2, 3, 4), generator=gen())
    cond = Condition(labels=torch.tensor([0, 1]), context=context)
    with torch.no_grad():
        base = prior(codes, cond)
        labels = prior.context_net[0].label.weight
        labels[-1] += 1.0  # the null label's bias: unread when every label is given
        assert torch.equal(prior(codes, cond), base)
        labels[0] += 1.0  # the first grid's label: read by the convolutions
        changed = prior(codes, cond)
    assert not torch.allclose(changed[0], base[0]) and torch.equal(changed[1], base[1])


def test_sampling_is_reproducible_and_save_load_round_trips(tmp_path):
    prior = make(num_classes=2, steps=5, guidance=1.5)
    prior.save_pretrained(tmp_path / "prior")
    loaded = MaskGITPrior.from_pretrained(tmp_path / "prior").eval()
    assert loaded.config == prior.config
    labels = torch.tensor([0, 1, 1])
    a = prior.sample(3, labels, generator=gen(4))
    assert torch.equal(a, loaded.sample(3, labels, generator=gen(4)))
    assert not torch.equal(a, prior.sample(3, labels, generator=gen(5)))


# -- refusals -------------------------------------------------------------------------------


def test_bad_arguments_are_value_errors():
    prior = make()
    codes = torch.zeros(2, 3, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="mask: expected a bool"):
        prior.inpaint(codes, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="mask: expected shape"):
        prior.inpaint(codes, torch.zeros(4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="steps"):
        prior.sample(2, steps=0)
    with pytest.raises(ValueError, match="guidance"):
        prior.sample(2, guidance=-1.0)
    with pytest.raises(ValueError, match="cond_dropout"):
        MaskGITConfig(num_codes=4, shape=(2,), cond_dropout=1.0)


def test_an_autoregressive_prior_refuses_to_inpaint_naming_maskgit():
    prior = TransformerPrior(num_codes=5, shape=(3, 4), **TINY)
    assert not prior.can_inpaint and prior.exact_likelihood and not prior.sampling_options
    with pytest.raises(ValueError, match="--kind maskgit"):
        prior.inpaint(torch.zeros(1, 3, 4, dtype=torch.long), torch.ones(3, 4, dtype=torch.bool))

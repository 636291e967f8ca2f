"""Lookup-free quantization: every one of d dimensions is one bit.

Yu, Lezama, Gundavarapu, Versari, Sohn, Minnen, Cheng, Birodkar, Gupta, Gu, Hauptmann, Gong,
Yang, Essa, Ross, Jiang, "Language Model Beats Diffusion -- Tokenizer is Key to Visual
Generation" (MAGVIT-v2), 2023, arXiv:2310.05737, section 3.1. The codebook is the corners of
the cube {-1, +1}^d, so the nearest code is each dimension's sign and needs no search:

    q(z_i) = sign(z_i),   Index(z) = sum_i 2^(i-1) 1{q(z_i) = +1}   (dimension 1 the lowest bit)

Sign convention: as the paper's eq. (section 3.1), q(z_i) = -1 for z_i <= 0 and +1 for
z_i > 0, so an exact zero (or -0.0) is bit 0; any fixed rule keeps ``lookup(codes)`` equal to
forward's ``z_q`` (tests/test_lfq.py).

Loss: beta * ||z - sg[q(z)]||^2 (commitment) plus ``entropy_weight`` times the paper's
entropy penalty (eq. 2)

    L_entropy = E[H(q(z))] - H[E(q(z))]

minimised: each vector's code distribution confident (low per-sample entropy), the batch's
average spread over the codebook (high codebook entropy). q(z) is softened to the softmax over
all 2^d codes of -||z - c||^2 / tau. The full softmax, not the per-bit factorised form: both
give the same per-sample entropy (the softmax over a product grid factorises), but the
factorised batch entropy is the sum of the bits' marginal entropies, an upper bound already
maximal when each bit is balanced, e.g. with only the two codes (+1,...,+1) and (-1,...,-1)
in use; the full form counts codes. It costs an (N, 2^d) matrix per batch, fine up to d of
about 14 at the usual N. The entropies are computed in float32 even under autocast.

Projections: D -> d and d -> D are 1x1 linear maps, the identity when ``code_dim == num_bits``.

Data-dependent init: at the first training batch the D -> d projection is shifted and scaled
so that each bit's z has the batch's median at 0 and unit spread: every bit splits the
batch in half from step one. Without it an encoder whose outputs barely vary at PyTorch's
default initialisation (the wider `mnist` network's do) hands every vector the same signs:
one code, whose sample entropy the commitment and entropy terms then drive down within
20 steps, saturating the soft assignment so that the batch entropy can no longer spread the
codes (measured: 2 of 512 codes in use after 300 MNIST steps, 11.7 dB). This is the
implicit codebook's counterpart of the k-means init of the learned ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.quantizers._projection import projection
from vqvae.quantizers.base import (
    QuantizerOutput,
    UpgradableModule,
    broadcast_from_rank0,
    check_codes,
    code_counts,
    flatten,
    perplexity,
    straight_through,
    unflatten,
)
from vqvae.registry import QUANTIZERS
from vqvae.torch_utils import float32


@dataclass(frozen=True)
class LookupFreeQuantizerOutput(QuantizerOutput):
    entropy_loss: torch.Tensor | None = None  # E[H(q(z))] - H[E(q(z))], before entropy_weight
    sample_entropy: torch.Tensor | None = None  # E[H(q(z))] in nats
    codebook_entropy: torch.Tensor | None = None  # H[E(q(z))] in nats


def entropy_terms(z: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """z (N, d) -> (mean per-sample entropy, entropy of the batch's mean), in nats, of
    p(c | z) = softmax_c(-||z - c||^2 / tau) over the 2^d codes c in {-1, +1}^d.

    With ||c||^2 = d for every code the logits are 2 z.c / tau up to terms that cancel, and
    the softmax factorises into independent bits: p(c | z) = prod_i sigmoid(4 z_i c_i / tau).
    So the per-sample entropy is a sum of d Bernoulli entropies, O(N d). The batch's mean
    does not factorise, but with the bits cut in two groups A (low) and B (high),
    p(c | z) = p_A(c_A | z) p_B(c_B | z), and the mean over the batch of that product is one
    (2^a, N) x (N, 2^b) matrix product, with exponentials over N (2^a + 2^b) values only,
    not N 2^d (tests/test_lfq.py checks both terms against the definition).
    """
    with torch.autocast(device_type=z.device.type, enabled=False):
        a = (4.0 / temperature) * z.float()  # (N, d): each bit's logit of being +1
        log_plus, log_minus = F.logsigmoid(a), F.logsigmoid(-a)  # log p(+1), log p(-1)
        sample = -(log_plus.exp() * log_plus + log_minus.exp() * log_minus).sum(1).mean()
        low = z.shape[1] // 2
        p_low = _pattern_probs(log_plus[:, :low], log_minus[:, :low])  # (N, 2^a)
        p_high = _pattern_probs(log_plus[:, low:], log_minus[:, low:])  # (N, 2^b)
        # mean_n p_A[n, c_A] p_B[n, c_B]: (2^a, N) x (N, 2^b); code c = c_A + 2^a c_B
        p_mean = (p_low.t() @ p_high).t().reshape(-1) / z.shape[0]  # (K,)
        # clamp, not xlogy: a code no vector reaches has p_mean = 0 and needs a finite gradient
        codebook = -(p_mean * p_mean.clamp(min=1e-30).log()).sum()
    return sample, codebook


def _pattern_probs(log_plus: torch.Tensor, log_minus: torch.Tensor) -> torch.Tensor:
    """(N, g) per-bit log-probabilities -> (N, 2^g) probabilities of every pattern of the g
    bits, pattern j having bit i = (j >> i) & 1 (bit i of a code is dimension i)."""
    g = log_plus.shape[1]
    j = torch.arange(2**g, device=log_plus.device)
    bits = ((j[:, None] >> torch.arange(g, device=j.device)) & 1).float()  # (2^g, g)
    return ((log_plus - log_minus) @ bits.t() + log_minus.sum(1, keepdim=True)).exp()


class LookupFreeQuantizer(UpgradableModule):
    """LFQ with d = ``num_bits`` binary dimensions: K = 2^d codes (section 3.1).

    ``temperature`` (tau) sets how sharply the entropy's soft assignment follows distance.
    At the peer libraries' tau = 0.01 a bit whose |z| passes about 0.05 gets no gradient
    from the entropy at all (sigmoid(4 z / tau) is saturated), so a bit that starts on one
    side stays there: on MNIST 3 of 9 bits never changed sign and 64 of 512 codes were used.
    At tau = 1 the batch entropy reaches every bit (docs/design-notes.md, "LFQ's
    temperature"); ``temperature=0.01`` is the paper's setting.
    """

    def __init__(
        self,
        code_dim: int = 64,
        num_bits: int = 10,
        beta: float = 0.25,
        entropy_weight: float = 0.1,
        *,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if num_bits < 1:
            raise ValueError(f"expected num_bits >= 1, got {num_bits}")
        if temperature <= 0:
            raise ValueError(f"expected temperature > 0, got {temperature}")
        self.num_bits = num_bits  # d
        self.num_codes = 2**num_bits  # K
        self.code_dim = code_dim  # D
        self.beta = beta
        self.entropy_weight = entropy_weight
        self.temperature = temperature
        self.project_in = projection(code_dim, num_bits)  # D -> d
        self.project_out = projection(num_bits, code_dim)  # d -> D
        self.register_buffer("_powers", 2 ** torch.arange(num_bits), persistent=False)  # (d,)
        self.register_buffer("initialized", torch.tensor(False))  # the projection's data init

    def upgrade_state_dict(self, state: dict[str, torch.Tensor], prefix: str = "") -> None:
        """Weights saved before the data-dependent init existed were trained without it."""
        state.setdefault(prefix + "initialized", torch.tensor(True))

    @torch.no_grad()
    def _init_projection(self, flat: torch.Tensor) -> None:
        """Shift and scale D -> d so each bit of this batch has median 0 and unit spread:
        (W x + b - m) / s. Rank 0's batch decides, so replicas stay equal."""
        if isinstance(self.project_in, nn.Linear):
            z = self.project_in(flat.to(self.project_in.weight.dtype))  # (N, d)
            median = broadcast_from_rank0(z.median(0).values.contiguous())  # (d,)
            spread = broadcast_from_rank0(z.std(0).clamp(min=1e-6).contiguous())  # (d,)
            self.project_in.weight.div_(spread[:, None])
            self.project_in.bias.sub_(median).div_(spread)
        self.initialized.fill_(True)

    @classmethod
    def from_config(cls, config, level: int = 0) -> LookupFreeQuantizer:
        """From a ``QuantizerConfig``: D, ``num_bits`` (or log2 of ``num_codes``), beta and
        the entropy weight."""
        bits = config.num_bits or max(1, round(math.log2(config.num_codes)))
        return cls(
            config.code_dim,
            bits,
            config.beta,
            config.entropy_weight,
            temperature=config.entropy_temperature,
        )

    def bit_codes(self, bits: torch.Tensor) -> torch.Tensor:
        """(N, d) bool, True where z > 0 -> (N,) code indices: bit i of the index is dimension i."""
        return (bits.long() * self._powers).sum(1)  # (N,) binary number

    def codes_to_signs(self, codes: torch.Tensor) -> torch.Tensor:
        """(N,) code indices -> (N, d) in {-1, +1}: bit i of the index is dimension i."""
        bits = codes.long().unsqueeze(1).bitwise_and(self._powers) > 0  # (N, d)
        return bits.float() * 2 - 1

    def _param_dtype(self) -> torch.dtype:
        return next(self.parameters(), torch.empty(0)).dtype

    @property
    def codebook(self) -> torch.Tensor:
        """The (K, D) code vectors as the decoder receives them, code k in row k."""
        corners = self.codes_to_signs(torch.arange(self.num_codes, device=self._powers.device))
        return self.project_out(corners.to(self._param_dtype()))  # (K, d) -> (K, D)

    @float32
    def forward(self, z_e: torch.Tensor) -> LookupFreeQuantizerOutput:
        flat = flatten(z_e, self.code_dim)  # (B, D, *S) -> (N, D)
        if self.training and not self.initialized:
            self._init_projection(flat.detach())
        z = self.project_in(flat)  # (N, D) -> (N, d)
        bits = z.detach() > 0  # (N, d): the paper's sign convention, 0 -> -1
        codes = self.bit_codes(bits)  # (N,)
        q = bits.to(z.dtype) * 2 - 1  # (N, d) in {-1, +1}
        z_q = unflatten(self.project_out(straight_through(z, q)), z_e)  # -> (B, D, *S)

        commitment_loss = F.mse_loss(z.float(), q.float())  # float32: forward is @float32
        sample_entropy, codebook_entropy = entropy_terms(z, self.temperature)
        entropy_loss = sample_entropy - codebook_entropy
        return LookupFreeQuantizerOutput(
            z_q=z_q,
            codes=codes.reshape(z_e.shape[0], *z_e.shape[2:]),  # (N,) -> (B, *S)
            loss=self.beta * commitment_loss + self.entropy_weight * entropy_loss,
            perplexity=perplexity(code_counts(codes, self.num_codes)),
            commitment_loss=commitment_loss,
            codebook_loss=torch.zeros((), device=z_e.device),
            entropy_loss=entropy_loss,
            sample_entropy=sample_entropy,
            codebook_entropy=codebook_entropy,
        )

    @float32
    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, *spatial) -> (B, D, *spatial), equal to forward's z_q for those codes."""
        check_codes(codes, self.num_codes)
        q = self.codes_to_signs(codes.reshape(-1)).to(self._param_dtype())  # (N, d)
        flat = self.project_out(q)  # (N, d) -> (N, D)
        return flat.reshape(*codes.shape, self.code_dim).movedim(-1, 1)  # -> (B, D, *S)

    def extra_repr(self) -> str:
        return f"code_dim={self.code_dim}, num_bits={self.num_bits}, num_codes={self.num_codes}"


QUANTIZERS.register(
    "lfq", LookupFreeQuantizer, about="lookup-free quantization, MAGVIT-v2 (Yu et al. 2023)"
)

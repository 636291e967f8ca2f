"""The quantizer's frozen dataclass config, and building a quantizer from it.

One flat config for every kind: each kind reads the fields it needs
(``from_config(config, level)``) and ignores the rest, so ``--set quantizer.kind=NAME`` alone
switches kinds, with defaults that give about ``num_codes`` codes (an implicit codebook's
size is a product of levels or a power of two, so it may differ: the built quantizer's
``num_codes`` is the one that counts). A kind is a class registered in
``vqvae.registry.QUANTIZERS`` by the file that defines it.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from vqvae.registry import QUANTIZERS


@dataclass(frozen=True)
class QuantizerConfig:
    kind: str = "vq"  # a registered kind: "vq" (codebook by gradients, eq. 3), "ema" (app. A.1)
    num_codes: int = 512  # K
    code_dim: int = 64  # D
    beta: float = 0.25  # commitment weight
    decay: float = 0.99  # EMA only
    eps: float = 1e-5  # EMA only: Laplace smoothing of the counts
    init: str = "kmeans"  # data-dependent init: "kmeans", "random" (encoder outputs), "none"
    # training steps the init refits the codebook to each batch; 0 = the kind's own default
    # (EMA: its time constant 1/(1 - decay); others: the first batch only). docs/design-notes.md
    init_steps: int = 0
    restart_dead_codes: bool = True
    dead_code_steps: int = 20  # restart a code unused for this many training steps
    num_quantizers: int = 1  # > 1: residual VQ with this many levels
    quantizer_dropout: float = 0.0  # residual VQ: chance a batch uses a random number of levels
    gradient: str = "ste"  # codebook kinds: "ste" (straight-through) or "rotation" (rotation.py)
    levels: tuple[int, ...] = ()  # fsq: levels per dimension; () = chosen for about num_codes
    num_bits: int = 0  # lfq: bits per code (2^bits codes); 0 = log2(num_codes)
    entropy_weight: float = 0.1  # lfq: weight of the entropy penalty
    # lfq: tau of the entropy's soft assignment; MAGVIT-v2's 0.01 saturates and lets bits die
    # (docs/design-notes.md, "LFQ's temperature")
    entropy_temperature: float = 1.0
    lookup_dim: int = 32  # cosine: the low-dimensional space codes are looked up in

    def __post_init__(self) -> None:
        QUANTIZERS.get(self.kind)  # "unknown quantizer kind ...; expected one of [...]"
        if self.num_quantizers < 1:
            raise ValueError(f"expected num_quantizers >= 1, got {self.num_quantizers}")

    def build(self) -> nn.Module:
        """The quantizer this config names: one level, or ``num_quantizers`` residual levels."""
        kind = QUANTIZERS.get(self.kind)
        if self.num_quantizers == 1:
            return kind.from_config(self)
        from vqvae.quantizers.residual import ResidualVQ

        def one_level(index: int) -> nn.Module:  # level ``index`` of a residual quantizer
            return kind.from_config(self, index)

        return ResidualVQ(
            self.num_quantizers,
            self.num_codes,
            self.code_dim,
            self.beta,
            quantizer=one_level,
            quantizer_dropout=self.quantizer_dropout,
        )

"""What every autoregressive prior over VQ-VAE code grids shares.

A VQ-VAE turns an input into a grid of integers in ``[0, K)`` of shape ``shape`` (``(h, w)``
for an image, ``(t,)`` for a sequence, any rank); a prior models
``p(codes | cond) = prod_i p(c_i | c_<i, cond)`` over that grid scanned in raster order, is
fitted after the VQ-VAE with cross-entropy, and is sampled to generate new grids
(van den Oord, Vinyals, Kavukcuoglu 2017, "Neural Discrete Representation Learning",
arXiv:1711.00937, sections 3.3, 4.2-4.4). Here live the parts that do not depend on the
network: the config fields, the conditioning and its checks, ``log_prob`` from logits, and
the sampling loop with its temperature / top-k draw.

Conditioning (``Condition``), one interface for ``forward``, ``log_prob`` and ``sample``:

- ``labels`` (B,) int64 in ``[0, num_classes)``: a global id (a class, a speaker);
- ``vector`` (B, cond_dim) float: a global vector (a second-stage model's latents);
- ``context`` (B, *context_shape) int64 in ``[0, context_codes)``: codes of another grid
  the prior reads in full (the previous frames' codes).

Where a prior takes only labels, an int or a ``(B,)`` tensor may stand for the Condition.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.pretrained import PretrainedMixin, renamed_keys
from vqvae.registry import PRIORS
from vqvae.sampling import Draw, draw_codes
from vqvae.torch_utils import eval_mode, module_device


def _shape(value: object, name: str, allow_empty: bool = False) -> tuple[int, ...]:
    """A grid shape as a tuple of positive ints (an int is a 1-D shape)."""
    shape = (value,) if isinstance(value, int) else tuple(value)  # type: ignore[arg-type]
    if (not shape and not allow_empty) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape
    ):
        raise ValueError(f"{name}: expected a tuple of positive ints, got {value!r}")
    return shape


@dataclass(frozen=True)
class PriorConfig:
    """Fields every prior has: the code alphabet, the grid's shape, and the conditioning."""

    num_codes: int  # K, the codebook size of the VQ-VAE whose codes are modelled
    shape: tuple[int, ...]  # the code grid: (h, w) for images, (t,) for sequences, any rank
    num_classes: int = 0  # global ids (class, speaker): 0 = none, else labels in [0, n)
    cond_dim: int = 0  # a global conditioning vector of this size; 0 = none
    context_shape: tuple[int, ...] = ()  # a code context of this shape; () = none
    context_codes: int = 0  # K of the context's codes (default: num_codes)
    # release 0.1's priors were 2-D only and named their shape grid_size
    RENAMED: ClassVar[dict[str, str]] = {"grid_size": "shape"}

    def __post_init__(self) -> None:
        # frozen dataclass: normalise lists and ints to the canonical tuples once, here
        object.__setattr__(self, "shape", _shape(self.shape, "shape"))
        context = _shape(self.context_shape, "context_shape", allow_empty=True)
        object.__setattr__(self, "context_shape", context)
        if context and not self.context_codes:
            object.__setattr__(self, "context_codes", self.num_codes)
        if self.num_codes < 2:
            raise ValueError(f"num_codes: expected at least 2 codes, got {self.num_codes}")
        for name in ("num_classes", "cond_dim", "context_codes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0 (0 = none), got {getattr(self, name)}")

    @property
    def conditional(self) -> bool:
        return bool(self.num_classes or self.cond_dim or self.context_shape)


@dataclass(frozen=True)
class Condition:
    """What a prior is conditioned on (see the module docstring); every field optional."""

    labels: torch.Tensor | None = None  # (B,) int64
    vector: torch.Tensor | None = None  # (B, cond_dim) float
    context: torch.Tensor | None = None  # (B, *context_shape) int64


CondLike = Condition | torch.Tensor | int | None  # an int or a tensor: labels alone
# a way of drawing n grids: (n, checked Condition, Draw) -> codes (n, *shape)
Sampler = Callable[[int, Condition, Draw], torch.Tensor]


def _is_integer_dtype(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def check_int_grid(
    codes: object, shape: tuple[int, ...], num_codes: int, what: str
) -> torch.Tensor:
    """``codes`` as an int64 tensor of shape ``(B, *shape)`` with values in ``[0, num_codes)``,
    or a one-line ``ValueError`` naming ``what`` came instead."""
    want = ", ".join(["B", *map(str, shape)])
    if not isinstance(codes, torch.Tensor):
        raise ValueError(f"{what}: expected a tensor of shape ({want}), got {type(codes).__name__}")
    if not _is_integer_dtype(codes.dtype):
        raise ValueError(f"{what}: expected an integer (int64) tensor, got dtype {codes.dtype}")
    if codes.dim() != 1 + len(shape) or tuple(codes.shape[1:]) != shape:
        raise ValueError(f"{what}: expected shape ({want}), got {tuple(codes.shape)}")
    if codes.numel():
        lo, hi = int(codes.min()), int(codes.max())
        if lo < 0 or hi >= num_codes:
            raise ValueError(
                f"{what}: expected values in [0, {num_codes}), got values in [{lo}, {hi}]"
            )
    return codes.long()


class Prior(nn.Module, PretrainedMixin, metaclass=abc.ABCMeta):
    """Abstract autoregressive prior over ``(B, *shape)`` int64 code grids.

    Build with a config, ``Prior(Config(num_codes=K, shape=(h, w)))``, or with the
    config's fields as keywords, ``Prior(num_codes=K, shape=(h, w))``.
    """

    config_class: type[PriorConfig] = PriorConfig
    # False: ``nll`` is an upper bound, not the exact ``-log_prob`` (the masked-token prior)
    exact_likelihood: ClassVar[bool] = True
    # the keywords ``sample`` takes beyond the common ones (the masked-token prior's steps)
    sampling_options: ClassVar[tuple[str, ...]] = ()
    # whether ``inpaint`` can fill in a region given everything around it
    can_inpaint: ClassVar[bool] = False

    def __init__(self, config: PriorConfig | None = None, **kwargs) -> None:
        super().__init__()
        if config is None:
            config = self.config_class(**renamed_keys(self.config_class, kwargs))
        elif kwargs:
            raise TypeError(f"{type(self).__name__}: pass a config or keywords, not both")
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__}: expected a {self.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        self.config = config

    # -- what a concrete prior provides -------------------------------------------------

    @abc.abstractmethod
    def _logits(self, codes: torch.Tensor, cond: Condition) -> torch.Tensor:
        """(B, *shape) checked codes and a checked Condition -> (B, K, *shape) logits."""

    # -- public interface -----------------------------------------------------------------

    def forward(self, codes: torch.Tensor, cond: CondLike = None) -> torch.Tensor:
        """Logits ``(B, K, *shape)``: position i's logits depend only on codes before i
        (and on the condition)."""
        codes = self.check_codes(codes)
        return self._logits(codes, self.check_condition(cond, codes.shape[0]))

    def log_prob(self, codes: torch.Tensor, cond: CondLike = None) -> torch.Tensor:
        """``log p(codes | cond)`` in nats, one per grid: ``(B, *shape) -> (B,)``."""
        logits = self(codes, cond)  # (B, K, *shape)
        codes = codes.to(device=logits.device, dtype=torch.long)
        # half-precision logits are scored in float32; float64 stays float64
        logp = F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=1)
        at_true = logp.gather(1, codes.unsqueeze(1)).squeeze(1)  # (B, 1, *shape) -> (B, *shape)
        return at_true.flatten(1).sum(dim=1)  # (B, *shape) -> (B, prod(shape)) -> (B,)

    def nll(
        self, codes: torch.Tensor, cond: CondLike = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``-log p(codes | cond)`` in nats, (B,): exact here (``exact_likelihood``); a prior
        without an exact likelihood returns an upper bound, which may use ``generator``."""
        return -self.log_prob(codes, cond)

    def training_loss(
        self, codes: torch.Tensor, cond: CondLike = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """What fitting the prior minimises: the mean cross-entropy per code, in nats."""
        logits = self(codes, cond)  # (B, K, *shape)
        return F.cross_entropy(logits, codes.to(device=logits.device, dtype=torch.long))

    def inpaint(self, codes: torch.Tensor, mask: torch.Tensor, cond: CondLike = None, **kwargs):
        """Redraw the codes under ``mask`` given all the others: only a prior that reads the
        whole grid can (``can_inpaint``)."""
        raise ValueError(
            f"a {type(self).__name__} draws codes in raster order and cannot fill in a region "
            "given what surrounds it; train a maskgit prior (vqvae prior train RUN --kind maskgit)"
        )

    def training_logits(self, codes: torch.Tensor, cond: Condition) -> tuple[torch.Tensor, ...]:
        """Checked codes (B, *shape) and condition -> the logits that training fits by
        cross-entropy, the prior's own first (its NLL); a product of experts adds an
        expert's own (``hybrid.py``)."""
        return (self._logits(codes, cond),)

    def samplers(self) -> dict[str, Sampler]:
        """The ways this prior draws grids, by ``sample``'s ``method``; the first is the
        default. Every prior has ``naive``: one full forward pass per position."""
        return {"naive": self._sample_naive}

    def sample(
        self,
        n: int,
        cond: CondLike = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        method: str | None = None,
    ) -> torch.Tensor:
        """``n`` grids ``(n, *shape)`` int64 drawn by ``method`` (one of ``samplers()``,
        default the first), each code from ``softmax(logits / temperature)`` among the
        ``top_k`` likeliest. ``cond``: a ``Condition`` (or labels alone: an int or ``(n,)``
        tensor) for a conditional prior, else None."""
        samplers = self.samplers()
        method = next(iter(samplers)) if method is None else method
        if method not in samplers:
            raise ValueError(f"method: expected one of {sorted(samplers)}, got {method!r}")
        return self._run_sampler(samplers[method], n, cond, temperature, top_k, generator)

    def _run_sampler(
        self,
        sampler: Sampler,
        n: int,
        cond: CondLike,
        temperature: float,
        top_k: int | None,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Check the arguments, then run ``sampler(n, cond, draw)`` in eval mode, no grad."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected a positive number of samples, got {n!r}")
        if not temperature > 0:
            raise ValueError(f"temperature: expected a number > 0, got {temperature!r}")
        if top_k is not None and (
            isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1
        ):
            raise ValueError(f"top_k: expected None or an int >= 1, got {top_k!r}")
        checked = self.check_condition(cond, n)

        def draw(logits: torch.Tensor) -> torch.Tensor:
            return draw_codes(logits, temperature, top_k, generator)

        # dropout off: samples come from the model as trained, not a noisy copy
        with eval_mode(self), torch.no_grad():
            return sampler(n, checked, draw)

    def _sample_naive(self, n: int, cond: Condition, draw: Draw) -> torch.Tensor:
        """The reference sampler: one full forward pass over the whole grid per position."""
        shape = self.config.shape
        codes = torch.zeros(n, *shape, dtype=torch.long, device=self.device)
        flat = codes.view(n, -1)  # (n, *shape) -> (n, prod(shape)), a view: writes show
        for t in range(flat.shape[1]):
            flat[:, t] = draw(self._logits(codes, cond).flatten(2)[:, :, t])
        return codes

    # -- input checks: one clear line saying what was expected and what came --------------

    @property
    def device(self) -> torch.device:
        return module_device(self)

    def check_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Validate a ``(B, *shape)`` integer grid in ``[0, K)``; return it as int64."""
        checked = check_int_grid(codes, self.config.shape, self.config.num_codes, "codes")
        return checked.to(self.device)

    def check_condition(self, cond: CondLike, batch: int) -> Condition:
        """Validate the conditioning of a batch against the config (see the module doc)."""
        if cond is None or isinstance(cond, (int, torch.Tensor)):
            cond = Condition(labels=cond)  # type: ignore[arg-type]
        if not isinstance(cond, Condition):
            raise ValueError(
                f"cond: expected a Condition, labels (an int or a ({batch},) tensor) or None, "
                f"got {type(cond).__name__}"
            )
        return Condition(
            labels=self._check_labels(cond.labels, batch),
            vector=self._check_vector(cond.vector, batch),
            context=self._check_context(cond.context, batch),
        )

    def _check_labels(self, labels: torch.Tensor | int | None, batch: int) -> torch.Tensor | None:
        num_classes = self.config.num_classes
        if num_classes == 0:
            if labels is not None:
                raise ValueError("labels: this prior takes no labels (num_classes=0), got labels")
            return None
        if labels is None:
            raise ValueError(
                f"labels: this prior is class-conditional (num_classes={num_classes}), "
                f"expected labels of shape ({batch},) or an int, got None"
            )
        if isinstance(labels, bool) or not isinstance(labels, (int, torch.Tensor)):
            raise ValueError(
                f"labels: expected an int or a ({batch},) tensor, got {type(labels).__name__}"
            )
        if isinstance(labels, int):
            labels = torch.full((batch,), labels, dtype=torch.long)
        if not _is_integer_dtype(labels.dtype):
            raise ValueError(f"labels: expected an integer tensor, got dtype {labels.dtype}")
        if labels.dim() == 0:
            labels = labels.expand(batch)
        if tuple(labels.shape) != (batch,):
            raise ValueError(f"labels: expected shape ({batch},), got {tuple(labels.shape)}")
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"labels: expected values in [0, {num_classes}), got values in [{lo}, {hi}]"
            )
        return labels.to(device=self.device, dtype=torch.long)

    def _check_vector(self, vector: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        dim = self.config.cond_dim
        if (vector is None) != (dim == 0):
            want = f"a ({batch}, {dim}) float tensor" if dim else "none (cond_dim=0)"
            raise ValueError(f"vector: expected {want}, got {'None' if vector is None else 'one'}")
        if vector is None:
            return None
        if not vector.is_floating_point() or tuple(vector.shape) != (batch, dim):
            raise ValueError(
                f"vector: expected a float tensor of shape ({batch}, {dim}), "
                f"got {vector.dtype} {tuple(vector.shape)}"
            )
        if not torch.isfinite(vector).all():
            raise ValueError("vector: holds NaN or infinite values")
        return vector.to(device=self.device, dtype=self._float_dtype())

    def _check_context(self, context: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        c = self.config
        if (context is None) != (not c.context_shape):
            want = f"codes of shape {c.context_shape}" if c.context_shape else "none"
            raise ValueError(
                f"context: expected {want}, got {'None' if context is None else 'one'}"
            )
        if context is None:
            return None
        checked = check_int_grid(context, c.context_shape, c.context_codes, "context")
        if checked.shape[0] != batch:
            raise ValueError(f"context: expected a batch of {batch}, got {checked.shape[0]}")
        return checked.to(self.device)

    def _float_dtype(self) -> torch.dtype:
        return next((p.dtype for p in self.parameters() if p.is_floating_point()), torch.float32)

    def extra_repr(self) -> str:
        fields = ", ".join(
            f"{f.name}={getattr(self.config, f.name)}" for f in dataclasses.fields(self.config)
        )
        return fields


def build_prior(kind: str, **fields: Any) -> Prior:
    """A new prior of a registered kind from its config's fields (``vqvae.registry.PRIORS``)."""
    cls = PRIORS.get(kind)
    return cls(cls.config_class(**fields))

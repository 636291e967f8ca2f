"""What every quantizer shares: the output type, shape checks, data-dependent
initialization, dead-code restarts, and the code-space statistics.

Notation follows the paper (section 3.1): ``z_e`` encoder output, ``e`` the codebook
(K vectors of dimension D), ``z_q`` the nearest code vector, ``codes`` its index.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from vqvae.metrics import perplexity  # noqa: F401 (re-exported for the quantizers)
from vqvae.quantizers._nearest import nearest_code
from vqvae.quantizers.kmeans import kmeans, sample_rows
from vqvae.torch_utils import float32

INIT_METHODS = ("kmeans", "random", "none")
REFIT_ITERS = 2  # Lloyd iterations per step after the first of the initialization


@dataclass(frozen=True)
class QuantizerOutput:
    z_q: torch.Tensor  # (B, D, *spatial), straight-through: d z_q / d z_e = identity
    codes: torch.Tensor  # (B, *spatial) int64; (B, Q, *spatial) for residual quantizers
    loss: torch.Tensor  # scalar: codebook term (if any) + beta * commitment term
    perplexity: torch.Tensor  # scalar: exp(entropy) of the batch's code histogram
    commitment_loss: torch.Tensor  # scalar: ||z_e - sg[e]||^2, before beta
    codebook_loss: torch.Tensor  # scalar: ||sg[z_e] - e||^2 (zero for EMA codebooks)
    num_restarted: int = 0  # dead codes re-seeded in this call


def flatten(z_e: torch.Tensor, code_dim: int) -> torch.Tensor:
    """(B, D, *spatial) -> (B * prod(spatial), D), checking the shape on the way."""
    if z_e.dim() < 3:
        raise ValueError(
            f"expected z_e of shape (B, D, *spatial) with at least one spatial dim, "
            f"got shape {tuple(z_e.shape)}"
        )
    if z_e.shape[1] != code_dim:
        raise ValueError(
            f"expected z_e with {code_dim} channels (code_dim) in dim 1, "
            f"got shape {tuple(z_e.shape)}"
        )
    return z_e.movedim(1, -1).reshape(-1, code_dim)


def unflatten(flat: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (B, D, *spatial) with the batch and spatial sizes of ``like``."""
    b, d, *spatial = like.shape
    return flat.reshape(b, *spatial, d).movedim(-1, 1)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a statistic over processes (a no-op in one process)."""
    if _distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_from_rank0(t: torch.Tensor) -> torch.Tensor:
    """Random choices (init, restarts) are made on rank 0 and copied, so replicas agree."""
    if _distributed():
        dist.broadcast(t, src=0)
    return t


class UpgradableModule(nn.Module):
    """A module whose ``upgrade_state_dict`` fills in what weights saved by an older release
    lack: ``pretrained.load_state_checked`` applies it before comparing names, and a plain
    ``load_state_dict`` does too (as BatchNorm fills ``num_batches_tracked``)."""

    def upgrade_state_dict(self, state: dict[str, torch.Tensor], prefix: str = "") -> None:
        raise NotImplementedError

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        self.upgrade_state_dict(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class Quantizer(UpgradableModule):
    """Base of the single-codebook quantizers: subclasses say how the codebook learns."""

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        beta: float,
        init: str,
        restart_dead_codes: bool,
        dead_code_steps: int,
        init_steps: int = 1,
    ) -> None:
        super().__init__()
        if num_codes < 1 or code_dim < 1:
            raise ValueError(
                f"expected num_codes >= 1 and code_dim >= 1, got {num_codes}, {code_dim}"
            )
        if init not in INIT_METHODS:
            raise ValueError(f"expected init in {INIT_METHODS}, got {init!r}")
        self.num_codes = num_codes
        self.code_dim = code_dim
        self.beta = beta
        self.init = init
        self.restart_dead_codes = restart_dead_codes
        if dead_code_steps < 1:
            raise ValueError(f"expected dead_code_steps >= 1, got {dead_code_steps}")
        self.dead_code_steps = dead_code_steps
        if init_steps < 1:
            raise ValueError(f"expected init_steps >= 1, got {init_steps}")
        self.init_steps = init_steps
        # Training steps since each code was last chosen; a restart resets it.
        self.register_buffer("steps_unused", torch.zeros(num_codes, dtype=torch.long))
        # Saved with the weights, so a loaded model is never re-initialized from data.
        self.register_buffer("initialized", torch.tensor(init == "none"))
        # Training steps of the data-dependent initialization done (see _maybe_initialize);
        # saved too, so that a resumed run ends the initialization where it would have.
        done = init_steps if init == "none" else 0
        self.register_buffer("init_steps_done", torch.tensor(done, dtype=torch.long))
        # How a training call treats its codebook statistics (``vqvae.train.accumulate``):
        # "apply" them at once; "defer" them to ``finish_step`` (a micro-batch of a step);
        # or "init" only, fitting the codebook and keeping no statistics (the pass over a
        # whole step's batch that precedes its micro-batches while initialization lasts).
        self.step_mode = "apply"
        self._pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def upgrade_state_dict(self, state: dict[str, torch.Tensor], prefix: str = "") -> None:
        """Fill in what weights saved before ``init_steps_done`` existed lack: a quantizer
        saved initialized had finished its initialization (its codebook was then fitted once)."""
        key, flag = prefix + "init_steps_done", prefix + "initialized"
        if key not in state and flag in state:
            done = self.init_steps if bool(state[flag]) else 0
            state[key] = torch.tensor(done, dtype=torch.long)

    # -- the codebook ------------------------------------------------------------------
    @property
    def codebook(self) -> torch.Tensor:
        """The (K, D) code vectors."""
        raise NotImplementedError

    def _set_codes(
        self, index: torch.Tensor, vectors: torch.Tensor, counts: torch.Tensor | None = None
    ) -> None:
        """Overwrite code vectors ``index`` and reset their statistics (``counts``: how many
        encoder outputs each new vector stands for; None for a fresh restart)."""
        raise NotImplementedError

    @float32
    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, *spatial) int -> code vectors (B, D, *spatial)."""
        check_codes(codes, self.num_codes)
        return nn.functional.embedding(codes, self.codebook).movedim(-1, 1)

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        return nearest_code(flat, self.codebook)

    # -- data-dependent initialization and dead-code restarts (docs/design-notes.md) ------
    @torch.no_grad()
    def _maybe_initialize(self, flat: torch.Tensor) -> None:
        """Fit the codebook to the encoder outputs of each of the first ``init_steps``
        training steps: on the first, by k-means from random rows (or by random rows);
        on each later one, by ``REFIT_ITERS`` Lloyd iterations started from the current
        codebook (or by fresh random rows).

        Why more than the first batch: at initialization the encoder's outputs are a small
        cloud that the first optimizer steps move by more than its own width (mnist preset:
        spread 0.15, a mean shift of 0.36 after the first Adam step at lr 1e-3, codes 0.07
        apart; see benchmarks/ema_init.py). A codebook fitted once is then left behind, every
        output is nearest one edge code, and the collapse lasts: unchosen codes never move
        under the EMA (paper appendix A.1), and the straight-through gradient keeps pushing
        outputs that are far from their code the same way. Encoder outputs are non-stationary
        early in training, and re-fitting codewords to data is the remedy Łańcucki et al.,
        "Robust training of vector quantized bottleneck models" (2020, arXiv:2005.08520)
        give for it. Test: tests/test_codebook_init.py.
        """
        if not self.training or self.init == "none" or self.step_mode == "defer":
            return
        if int(self.init_steps_done) >= self.init_steps:
            return
        x = flat.detach().float()
        if self.init == "kmeans" and bool(self.initialized):
            vectors = kmeans(x, self.num_codes, iters=REFIT_ITERS, init=self.codebook)
        elif self.init == "kmeans":
            vectors = kmeans(x, self.num_codes)
        else:
            vectors = sample_rows(x, self.num_codes)
        vectors = broadcast_from_rank0(vectors.contiguous())
        counts = code_counts(nearest_code(flat.detach(), vectors), self.num_codes).float()
        counts = broadcast_from_rank0(counts)
        self._set_codes(torch.arange(self.num_codes, device=flat.device), vectors, counts)
        self.steps_unused.zero_()
        self.initialized.fill_(True)
        self.init_steps_done.add_(1)

    def set_step_mode(self, mode: str) -> None:
        """ "apply", "defer" or "init" (see ``__init__``); statistics kept are dropped."""
        if mode not in ("apply", "defer", "init"):
            raise ValueError(f"expected step mode apply, defer or init, got {mode!r}")
        self.step_mode = mode
        self._pending = []

    @property
    def initializing(self) -> bool:
        """Whether the next training call fits the codebook to its data."""
        return self.init != "none" and int(self.init_steps_done) < self.init_steps

    def _statistics(self, flat: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor) -> int:
        """A training call's codebook statistics: applied at once (returning the codes
        restarted), or kept until ``finish_step`` when this call is one micro-batch of a step."""
        if not self.training or self.step_mode == "init":
            return 0
        if self.step_mode == "defer":
            self._pending.append((flat.detach(), codes, counts))
            return 0
        return self._apply_statistics(flat.detach(), codes, counts)

    def finish_step(self) -> int:
        """Apply the statistics of a step's micro-batches at once, as one batch of them all
        would have: rows (N, D), codes (N,) and counts (K,) are concatenated and summed."""
        pending, self._pending = self._pending, []
        if not pending:
            return 0
        flat = torch.cat([p[0] for p in pending])  # micro-batches' (n_i, D) -> (N, D)
        codes = torch.cat([p[1] for p in pending])  # (N,)
        counts = torch.stack([p[2] for p in pending]).sum(0)  # (K,)
        return self._apply_statistics(flat, codes, counts)

    def _apply_statistics(
        self, flat: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor
    ) -> int:
        """Update the codebook from a step's statistics; returns the codes restarted.
        Subclasses whose codebook learns from statistics (EMA) update it first."""
        return self._restart_dead_codes(counts, flat)

    @torch.no_grad()
    def _restart_dead_codes(self, counts: torch.Tensor, flat: torch.Tensor) -> int:
        """Count steps unused; re-seed codes unused for ``dead_code_steps`` training steps
        from random encoder outputs of this batch. Returns how many were re-seeded."""
        if not self.training:
            return 0
        used = all_reduce_sum(counts.clone()) > 0
        self.steps_unused.add_(1).masked_fill_(used, 0)
        if not self.restart_dead_codes:
            return 0
        dead = self.steps_unused >= self.dead_code_steps
        dead = broadcast_from_rank0(dead.to(torch.uint8)).bool()
        n = int(dead.sum())
        if n == 0:
            return 0
        index = dead.nonzero().squeeze(1)
        vectors = broadcast_from_rank0(sample_rows(flat.detach().float(), n).contiguous())
        self._set_codes(index, vectors)
        self.steps_unused[index] = 0
        return n


def check_codes(codes: torch.Tensor, num_codes: int) -> None:
    if codes.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"expected integer codes, got dtype {codes.dtype}")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= num_codes):
        raise ValueError(
            f"expected codes in [0, {num_codes}), got values in "
            f"[{int(codes.min())}, {int(codes.max())}]"
        )


def code_counts(codes: torch.Tensor, num_codes: int) -> torch.Tensor:
    """Histogram (K,) of a flat tensor of codes."""
    return torch.bincount(codes.reshape(-1), minlength=num_codes)


def straight_through(flat: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """sg[e] + (z_e - sg[z_e]): the value of e with the gradient of z_e (paper, section 3.1).

    Written this way round, not as z_e + sg[e - z_e], so the value is bit-exactly e
    (z_e - sg[z_e] is exactly 0, z_e + (e - z_e) is not): decode_codes(encode(x)) must equal
    the forward pass exactly (tests/test_models.py).
    """
    return e.detach() + (flat - flat.detach())


def nearest_and_counts(q: Quantizer, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    codes = q.nearest(flat.detach())
    return codes, code_counts(codes, q.num_codes)

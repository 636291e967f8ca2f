"""Gradient accumulation: one optimizer step from ``--accumulate N`` micro-batches.

A step's batch (``--batch-size``, this process's share of it under torchrun) is cut into N
micro-batches along its first dimension. Each one's loss, a mean over its examples, is
weighted by its share of the batch before backward, so the summed gradients are those of
the whole batch's mean loss. What a codebook learns from a batch is made to equal the
whole batch's too:

- the EMA statistics and dead-code restarts of each micro-batch are kept and applied once,
  after the last one (``Quantizer.finish_step``), from all N micro-batches' rows, counts
  and sums, before the optimizer step (a restart of a gradient-trained codebook precedes
  its Adam update, as in one large batch);
- while a codebook is being fitted to the data (its k-means initialization and re-fits,
  ``Quantizer._maybe_initialize``), a pass without gradients over the whole batch fits it
  first, so that the micro-batches choose their codes from the codebook the whole batch
  would have been quantized with. It costs one forward pass of the batch in those steps
  only (the first ``init_steps``).

Under torchrun the gradient all-reduce waits for the last micro-batch (DDP's ``no_sync``).
tests/test_accumulate.py checks that N micro-batches give the parameters and the EMA
codebook of one batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
from torch import nn

from vqvae.quantizers import Quantizer


def micro_batches(batch: torch.Tensor, parts: int) -> list[torch.Tensor]:
    """A step's input (indices or examples, first dimension the batch) in ``parts`` pieces
    of sizes differing by at most one."""
    return [p for p in torch.tensor_split(batch, parts) if len(p)]


def quantizers(model: nn.Module) -> list[Quantizer]:
    """The codebook quantizers of a model (each level of a residual one)."""
    return [m for m in model.modules() if isinstance(m, Quantizer)]


@contextmanager
def step_mode(found: list[Quantizer], mode: str) -> Iterator[None]:
    """Set the quantizers' ``step_mode`` for the block, then back to applying at once."""
    for q in found:
        q.set_step_mode(mode)
    try:
        yield
    finally:
        for q in found:
            q.set_step_mode("apply")  # a step abandoned midway leaves nothing for the next


def no_sync(trained: nn.Module | None, last: bool) -> AbstractContextManager:
    """DDP's gradient all-reduce only on a step's last micro-batch."""
    wait = getattr(trained, "no_sync", None)
    return nullcontext() if last or wait is None else wait()
